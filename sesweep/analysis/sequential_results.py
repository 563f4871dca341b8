"""A results folder's seed policy replayed on its runs: the one allocation the report's sequential section and
its figure both read, so the text and the figure cannot disagree on a decision, a seed count or an interval.

The policy is the one the runner recorded in ``manifest.json`` (``seed_policy``); a fixed-list sweep has none.
The contrasts are the report's (every variant against its baseline, ``Analysis.references``), the outcomes a
run's top-1 error where it finished with a finite one, else None (a seed the pairs leave out).
"""

from __future__ import annotations

import math

import pandas as pd

from sesweep.analysis.factors import Analysis
from sesweep.analysis.seed_allocation import Allocation, ContrastPair, Outcome, allocate
from sesweep.seed_policy import SeedPolicy


def sweep_policy(an: Analysis) -> SeedPolicy | None:
    """The seed policy the sweep ran under; None for a fixed list of seeds (or no manifest)."""
    manifest = an.sweep.manifest
    raw = manifest.get("seed_policy") if isinstance(manifest, dict) else None
    return SeedPolicy.from_dict(raw) if isinstance(raw, dict) and raw else None


def run_outcomes(runs: pd.DataFrame) -> dict[str, dict[int, Outcome]]:
    """variant -> seed -> top-1 error of every recorded run (None: diverged, failed, or no finite error)."""
    out: dict[str, dict[int, Outcome]] = {}
    for row in runs.itertuples(index=False):
        top1 = getattr(row, "top1_err", None)
        ok = isinstance(top1, int | float) and math.isfinite(top1) and getattr(row, "status", "") == "finished"
        out.setdefault(str(row.variant), {})[int(row.seed)] = float(top1) if ok else None
    return out


def sweep_contrasts(an: Analysis) -> list[ContrastPair]:
    """Every non-baseline variant against its baseline, labelled "variant vs baseline", in the report's order."""
    return [ContrastPair(v, ref, f"{v} vs {ref}") for v in an.order
            if not an.is_baseline(v) and (ref := an.references.get(v))]


def sweep_variants(an: Analysis) -> list[str]:
    """The variants the policy allocates to: those with runs, and the manifest's with none recorded yet (they
    hold ``start`` seeds each: a contrast with no run on one side never grows)."""
    manifest = an.sweep.manifest
    named = [str(r.get("variant")) for r in manifest.get("runs") or [] if isinstance(r, dict)]
    named += [str(v.get("name")) for v in manifest.get("variants") or [] if isinstance(v, dict)]
    return sorted({*an.order, *(v for v in named if v != "None")})


def sweep_allocation(an: Analysis) -> tuple[SeedPolicy, Allocation] | None:
    """The policy and its allocation replayed on the recorded runs; None for a fixed-list sweep."""
    policy = sweep_policy(an)
    if policy is None:
        return None
    alloc = allocate(policy, sweep_variants(an), sweep_contrasts(an), run_outcomes(an.sweep.runs))
    return policy, alloc
