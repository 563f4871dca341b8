"""The report's section on a sequential sweep (a seed policy): the method, per contrast its decision, the seeds
it took and its confidence sequence's interval at the end, and the runs the policy saved against max."""

from __future__ import annotations

from collections.abc import Sequence

from sesweep.analysis.factors import Analysis
from sesweep.analysis.figures import FigureFile, is_sequential_figure
from sesweep.analysis.report_render import Block, Bullets, FigureBlock, Para, Section, figure_width_in
from sesweep.analysis.seed_allocation import Allocation, contrast_alpha
from sesweep.analysis.sequential_results import sweep_allocation, sweep_policy

METHOD = ("Seeds were allocated sequentially: every variant got {start} seeds, and {step} more at a time went to "
          "the variants of contrasts still undecided, up to {max}. Each contrast with the baseline is decided by an "
          "anytime-valid confidence sequence for the mean paired difference in top-1 error (Lai's normal-mixture "
          "t confidence sequence; Howard et al. 2021), at alpha {alpha:g} over the {k} contrasts (Bonferroni, "
          "{alpha_k:g} each), valid at every number of seeds whatever rule stopped it. It assumes roughly "
          "Gaussian paired seed differences. Decisions: better or worse when the sequence excludes 0, equivalent "
          "when it lies inside ±{margin:g} points (pre-registered), inconclusive at the cap. The intervals below "
          "are the sequence's, not t intervals: after optional stopping a t interval's 95 % is wrong.")


#: what every t interval, p-value and star of a sequential sweep's report must say: the number of seeds depended
#: on the results, and a fixed-n test's guarantees do not survive that (its false findings reach ~25 % by 20 looks)
OPTIONAL_STOPPING = ("Seeds here were added while contrasts were undecided, so the t intervals, p-values and "
                     "significance marks are descriptive only: their 95 % and α assume a number of seeds fixed in "
                     "advance. The decisions are the anytime-valid confidence sequences' (Sequential seeds).")


def optional_stopping_note(an: Analysis) -> str | None:
    """:data:`OPTIONAL_STOPPING` for a sweep whose seeds a seed policy allocated; None for a fixed list."""
    return OPTIONAL_STOPPING if sweep_policy(an) is not None else None


def sequential_section(an: Analysis, figures: Sequence[FigureFile] = ()) -> Section | None:
    """The section, with the figure of the sequences (:mod:`.figures.sequential`) where it was drawn; None for
    a sweep with a fixed list of seeds."""
    found = sweep_allocation(an)
    if found is None:
        return None
    policy, alloc = found
    pairs = alloc.contrasts
    items = []
    for c in alloc.contrasts:
        lo, hi = c.sequence.interval
        items.append(f"{c.pair.label}: {c.decision}, {c.sequence.n} seeds, confidence sequence "
                     f"[{lo:+.2f}, {hi:+.2f}] points")
    text = METHOD.format(start=policy.start, step=policy.step, max=policy.max, alpha=policy.alpha, k=len(pairs),
                         alpha_k=contrast_alpha(policy, len(pairs)), margin=policy.margin)
    blocks: list[Block] = [Para(text), Bullets(tuple(items)), Para(runs_sentence(alloc))]
    blocks += [FigureBlock(f, figure_width_in(f)) for f in figures if is_sequential_figure(f)]
    return Section("Sequential seeds", blocks)


def runs_sentence(alloc: Allocation) -> str:
    """The runs the policy took against max; no saving claimed while undecided contrasts could still grow it."""
    if not alloc.at_max:
        return ""
    undecided = sum(c.open for c in alloc.contrasts)
    if undecided:
        return (f"The policy has allocated {alloc.at_least} runs so far of {alloc.at_max} at max; {undecided} "
                f"contrasts are still undecided and could take it to {alloc.at_most}.")
    saved = alloc.at_max - alloc.at_least
    return (f"The policy trained {alloc.at_least} runs against {alloc.at_max} for every variant at "
            f"{alloc.policy.max} seeds: {saved} saved ({saved / alloc.at_max:.0%}).")
