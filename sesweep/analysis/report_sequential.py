"""The report's section on a sequential sweep (a seed policy): the method, per contrast its decision, the seeds
it took and its confidence sequence's interval at the end, and the runs the policy saved against max."""

from __future__ import annotations

import math

import pandas as pd

from sesweep.analysis.factors import Analysis
from sesweep.analysis.report_render import Bullets, Para, Section
from sesweep.analysis.seed_allocation import ContrastPair, Outcome, allocate, contrast_alpha
from sesweep.seed_policy import SeedPolicy

METHOD = ("Seeds were allocated sequentially: every variant got {start} seeds, and {step} more at a time went to "
          "the variants of contrasts still undecided, up to {max}. Each contrast with the baseline is decided by an "
          "anytime-valid confidence sequence for the mean paired difference in top-1 error (Lai's normal-mixture "
          "t confidence sequence; Howard et al. 2021), at alpha {alpha:g} over the {k} contrasts (Bonferroni, "
          "{alpha_k:g} each), valid at every number of seeds whatever rule stopped it. It assumes roughly "
          "Gaussian paired seed differences. Decisions: better or worse when the sequence excludes 0, equivalent "
          "when it lies inside ±{margin:g} points (pre-registered), inconclusive at the cap. The intervals below "
          "are the sequence's, not t intervals: after optional stopping a t interval's 95 % is wrong.")


def _outcomes(runs: pd.DataFrame) -> dict[str, dict[int, Outcome]]:
    out: dict[str, dict[int, Outcome]] = {}
    for row in runs.itertuples(index=False):
        top1 = getattr(row, "top1_err", None)
        ok = isinstance(top1, int | float) and math.isfinite(top1) and getattr(row, "status", "") == "finished"
        out.setdefault(str(row.variant), {})[int(row.seed)] = float(top1) if ok else None
    return out


def sequential_section(an: Analysis) -> Section | None:
    """The section, or None for a sweep with a fixed list of seeds."""
    raw = (an.sweep.manifest or {}).get("seed_policy") if isinstance(an.sweep.manifest, dict) else None
    if not raw:
        return None
    policy = SeedPolicy.from_dict(raw)
    pairs = [ContrastPair(v, ref, f"{v} vs {ref}") for v in an.order
             if not an.is_baseline(v) and (ref := an.references.get(v))]
    variants = sorted({*an.order})
    alloc = allocate(policy, variants, pairs, _outcomes(an.sweep.runs))
    items = []
    for c in alloc.contrasts:
        lo, hi = c.sequence.interval
        items.append(f"{c.pair.label}: {c.decision}, {c.sequence.n} seeds, confidence sequence "
                     f"[{lo:+.2f}, {hi:+.2f}] points")
    text = METHOD.format(start=policy.start, step=policy.step, max=policy.max, alpha=policy.alpha, k=len(pairs),
                         alpha_k=contrast_alpha(policy, len(pairs)), margin=policy.margin)
    saved = alloc.at_max - alloc.at_least
    runs = (f"The policy trained {alloc.at_least} runs against {alloc.at_max} for every variant at {policy.max} "
            f"seeds: {saved} saved ({saved / alloc.at_max:.0%}).") if alloc.at_max else ""
    return Section("Sequential seeds", [Para(text), Bullets(tuple(items)), Para(runs)])
