"""How much of a sweep ran: the report's coverage sentence ("8 of 12 expected runs finished (partial)").

A fixed list of seeds expects the runs of the runner's manifest. A sweep with a seed policy does not: its
manifest holds the plan at ``max``, most of which a settled policy never trains, so its expected runs are what
the policy allocated on the recorded results (the replay :mod:`.sequential_results` gives the report's
sequential section too), and it is complete only when those finished and no contrast is undecided; a sweep
stopped while contrasts are still undecided stays partial, with the runs they could still take.
"""

from __future__ import annotations

from sesweep.analysis.factors import Analysis
from sesweep.analysis.seed_allocation import Allocation
from sesweep.analysis.sequential_results import sweep_allocation, sweep_policy
from sesweep.analysis.stats import finished
from sesweep.results import Sweep


def expected_runs(sweep: Sweep) -> tuple[int | None, str]:
    """How many runs the sweep has: the runs of the runner's ``manifest.json``; None and why not without them.

    None without a note for a sweep with a seed policy: its count is what the policy allocated on the recorded
    results, which :func:`coverage_sentence` replays from the analysis. Never expands the sweep file itself (the
    analysis does not import :mod:`sesweep.plan`): with no manifest the expected count is unknown, as the
    coverage sentence then says.
    """
    if isinstance(sweep.manifest.get("seed_policy"), dict):
        return None, ""
    if sweep.expected is not None:
        return sweep.expected, ""
    if (sweep.results_dir / "manifest.json").is_file():
        return None, "The expected run count is unknown: manifest.json lists no runs."
    return None, ""


def coverage_sentence(an: Analysis, expected: int | None) -> str:
    """Runs finished of expected, complete or partial. ``expected`` given (``--expected``) is the reader's count;
    None: the seed policy's allocation where the sweep has one, else unknown."""
    runs = an.sweep.runs
    done = len(finished(runs))
    if expected is None and sweep_policy(an) is not None:
        found = sweep_allocation(an)
        assert found is not None
        return _policy_coverage(an, found[1])
    if expected is not None:
        state = "complete" if done >= expected else "partial"
        return (f"{done} of {expected} expected runs finished ({state}); {len(runs)} recorded in runs.csv, "
                f"{len(an.order)} variants.")
    seeds = an.sweep.seeds
    hint = (f"; {len(an.order)} variants × {len(seeds)} seeds seen = {len(an.order) * len(seeds)} at least"
            if seeds else "")
    return f"{done} of {len(runs)} runs recorded in runs.csv finished (expected total unknown{hint})."


def _policy_coverage(an: Analysis, alloc: Allocation) -> str:
    """"52 of 52 runs finished, as the seed policy allocated them on the recorded results (complete: …; 100 at
    max)": finished runs are counted among the allocated ones only (a seed adopted beyond them is recorded, not
    expected)."""
    runs = an.sweep.runs
    ok = finished(runs)
    done = sum(alloc.wants(str(v), int(s)) for v, s in zip(ok["variant"], ok["seed"], strict=True))
    undecided = sum(c.open for c in alloc.contrasts)
    if undecided:
        state = (f"partial: {undecided} of {len(alloc.contrasts)} contrasts undecided, which could take the sweep "
                 f"to {alloc.at_most} runs")
    elif done < alloc.at_least:
        state = "partial"
    else:
        state = "complete: every contrast decided or inconclusive" if alloc.contrasts else "complete"
    return (f"{done} of {alloc.at_least} runs finished, as the seed policy allocated them on the recorded results "
            f"({state}; {alloc.at_max} at max); {len(runs)} recorded in runs.csv, {len(an.order)} variants.")
