"""Which seeds each variant gets under a seed policy: a pure function of the results recorded so far.

:func:`allocate` replays the policy from the start: every variant has ``start`` seeds (0 .. start-1); a
contrast whose two sides have recorded every seed below its level (the seeds both sides hold) is decided on
those pairs (:func:`.sequential.sequence`, alpha split over the contrasts, Bonferroni); an undecided one raises
both sides to ``level + step`` (capped at ``max``), the same next integers on both sides so pairs stay matched;
repeat until nothing changes. Why a replay and not a stored counter: the allocation is then a function of the
recorded results alone, so every worker on every machine computes the same one, and two workers deciding at
once queue the same run keys (each queued once, under the sweep lock); results already on disk beyond a level
(a fixed-list sweep run before) are used at their level, never earlier.

The contrasts are the report's (:func:`.factors.contrasts`: the variant and its reference). Within one sweep
the two sides of a contrast agree on every key it does not vary (that is how contrasts are chosen), so the
pairing of :func:`.stats.compare` reduces to the seed, which is how pairs are formed here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sesweep.analysis.sequential import (
    DECIDED,
    INCONCLUSIVE,
    UNDECIDED,
    ContrastSequence,
    IntervalRule,
    mixture_c,
    mixture_cs,
    sequence,
)
from sesweep.seed_policy import SeedPolicy

#: a recorded seed's outcome: its top-1 error, or None for a run done without one (diverged, failed for good)
Outcome = float | None


@dataclass(frozen=True)
class ContrastPair:
    """One contrast the policy decides: variant minus reference, and the report's label."""

    variant: str
    reference: str
    label: str = ""


@dataclass(frozen=True)
class ContrastState:
    """Where one contrast stands: its seeds allocated (``level``), whether they are all recorded, its sequence."""

    pair: ContrastPair
    level: int
    complete: bool
    sequence: ContrastSequence

    @property
    def decision(self) -> str:
        return self.sequence.decision

    @property
    def open(self) -> bool:
        """Still takes seeds: undecided and below the cap."""
        return self.decision == UNDECIDED


@dataclass(frozen=True)
class Allocation:
    """Seeds per variant (seeds 0 .. n-1), the contrasts' states, and the range of runs still possible."""

    seeds: dict[str, int]
    contrasts: tuple[ContrastState, ...]
    policy: SeedPolicy
    #: per variant the seeds it would have if every undecided contrast went on to max
    most: dict[str, int]

    def wants(self, variant: str, seed: int) -> bool:
        return 0 <= seed < self.seeds.get(variant, 0)

    @property
    def at_least(self) -> int:
        """Runs allocated now: the sweep trains at least these."""
        return sum(self.seeds.values())

    @property
    def at_most(self) -> int:
        return sum(self.most.values())

    @property
    def at_max(self) -> int:
        """Runs if every variant went to max (what a fixed list of max seeds trains)."""
        return self.policy.max * len(self.seeds)

    def counts(self) -> dict[str, int]:
        """How many contrasts have each decision."""
        out: dict[str, int] = {}
        for c in self.contrasts:
            out[c.decision] = out.get(c.decision, 0) + 1
        return out


def contrast_alpha(policy: SeedPolicy, contrasts: int) -> float:
    """Each contrast's alpha: the policy's split over the family (Bonferroni: valid under any dependence
    between contrasts that share a baseline, and under any stopping)."""
    return policy.alpha / max(1, contrasts)


def target_n(policy: SeedPolicy) -> int:
    """The seed count the mixture is tuned for: halfway between start and max."""
    return (policy.start + policy.max + 1) // 2


def evaluate(pair: ContrastPair, level: int, outcomes: Mapping[str, Mapping[int, Outcome]], policy: SeedPolicy,
             alpha: float, rule: IntervalRule = mixture_cs) -> ContrastState:
    """A contrast on the seeds below ``level``: complete when both sides recorded all of them; pairs are the
    seeds both finished, in seed order; capped (inconclusive when undecided) once complete at max."""
    a, b = outcomes.get(pair.variant, {}), outcomes.get(pair.reference, {})
    complete = all(s in a and s in b for s in range(level))
    seeds = [s for s in range(level) if a.get(s) is not None and b.get(s) is not None]
    diffs = [float(a[s]) - float(b[s]) for s in seeds]  # type: ignore[arg-type]
    capped = complete and level >= policy.max
    seq = sequence(seeds, diffs, alpha, policy.margin, mixture_c(alpha, target_n(policy)), capped, rule)
    return ContrastState(pair, level, complete, seq)


def allocate(policy: SeedPolicy, variants: Sequence[str], contrasts: Sequence[ContrastPair],
             outcomes: Mapping[str, Mapping[int, Outcome]], rule: IntervalRule = mixture_cs) -> Allocation:
    """The seeds every variant needs now, given the recorded ``outcomes`` (variant -> seed -> top-1 error or
    None), and every contrast's state (module doc). Variants in no contrast keep ``start`` seeds."""
    alpha = contrast_alpha(policy, len(contrasts))
    alloc = {v: policy.start for v in variants}
    for pair in contrasts:
        for v in (pair.variant, pair.reference):
            alloc.setdefault(v, policy.start)
    while True:
        states = [evaluate(p, min(alloc[p.variant], alloc[p.reference]), outcomes, policy, alpha, rule)
                  for p in contrasts]
        grown = dict(alloc)
        for st in states:
            if st.open and st.complete:
                target = min(st.level + policy.step, policy.max)
                for v in (st.pair.variant, st.pair.reference):
                    grown[v] = max(grown[v], target)
        if grown == alloc:
            break
        alloc = grown
    most = dict(alloc)
    for st in states:
        if st.open:
            for v in (st.pair.variant, st.pair.reference):
                most[v] = policy.max
    return Allocation(alloc, tuple(states), policy, most)


def done(allocation: Allocation) -> bool:
    """Every contrast settled: decided, or inconclusive at the cap."""
    return all(c.decision in (*DECIDED, INCONCLUSIVE) for c in allocation.contrasts)


def seeds_used(allocation: Allocation) -> np.ndarray:
    """Per contrast the seeds its sides hold (its level): for the simulation's summary."""
    return np.array([c.level for c in allocation.contrasts], dtype=int)
