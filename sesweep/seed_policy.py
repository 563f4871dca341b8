"""A sweep's seed policy: ``seeds: {start: 4, max: 20, step: 2, margin: 0.3, alpha: 0.05}``.

Beside the fixed list (``seeds: [0, 1, 2]``), a sweep may say how many seeds every variant starts with and let
the queue add seeds, in rounds of ``step``, to the variants of contrasts an anytime-valid confidence sequence
has not yet decided (:mod:`sesweep.analysis.seed_allocation`), up to ``max``. Seeds are the integers 0, 1, 2, ...
in order, so seed s of a variant is the same run (the same run key) as in a fixed-list sweep, and results adopt
between the two forms. Checked here, one line per error, like every other key of a sweep file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sesweep.spec import SpecError

#: the keys of a seed policy, in the order messages name them
POLICY_KEYS = ("start", "max", "step", "margin", "alpha")


@dataclass(frozen=True)
class SeedPolicy:
    """How many seeds a variant gets: ``start`` each, ``step`` more per round while a contrast it is in is
    undecided, at most ``max``; ``margin`` (points of top-1 error, pre-registered) bounds "equivalent";
    ``alpha`` is the family-wise error over the report's contrasts (Bonferroni-split over them)."""

    #: seeds every variant gets (at alpha/K = 0.01, five contrasts, the sequence is unbounded below 6 pairs, at
    #: 0.05 below 5: a start under that only adds a round of looks, never a false decision)
    start: int = 4
    #: the cap on seeds per variant: the budget check and ``--dry-run`` count the sweep at max
    max: int = 20
    #: seeds added per round to the variants of an undecided contrast
    step: int = 2
    #: the equivalence margin in points of top-1 error (|difference| < margin is "equivalent")
    margin: float = 0.3
    #: the family-wise error rate of the decisions
    alpha: float = 0.05

    @property
    def seeds(self) -> tuple[int, ...]:
        """Every seed a variant may get (0 .. max-1): the plan's runs, so the sweep is sized at max."""
        return tuple(range(self.max))

    def describe(self, variants: int) -> str:
        """The policy at start and at max, for ``--dry-run``."""
        return (f"seed policy: at start {self.start} seeds = {self.start * variants} runs; at most {self.max} seeds = "
                f"{self.max * variants} runs (seeds added {self.step} at a time to the variants of an undecided "
                f"contrast; margin {self.margin:g}, alpha {self.alpha:g}; the budget is checked at max)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SeedPolicy:
        """The policy a manifest recorded (its keys as :meth:`as_dict` wrote them)."""
        return parse_seed_policy(raw)


def _integer(raw: Mapping[str, Any], key: str, default: int, low: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise SpecError(f"seeds.{key}", f"{value!r} is not allowed; allowed: an integer >= {low}")
    return value


def _number(raw: Mapping[str, Any], key: str, default: float, low: float, high: float, what: str) -> float:
    value = raw.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        and low < value < high
    if not ok:
        raise SpecError(f"seeds.{key}", f"{value!r} is not allowed; allowed: {what}")
    return float(value)


def parse_seed_policy(raw: Mapping[Any, Any]) -> SeedPolicy:
    """``seeds: {start, max, step, margin, alpha}`` checked (each key optional; defaults as :class:`SeedPolicy`)."""
    for key in raw:
        if key not in POLICY_KEYS:
            raise SpecError(f"seeds.{key}", f"unknown key; allowed: {', '.join(POLICY_KEYS)} (or a list of seeds, "
                                            "e.g. seeds: [0, 1, 2])")
    d = SeedPolicy()
    start = _integer(raw, "start", d.start, 2)
    cap = _integer(raw, "max", max(d.max, start), 2)
    if cap < start:
        raise SpecError("seeds.max", f"{cap} is not allowed; allowed: an integer >= seeds.start ({start})")
    step = _integer(raw, "step", d.step, 1)
    margin = _number(raw, "margin", d.margin, 0.0, math.inf, "a number of points of top-1 error > 0, e.g. 0.3")
    alpha = _number(raw, "alpha", d.alpha, 0.0, 0.5, "a number between 0 and 0.5, e.g. 0.05")
    return SeedPolicy(start, cap, step, margin, alpha)


def sweep_policy(data: Mapping[str, Any]) -> SeedPolicy | None:
    """The sweep file's seed policy, None for a fixed list of seeds (checked by ``sweepfile.sweep_seeds``)."""
    raw = data.get("seeds")
    return parse_seed_policy(raw) if isinstance(raw, Mapping) else None
