"""Figures of a sweep, at paper size: one style, one colour per variant, only for what the sweep varies.

Every figure is drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot, no
global backend or style changes: the paper style is an ``rc_context`` around each figure), saved as PNG
(200 dpi) and PDF. Widths are 3.5 in (one column) or 7 in (two columns) with 8 pt text, so a figure
pasted into a paper at its natural size stays readable. Error bars and bands are the same Student-t 95%
intervals as the tables; seeds are drawn as points wherever they fit, so n is visible.
"""

from __future__ import annotations

import math
import re
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

from sesweep.speed import speed_stats, variant_speeds
from sesweep.stats import (
    ADAPTIVE_KEYS,
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
    finished_details,
    fixed_ratio_variants,
    format_value,
    is_attention_off,
    ratio_label,
    reference_value,
    short_name,
    summarize,
    variant_labels,
)
from sesweep.tables import PAPER_TABLES

COLUMN_IN = 3.5
PAGE_IN = 7.0
DPI = 200
FONT_PT = 8
BASELINE_COLOR = (0.25, 0.25, 0.25)
#: seaborn's colour-blind palette reordered so that the first few variants get the most distinct hues
#: (orange and vermilion far apart) and without its grey, which is close to the baseline's
PALETTE_ORDER = (0, 1, 2, 4, 9, 3, 5, 6, 8)
#: at most this many excitation figures (the reference variant first)
MAX_EXCITATION_FIGURES = 3
#: at most this many classes per excitation panel (SENet TPAMI Fig. 6 shows four)
EXCITATION_CLASSES = 4
#: at most this many blocks per excitation figure
EXCITATION_BLOCKS = 6


@dataclass(frozen=True)
class FigureFile:
    """One written figure: its name, what it shows (the caption), and its files."""

    slug: str
    caption: str
    png: Path
    pdf: Path


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


def save(fig: Figure, out_dir: Path, slug: str, caption: str) -> FigureFile:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / f"{slug}.png", out_dir / f"{slug}.pdf"
    fig.savefig(png, dpi=DPI)
    fig.savefig(pdf)
    return FigureFile(slug, caption, png, pdf)


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


def _baseline_line(ax: Axes, an: Analysis, metric: str, label: str) -> Line2D | None:
    """The baseline's mean as a dashed horizontal line with its CI as a light band; none where the sweep has a
    baseline per architecture or recipe (one line would stand for only one of them)."""
    if an.baseline is None or len(an.baselines) > 1 or metric not in an.sweep.runs.columns:
        return None
    s = summarize(_finished_values(an, an.baseline, metric), an.confidence)
    if s.n == 0:
        return None
    line = ax.axhline(s.mean, color=BASELINE_COLOR, ls="--", lw=1.0, zorder=1,
                      label=f"{label} (n={s.n})")
    if s.n >= 2:
        lo, hi = _clip(metric, [s.ci_lo], [s.ci_hi])
        ax.axhspan(lo[0], hi[0], color=BASELINE_COLOR, alpha=0.08, lw=0, zorder=0)
    return line


def _scale(values: Sequence[float], kind: str) -> tuple[float, str]:
    """A unit for an axis of counts: (divisor, suffix) so ticks read 272.5 (k), 28.1 (M), 4.09 (G)."""
    top = max((abs(v) for v in values if np.isfinite(v)), default=0.0)
    if kind == "ms":
        return 1.0, "ms"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if top >= scale:
            return scale, unit
    return 1.0, ""


def _plain_axis(ax: Axes) -> None:
    """Plain numbers (no offset, no 1e6 factor), few enough ticks that long ones (40.5525) do not collide."""
    for axis in (ax.xaxis, ax.yaxis):
        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        axis.set_major_formatter(fmt)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))


def _legend_below(fig: Figure, handles: Sequence[Any], ncol: int = 2) -> None:
    if handles:
        fig.legend(handles=list(handles), loc="outside lower center", ncol=ncol, frameon=False,
                   handlelength=1.6, columnspacing=1.0)


# --------------------------------------------------------------------------------------------------
# error vs reduction ratio


def ratio_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path, metric: str = "top1_err") -> FigureFile:
    """Error vs r: seeds as points, mean line with CI band, params on a second axis, baseline as a line.

    An adaptive variant's r is only its maximum width, so where fixed-ratio variants exist the adaptive ones
    are left to the adaptive figures.
    """
    key = "model.attention.reduction"
    se = [v for v in an.order if v != an.baseline and not is_attention_off(an.configs.loc[v])]
    fixed = [v for v in se if adaptive_kind(an.configs.loc[v]) == "none"]
    left_out = bool(fixed) and len(fixed) < len(se)
    skip = {key, "model.attention.kind"} | (ADAPTIVE_KEYS if left_out else set())
    se = fixed or se
    others = [k for k in an.factors if k not in skip]
    groups: dict[tuple[str, ...], list[str]] = {}
    for v in se:
        groups.setdefault(tuple(format_value(an.configs.at[v, k]) for k in others), []).append(v)
    with paper_style():
        fig = new_figure(COLUMN_IN, 2.9)
        ax = fig.add_subplot()
        ax2 = ax.twinx()
        ax2.grid(False)
        handles: list[Any] = []
        all_r: list[float] = []
        for gi, (group, variants) in enumerate(groups.items()):
            variants = sorted(variants, key=lambda v: float(an.configs.at[v, key]))
            rs = [float(an.configs.at[v, key]) for v in variants]
            all_r += rs
            stats_ = [summarize(_finished_values(an, v, metric), an.confidence) for v in variants]
            means = np.array([s.mean for s in stats_])
            lo, hi = _clip(metric, [s.ci_lo if s.n >= 2 else np.nan for s in stats_],
                           [s.ci_hi if s.n >= 2 else np.nan for s in stats_])
            suffix = f" ({', '.join(f'{short_name(k)}={g}' for k, g in zip(others, group, strict=True))})" \
                if others else ""
            line_color = "black" if gi == 0 else sns.color_palette("dark", 8)[gi % 8]
            (ln,) = ax.plot(rs, means, color=line_color, lw=1.2, zorder=3, label=f"SE mean ± 95% CI{suffix}")
            ax.fill_between(rs, lo, hi, color=line_color, alpha=0.12, lw=0, zorder=2)
            ok = np.isfinite(lo)  # the band breaks at a level without an interval (n = 1): bars show each CI
            ax.errorbar(np.asarray(rs)[ok], means[ok], yerr=[means[ok] - lo[ok], hi[ok] - means[ok]], fmt="none",
                        ecolor=line_color, elinewidth=0.8, capsize=2, zorder=3)
            handles.append(ln)
            for v, r, s in zip(variants, rs, stats_, strict=True):
                vals = _finished_values(an, v, metric)
                # seeds just left of their mean, clear of the error bar (a constant offset on the log axis)
                ax.scatter(np.full(len(vals), r * 0.9), vals, s=9, color=colors[v], alpha=0.6, lw=0, zorder=4)
                ax.scatter([r], [s.mean], s=22, color=colors[v], edgecolor="black", lw=0.5, zorder=5)
            params = [an.table.at[v, "params_mean"] if "params_mean" in an.table.columns else np.nan
                      for v in variants]
            if np.isfinite(params).any():
                scale, unit = _scale(params, "count")
                (pl,) = ax2.plot(rs, np.asarray(params) / scale, color="0.45", ls=":", marker="s", ms=3, lw=1.0,
                                 zorder=1, label=f"params{suffix}")
                ax2.set_ylabel(f"params ({unit})" if unit else "params")
                if gi == 0:
                    handles.append(pl)
        base = _baseline_line(ax, an, metric, an.baseline or "baseline")
        if base is not None:
            handles.append(base)
        handles.append(Line2D([], [], ls="", marker="o", ms=3, color="0.5", alpha=0.6, label="seeds"))
        ax.set_xscale("log", base=2)
        ticks = sorted(set(all_r))
        if ticks:
            ax.set_xlim(ticks[0] / 1.35, ticks[-1] * 1.35)
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([format_value(t) for t in ticks])
        ax.set_xlabel("reduction ratio r")
        ax.set_ylabel(_metric_label(metric))
        _plain_axis(ax2)
        _legend_below(fig, handles)
        caption = (f"{_metric_label(metric)} vs the reduction ratio r: seeds (small points), mean (large points "
                   f"and line) and 95% CI (bars and band); parameters on the right axis (dotted)"
                   + (f"; dashed: {an.baseline} baseline with its CI." if base is not None else ".")
                   + (" Fixed ratios only: the adaptive variants are in the adaptive figures." if left_out else ""))
        return save(fig, out_dir, "ratio", caption)


def _clip(metric: str, lo: Sequence[float], hi: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """An error rate's interval drawn within 0–100% (a t interval over 2 seeds can reach past 100%)."""
    lo_a, hi_a = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    if metric.endswith("_err"):
        return np.clip(lo_a, 0.0, 100.0), np.clip(hi_a, 0.0, 100.0)
    return lo_a, hi_a


def _metric_label(metric: str) -> str:
    return {"top1_err": "top-1 error (%)", "top5_err": "top-5 error (%)", "test_loss": "test loss",
            "train_loss": "train loss", "infer_ms": "inference (ms/batch)", "params": "params",
            "macs": "MACs"}.get(metric, metric)


# --------------------------------------------------------------------------------------------------
# categorical factors: squeeze, gate, placement, stages, …


def factor_figure(an: Analysis, key: str, colors: Mapping[str, Any], out_dir: Path, slug: str,
                  metric: str = "top1_err") -> FigureFile:
    """One category per attention variant (ordered by the factor): seeds as points, mean ± CI over them."""
    labels = variant_labels(an)
    variants = [v for v in an.order if v != an.baseline and not is_attention_off(an.configs.loc[v])]
    others = [k for k in an.factors if k not in (key, "model.attention.kind")]
    names = [format_value(an.configs.at[v, key]) if not others else labels[v] for v in variants]
    done = finished(an.sweep.runs)
    points = done[done["variant"].isin(variants)][["variant", metric]].dropna()
    points = points.assign(x=points["variant"].map(dict(zip(variants, names, strict=True))))
    with paper_style():
        width = COLUMN_IN if len(variants) <= 6 else PAGE_IN
        fig = new_figure(width, 2.7)
        ax = fig.add_subplot()
        if len(points):
            sns.stripplot(data=points, x="x", y=metric, hue="variant", order=names, hue_order=variants,
                          palette={v: colors[v] for v in variants}, size=3.5, jitter=0.12, alpha=0.6, ax=ax,
                          legend=False, zorder=3)
        for i, v in enumerate(variants):
            s = summarize(points.loc[points["variant"] == v, metric], an.confidence)
            if s.n == 0:
                continue
            lo, hi = _clip(metric, [s.ci_lo], [s.ci_hi])
            err = [[s.mean - lo[0]], [hi[0] - s.mean]] if s.n >= 2 else None
            ax.errorbar([i + 0.28], [s.mean], yerr=err, fmt="o", ms=4.5, color=colors[v], mec="black", mew=0.5,
                        ecolor=colors[v], elinewidth=1.2, capsize=2.5, zorder=4)
        # n under each category name, so a single-seed mean is never mistaken for a robust one
        ax.set_xticks(range(len(names)), [f"{name}\nn={int(an.table.at[v, 'n'])}"
                                          for name, v in zip(names, variants, strict=True)])
        ax.set_xlim(-0.5, len(names) - 0.5)
        base = _baseline_line(ax, an, metric, an.baseline or "baseline")
        ax.set_xlabel(short_name(key) if not others else "variant")
        ax.set_ylabel(_metric_label(metric))
        handles = [Line2D([], [], ls="", marker="o", ms=3, color="0.5", alpha=0.6, label="seeds"),
                   Line2D([], [], ls="-", marker="o", ms=4, color="0.3", label="mean ± 95% CI")]
        if base is not None:
            handles.append(base)
        _legend_below(fig, handles, ncol=3)
        caption = (f"{_metric_label(metric)} by {short_name(key)}: every seed (points) and the mean with its 95% CI "
                   f"(right of the points); n = finished seeds"
                   + (f"; dashed: {an.baseline} baseline." if base is not None else "."))
        return save(fig, out_dir, slug, caption)


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
    """Error vs one cost (params, MACs, latency): mean ± CI per variant, baseline starred, front drawn."""
    labels = variant_labels(an)
    variants = [v for v in an.order if an.table.at[v, "n"] > 0]
    speeds = variant_speeds(an.sweep.runs) if cost == "infer_ms" else {}
    xs = [float(speeds.get(v, {}).get(cost, math.nan)) if cost == "infer_ms" else float(an.table.at[v, f"{cost}_mean"])
          for v in variants]
    ys = [float(an.table.at[v, f"{metric}_mean"]) for v in variants]
    scale, unit = _scale(xs, "ms" if cost == "infer_ms" else "count")
    with paper_style():
        fig = new_figure(COLUMN_IN, 3.1)
        ax = fig.add_subplot()
        handles = []
        for v, x, y in zip(variants, xs, ys, strict=True):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            lo, hi = _clip(metric, [an.table.at[v, f"{metric}_ci_lo"]], [an.table.at[v, f"{metric}_ci_hi"]])
            err = [[y - lo[0]], [hi[0] - y]] if np.isfinite(lo[0]) else None
            is_base = v == an.baseline
            ax.errorbar([x / scale], [y], yerr=err, fmt="*" if is_base else "o", ms=9 if is_base else 5,
                        color=colors[v], mec="black", mew=0.5, elinewidth=1.0, capsize=2, zorder=4)
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
        _legend_below(fig, handles, ncol=2)
        caption = (f"Accuracy against cost: mean {_metric_label(metric)} ± 95% CI vs mean {name} per variant; "
                   f"star: baseline; line: the Pareto front (no variant is both cheaper and better). "
                   + (f"Latency: median eval-mode forward time of one batch, mean over the runs that did not share "
                      f"their device with another worker (runs on several devices are not plotted). "
                      f"{speed_stats(an.sweep.runs).caveat}" if cost == "infer_ms" else ""))
        return save(fig, out_dir, f"pareto_{cost}", caption.strip())


# --------------------------------------------------------------------------------------------------
# learning curves


def curves_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> FigureFile | None:
    """Test top-1 error and train loss per epoch: mean over the finished seeds with a 95% CI band."""
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
    with paper_style():
        fig = new_figure(COLUMN_IN, 1.9 * len(panels) + 0.9)
        axes = [fig.add_subplot(len(panels), 1, i + 1) for i in range(len(panels))]
        handles = []
        for v in an.order:
            part = curves[curves["variant"].astype(str) == v]
            if part.empty:
                continue
            for ax, m in zip(axes, panels, strict=True):
                by_epoch = part.groupby("epoch")[m]
                s = [summarize(g, an.confidence) for _, g in by_epoch]
                epochs = list(by_epoch.groups)
                mean = [x.mean for x in s]
                ls = "--" if v == an.baseline else "-"
                ax.plot(epochs, mean, color=colors[v], lw=1.1, ls=ls)
                lo, hi = _clip(m, [x.ci_lo for x in s], [x.ci_hi for x in s])
                ax.fill_between(epochs, lo, hi, color=colors[v], alpha=0.15, lw=0)
            n = part["run_key"].nunique() if "run_key" in part.columns else part["seed"].nunique()
            handles.append(Line2D([], [], color=colors[v], ls=ls, label=f"{labels[v]} (n={n})"))
        for ax, m in zip(axes, panels, strict=True):
            ax.set_ylabel(_metric_label(m))
        axes[-1].set_xlabel("epoch")
        for ax in axes[:-1]:
            ax.tick_params(labelbottom=False)
        _legend_below(fig, handles, ncol=2)
        caption = ("Learning curves: test top-1 error and training loss per epoch, mean over the finished seeds "
                   "with a 95% CI band (n seeds per variant in the legend; diverged runs are left out).")
        return save(fig, out_dir, "curves", caption)


# --------------------------------------------------------------------------------------------------
# excitation distributions (SENet TPAMI Fig. 6)


def excitation_rows(an: Analysis, variant: str) -> tuple[int | None, list[dict[str, Any]]]:
    """The saved excitation of one run of a variant (the lowest finished seed that saved it)."""
    for seed, detail in finished_details(an, variant):
        if detail.get("excitation"):
            return seed, list(detail["excitation"])
    return None, []


def probe_description(an: Analysis, variant: str, seed: int | None) -> str:
    """Which test images the excitation was averaged over (the run's ``excitation_probe``), for the caption."""
    detail = next((d for s, d in finished_details(an, variant) if s == seed), {})
    probe = detail.get("excitation_probe") or {}
    if not probe:
        return ("Which test images were probed was not recorded (a run from before the stratified probe: "
                "possibly the first images of a class-sorted test set).")
    per_class = [int(n) for n in probe.get("per_class") or []]
    if per_class and len(set(per_class)) == 1:
        counts = f"; {per_class[0]} images of each of {len(per_class)} classes"
    elif per_class:
        counts = f"; images per class: {', '.join(map(str, per_class))}"
    else:
        counts = ""
    return f"Probe: {probe.get('selection', '')}{counts}."


def pick_blocks(blocks: Sequence[tuple[int, str]], limit: int = EXCITATION_BLOCKS) -> list[tuple[int, str]]:
    """Fig. 6's choice: the last block of each earlier stage and every block of the last stage (≤ limit)."""
    ordered = sorted(set(blocks), key=lambda b: (b[0], _block_index(b[1])))
    if len(ordered) <= limit:
        return ordered
    last_stage = ordered[-1][0]
    stages = sorted({s for s, _ in ordered})
    picked = [[b for b in ordered if b[0] == s][-1] for s in stages if s != last_stage]
    picked += [b for b in ordered if b[0] == last_stage]
    return picked[-limit:] if len(picked) > limit else picked


def _block_index(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", name))


def excitation_figure(an: Analysis, variant: str, out_dir: Path) -> FigureFile | None:
    """Mean excitation per channel for a few classes and their average, one panel per block."""
    seed, rows = excitation_rows(an, variant)
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    blocks = pick_blocks(list(zip(frame["stage"].astype(int), frame["block"].astype(str), strict=True)))
    classes = sorted(frame["class"].unique())[:EXCITATION_CLASSES]
    palette = sns.color_palette("dark", len(classes))
    cols = min(3, len(blocks))
    nrows = math.ceil(len(blocks) / cols)
    with paper_style():
        fig = new_figure(PAGE_IN if cols > 1 else COLUMN_IN, 1.75 * nrows + 0.6)
        handles: list[Any] = []
        for i, (stage, block) in enumerate(blocks):
            ax = fig.add_subplot(nrows, cols, i + 1)
            part = frame[frame["block"] == block]
            every = np.array([np.asarray(m, dtype=float) for m in part["mean"]])
            for c, color in zip(classes, palette, strict=True):
                row = part[part["class"] == c]
                if row.empty:
                    continue
                y = np.asarray(row.iloc[0]["mean"], dtype=float)
                (ln,) = ax.plot(np.arange(len(y)), y, color=color, lw=0.8, alpha=0.9, label=f"class {c}")
                if i == 0:
                    handles.append(ln)
            (avg,) = ax.plot(np.arange(every.shape[1]), every.mean(axis=0), color="black", lw=0.9, ls="--",
                             label=f"mean of {len(part)} classes")
            if i == 0:
                handles.append(avg)
            ax.set_title(f"stage {stage} · {block}", fontsize=FONT_PT)
            ax.set_xlim(0, every.shape[1] - 1)
            if i % cols == 0:
                ax.set_ylabel("excitation")
            if i >= len(blocks) - cols:
                ax.set_xlabel("channel index")
        _legend_below(fig, handles, ncol=len(handles))
        caption = (f"Excitation of {variant} (seed {seed}): the gate's output per channel, averaged over the test "
                   f"images of each class (SENet TPAMI Fig. 6 style), for the last block of each stage and the "
                   f"blocks of the last stage. {probe_description(an, variant, seed)}")
        return save(fig, out_dir, f"excitation_{slugify(variant)}", caption)


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

    The fixed-ratio variants are joined as a curve (mean ± CI, labelled r), each adaptive variant is its own
    marker labelled with its cost weight, the baseline a dashed line; seeds are faint points.
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
        fig = new_figure(PAGE_IN if len(panels) > 1 else COLUMN_IN, 3.0)
        handles: list[Any] = []
        for i, (col, name) in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), i + 1)
            drawn = _adaptive_panel(ax, an, comps, done, col, colors, metric)
            handles = handles or drawn
            _, unit = _scale(done[col].dropna().tolist(), "count")
            ax.set_xlabel(f"{name} ({unit})" if unit else name)
            ax.set_ylabel(_metric_label(metric))
        handles.append(Line2D([], [], ls="", marker="o", ms=3, color="0.5", alpha=0.5, label="seeds"))
        _legend_below(fig, handles, ncol=3 if len(panels) > 1 else 2)
        caption = (f"{_metric_label(metric)} against SE parameters (log scale)"
                   + (" and against MACs" if len(panels) > 1 else "")
                   + ": the fixed-ratio variants (circles, labelled r, joined) and the adaptive variants (other "
                     "markers, labelled with their cost weight w), mean ± 95% CI, seeds as faint points"
                   + (f"; dashed: {an.baseline} baseline" if an.baseline is not None else "")
                   + ". Every variant is placed at what its net has and computes: a learnable one at its hardened "
                     "net's, a dynamic one at its allocated SE params and MACs (its soft mask computes every "
                     "allocated unit)" + _active_width_note(an, comps) + ".")
        return save(fig, out_dir, "adaptive_pareto", caption)


def _active_width_note(an: Analysis, comps: Sequence[AdaptiveComparison]) -> str:
    """The dynamic variants' expected active widths for the caption (a width, not a cost), or nothing."""
    labels = adaptive_labels(an)
    parts = [f"{labels[c.variant]} {100 * c.active_width:.0f}%" for c in comps
             if c.kind == "dynamic" and np.isfinite(c.active_width)]
    return ("; expected active width (mean per-image hidden width as a share of the allocated units, whole test "
            "set; a width, not a cost): " + ", ".join(parts)) if parts else ""


def _adaptive_panel(ax: Axes, an: Analysis, comps: Sequence[AdaptiveComparison], done: pd.DataFrame, col: str,
                    colors: Mapping[str, Any], metric: str) -> list[Any]:
    """One cost axis of :func:`adaptive_pareto_figure`; returns its legend handles."""
    scale, _ = _scale(done[col].dropna().tolist(), "count")
    labels = adaptive_labels(an)
    handles: list[Any] = []

    def draw(variant: str, s: Summary, marker: str, ms: float, ecolor: Any) -> float:
        """Seeds faint, mean ± CI as an error bar; returns the mean cost (the x of the point)."""
        part = done.loc[done["variant"] == variant, [col, metric]].dropna()
        x = float(part[col].mean()) / scale
        ax.scatter(part[col] / scale, part[metric], s=8, marker=marker, color=colors[variant], alpha=0.35, lw=0,
                   zorder=3)
        lo, hi = _clip(metric, [s.ci_lo], [s.ci_hi])
        err = [[s.mean - lo[0]], [hi[0] - s.mean]] if s.n >= 2 else None
        ax.errorbar([x], [s.mean], yerr=err, fmt=marker, ms=ms, color=colors[variant], ecolor=ecolor, mec="black",
                    mew=0.5, elinewidth=1.0, capsize=2, zorder=5)
        return x

    ticks: list[float] = []
    for gi, curve in enumerate(dict.fromkeys(c.fixed for c in comps if c.fixed)):
        line_color = "black" if gi == 0 else sns.color_palette("dark", 8)[gi % 8]
        means = [summarize(_finished_values(an, w, metric), an.confidence) for w in curve]
        xs = [draw(w, s, "o", 4.5, line_color) for w, s in zip(curve, means, strict=True)]
        order = np.argsort(xs)
        (ln,) = ax.plot(np.asarray(xs)[order], np.asarray([s.mean for s in means])[order], color=line_color, lw=1.1,
                        zorder=2, label="fixed r: mean ± 95% CI")
        handles += [ln] if gi == 0 else []
        for w, x, s in zip(curve, xs, means, strict=True):
            ax.annotate(ratio_label(an, w), (x, s.mean), xytext=(3, -9), textcoords="offset points",
                        fontsize=FONT_PT - 1, color="0.25")
        ticks += xs
    every = adaptive_variants(an)  # markers by the full list, so a partial sweep keeps each variant's marker
    for c in comps:
        marker = ADAPTIVE_MARKERS[every.index(c.variant) % len(ADAPTIVE_MARKERS)]
        x = draw(c.variant, c.top1, marker, 6, colors[c.variant])
        ax.annotate(f"w={format_value(c.cost_weight)}", (x, c.top1.mean), xytext=(4, 4), textcoords="offset points",
                    fontsize=FONT_PT - 1, color=colors[c.variant])
        handles.append(Line2D([], [], ls="", marker=marker, ms=5, color=colors[c.variant], mec="black", mew=0.5,
                              label=f"{labels[c.variant]} (n={c.top1.n})"))
    base = _baseline_line(ax, an, metric, an.baseline or "baseline")
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
    return handles


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
    """A log₂ ratio axis with ticks at the fixed ratios and the powers of two spanning them and ``values``."""
    finite = [float(v) for v in [*values, *levels] if np.isfinite(v) and v > 0]
    if not finite:
        return
    ax.set_yscale("log", base=2)
    lo, hi = math.floor(math.log2(min(finite))), math.ceil(math.log2(max(finite)))
    ticks = sorted({2.0 ** k for k in range(lo, hi + 1)} | {float(x) for x in levels if x > 0})
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_yticklabels([format_value(t) for t in ticks])


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
        fig = new_figure(PAGE_IN if blocks > 12 else COLUMN_IN, 2.9)
        ax = fig.add_subplot()
        handles = []
        for v, frame in frames.items():
            ls = "--" if adaptive_kind(an.configs.loc[v]) == "dynamic" else "-"
            for _, g in frame.groupby("seed"):
                ax.plot(g["position"], g["ratio"], color=colors[v], lw=0.6, alpha=0.45, ls=ls, zorder=2)
            mean = frame.groupby("position")["ratio"].mean()
            (ln,) = ax.plot(mean.index, mean.to_numpy(), color=colors[v], lw=1.6, ls=ls, marker="o", ms=2.5, zorder=3,
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
        _legend_below(fig, handles, ncol=2)
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
        fig = new_figure(PAGE_IN if len(stages) > 1 else COLUMN_IN, 2.4)
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
                    ax.plot(g["epoch"], g["ratio"], color=colors[v], lw=0.6, alpha=0.45, ls=ls)
                mean = part.groupby("epoch")["ratio"].mean()
                ax.plot(mean.index, mean.to_numpy(), color=colors[v], lw=1.4, ls=ls)
            handles.append(Line2D([], [], color=colors[v], lw=1.4, ls=ls,
                                  label=f"{labels[v]} (n={frame['seed'].nunique()})"))
        _log2_axis(axes[0], [x for f in logs.values() for x in f["ratio"]], _fixed_levels(an, list(logs)))
        for i, (ax, stage) in enumerate(zip(axes, stages, strict=True)):
            ax.set_title(f"stage {stage}", fontsize=FONT_PT)
            ax.set_xlabel("epoch")
            if i == 0:
                ax.set_ylabel("mean learned r")
            else:
                ax.tick_params(labelleft=False)
        _legend_below(fig, handles, ncol=min(3, len(handles)))
        caption = ("Learned reduction ratio per epoch, averaged over each stage's SE blocks (C / effective width; "
                   "dynamic, dashed: the mean per-image ratio on the test set): each seed a thin line, the mean a "
                   "thick one.")
        return save(fig, out_dir, "adaptive_trajectories", caption)


# --------------------------------------------------------------------------------------------------
# which figures a sweep gets


#: figure kind → names a spec's ``figures:`` list may use for it
FIGURE_NAMES: dict[str, tuple[str, ...]] = {
    "ratio": ("ratio", "reduction", "r", "table10"),
    "pareto": ("pareto", "cost", "accuracy_cost", "params", "macs", "latency", "infer_ms"),
    "curves": ("curves", "learning_curves", "learning"),
    "excitation": ("excitation", "excitations", "fig6", "activations"),
    "adaptive": ("adaptive", "learned", "learnable", "dynamic", "widths", "equal_cost", "cost_weight"),
}


def _factor_names(key: str) -> tuple[str, ...]:
    names = [key, short_name(key), key.rpartition(".")[2]]
    if key in PAPER_TABLES:
        number, slug, _ = PAPER_TABLES[key]
        names += [slug, f"table{number}"]
    if key == "model.attention.gate":
        names = [n for n in names if n != "excitation"]  # "excitation" is the Fig. 6 plot
    return tuple(names)


def _wanted(requested: Sequence[Any] | None, names: Sequence[str]) -> bool:
    if not requested:
        return True
    return bool({str(r).strip().lower() for r in requested} & {n.lower() for n in names})


def make_figures(an: Analysis, out_dir: Path) -> tuple[list[FigureFile], list[str]]:
    """Every figure this sweep supports (filtered by the spec's ``figures:`` list), plus notes."""
    requested = an.sweep.spec.get("figures")
    colors = variant_colors(an.order, an.baseline)
    out: list[FigureFile | None] = []
    known: set[str] = set()
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
    if adaptive:
        known |= set(FIGURE_NAMES["adaptive"])
        if _wanted(requested, FIGURE_NAMES["adaptive"]):
            out += [adaptive_pareto_figure(an, colors, out_dir), adaptive_ratio_figure(an, colors, out_dir),
                    adaptive_trajectory_figure(an, colors, out_dir)]
    known |= set(FIGURE_NAMES["curves"])
    if _wanted(requested, FIGURE_NAMES["curves"]):
        out.append(curves_figure(an, colors, out_dir))
    known |= set(FIGURE_NAMES["excitation"])
    if _wanted(requested, FIGURE_NAMES["excitation"]):
        out += [excitation_figure(an, v, out_dir) for v in _excitation_variants(an)]
    notes = [f"figure '{r}' was requested but this sweep cannot draw it" for r in requested or []
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


def _excitation_variants(an: Analysis) -> list[str]:
    """Variants that saved excitations, the factor's reference level first, at most a few."""
    have = [v for v in an.order if excitation_rows(an, v)[1]]
    ref = [v for v in have if all(_is_reference(an, v, k) for k in an.factors if k.startswith("model.attention.")
                                  and k != "model.attention.kind")]
    ordered = ref[:1] + [v for v in have if v not in ref[:1]]
    return ordered[:MAX_EXCITATION_FIGURES]


def _is_reference(an: Analysis, variant: str, key: str) -> bool:
    ref = reference_value(key, an.sweep.spec, list(an.configs[key]))
    return format_value(an.configs.at[variant, key]) == format_value(ref)
