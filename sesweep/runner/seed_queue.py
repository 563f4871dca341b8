"""The queue's side of a seed policy: which of the plan's runs (seeds 0 .. max-1) are wanted now.

A plan with ``seeds: {start, max, step, margin, alpha}`` holds every run up to ``max``; the claim (under the
sweep lock, :func:`sesweep.runner.queue.claim`) takes only the runs :func:`wanted` names: seeds 0 .. n-1 of each
variant, n from :func:`sesweep.analysis.seed_allocation.allocate` replayed on the results the study holds. A
worker that would go idle thus claims the next seeds of exactly the variants of undecided contrasts (the
baseline too); the claim mechanism, and so exactly-once, is unchanged: the policy only narrows what is claimable.

The contrasts decided here are every variant against its baseline (the report's first family,
:func:`sesweep.analysis.factors.baseline_contrasts`): the baseline with the same architecture and recipe.
A sweep without a baseline has no contrast to decide: each variant keeps ``start`` seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from sesweep.analysis.factors import baseline_references
from sesweep.analysis.seed_allocation import Allocation, ContrastPair, Outcome, allocate
from sesweep.plan import Plan, Run
from sesweep.spec import flatten

if TYPE_CHECKING:
    from sesweep.runner.queue import KeyState


def plan_contrasts(plan: Plan) -> list[ContrastPair]:
    """Every non-baseline variant against its baseline, paired by the analysis's own rule
    (:func:`sesweep.analysis.factors.baseline_references`: the one baseline of the same architecture and
    recipe), so the queue decides exactly the contrasts the report prints."""
    configs = pd.DataFrame({v.name: {k: x for k, x in flatten(v.spec).items() if k != "seed"}
                            for v in plan.variants}).T
    refs = baseline_references(configs, list(plan.baselines))
    return [ContrastPair(v.name, ref, f"{v.name} vs {ref}") for v in plan.variants
            if v.name not in plan.baselines and (ref := refs.get(v.name)) is not None]


def plan_allocation(plan: Plan, outcomes: Mapping[str, Mapping[int, Outcome]]) -> Allocation:
    """The policy's allocation for ``plan`` given ``outcomes`` (variant -> seed -> top-1 error, None: no error)."""
    assert plan.seed_policy is not None
    return allocate(plan.seed_policy, [v.name for v in plan.variants], plan_contrasts(plan), outcomes)


def outcome_of(value: float | None) -> Outcome:
    """A finished trial's objective as the policy reads it: None for a run without a finite top-1 error."""
    return float(value) if value is not None and math.isfinite(value) else None


def recorded_outcomes(states: Iterable[KeyState], max_retries: int,
                      value: Callable[[Any], float | None]) -> dict[str, dict[int, Outcome]]:
    """variant -> seed -> outcome of every run the study has settled: ``value(trial)`` of its finished trial
    (:func:`outcome_of`), None for a run given up on (a seed its pairs leave out); what the policy replays."""
    out: dict[str, dict[int, Outcome]] = {}
    for st in states:
        if st.done is not None:
            out.setdefault(st.run.variant, {})[st.run.seed] = outcome_of(value(st.done))
        elif st.given_up(max_retries):
            out.setdefault(st.run.variant, {})[st.run.seed] = None
    return out


def still_possible(alloc: Allocation, pending: Iterable[Run]) -> tuple[int, int]:
    """Of the plan's runs not started (``pending``), how many will run whatever comes (allocated now) and how
    many could (below the seeds their variant would have if every undecided contrast went on to max); the rest
    no result can bring back (their contrasts are decided)."""
    least = most = 0
    for run in pending:
        least += alloc.wants(run.variant, run.seed)
        most += run.seed < alloc.most.get(run.variant, 0)
    return least, most


def status_lines(alloc: Allocation) -> list[str]:
    """``sesweep status`` lines of a sequential sweep under its summary (which gives the runs still possible,
    at least and at most, with an ETA each): decided / undecided contrasts, then each contrast's decision,
    seeds and confidence-sequence interval."""
    counts = ", ".join(f"{n} {d}" for d, n in sorted(alloc.counts().items()))
    lines = [f"seed policy: {len(alloc.contrasts)} contrasts: {counts or 'none'}; {alloc.at_least} runs allocated "
             f"of {alloc.at_max} at max"]
    for c in alloc.contrasts:
        lo, hi = c.sequence.interval
        lines.append(f"  {c.pair.label or c.pair.variant}: {c.decision} at {c.sequence.n} seeds, confidence "
                     f"sequence [{lo:+.2f}, {hi:+.2f}] points")
    return lines
