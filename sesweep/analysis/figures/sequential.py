"""A sequential sweep's confidence sequences against the number of paired seeds, one panel per contrast.

Why a figure: the report's text gives each contrast's interval at the end; the figure shows how it got there --
how wide the sequence was at each look, where it left the ±margin band or crossed 0, and why an inconclusive one
never did. The band is the statistic's own running intersection (:func:`.sequential.sequence`, through the one
replay the report's text reads, :mod:`.sequential_results`), never a re-computation here. Drawn for every sweep
with a seed policy, whatever its ``figures:`` list says (the decisions are the sweep's method, not a view).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from sesweep.analysis.factors import Analysis
from sesweep.analysis.figures import style
from sesweep.analysis.figures.layout import legend_below
from sesweep.analysis.figures.style import COLUMN_IN, FONT_PT, PAGE_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.seed_allocation import ContrastState, contrast_alpha
from sesweep.analysis.sequential import INCONCLUSIVE, UNDECIDED
from sesweep.analysis.sequential_results import sweep_allocation

#: the figure's file stem (:func:`is_sequential_figure`: the report shows it in its sequential section)
SLUG = "sequential"
#: panels per row
COLUMNS = 3
#: the equivalence band's and the unbounded looks' shading
MARGIN_COLOR, MARGIN_EDGE, UNBOUNDED_COLOR, UNBOUNDED_HATCH = "#e3f1e3", "#3a923a", "0.96", "0.82"


@dataclass(frozen=True)
class Trace:
    """What one panel draws, per number of pairs n = 1 .. len: the running mean paired difference (variant minus
    baseline, points of top-1 error) and the sequence's running-intersection interval (±inf: unbounded)."""

    label: str
    variant: str
    decision: str
    n: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    #: the pairs at which it was decided (None: not decided)
    decided_at: int | None
    margin: float
    max_seeds: int

    @property
    def first_bounded(self) -> int | None:
        """The first n at which the interval is finite (None: unbounded at every look so far)."""
        finite = np.flatnonzero(np.isfinite(self.lo) & np.isfinite(self.hi))
        return int(self.n[finite[0]]) if len(finite) else None

    @property
    def title(self) -> str:
        """The contrast, then its decision and the seeds used: "r=4 vs resnet\nworse at 6 seeds"."""
        n = len(self.n)
        seeds = f"{n} seed{'s' if n != 1 else ''}"
        if self.decision == UNDECIDED:
            what = f"undecided, {seeds} so far"
        elif self.decision == INCONCLUSIVE:
            what = f"inconclusive at {seeds} (max)"
        else:
            what = f"{self.decision} at {self.decided_at} seeds" + (f" ({n} held)" if self.decided_at != n else "")
        return f"{self.label}\n{what}"


def trace_of(state: ContrastState, margin: float, max_seeds: int) -> Trace:
    """One contrast's :class:`Trace` from its state in the allocation (its sequence's own lo, hi)."""
    seq = state.sequence
    d = np.asarray(seq.diffs, dtype=float)
    n = np.arange(1, len(d) + 1)
    mean = np.cumsum(d) / n if len(d) else d
    return Trace(state.pair.label or state.pair.variant, state.pair.variant, seq.decision, n, mean,
                 np.asarray(seq.lo, dtype=float), np.asarray(seq.hi, dtype=float), seq.decided_at, margin, max_seeds)


def sequence_traces(an: Analysis) -> tuple[list[Trace], float] | None:
    """Every contrast's trace and the per-contrast alpha; None for a fixed-list sweep or one without contrasts."""
    found = sweep_allocation(an)
    if found is None or not found[1].contrasts:
        return None
    policy, alloc = found
    traces = [trace_of(c, policy.margin, policy.max) for c in alloc.contrasts]
    return traces, contrast_alpha(policy, len(alloc.contrasts))


def is_sequential_figure(figure: FigureFile) -> bool:
    """The figure of the sequences (the report shows it in its sequential section, beside the decisions)."""
    return figure.slug == SLUG


def y_range(t: Trace) -> tuple[float, float, bool]:
    """The panel's y range: 0, ±1.5 margin, the running mean, the last interval and the deciding one, padded;
    True where an earlier, wider interval runs past it (the caption says so)."""
    keep = [0.0, -1.5 * t.margin, 1.5 * t.margin, *t.mean[np.isfinite(t.mean)]]
    for at in {len(t.lo), t.decided_at or len(t.lo)} - {0}:  # the last interval and the one that decided
        if math.isfinite(t.lo[at - 1]) and math.isfinite(t.hi[at - 1]):
            keep += [float(t.lo[at - 1]), float(t.hi[at - 1])]
    lo, hi = min(keep), max(keep)
    pad = 0.12 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    finite = np.isfinite(t.lo) & np.isfinite(t.hi)
    cut = bool(np.any(t.lo[finite] < lo) or np.any(t.hi[finite] > hi))
    return lo, hi, cut


def steps(n: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each look's value held over its own column, n - 0.5 .. n + 0.5 (the interval after n pairs, not a
    line between looks), so the band meets the unbounded looks' shading without a gap."""
    xs = np.column_stack([n - 0.5, n + 0.5]).ravel()
    return (xs, *(np.repeat(y, 2) for y in ys))


def _panel(ax: Axes, t: Trace, color: Any) -> bool:
    """One contrast: unbounded looks hatched, the ±margin band, 0, the sequence band, the running mean, the
    decision's look dotted. True where the y range cuts an early interval."""
    lo, hi, cut = y_range(t)
    first = t.first_bounded
    shade_to = (first if first is not None else len(t.n) + 1) - 0.5
    if shade_to > 0.5:
        ax.axvspan(0.5, shade_to, facecolor=UNBOUNDED_COLOR, edgecolor=UNBOUNDED_HATCH, hatch="///", lw=0, zorder=0)
    ax.axhspan(-t.margin, t.margin, color=MARGIN_COLOR, lw=0, zorder=0.5)
    for edge in (-t.margin, t.margin):
        ax.axhline(edge, color=MARGIN_EDGE, ls="--", lw=0.8, zorder=1)
    ax.axhline(0.0, color="black", lw=0.7, zorder=1)
    finite = np.isfinite(t.lo) & np.isfinite(t.hi)
    if finite.any():
        xs, lo_s, hi_s = steps(t.n[finite], t.lo[finite], t.hi[finite])
        ax.fill_between(xs, lo_s, hi_s, color=color, alpha=0.22, lw=0, zorder=2, gid=t.variant)
        for edge in (lo_s, hi_s):
            ax.plot(xs, edge, color=color, lw=0.8, zorder=2.5)
    ax.plot(t.n, t.mean, color=color, lw=1.2, marker="o", ms=2.5, zorder=3)
    if t.decided_at is not None:
        ax.axvline(t.decided_at, color="black", ls=":", lw=0.9, zorder=3.5)
    ax.set_ylim(lo, hi)
    ax.set_xlim(0.5, t.max_seeds + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_title(t.title, fontsize=FONT_PT)
    return cut


def sequential_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> FigureFile | None:
    """One panel per contrast (variant vs its baseline) of its confidence sequence against the paired seeds;
    None for a fixed-list sweep."""
    found = sequence_traces(an)
    if found is None:
        return None
    traces, alpha = found
    cols = min(COLUMNS, len(traces))
    rows = math.ceil(len(traces) / cols)
    with paper_style():
        fig = new_figure(COLUMN_IN if cols == 1 else PAGE_IN, 0.5 + 1.75 * rows)
        axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(traces))]
        cut = [_panel(ax, t, colors.get(t.variant, "C0")) for ax, t in zip(axes, traces, strict=True)]
        for i, ax in enumerate(axes):
            if i % cols == 0:
                ax.set_ylabel("Δ top-1 error (points)\nvariant − baseline")
            if i + cols >= len(axes):
                ax.set_xlabel("paired seeds n")
        legend_below(fig, _handles(traces), max_ncol=3)
        return style.save(fig, out_dir, SLUG, _caption(traces, alpha, any(cut)))


def _handles(traces: Sequence[Trace]) -> list[Any]:
    band = Patch(facecolor=(0.5, 0.5, 0.5, 0.22), edgecolor="0.35", lw=0.8,
                 label="confidence sequence (running intersection)")
    out: list[Any] = [*([band] if any(t.first_bounded is not None for t in traces) else []),
                      Line2D([], [], color="0.3", marker="o", ms=2.5, label="mean paired difference"),
                      Patch(facecolor=MARGIN_COLOR, edgecolor=MARGIN_EDGE, ls="--",
                            label=f"±{traces[0].margin:g} margin (equivalent)")]
    if any(t.first_bounded != 1 for t in traces):
        out.append(Patch(facecolor=UNBOUNDED_COLOR, edgecolor=UNBOUNDED_HATCH, hatch="///", lw=0,
                         label="unbounded (too few pairs)"))
    if any(t.decided_at is not None for t in traces):
        out.append(Line2D([], [], color="black", ls=":", lw=0.9, label="decided"))
    return out


def _caption(traces: Sequence[Trace], alpha: float, cut: bool) -> str:
    first = sorted({f for t in traces if (f := t.first_bounded) is not None})
    bounded = (f" It is unbounded (hatched) below {first[0]} pairs." if first
               else " It is unbounded (hatched) at every look so far.")
    return ("Each contrast's anytime-valid confidence sequence for the mean paired difference in top-1 error "
            "(variant minus its baseline, in points: above 0 the variant errs more), against the number of paired "
            f"seeds n, at alpha {alpha:.3g} per contrast: the band is the running intersection of the intervals "
            "after each pair (the one the decisions and the text read), the line the running mean difference. "
            "Better or worse once the band leaves 0 (black line), equivalent once it lies inside the ±margin band "
            "(green, dashed); a decision stands (dotted: the look that made it)." + bounded
            + (" Earlier, wider intervals run past the panel's y range, which is fitted to the margin, the mean and "
               "the last and the deciding interval." if cut else "")
            + " It assumes roughly Gaussian paired seed differences (Lai's normal-mixture t confidence sequence).")
