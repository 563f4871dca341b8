"""Figures of a sweep, at paper size: one style, one colour per variant, only for what the sweep varies.

Every figure is drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
global backend or style changes: the paper style is an ``rc_context`` around each figure), saved as PNG
(200 dpi) and PDF. Widths are 3.5 in (one column) or 7 in (two columns) with 8 pt text, so a figure
pasted into a paper at its natural size stays readable. Every seed is drawn (points, or thin curves) and the
mean; a Student-t 95% interval (the tables') only where there are seeds enough for it (:data:`MIN_CI_N`,
:data:`MIN_BAND_N`). Artists drawn for a variant carry its name as ``gid`` and its colour from
:func:`variant_colors`. Each figure's layout is measured before it is saved (:mod:`.figure_layout`).
A factor or ratio figure shows that factor's levels only, the other attention factors at their held levels
(:func:`.stats.held_levels`), one panel per architecture/recipe group. The SENet Fig. 6 excitation figure
is in :mod:`.excitation_figure`.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator, ScalarFormatter

from sesweep.analysis.figure_layout import LayoutWarning, fit_tick_labels, layout_problems, legend_below
from sesweep.analysis.speed import speed_stats, variant_speeds
from sesweep.analysis.stats import (
    ADAPTIVE_KEYS,
    ATTENTION_PREFIX,
    AdaptiveComparison,
    Analysis,
    Summary,
    adaptive_comparisons,
    adaptive_kind,
    adaptive_labels,
    adaptive_log,
    adaptive_variants,
    allocated_se_params,
    block_ratios,
    finished,
    fixed_ratio_variants,
    format_value,
    held_levels,
    is_attention_off,
    ratio_label,
    short_name,
    sort_value,
    summarize,
    variant_labels,
)
from sesweep.vocabulary import FIGURE_NAMES, PAPER_TABLES, factor_figure_names

COLUMN_IN = 3.5
PAGE_IN = 7.0
DPI = 200
FONT_PT = 8
BASELINE_COLOR = (0.25, 0.25, 0.25)
#: seaborn's colour-blind palette reordered so that the first few variants get the most distinct hues
#: (orange and vermilion far apart) and without its grey, which is close to the baseline's
PALETTE_ORDER = (0, 1, 2, 4, 9, 3, 5, 6, 8)
#: fewest seeds for a 95% CI error bar: with 2 seeds the t quantile (1 df) is 12.7, so the bar would show how
#: few seeds there are rather than where the mean lies; below this only the seeds and the mean are drawn
MIN_CI_N = 3
#: fewest seeds for a CI band around a learning curve; below it each seed is a thin line and the mean a thick one
#: (a band over 2–4 noisy curves, t = 12.7, 4.3, 3.2, sweeps across the axis and hides the curves themselves)
MIN_BAND_N = 5
#: the files each figure is written as: PNG for the page, PDF for the paper
FORMATS = ("png", "pdf")
#: the folder beside the figures folder that holds the PDFs (reports/NAME/paper/)
PAPER_DIR = "paper"


@dataclass(frozen=True)
class FigureFile:
    """One written figure: its name, what it shows (the caption), its files, the spec key it is about."""

    slug: str
    caption: str
    png: Path
    pdf: Path
    #: the spec key a factor or ratio figure shows ("model.attention.pool"); None for the other figures
    factor: str | None = None
    #: what :func:`sesweep.analysis.figure_layout.layout_problems` found when it was saved (empty: nothing)
    problems: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------------
# style, colours, saving


def paper_rc() -> dict[str, Any]:
    """seaborn's whitegrid/paper style with every text at ≥ 8 pt and embeddable (Type 42) PDF fonts."""
    rc: dict[str, Any] = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper")}
    rc.update({"font.size": FONT_PT, "axes.titlesize": FONT_PT + 1, "axes.labelsize": FONT_PT,
               "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT, "legend.fontsize": FONT_PT,
               "legend.title_fontsize": FONT_PT, "lines.linewidth": 1.2, "lines.markersize": 4,
               "grid.linewidth": 0.5, "axes.linewidth": 0.6, "pdf.fonttype": 42, "ps.fonttype": 42,
               "savefig.dpi": DPI, "axes.formatter.useoffset": False})
    return rc


@contextmanager
def paper_style() -> Iterator[None]:
    """The paper style for the figures drawn inside, and nothing else (no global state is changed)."""
    with mpl.rc_context(paper_rc()):
        yield


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, out_dir: Path, slug: str, caption: str, factor: str | None = None) -> FigureFile:
    """Write the figure at its own size (no tight bbox: the image is the figure), after measuring its layout;
    problems are returned in the file record and warned about (:class:`LayoutWarning`).

    PNG for the page goes to ``out_dir``, PDF for the paper to its sibling :data:`PAPER_DIR`: the figures
    folder holds images only, so DVC can declare it as image plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paper_dir = out_dir.parent / PAPER_DIR
    paper_dir.mkdir(parents=True, exist_ok=True)
    problems = tuple(layout_problems(fig))
    if problems:
        warnings.warn(f"figure {slug}: {'; '.join(problems)}", LayoutWarning, stacklevel=2)
    for fmt in FORMATS:
        fig.savefig((out_dir if fmt == "png" else paper_dir) / f"{slug}.{fmt}", dpi=DPI)
    return FigureFile(slug, caption, out_dir / f"{slug}.png", paper_dir / f"{slug}.pdf", factor, problems)


def variant_colors(order: Sequence[str], baseline: str | None) -> dict[str, tuple[float, float, float]]:
    """One colour per variant, the same in every figure: dark grey for the baseline, a colour-blind-safe
    palette for the rest (husl beyond ten variants)."""
    others = [v for v in order if v != baseline]
    if len(others) <= len(PALETTE_ORDER):
        base = sns.color_palette("colorblind", 10)
        palette = [base[i] for i in PALETTE_ORDER]
    else:
        palette = sns.color_palette("husl", len(others))
    colors = {v: tuple(palette[i]) for i, v in enumerate(others)}
    if baseline is not None:
        colors[baseline] = BASELINE_COLOR
    return colors


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


# --------------------------------------------------------------------------------------------------
# shared pieces


def _finished_values(an: Analysis, variant: str, metric: str) -> pd.Series:
    done = finished(an.sweep.runs)
    return done.loc[done["variant"] == variant, metric].dropna()


def _baseline_line(ax: Axes, an: Analysis, metric: str, colors: Mapping[str, Any],
                   variants: Sequence[str]) -> Line2D | None:
    """The baseline of ``variants`` (their one reference: same architecture and recipe) as a dashed line at its
    mean, its CI a light band where n allows; none where they have no single baseline."""
    refs = {an.references.get(v) for v in variants} if an.references else {an.baseline}
    base = refs.pop() if len(refs) == 1 else None
    if base is None or metric not in an.sweep.runs.columns:
        return None
    s = summarize(_finished_values(an, base, metric), an.confidence)
    if s.n == 0:
        return None
    line = ax.axhline(s.mean, color=colors[base], ls="--", lw=1.0, zorder=1, label=f"{base} (n={s.n})", gid=base)
    if s.n >= MIN_CI_N:
        lo, hi = _clip(metric, [s.ci_lo], [s.ci_hi])
        ax.axhspan(lo[0], hi[0], color=colors[base], alpha=0.08, lw=0, zorder=0)
    return line


def _mean_point(ax: Axes, x: float, s: Summary, metric: str, color: Any, gid: str, marker: str = "o",
                ms: float = 4.5, ecolor: Any = None) -> bool:
    """The mean as a marker (gid: the variant), with its 95% CI bar where n ≥ MIN_CI_N; True if a bar was drawn."""
    err = None
    if s.n >= MIN_CI_N:
        lo, hi = _clip(metric, [s.ci_lo], [s.ci_hi])
        err = [[s.mean - lo[0]], [hi[0] - s.mean]]
    bars = ax.errorbar([x], [s.mean], yerr=err, fmt=marker, ms=ms, color=color, mec="black", mew=0.5,
                       ecolor=color if ecolor is None else ecolor, elinewidth=1.0, capsize=2, zorder=5)
    bars.lines[0].set_gid(gid)
    return err is not None


def _seed_points(ax: Axes, xs: Any, values: Any, color: Any, gid: str, marker: str = "o", alpha: float = 0.6) -> None:
    ax.scatter(xs, values, s=9, marker=marker, color=color, alpha=alpha, lw=0, zorder=4, gid=gid)


def _point_handles(ci: bool) -> list[Line2D]:
    """Legend entries for seeds and means (the variant's colour is on the axis or in the points)."""
    return [Line2D([], [], ls="", marker="o", ms=3, color="0.5", alpha=0.6, label="seeds"),
            Line2D([], [], ls="", marker="o", ms=4.5, color="0.5", mec="black", mew=0.5,
                   label="mean ± 95% CI" if ci else "mean")]


def _ci_note(ci_drawn: bool, ns: Sequence[int]) -> tuple[str, str]:
    """For a caption: what the mean markers show ("mean ± 95% CI …") and a sentence on where no CI is drawn."""
    few = any(0 < n < MIN_CI_N for n in ns)
    what = ("mean ± 95% CI (Student t)" + (f" where n ≥ {MIN_CI_N}" if few else "")) if ci_drawn else "mean"
    why = (f" No CI is drawn for n < {MIN_CI_N} seeds (with 2 seeds the t quantile is 12.7: the interval would "
           f"show how few seeds there are, not where the mean lies)." if few else "")
    return what, why


def _held_groups(an: Analysis, key: str, min_levels: int = 1) -> dict[str, list[str]]:
    """The SE variants that differ from the held levels (:func:`.stats.held_levels`) in ``key`` only, per
    group of the non-attention factors ("arch=resnet20"; "" without such factors), in sweep order; groups with
    fewer than ``min_levels`` levels of ``key`` are left out."""
    held = {k: format_value(h.value) for k, h in held_levels(an).items() if k != key}
    grouping = [k for k in an.factors if not k.startswith(ATTENTION_PREFIX) and k != key]
    out: dict[str, list[str]] = {}
    for v in an.order:
        row = an.configs.loc[v]
        if an.is_baseline(v) or is_attention_off(row) or any(format_value(row[k]) != lv for k, lv in held.items()):
            continue
        out.setdefault(", ".join(f"{short_name(k)}={format_value(row[k])}" for k in grouping), []).append(v)
    return {g: vs for g, vs in out.items() if len({format_value(an.configs.at[v, key]) for v in vs}) >= min_levels}


def _held_text(an: Analysis, key: str, groups: Mapping[str, Sequence[str]]) -> str:
    """For a caption: what the other attention factors are held at and why, what that leaves out, the panels."""
    held = [(k, h) for k, h in held_levels(an).items() if k != key]
    if any(k == "model.attention.adaptive" and format_value(h.value) == "none" for k, h in held):
        held = [(k, h) for k, h in held if k not in ADAPTIVE_KEYS]  # fixed-ratio SE: its cost-term knobs are inert
    why = {"base": "the sweep's base value{s}", "default": "the schema default{s}, as the base value{s} {w} not run",
           "first level": "the first level{s}, as neither base value{s} nor default{s} {w} run"}
    parts = []
    for source, reason in why.items():
        items = [f"{short_name(k)}={format_value(h.value)}" for k, h in held if h.source == source]
        if items:
            many = len(items) > 1
            parts.append(f"{', '.join(items)} ({reason.format(s='s' if many else '', w='were' if many else 'was')})")
    text = f"; others held at {'; '.join(parts)}" if parts else ""
    shown = {v for vs in groups.values() for v in vs}
    left = [v for v in an.order if v not in shown and not an.is_baseline(v) and not is_attention_off(an.configs.loc[v])]
    if left:
        adaptive = " (the adaptive ones are in the adaptive figures)" if set(left) & set(adaptive_variants(an)) else ""
        text += f"; not shown, at other levels of the held factors: {', '.join(left)}{adaptive}"
    if len(groups) > 1:
        text += f"; one panel per {', '.join(short_name(k) for k in an.factors if not k.startswith(ATTENTION_PREFIX))}"
    return text


def _dashed_note(groups: Mapping[str, Sequence[str]]) -> str:
    return "; dashed: the baseline" + (" of the panel's group, where it has one" if len(groups) > 1 else "")


def _panels(fig: Figure, n: int) -> list[Axes]:
    """``n`` side-by-side axes sharing the y axis (y tick labels on the first only)."""
    axes: list[Axes] = []
    for i in range(n):
        axes.append(fig.add_subplot(1, n, i + 1, sharey=axes[0] if axes else None))
        if i:
            axes[-1].tick_params(labelleft=False)
    return axes


def _scale(values: Sequence[float], kind: str) -> tuple[float, str]:
    """A unit for an axis of counts: (divisor, suffix) so ticks read 272.5 (k), 28.1 (M), 4.09 (G)."""
    top = max((abs(v) for v in values if np.isfinite(v)), default=0.0)
    if kind == "ms":
        return 1.0, "ms"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if top >= scale:
            return scale, unit
    return 1.0, ""


def _plain_axis(ax: Axes, x: bool = True) -> None:
    """Plain numbers (no offset, no 1e6 factor) and, on x, few enough ticks that long ones (40.5525) do not
    collide. ``x=False`` for a twin axis, whose x axis is its host's (a locator set there replaces the host's)."""
    for axis in (ax.xaxis, ax.yaxis) if x else (ax.yaxis,):
        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        axis.set_major_formatter(fmt)
    if x:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))


# --------------------------------------------------------------------------------------------------
# error vs reduction ratio


def ratio_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path,
                 metric: str = "top1_err") -> FigureFile | None:
    """Error vs r on a log₂ axis ticked at the tested ratios: the variants that differ in r only (the other
    attention factors at their held levels, so no gate or pool variant and no adaptive one, whose r is only a
    maximum), one panel per architecture/recipe group; seeds, means joined by a line, CIs where n allows,
    params on a second axis, the group's baseline dashed."""
    key = "model.attention.reduction"
    groups = _held_groups(an, key, min_levels=2)
    if not groups:
        return None
    with paper_style():
        fig = new_figure(COLUMN_IN if len(groups) == 1 else PAGE_IN, 2.4)
        axes = _panels(fig, len(groups))
        handles: dict[str, Any] = {}
        ci, ns = False, []
        for ax, (title, variants) in zip(axes, groups.items(), strict=True):
            variants = sorted(variants, key=lambda v: float(an.configs.at[v, key]))
            rs = [float(an.configs.at[v, key]) for v in variants]
            stats_ = [summarize(_finished_values(an, v, metric), an.confidence) for v in variants]
            ns += [s.n for s in stats_]
            ax.plot(rs, [s.mean for s in stats_], color="black", lw=1.1, zorder=3)
            for v, r, s in zip(variants, rs, stats_, strict=True):
                vals = _finished_values(an, v, metric)  # seeds just left of their mean (constant offset on log₂)
                _seed_points(ax, np.full(len(vals), r * 0.9), vals, colors[v], v)
                ci |= _mean_point(ax, r, s, metric, colors[v], v)
            params = [an.table.at[v, "params_mean"] if "params_mean" in an.table.columns else np.nan
                      for v in variants]
            if np.isfinite(params).any():
                ax2 = ax.twinx()
                ax2.grid(False)
                scale, unit = _scale(params, "count")
                handles["params"] = ax2.plot(rs, np.asarray(params) / scale, color="0.45", ls=":", marker="s",
                                             ms=3, lw=1.0, zorder=1, label="params (right axis)")[0]
                ax2.set_ylabel(f"params ({unit})" if unit else "params")
                _plain_axis(ax2, x=False)
            base = _baseline_line(ax, an, metric, colors, variants)
            if base is not None:
                handles.setdefault(base.get_label(), base)
            ax.set_xscale("log", base=2)
            ax.set_xlim(rs[0] / 1.35, rs[-1] * 1.35)
            ax.set_xticks(sorted(set(rs)), [format_value(r) for r in sorted(set(rs))])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel("reduction ratio r")
            ax.set_title(title, fontsize=FONT_PT)
        axes[0].set_ylabel(_metric_label(metric))
        fit_tick_labels(fig, [ax.xaxis for ax in axes])
        legend_below(fig, [*_point_handles(ci), *handles.values()])
        what, why = _ci_note(ci, ns)
        caption = (f"{_metric_label(metric)} vs the reduction ratio r (log₂ axis, ticks at the tested ratios): "
                   f"every seed (small points, left), the {what} (large points, joined by the line); parameters on "
                   f"the right axis (dotted)"
                   + (_dashed_note(groups) if len(handles.keys() - {"params"}) else "")
                   + _held_text(an, key, groups) + "." + why)
        return save(fig, out_dir, "ratio", caption, factor=key)


def _clip(metric: str, lo: Sequence[float], hi: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """An interval drawn within what the metric can be: an error rate within 0–100%, a loss above 0 (a t interval
    over few seeds can reach past either)."""
    lo_a, hi_a = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if metric.endswith("_err"):
        return np.clip(lo_a, 0.0, 100.0), np.clip(hi_a, 0.0, 100.0)
    if metric.endswith("_loss"):
        return np.clip(lo_a, 0.0, None), hi_a
    return lo_a, hi_a


def _metric_label(metric: str) -> str:
    return {"top1_err": "top-1 error (%)", "top5_err": "top-5 error (%)", "test_loss": "test loss",
            "train_loss": "train loss", "infer_ms": "inference (ms/batch)", "params": "params",
            "macs": "MACs"}.get(metric, metric)


# --------------------------------------------------------------------------------------------------
# categorical factors: squeeze, gate, placement, stages, …


def factor_figure(an: Analysis, key: str, colors: Mapping[str, Any], out_dir: Path, slug: str,
                  metric: str = "top1_err") -> FigureFile | None:
    """One category per level of the factor, the other attention factors at their held levels (one panel per
    architecture/recipe group): every seed as a point, the mean right of them with its CI where n allows, the
    group's baseline dashed. None where no group has two levels to compare."""
    groups = _held_groups(an, key, min_levels=2)
    if not groups:
        return None
    level = {v: format_value(an.configs.at[v, key]) for vs in groups.values() for v in vs}
    with paper_style():
        cats = sum(len(set(level[v] for v in vs)) for vs in groups.values())
        fig = new_figure(COLUMN_IN if cats <= 6 and len(groups) == 1 else PAGE_IN, 2.3)
        axes = _panels(fig, len(groups))
        bases: dict[str, Any] = {}
        ci, ns = False, []
        for ax, (title, variants) in zip(axes, groups.items(), strict=True):
            raw = {level[v]: an.configs.at[v, key] for v in variants}
            levels = sorted(raw, key=lambda lv: sort_value(key, raw[lv]))
            for i, lv in enumerate(levels):
                here = [v for v in variants if level[v] == lv]
                for j, v in enumerate(here):  # variants sharing a level (differing in no factor) side by side
                    x = i + (j - (len(here) - 1) / 2) * 0.8 / len(here)
                    vals = _finished_values(an, v, metric).to_numpy()
                    s = summarize(vals, an.confidence)
                    ns.append(s.n)
                    _seed_points(ax, x - 0.1 / len(here) + np.linspace(-0.05, 0.05, len(vals)) / len(here), vals,
                                 colors[v], v)
                    ci |= _mean_point(ax, x + 0.12 / len(here), s, metric, colors[v], v)
            # n under each level, so a single-seed mean is never mistaken for a robust one
            counts = {lv: "/".join(str(int(an.table.at[v, "n"])) for v in variants if level[v] == lv) for lv in levels}
            ax.set_xticks(range(len(levels)), [f"{lv}\nn={counts[lv]}" for lv in levels])
            ax.set_xlim(-0.5, len(levels) - 0.5)
            ax.xaxis.grid(False)
            base = _baseline_line(ax, an, metric, colors, variants)
            if base is not None:
                bases.setdefault(base.get_label(), base)
            ax.set_xlabel(short_name(key))
            ax.set_title(title, fontsize=FONT_PT)
        axes[0].set_ylabel(_metric_label(metric))
        fit_tick_labels(fig, [ax.xaxis for ax in axes])
        legend_below(fig, [*_point_handles(ci), *bases.values()])
        what, why = _ci_note(ci, ns)
        caption = (f"{_metric_label(metric)} by {short_name(key)}: every seed (small points) and the {what} "
                   f"(large point, right); n = finished seeds"
                   + (_dashed_note(groups) if bases else "")
                   + _held_text(an, key, groups) + "." + why)
        return save(fig, out_dir, slug, caption, factor=key)


# --------------------------------------------------------------------------------------------------
# accuracy against cost


def pareto_front(costs: Sequence[float], errors: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both cost and error (ties kept), by cost."""
    pts = [(c, e, i) for i, (c, e) in enumerate(zip(costs, errors, strict=True)) if np.isfinite(c) and np.isfinite(e)]
    front = [i for c, e, i in pts
             if not any((c2 <= c and e2 <= e) and (c2 < c or e2 < e) for c2, e2, _ in pts)]
    return sorted(front, key=lambda i: (costs[i], errors[i]))


def pareto_figure(an: Analysis, cost: str, colors: Mapping[str, Any], out_dir: Path,
                  metric: str = "top1_err") -> FigureFile:
    """Error vs one cost (params, MACs, latency): seeds, the mean (± CI where n allows) per variant, baselines
    starred, the front drawn. Latency only from runs that had their device to themselves (:func:`variant_speeds`)."""
    labels = variant_labels(an)
    variants = [v for v in an.order if an.table.at[v, "n"] > 0]
    speeds = variant_speeds(an.sweep.runs) if cost == "infer_ms" else {}
    xs = [float(speeds.get(v, {}).get(cost, math.nan)) if cost == "infer_ms" else float(an.table.at[v, f"{cost}_mean"])
          for v in variants]
    ys = [float(an.table.at[v, f"{metric}_mean"]) for v in variants]
    scale, unit = _scale(xs, "ms" if cost == "infer_ms" else "count")
    with paper_style():
        fig = new_figure(COLUMN_IN, 2.5)
        ax = fig.add_subplot()
        handles = []
        ci, ns = False, []
        for v, x, y in zip(variants, xs, ys, strict=True):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            is_base = an.is_baseline(v)
            vals = _finished_values(an, v, metric)
            s = summarize(vals, an.confidence)
            ns.append(s.n)
            _seed_points(ax, np.full(len(vals), x / scale), vals, colors[v], v, alpha=0.45)
            ci |= _mean_point(ax, x / scale, s, metric, colors[v], v, marker="*" if is_base else "o",
                              ms=9 if is_base else 5)
            n = int(an.table.at[v, "n"])
            handles.append(Line2D([], [], ls="", marker="*" if is_base else "o", ms=7 if is_base else 5,
                                  color=colors[v], mec="black", mew=0.5,
                                  label=f"{labels[v]}{' (baseline)' if is_base else ''}, n={n}"))
        front = pareto_front(xs, ys)
        if len(front) >= 2:
            fx, fy = [xs[i] / scale for i in front], [ys[i] for i in front]
            (fl,) = ax.plot(fx, fy, drawstyle="steps-post", color="black", lw=0.9, ls="-", alpha=0.7, zorder=2,
                            label="Pareto front")
            handles.append(fl)
        _plain_axis(ax)
        name = {"params": "params", "macs": "MACs", "infer_ms": "inference latency"}[cost]
        ax.set_xlabel(f"{name} ({unit})" if unit else name)
        ax.set_ylabel(_metric_label(metric))
        legend_below(fig, [*handles, *_point_handles(ci)[:1]], max_ncol=2)
        what, why = _ci_note(ci, ns)
        caption = (f"Accuracy against cost: {_metric_label(metric)} vs mean {name} per variant, every seed (faint "
                   f"points) and the {what}; star: baseline; line: the Pareto front of the means (no variant is "
                   f"both cheaper and better).{why} "
                   + (f"Latency: median eval-mode forward time of one batch, mean over the runs that did not share "
                      f"their device with another worker (runs on several devices are not plotted). "
                      f"{speed_stats(an.sweep.runs).caveat}" if cost == "infer_ms" else ""))
        return save(fig, out_dir, f"pareto_{cost}", caption.strip())


# --------------------------------------------------------------------------------------------------
# learning curves


def curves_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> FigureFile | None:
    """Test top-1 error and train loss per epoch: each seed a thin line and the mean a thick one, or, for a variant
    with at least :data:`MIN_BAND_N` seeds, the mean with a 95% CI band."""
    curves = an.sweep.curves
    if curves.empty or "epoch" not in curves.columns:
        return None
    done_keys = set(finished(an.sweep.runs).get("run_key", pd.Series(dtype=str)))
    if "run_key" in curves.columns and done_keys:
        curves = curves[curves["run_key"].isin(done_keys)]
    labels = variant_labels(an)
    panels = [m for m in ("top1_err", "train_loss") if m in curves.columns]
    if curves.empty or not panels:
        return None
    run = "run_key" if "run_key" in curves.columns else "seed"
    with paper_style():
        fig = new_figure(COLUMN_IN, 1.6 * len(panels) + 0.5)
        axes = [fig.add_subplot(len(panels), 1, i + 1) for i in range(len(panels))]
        handles, banded, lined = [], False, False
        for v in an.order:
            part = curves[curves["variant"].astype(str) == v]
            if part.empty:
                continue
            n = part[run].nunique()
            ls = "--" if an.is_baseline(v) else "-"
            for ax, m in zip(axes, panels, strict=True):
                by_epoch = part.groupby("epoch")[m]
                s = [summarize(g, an.confidence) for _, g in by_epoch]
                epochs = list(by_epoch.groups)
                if n >= MIN_BAND_N:
                    lo, hi = _clip(m, [x.ci_lo for x in s], [x.ci_hi for x in s])
                    ax.fill_between(epochs, lo, hi, color=colors[v], alpha=0.15, lw=0, gid=v)
                else:
                    for _, seed in part.sort_values("epoch").groupby(run):
                        ax.plot(seed["epoch"], seed[m], color=colors[v], lw=0.5, alpha=0.5, ls=ls, gid=v)
                ax.plot(epochs, [x.mean for x in s], color=colors[v], lw=1.4, ls=ls, gid=v)
            banded, lined = banded or n >= MIN_BAND_N, lined or n < MIN_BAND_N
            handles.append(Line2D([], [], color=colors[v], lw=1.4, ls=ls, label=f"{labels[v]} (n={n})"))
        for ax, m in zip(axes, panels, strict=True):
            ax.set_ylabel(_metric_label(m))
        axes[-1].set_xlabel("epoch")
        for ax in axes[:-1]:
            ax.tick_params(labelbottom=False)
        legend_below(fig, handles, max_ncol=2)
        parts = []
        if lined:
            parts.append("each seed a thin line, the mean a thick one"
                         + (f" (fewer than {MIN_BAND_N} seeds)" if banded else ""))
        if banded:
            parts.append(f"the mean with a 95% CI band (Student t; {MIN_BAND_N} or more seeds)")
        caption = ("Learning curves, test top-1 error and training loss per epoch: " + "; ".join(parts)
                   + (f". No band below {MIN_BAND_N} seeds (a t interval over so few swings across the axis)"
                      if lined else "")
                   + ". n seeds per variant in the legend; dashed: the baseline; diverged runs are left out.")
        return save(fig, out_dir, "curves", caption)


# --------------------------------------------------------------------------------------------------
# adaptive SE against the fixed ratios

#: one marker per adaptive variant (fixed ratios are circles, the baseline a dashed line)
ADAPTIVE_MARKERS = ("D", "^", "v", "P", "X", "s", "p", "h")


def is_adaptive_figure(figure: FigureFile) -> bool:
    """The figures of the adaptive comparison (the report shows them in their own section)."""
    return figure.slug.startswith("adaptive_")


def adaptive_pareto_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path,
                           metric: str = "top1_err") -> FigureFile | None:
    """Error vs SE params (log) and vs MACs: does learning the widths beat choosing one r at the same cost?

    The fixed-ratio variants are joined as a curve (means, labelled r), each adaptive variant is its own marker
    (named in the legend with its cost weight), the baseline a dashed line; seeds are faint points, CIs drawn
    where n allows.
    """
    comps = [c for c in adaptive_comparisons(an, metric) if c.top1.n > 0]
    if not comps:
        return None
    done = finished(an.sweep.runs)
    done = done.assign(se_cost=allocated_se_params(done))
    panels = [("se_cost", "SE params")]
    if "macs" in done.columns and done["macs"].notna().any():
        panels.append(("macs", "MACs"))
    with paper_style():
        fig = new_figure(PAGE_IN if len(panels) > 1 else COLUMN_IN, 2.6)
        handles: list[Any] = []
        for i, (col, name) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            drawn, ns, ci = _adaptive_panel(ax, an, comps, done, col, colors, metric)
            handles = handles or drawn
            _, unit = _scale(done[col].dropna().tolist(), "count")
            ax.set_xlabel(f"{name} ({unit})" if unit else name)
            ax.set_ylabel(_metric_label(metric))
        legend_below(fig, [*handles, *_point_handles(ci)[:1]], max_ncol=3 if len(panels) > 1 else 2)
        caption = (f"{_metric_label(metric)} against SE parameters (log scale)"
                   + (" and against MACs" if len(panels) > 1 else "")
                   + ": the fixed-ratio variants (circles, labelled r, joined) and the adaptive variants (other "
                     f"markers, named with their cost weight w in the legend); {_ci_note(ci, ns)[0]}; seeds as "
                     "faint points"
                   + ("; dashed: the baseline" if any(h.get_gid() in an.baselines for h in handles) else "")
                   + ". Every variant is placed at what its net has and computes: a learnable one at its hardened "
                     "net's, a dynamic one at its allocated SE params and MACs (its soft mask computes every "
                     "allocated unit)" + _active_width_note(an, comps) + "." + _ci_note(ci, ns)[1])
        return save(fig, out_dir, "adaptive_pareto", caption)


def _active_width_note(an: Analysis, comps: Sequence[AdaptiveComparison]) -> str:
    """The dynamic variants' expected active widths for the caption (a width, not a cost), or nothing."""
    labels = adaptive_labels(an)
    parts = [f"{labels[c.variant]} {100 * c.active_width:.0f}%" for c in comps
             if c.kind == "dynamic" and np.isfinite(c.active_width)]
    return ("; expected active width (mean per-image hidden width as a share of the allocated units, whole test "
            "set; a width, not a cost): " + ", ".join(parts)) if parts else ""


def _adaptive_panel(ax: Axes, an: Analysis, comps: Sequence[AdaptiveComparison], done: pd.DataFrame, col: str,
                    colors: Mapping[str, Any], metric: str) -> tuple[list[Any], list[int], bool]:
    """One cost axis of :func:`adaptive_pareto_figure`; returns its legend handles, the n of its points and
    whether any CI was drawn."""
    scale, _ = _scale(done[col].dropna().tolist(), "count")
    labels = adaptive_labels(an)
    handles: list[Any] = []
    ns: list[int] = []
    ci = [False]

    def draw(variant: str, s: Summary, marker: str, ms: float, ecolor: Any) -> float:
        """Seeds faint, the mean (± CI where n allows); returns the mean cost (the x of the point)."""
        part = done.loc[done["variant"] == variant, [col, metric]].dropna()
        x = float(part[col].mean()) / scale
        _seed_points(ax, part[col] / scale, part[metric], colors[variant], variant, marker=marker, alpha=0.35)
        ci[0] |= _mean_point(ax, x, s, metric, colors[variant], variant, marker=marker, ms=ms, ecolor=ecolor)
        ns.append(s.n)
        return x

    ticks: list[float] = []
    for gi, curve in enumerate(dict.fromkeys(c.fixed for c in comps if c.fixed)):
        line_color = "black" if gi == 0 else sns.color_palette("dark", 8)[gi % 8]
        means = [summarize(_finished_values(an, w, metric), an.confidence) for w in curve]
        xs = [draw(w, s, "o", 4.5, line_color) for w, s in zip(curve, means, strict=True)]
        order = np.argsort(xs)
        (ln,) = ax.plot(np.asarray(xs)[order], np.asarray([s.mean for s in means])[order], color=line_color, lw=1.1,
                        zorder=2, label="fixed r (means joined)")
        handles += [ln] if gi == 0 else []
        for w, x, s in zip(curve, xs, means, strict=True):
            last = x == max(xs)  # the rightmost label to the left of its point, inside the axes
            ax.annotate(ratio_label(an, w), (x, s.mean), xytext=(-3 if last else 3, -9), textcoords="offset points",
                        ha="right" if last else "left", fontsize=FONT_PT - 1, color="0.25")
        ticks += xs
    every = adaptive_variants(an)  # markers by the full list, so a partial sweep keeps each variant's marker
    for c in comps:
        marker = ADAPTIVE_MARKERS[every.index(c.variant) % len(ADAPTIVE_MARKERS)]
        draw(c.variant, c.top1, marker, 6, colors[c.variant])  # named in the legend (kind, w), not annotated
        handles.append(Line2D([], [], ls="", marker=marker, ms=5, color=colors[c.variant], mec="black", mew=0.5,
                              label=f"{labels[c.variant]} (n={c.top1.n})"))
    base = _baseline_line(ax, an, metric, colors, [c.variant for c in comps])
    handles += [base] if base is not None else []
    if col == "se_cost":
        ax.set_xscale("log")
        ticks = sorted(set(ticks))
        if ticks:
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{t:.3g}" for t in ticks])
    else:
        _plain_axis(ax)
    return handles, ns, ci[0]


def _stage_marks(ax: Axes, positions: Sequence[int], stages: Sequence[Any]) -> None:
    """Dotted lines between stages along a block axis and the stage numbers above it."""
    spans: dict[Any, list[int]] = {}
    for p, s in zip(positions, stages, strict=True):
        spans.setdefault(s, []).append(int(p))
    for i, (stage, ps) in enumerate(spans.items()):
        if i > 0:
            ax.axvline(min(ps) - 0.5, color="0.45", lw=0.7, ls="--", zorder=1)
        if stage is not None and not pd.isna(stage):
            ax.text((min(ps) + max(ps)) / 2, 1.01, f"stage {int(stage)}", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=FONT_PT - 1, color="0.3")


def _log2_axis(ax: Axes, values: Sequence[float], levels: Sequence[float]) -> None:
    """A log₂ ratio axis with ticks at the fixed ratios (``levels``, drawn as lines) and the powers of two spanning
    them and ``values``; where fewer than two of those fall in the drawn range, round values inside it as well
    (an axis with one tick reads no scale)."""
    finite = [float(v) for v in [*values, *levels] if np.isfinite(v) and v > 0]
    if not finite:
        return
    ax.set_yscale("log", base=2)
    lo, hi = math.floor(math.log2(min(finite))), math.ceil(math.log2(max(finite)))
    ticks = {2.0 ** k for k in range(lo, hi + 1)} | {float(x) for x in levels if x > 0}
    if sum(min(finite) <= t <= max(finite) for t in ticks) < 2:
        ticks |= {float(t) for t in MaxNLocator(nbins=3).tick_values(min(finite), max(finite))
                  if min(finite) <= t <= max(finite)}
    ax.yaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_yticklabels([format_value(t) for t in sorted(ticks)])


def _fixed_levels(an: Analysis, variants: Sequence[str]) -> list[float]:
    """The reduction ratios of the fixed-ratio variants the given adaptive variants are compared with."""
    fixed = {w for v in variants for w in fixed_ratio_variants(an, v)}
    return sorted({float(an.configs.at[w, "model.attention.reduction"]) for w in fixed})


def adaptive_ratio_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> FigureFile | None:
    """Learned ratio per SE block along the depth: where an adaptive SE spends its width, and whether seeds
    agree (each seed a thin line, the mean a thick one; fixed ratios as dotted reference levels)."""
    frames = {v: block_ratios(an, v) for v in adaptive_variants(an)}
    frames = {v: f[f["ratio"] > 0] for v, f in frames.items() if not f.dropna(subset=["ratio"]).empty}
    if not frames:
        return None
    labels = adaptive_labels(an)
    levels = _fixed_levels(an, list(frames))
    blocks = int(max(f["position"].max() for f in frames.values())) + 1
    with paper_style():
        fig = new_figure(PAGE_IN if blocks > 12 else COLUMN_IN, 2.5)
        ax = fig.add_subplot()
        handles = []
        for v, frame in frames.items():
            ls = "--" if adaptive_kind(an.configs.loc[v]) == "dynamic" else "-"
            for _, g in frame.groupby("seed"):
                ax.plot(g["position"], g["ratio"], color=colors[v], lw=0.6, alpha=0.45, ls=ls, zorder=2, gid=v)
            mean = frame.groupby("position")["ratio"].mean()
            (ln,) = ax.plot(mean.index, mean.to_numpy(), color=colors[v], lw=1.6, ls=ls, marker="o", ms=2.5, zorder=3,
                            gid=v,
                            label=f"{labels[v]} (n={frame['seed'].nunique()})")
            handles.append(ln)
        for r in levels:
            ax.axhline(r, color="0.6", lw=0.6, ls=":", zorder=1)
        first = next(iter(frames.values())).drop_duplicates("position").sort_values("position")
        _stage_marks(ax, list(first["position"]), list(first["stage"]))
        _log2_axis(ax, [x for f in frames.values() for x in f["ratio"]], levels)
        ax.set_xticks(range(blocks))
        ax.set_xlim(-0.5, blocks - 0.5)
        ax.set_xlabel("SE block (input → output)")
        ax.set_ylabel("learned r = C / width")
        legend_below(fig, handles, max_ncol=2)
        caption = ("Learned reduction ratio per SE block along the network (C / effective width; a dynamic variant, "
                   "dashed: the mean per-image ratio on the test set, last epoch): each seed a thin line, the mean "
                   "a thick one; dashed verticals separate the stages; dotted horizontals: the sweep's fixed ratios.")
        return save(fig, out_dir, "adaptive_ratios", caption)


def adaptive_trajectory_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> FigureFile | None:
    """Mean learned ratio per stage over the epochs: how fast the widths settle and whether they still move
    when training stops."""
    logs = {v: adaptive_log(an, v).dropna(subset=["epoch", "stage", "ratio"]) for v in adaptive_variants(an)}
    logs = {v: f[f["ratio"] > 0] for v, f in logs.items() if not f.empty}
    if not logs:
        return None
    labels = adaptive_labels(an)
    stages = sorted({int(s) for f in logs.values() for s in f["stage"]})
    with paper_style():
        fig = new_figure(PAGE_IN if len(stages) > 1 else COLUMN_IN, 2.1)
        axes: list[Axes] = []
        for i in range(len(stages)):
            axes.append(fig.add_subplot(1, len(stages), i + 1, sharey=axes[0] if axes else None))
        handles = []
        for v, frame in logs.items():
            ls = "--" if adaptive_kind(an.configs.loc[v]) == "dynamic" else "-"
            per_seed = frame.groupby(["stage", "seed", "epoch"])["ratio"].mean().reset_index()
            for ax, stage in zip(axes, stages, strict=True):
                part = per_seed[per_seed["stage"] == stage]
                for _, g in part.groupby("seed"):
                    ax.plot(g["epoch"], g["ratio"], color=colors[v], lw=0.6, alpha=0.45, ls=ls, gid=v)
                mean = part.groupby("epoch")["ratio"].mean()
                ax.plot(mean.index, mean.to_numpy(), color=colors[v], lw=1.4, ls=ls, gid=v)
            handles.append(Line2D([], [], color=colors[v], lw=1.4, ls=ls,
                                  label=f"{labels[v]} (n={frame['seed'].nunique()})"))
        _log2_axis(axes[0], [x for f in logs.values() for x in f["ratio"]], [])  # no fixed-ratio lines here
        for i, (ax, stage) in enumerate(zip(axes, stages, strict=True)):
            ax.set_title(f"stage {stage}", fontsize=FONT_PT)
            ax.set_xlabel("epoch")
            if i == 0:
                ax.set_ylabel("mean learned r")
            else:
                ax.tick_params(labelleft=False)
        legend_below(fig, handles, max_ncol=3)
        caption = ("Learned reduction ratio per epoch, averaged over each stage's SE blocks (C / effective width; "
                   "dynamic, dashed: the mean per-image ratio on the test set): each seed a thin line, the mean a "
                   "thick one.")
        return save(fig, out_dir, "adaptive_trajectories", caption)


# --------------------------------------------------------------------------------------------------
# which figures a sweep gets


# the figure names (FIGURE_NAMES: figure kind → names a spec's `figures:` list may use for it; _factor_names:
# those of one factor's figure) are defined in sesweep.vocabulary, where loading a sweep file checks them
_factor_names = factor_figure_names


def _wanted(requested: Sequence[Any] | None, names: Sequence[str]) -> bool:
    if not requested:
        return True
    return bool({str(r).strip().lower() for r in requested} & {n.lower() for n in names})


def make_figures(an: Analysis, out_dir: Path) -> tuple[list[FigureFile], list[str]]:
    """Every figure this sweep supports (filtered by the spec's ``figures:`` list, except the excitation figure:
    drawn whenever the runs saved excitations), plus notes."""
    requested = an.sweep.spec.get("figures")
    colors = variant_colors(an.order, an.baseline)
    out: list[FigureFile | None] = []
    known: set[str] = set()
    skipped: list[str] = []
    adaptive = adaptive_variants(an)
    factor_keys = [k for k in an.factors if k not in ("model.attention.kind", "model.attention.reduction")
                   and k.startswith("model.") and not (adaptive and k in ADAPTIVE_KEYS)]
    if finished(an.sweep.runs).empty:
        return [], ["no run has finished yet: no figures"]
    if "model.attention.reduction" in an.factors and _has_se(an):
        known |= set(FIGURE_NAMES["ratio"])
        if _wanted(requested, FIGURE_NAMES["ratio"]):
            out.append(ratio_figure(an, colors, out_dir))
    for key in factor_keys:
        names = _factor_names(key)
        known |= set(names)
        if _wanted(requested, names) and _has_se(an):
            slug = PAPER_TABLES[key][1] if key in PAPER_TABLES else slugify(short_name(key))
            slug = "gate" if key == "model.attention.gate" else slug
            out.append(factor_figure(an, key, colors, out_dir, slug))
    known |= set(FIGURE_NAMES["pareto"])
    if _wanted(requested, FIGURE_NAMES["pareto"]):
        for cost in ("params", "macs", "infer_ms"):
            timed = cost != "infer_ms" or any(math.isfinite(s["infer_ms"])  # unshared timings on one device
                                              for s in variant_speeds(an.sweep.runs).values())
            if timed and _varies(an, cost) and _wanted(requested, ("pareto", "cost", "accuracy_cost", cost,
                                                                   "latency" if cost == "infer_ms" else cost)):
                out.append(pareto_figure(an, cost, colors, out_dir))
            elif not timed and _varies(an, cost):
                skipped.append("no latency Pareto figure: no run was timed with its device to itself (or the runs "
                               "ran on several devices), and shared timings are never plotted")
    if adaptive:
        known |= set(FIGURE_NAMES["adaptive"])
        if _wanted(requested, FIGURE_NAMES["adaptive"]):
            out += [adaptive_pareto_figure(an, colors, out_dir), adaptive_ratio_figure(an, colors, out_dir),
                    adaptive_trajectory_figure(an, colors, out_dir)]
    known |= set(FIGURE_NAMES["curves"])
    if _wanted(requested, FIGURE_NAMES["curves"]):
        out.append(curves_figure(an, colors, out_dir))
    known |= set(FIGURE_NAMES["excitation"])
    from sesweep.analysis.excitation_figure import excitation_figures  # it draws with this module's style and save()

    out += excitation_figures(an, out_dir)  # whenever the runs saved excitations
    notes = skipped + [f"figure '{r}' was requested but this sweep cannot draw it" for r in requested or []
                       if str(r).strip().lower() not in {n.lower() for n in known}]
    return [f for f in out if f is not None], notes


def _has_se(an: Analysis) -> bool:
    """Any attention variant with a finished run (else there is nothing to plot against r)."""
    return any(not is_attention_off(an.configs.loc[v]) and an.table.at[v, "n"] > 0 for v in an.order)


def _varies(an: Analysis, cost: str) -> bool:
    """A Pareto plot needs the cost and the error of at least two variants, and the cost to differ."""
    col, err = f"{cost}_mean", "top1_err_mean"
    if col not in an.table.columns or err not in an.table.columns:
        return False
    ok = an.table[[col, err]].dropna()
    return len(ok) >= 2 and ok[col].nunique() > 1
