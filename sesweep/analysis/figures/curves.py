"""Learning curves: an overview of every variant over every epoch, then small multiples by factor zoomed on the
last epochs, so that final differences of a few percent read (seeds as thin lines, or a CI band where n allows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from sesweep.analysis.equal_cost import ADAPTIVE_KEYS, adaptive_variants
from sesweep.analysis.factors import Analysis, held_levels, is_attention_off, variant_labels
from sesweep.analysis.figures import style
from sesweep.analysis.figures.held import held_groups
from sesweep.analysis.figures.layout import legend_below
from sesweep.analysis.figures.marks import MIN_BAND_N, clip, metric_label
from sesweep.analysis.figures.style import COLUMN_IN, FONT_PT, PAGE_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.fmt import format_value
from sesweep.analysis.stats import finished, summarize
from sesweep.vocabulary import short_name

#: the zoomed panels show the last third of the epochs (at least three where there are four), where the final
#: ranking has settled
ZOOM_FRACTION = 1 / 3
ZOOM_MIN_EPOCHS = 3
#: panels per row (the page is 7 in wide: three panels keep their tick labels at 8 pt)
MAX_COLUMNS = 3
#: height of one row of panels (in)
ROW_IN = 1.65


@dataclass(frozen=True)
class Panel:
    """One zoomed panel: its title and the variants it draws (the baselines of those variants come with them)."""

    title: str
    variants: tuple[str, ...]


def zoom_start(epochs: Sequence[int]) -> int:
    """The first epoch of the zoomed window: the last :data:`ZOOM_FRACTION` of the epochs, at least
    :data:`ZOOM_MIN_EPOCHS`, never the first epoch (then there is nothing to zoom on)."""
    first, last = min(epochs), max(epochs)
    start = min(last - math.floor((last - first) * ZOOM_FRACTION), last - ZOOM_MIN_EPOCHS + 1)
    return max(first + 1, start) if last > first else first


def factor_panels(an: Analysis) -> list[Panel]:
    """One panel per factor the sweep varies (the variants that differ in it only, the other attention factors
    at their held levels: :func:`.held.held_groups`), per architecture/recipe group; the variants no such panel
    shows (an adaptive variant, which also differs in r and its cost weight) in one more panel with the variant at
    every held level as their reference. No factor: one panel of every variant."""
    adaptive = set(adaptive_variants(an))
    keys = [k for k in an.factors if k.startswith("model.") and k != "model.attention.kind"
            and not (adaptive and k in ADAPTIVE_KEYS)]
    out: list[Panel] = []
    for key in keys:
        for group, variants in held_groups(an, key, min_levels=2).items():
            out.append(Panel(short_name(key) + (f" · {group}" if group else ""), tuple(variants)))
    shown = {v for p in out for v in p.variants}
    attention = [v for v in an.order if not an.is_baseline(v) and not is_attention_off(an.configs.loc[v])]
    rest = [v for v in attention if v not in shown]
    if rest:
        held = {k: format_value(h.value) for k, h in held_levels(an).items()}
        ref = [v for v in attention if v not in rest
               and all(format_value(an.configs.at[v, k]) == lv for k, lv in held.items())][:1]
        title = "adaptive" if set(rest) <= adaptive else ("variants" if not out else "other variants")
        out.append(Panel(title, tuple(ref + rest)))
    return out


def _runs(part: pd.DataFrame) -> str:
    return "run_key" if "run_key" in part.columns else "seed"


def _draw(ax: Axes, part: pd.DataFrame, metric: str, color: Any, baseline: bool, an: Analysis, variant: str,
          all_epochs: int) -> tuple[list[float], bool]:
    """One variant's curves of ``metric`` on ``ax``: seeds thin and the mean thick, or the mean in its CI band
    (:data:`MIN_BAND_N` seeds or more); dots where the test was evaluated on some epochs only. Returns the
    values drawn (to fit a zoomed axis to) and whether the points were sparse."""
    measured = part.dropna(subset=[metric])  # test scores exist only on evaluated epochs (eval_every)
    if measured.empty:
        return [], False
    ls = "--" if baseline else "-"
    by_epoch = measured.groupby("epoch")[metric]
    s = [summarize(g, an.confidence) for _, g in by_epoch]
    epochs = list(by_epoch.groups)
    drawn = [x.mean for x in s]
    if part[_runs(part)].nunique() >= MIN_BAND_N:
        lo, hi = clip(metric, [x.ci_lo for x in s], [x.ci_hi for x in s])
        ax.fill_between(epochs, lo, hi, color=color, alpha=0.15, lw=0, gid=variant)
        drawn += [*lo, *hi]
    else:
        for _, seed in measured.sort_values("epoch").groupby(_runs(part)):
            ax.plot(seed["epoch"], seed[metric], color=color, lw=0.5, alpha=0.5, ls=ls, gid=variant)
        drawn += list(measured[metric])
    sparse = len(epochs) < all_epochs  # test scores every eval_every epochs: mark the measured points
    ax.plot(epochs, [x.mean for x in s], color=color, lw=1.4, ls=ls, gid=variant, marker="o" if sparse else None,
            ms=3)
    return drawn, sparse


def _fit_y(ax: Axes, values: Sequence[float]) -> None:
    """A zoomed panel's y range: what it draws inside the window, padded (a flat set: ± 5%)."""
    finite = [v for v in values if np.isfinite(v)]
    if finite:
        lo, hi = min(finite), max(finite)
        pad = 0.08 * (hi - lo) if hi > lo else max(0.05 * abs(hi), 0.05)
        ax.set_ylim(lo - pad, hi + pad)


def curves_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path) -> FigureFile | None:
    """The first row: test top-1 error and train loss of every variant over every epoch (the zoomed window
    shaded); then one panel per factor (:func:`factor_panels`), test top-1 error over the last epochs only, the
    panel's baseline dashed in each, the y axis shared by the zoomed panels so their differences compare."""
    curves = an.sweep.curves
    if curves.empty or "epoch" not in curves.columns:
        return None
    done_keys = set(finished(an.sweep.runs).get("run_key", pd.Series(dtype=str)))
    if "run_key" in curves.columns and done_keys:
        curves = curves[curves["run_key"].isin(done_keys)]
    overview = [m for m in ("top1_err", "train_loss") if m in curves.columns]
    if curves.empty or not overview:
        return None
    labels = variant_labels(an)
    parts = {v: curves[curves["variant"].astype(str) == v] for v in an.order}
    parts = {v: p for v, p in parts.items() if not p.empty}
    epochs = sorted(int(e) for e in curves["epoch"].unique())
    all_epochs, start = len(epochs), zoom_start(epochs)
    zoomed = factor_panels(an) if "top1_err" in curves.columns and start > epochs[0] else []
    zoomed = [p for p in zoomed if any(v in parts for v in p.variants)]
    count = len(overview) + len(zoomed)
    cols = min(MAX_COLUMNS, count)
    rows = math.ceil(count / cols)
    with paper_style():
        fig = new_figure(COLUMN_IN if cols == 1 else PAGE_IN, ROW_IN * rows + 0.3)
        axes = [fig.add_subplot(rows, cols, 1)]
        axes += [fig.add_subplot(rows, cols, i + 1, sharex=axes[0]) for i in range(1, len(overview))]
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs; shared: every panel the same range
        sparse_any = False
        for v, part in parts.items():
            for ax, m in zip(axes, overview, strict=True):
                sparse_any |= _draw(ax, part, m, colors[v], an.is_baseline(v), an, v, all_epochs)[1]
        for ax, m in zip(axes, overview, strict=True):
            ax.set_ylabel(metric_label(m))
            ax.set_xlabel("epoch")
            ax.set_title(f"{'test error' if m == 'top1_err' else 'training loss'}, every epoch", fontsize=FONT_PT)
            if zoomed:
                ax.axvspan(start, epochs[-1], color="0.85", alpha=0.5, lw=0, zorder=0)
        in_window = sum(1 for e in epochs if e >= start)
        for i, panel in enumerate(zoomed):
            # each panel its own y range: one poor variant (a relu gate) must not flatten the others' gaps;
            # the baseline in every panel is the common anchor
            ax = fig.add_subplot(rows, cols, len(overview) + i + 1)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
            values: list[float] = []
            bases = [b for b in dict.fromkeys(an.references.get(v) for v in panel.variants) if b in parts]
            for v in [*bases, *(v for v in panel.variants if v in parts)]:
                window = parts[v][parts[v]["epoch"] >= start]
                values += _draw(ax, window, "top1_err", colors[v], an.is_baseline(v), an, v, in_window)[0]
            ax.set_title(f"{panel.title}: last epochs", fontsize=FONT_PT)
            ax.set_xlabel("epoch")
            if (len(overview) + i) % cols == 0:
                ax.set_ylabel(metric_label("top1_err"))
            ax.set_xlim(start - 0.1, epochs[-1] + 0.1)
            _fit_y(ax, values)
        handles = [Line2D([], [], color=colors[v], lw=1.4, ls="--" if an.is_baseline(v) else "-",
                          label=f"{labels[v]} (n={p[_runs(p)].nunique()})") for v, p in parts.items()]
        legend_below(fig, handles, max_ncol=4 if cols > 1 else 2)
        return style.save(fig, out_dir, "curves", _caption(an, parts, zoomed, start, epochs[-1], sparse_any))


def _caption(an: Analysis, parts: Mapping[str, pd.DataFrame], zoomed: Sequence[Panel], start: int, last: int,
             sparse: bool) -> str:
    seeds = {v: p[_runs(p)].nunique() for v, p in parts.items()}
    banded, lined = any(n >= MIN_BAND_N for n in seeds.values()), any(n < MIN_BAND_N for n in seeds.values())
    how = []
    if lined:
        how.append("each seed a thin line, the mean a thick one" + (f" (fewer than {MIN_BAND_N} seeds)" if banded
                                                                     else ""))
    if banded:
        how.append(f"the mean with a 95% CI band (Student t; {MIN_BAND_N} or more seeds)")
    text = ("Learning curves. First panels: test top-1 error and training loss of every variant over every epoch; "
            + "; ".join(how) + ".")
    if zoomed:
        text += (f" Other panels: epochs {start}–{last} only (shaded in the first panels), test top-1 error of the "
                 f"variants that differ in one factor (the panel's title; the other attention factors at their "
                 f"held levels), the baseline dashed in every panel; each zoomed panel has its own y range (read "
                 f"its ticks), fitted to what it draws.")
    text += (" n seeds per variant in the legend; dashed: the baseline; diverged runs are left out"
             + (f"; no band below {MIN_BAND_N} seeds (a t interval over so few swings across the axis)"
                if lined else "")
             + ("; dots: the epochs with a test evaluation (recipe.eval_every)." if sparse else "."))
    return text
