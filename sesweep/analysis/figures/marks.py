"""Marks every figure draws the same way: seeds, means with a CI only where n allows, the baseline, axis units."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, ScalarFormatter

from sesweep.analysis.factors import Analysis
from sesweep.analysis.fmt import count
from sesweep.analysis.stats import Summary, finished, summarize

#: fewest seeds for a 95% CI error bar: with 2 seeds the t quantile (1 df) is 12.7, so the bar would show how
#: few seeds there are rather than where the mean lies; below this only the seeds and the mean are drawn
MIN_CI_N = 3
#: fewest seeds for a CI band around a learning curve; below it each seed is a thin line and the mean a thick one
#: (a band over 2–4 noisy curves, t = 12.7, 4.3, 3.2, sweeps across the axis and hides the curves themselves)
MIN_BAND_N = 5


def finished_values(an: Analysis, variant: str, metric: str) -> pd.Series:
    done = finished(an.sweep.runs)
    return done.loc[done["variant"] == variant, metric].dropna()


def baseline_line(ax: Axes, an: Analysis, metric: str, colors: Mapping[str, Any],
                  variants: Sequence[str]) -> Line2D | None:
    """The baseline of ``variants`` (their one reference: same architecture and recipe) as a dashed line at its
    mean, its CI a light band where n allows; none where they have no single baseline."""
    refs = {an.references.get(v) for v in variants} if an.references else {an.baseline}
    base = refs.pop() if len(refs) == 1 else None
    if base is None or metric not in an.sweep.runs.columns:
        return None
    s = summarize(finished_values(an, base, metric), an.confidence)
    if s.n == 0:
        return None
    line = ax.axhline(s.mean, color=colors[base], ls="--", lw=1.0, zorder=1, label=f"{base} (n={s.n})", gid=base)
    if s.n >= MIN_CI_N:
        lo, hi = clip(metric, [s.ci_lo], [s.ci_hi])
        ax.axhspan(lo[0], hi[0], color=colors[base], alpha=0.08, lw=0, zorder=0)
    return line


def mean_point(ax: Axes, x: float, s: Summary, metric: str, color: Any, gid: str, marker: str = "o",
               ms: float = 4.5, ecolor: Any = None) -> bool:
    """The mean as a marker (gid: the variant), with its 95% CI bar where n ≥ MIN_CI_N; True if a bar was drawn."""
    err = None
    if s.n >= MIN_CI_N:
        lo, hi = clip(metric, [s.ci_lo], [s.ci_hi])
        err = [[s.mean - lo[0]], [hi[0] - s.mean]]
    bars = ax.errorbar([x], [s.mean], yerr=err, fmt=marker, ms=ms, color=color, mec="black", mew=0.5,
                       ecolor=color if ecolor is None else ecolor, elinewidth=1.0, capsize=2, zorder=5)
    bars.lines[0].set_gid(gid)
    return err is not None


def seed_points(ax: Axes, xs: Any, values: Any, color: Any, gid: str, marker: str = "o", alpha: float = 0.6) -> None:
    ax.scatter(xs, values, s=9, marker=marker, color=color, alpha=alpha, lw=0, zorder=4, gid=gid)


def point_handles(ci: bool) -> list[Line2D]:
    """Legend entries for seeds and means (the variant's colour is on the axis or in the points)."""
    return [Line2D([], [], ls="", marker="o", ms=3, color="0.5", alpha=0.6, label="seeds"),
            Line2D([], [], ls="", marker="o", ms=4.5, color="0.5", mec="black", mew=0.5,
                   label="mean ± 95% CI" if ci else "mean")]


def ci_note(ci_drawn: bool, ns: Sequence[int]) -> tuple[str, str]:
    """For a caption: what the mean markers show ("mean ± 95% CI …") and a sentence on where no CI is drawn."""
    few = any(0 < n < MIN_CI_N for n in ns)
    what = ("mean ± 95% CI (Student t)" + (f" where n ≥ {MIN_CI_N}" if few else "")) if ci_drawn else "mean"
    why = (f" No CI is drawn for n < {MIN_CI_N} seeds (with 2 seeds the t quantile is 12.7: the interval would "
           f"show how few seeds there are, not where the mean lies)." if few else "")
    return what, why


def panels(fig: Figure, n: int) -> list[Axes]:
    """``n`` side-by-side axes sharing the y axis (y tick labels on the first only)."""
    axes: list[Axes] = []
    for i in range(n):
        axes.append(fig.add_subplot(1, n, i + 1, sharey=axes[0] if axes else None))
        if i:
            axes[-1].tick_params(labelleft=False)
    return axes


def scale_of(values: Sequence[float], kind: str) -> tuple[float, str]:
    """A unit for an axis of counts: (divisor, suffix) so ticks read 272.5 (k), 28.1 (M), 4.09 (G)."""
    top = max((abs(v) for v in values if np.isfinite(v)), default=0.0)
    if kind == "ms":
        return 1.0, "ms"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if top >= scale:
            return scale, unit
    return 1.0, ""


def plain_axis(ax: Axes, x: bool = True) -> None:
    """Plain numbers (no offset, no 1e6 factor) and, on x, few enough ticks that long ones (40.5525) do not
    collide. ``x=False`` for a twin axis, whose x axis is its host's (a locator set there replaces the host's)."""
    for axis in (ax.xaxis, ax.yaxis) if x else (ax.yaxis,):
        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        axis.set_major_formatter(fmt)
    if x:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))


def clip(metric: str, lo: Sequence[float], hi: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """An interval drawn within what the metric can be: an error rate within 0–100%, a loss above 0 (a t interval
    over few seeds can reach past either)."""
    lo_a, hi_a = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if metric.endswith("_err"):
        return np.clip(lo_a, 0.0, 100.0), np.clip(hi_a, 0.0, 100.0)
    if metric.endswith("_loss"):
        return np.clip(lo_a, 0.0, None), hi_a
    return lo_a, hi_a


def metric_label(metric: str) -> str:
    return {"top1_err": "top-1 error (%)", "top5_err": "top-5 error (%)", "test_loss": "test loss",
            "train_loss": "train loss", "infer_ms": "inference (ms/batch)", "params": "params",
            "macs": "MACs"}.get(metric, metric)



#: longest variant name an axis label names (a longer one would push the label past a column-wide figure)
MAX_AXIS_NAME = 14


def cost_reference(an: Analysis, variants: Sequence[str], costs: Mapping[str, float]) -> str | None:
    """The variant a cost axis is relative to: the one baseline of ``variants`` (:func:`baseline_line`'s rule)
    where its cost is known, else the cheapest of them; None where no cost is known."""
    refs = {an.references.get(v) for v in variants} if an.references else {an.baseline}
    base = refs.pop() if len(refs) == 1 else None
    if base is not None and np.isfinite(costs.get(base, np.nan)) and costs[base] > 0:
        return base
    known = [v for v in variants if np.isfinite(costs.get(v, np.nan)) and costs[v] > 0]
    return min(known, key=lambda v: costs[v]) if known else None


def relative_cost(costs: Mapping[str, float], reference: str) -> dict[str, float]:
    """Each cost as a change in percent of the reference's (+2.0: 2% more): an axis of absolute counts zoomed
    on 272–278k makes a 2% change look like a cliff, one in percent says how big it is."""
    ref = costs[reference]
    return {v: 100.0 * (c / ref - 1.0) for v, c in costs.items()}


def percent_axis(axis: Any) -> None:
    """Tick labels of a change in percent, signed ("+0.02%", "0%", "−1.5%")."""
    def label(x: float, _pos: Any) -> str:
        if abs(x) < 1e-12:
            return "0%"
        return f"{x:+.3g}%".replace("-", "\u2212")

    axis.set_major_formatter(FuncFormatter(label))


def relative_label(name: str, reference: str, value: float | None = None) -> str:
    """An axis label that says what a percent is of: "params, Δ vs resnet (269.7k = 0%)"; without ``value``
    (a short axis: the caption gives it) "params, Δ vs resnet (%)". A long variant name is "the reference" there
    (the caption names it)."""
    who = reference if len(reference) <= MAX_AXIS_NAME else "reference"
    return f"{name}, Δ vs {who} ({count(value)} = 0%)" if value is not None else f"{name}, Δ vs {who} (%)"
