"""Adaptive SE against the fixed ratios: error vs cost at equal cost, learned ratio per block and per epoch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, MaxNLocator, NullLocator

from sesweep.analysis.equal_cost import (
    AdaptiveComparison,
    adaptive_comparisons,
    adaptive_kind,
    adaptive_log,
    adaptive_variants,
    allocated_se_params,
    block_ratios,
    fixed_ratio_variants,
    ratio_label,
)
from sesweep.analysis.factors import Analysis, variant_labels
from sesweep.analysis.figures import style
from sesweep.analysis.figures.layout import legend_below
from sesweep.analysis.figures.marks import (
    baseline_line,
    ci_note,
    cost_reference,
    finished_values,
    mean_point,
    metric_label,
    percent_axis,
    plain_axis,
    point_handles,
    relative_label,
    scale_of,
    seed_points,
)
from sesweep.analysis.figures.style import COLUMN_IN, FONT_PT, PAGE_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.fmt import count, format_value
from sesweep.analysis.stats import Summary, finished, summarize

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
        relative = ""
        for i, (col, name) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            drawn, ns, ci, ref = _adaptive_panel(ax, an, comps, done, col, colors, metric)
            handles = handles or drawn
            _, unit = scale_of(done[col].dropna().tolist(), "count")
            if ref is not None:
                ax.set_xlabel(relative_label(name, *ref))
                relative = f" (as the change in % of {ref[0]}'s {count(ref[1])})"
            else:
                ax.set_xlabel(f"{name} ({unit})" if unit else name)
            ax.set_ylabel(metric_label(metric))
        legend_below(fig, [*handles, *point_handles(ci)[:1]], max_ncol=3 if len(panels) > 1 else 2)
        caption = (f"{metric_label(metric)} against SE parameters (log scale)"
                   + (f" and against MACs{relative}" if len(panels) > 1 else "")
                   + ": the fixed-ratio variants (circles, labelled r, joined) and the adaptive variants (other "
                     f"markers, named with their cost weight w in the legend); {ci_note(ci, ns)[0]}; seeds as "
                     "faint points"
                   + ("; dashed: the baseline" if any(h.get_gid() in an.baselines for h in handles) else "")
                   + ". Every variant is placed at what its net has and computes: a learnable one at its hardened "
                     "net's, a dynamic one at its allocated SE params and MACs (its soft mask computes every "
                     "allocated unit)" + _active_width_note(an, comps) + "." + ci_note(ci, ns)[1])
        return style.save(fig, out_dir, "adaptive_pareto", caption)


def _active_width_note(an: Analysis, comps: Sequence[AdaptiveComparison]) -> str:
    """The dynamic variants' expected active widths for the caption (a width, not a cost), or nothing."""
    labels = variant_labels(an)
    parts = [f"{labels[c.variant]} {100 * c.active_width:.0f}%" for c in comps
             if c.kind == "dynamic" and np.isfinite(c.active_width)]
    return ("; expected active width (mean per-image hidden width as a share of the allocated units, whole test "
            "set; a width, not a cost): " + ", ".join(parts)) if parts else ""


def _macs_reference(an: Analysis, comps: Sequence[AdaptiveComparison], done: pd.DataFrame) -> tuple[str, float] | None:
    """The baseline the MACs axis is relative to, and its mean MACs (None: no one baseline with MACs)."""
    costs = {v: float(done.loc[done["variant"] == v, "macs"].mean()) for v in done["variant"].unique()}
    ref = cost_reference(an, [c.variant for c in comps], costs)
    return (ref, costs[ref]) if ref is not None and an.is_baseline(ref) else None


def _adaptive_panel(ax: Axes, an: Analysis, comps: Sequence[AdaptiveComparison], done: pd.DataFrame, col: str,
                    colors: Mapping[str, Any], metric: str
                    ) -> tuple[list[Any], list[int], bool, tuple[str, float] | None]:
    """One cost axis of :func:`adaptive_pareto_figure`; returns its legend handles, the n of its points, whether
    any CI was drawn and, for MACs, the baseline its axis is relative to (its name and MACs)."""
    scale, _ = scale_of(done[col].dropna().tolist(), "count")
    # MACs as the change in % of the baseline's: SE adds ~0.1% MACs, an absolute axis zoomed on that reads as
    # a large spread; SE params stay absolute (log), as the baseline has none
    ref = _macs_reference(an, comps, done) if col == "macs" else None

    def to_x(values: Any) -> Any:
        return 100.0 * (values / ref[1] - 1.0) if ref is not None else values / scale
    labels = variant_labels(an)
    handles: list[Any] = []
    ns: list[int] = []
    ci = [False]

    def draw(variant: str, s: Summary, marker: str, ms: float, ecolor: Any) -> float:
        """Seeds faint, the mean (± CI where n allows); returns the mean cost (the x of the point)."""
        part = done.loc[done["variant"] == variant, [col, metric]].dropna()
        x = float(to_x(float(part[col].mean())))
        seed_points(ax, to_x(part[col]), part[metric], colors[variant], variant, marker=marker, alpha=0.35)
        ci[0] |= mean_point(ax, x, s, metric, colors[variant], variant, marker=marker, ms=ms, ecolor=ecolor)
        ns.append(s.n)
        return x

    ticks: list[float] = []
    for gi, curve in enumerate(dict.fromkeys(c.fixed for c in comps if c.fixed)):
        line_color = "black" if gi == 0 else sns.color_palette("dark", 8)[gi % 8]
        means = [summarize(finished_values(an, w, metric), an.confidence) for w in curve]
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
    base = baseline_line(ax, an, metric, colors, [c.variant for c in comps])
    handles += [base] if base is not None else []
    if col == "se_cost":
        ax.set_xscale("log")
        ticks = sorted(set(ticks))
        if ticks:
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{t:.3g}" for t in ticks])
    else:
        plain_axis(ax)
        if ref is not None:
            percent_axis(ax.xaxis)
    return handles, ns, ci[0], ref


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
    labels = variant_labels(an)
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
        return style.save(fig, out_dir, "adaptive_ratios", caption)


def adaptive_trajectory_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> FigureFile | None:
    """Mean learned ratio per stage over the epochs: how fast the widths settle and whether they still move
    when training stops."""
    logs = {v: adaptive_log(an, v).dropna(subset=["epoch", "stage", "ratio"]) for v in adaptive_variants(an)}
    logs = {v: f[f["ratio"] > 0] for v, f in logs.items() if not f.empty}
    if not logs:
        return None
    labels = variant_labels(an)
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
        return style.save(fig, out_dir, "adaptive_trajectories", caption)



def adaptive_figures(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> list[FigureFile | None]:
    """The adaptive comparison's three figures, in the report's order (None where one has nothing to show)."""
    return [adaptive_pareto_figure(an, colors, out_dir), adaptive_ratio_figure(an, colors, out_dir),
            adaptive_trajectory_figure(an, colors, out_dir)]
