"""The excitation at initialisation a run records beside its trained excitation (the figure's reference)."""

from __future__ import annotations

from sesweep.spec import run_spec
from sesweep.training.train import train

TINY = {"recipe.dataset": "fake", "recipe.train_subset": 256, "recipe.test_subset": 100, "recipe.batch_size": 64,
        "recipe.epochs": 1, "recipe.precision": "fp32", "recipe.device": "cpu"}


def test_a_run_records_the_excitation_of_its_untrained_net_on_the_same_probe():
    a = train(run_spec(TINY), progress=False)
    b = train(run_spec({**TINY, "recipe.lr": 0.02}), progress=False)  # another training of the same initial net
    assert a.excitation_init and b.excitation_init
    blocks = [(r["block"], r["class"]) for r in a.excitation]
    assert [(r["block"], r["class"]) for r in a.excitation_init] == blocks
    assert a.excitation_init == b.excitation_init   # the same net at initialisation, the same images
    assert a.excitation != b.excitation              # while training moved them apart
    assert a.excitation_init != a.excitation
