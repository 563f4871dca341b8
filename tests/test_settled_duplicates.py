"""Issue 21.4: two variants that become one run once ``precision: auto`` is settled are refused in one line
naming both (``runs.csv`` would list both under one key and the reader keep the last, losing a variant)."""

from __future__ import annotations

import pytest

from sesweep.plan import parse_plan
from sesweep.spec import SpecError

SWEEP = """\
name: settle
model: {arch: resnet20, attention: {kind: se}}
recipe: {dataset: fake, epochs: 1, precision: auto}
seeds: [0, 1]
variants:
  bf16: {recipe.precision: bf16}
"""


def test_a_variant_equal_to_another_after_auto_is_settled_is_refused_naming_both():
    plan = parse_plan(SWEEP)
    assert len(plan.variants) == 2  # before settling they differ (auto vs bf16)
    with pytest.raises(SpecError) as err:
        plan.with_precision("bf16")  # as on a CPU with native bf16
    text = str(err.value)
    assert "recipe.precision" in text and "'base'" in text and "'bf16'" in text and "\n" not in text


def test_the_same_sweep_settled_to_another_precision_keeps_both():
    settled = parse_plan(SWEEP).with_precision("fp32")  # as on an AVX2-only CPU: a real precision contrast
    assert len({r.key for r in settled.runs}) == 4
