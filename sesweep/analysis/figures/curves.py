"""Learning curves: test error and train loss per epoch, seeds as thin lines or a CI band where n allows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from sesweep.analysis.factors import Analysis, variant_labels
from sesweep.analysis.figures import style
from sesweep.analysis.figures.layout import legend_below
from sesweep.analysis.figures.marks import MIN_BAND_N, clip, metric_label
from sesweep.analysis.figures.style import COLUMN_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.stats import finished, summarize


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
        axes = [fig.add_subplot(len(panels), 1, 1)]
        axes += [fig.add_subplot(len(panels), 1, i + 1, sharex=axes[0]) for i in range(1, len(panels))]
        axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs; shared: every panel the same range
        all_epochs, sparse_any = curves["epoch"].nunique(), False
        handles, banded, lined = [], False, False
        for v in an.order:
            part = curves[curves["variant"].astype(str) == v]
            if part.empty:
                continue
            n = part[run].nunique()
            ls = "--" if an.is_baseline(v) else "-"
            for ax, m in zip(axes, panels, strict=True):
                measured = part.dropna(subset=[m])  # test scores exist only on evaluated epochs (eval_every)
                if measured.empty:
                    continue
                by_epoch = measured.groupby("epoch")[m]
                s = [summarize(g, an.confidence) for _, g in by_epoch]
                epochs = list(by_epoch.groups)
                if n >= MIN_BAND_N:
                    lo, hi = clip(m, [x.ci_lo for x in s], [x.ci_hi for x in s])
                    ax.fill_between(epochs, lo, hi, color=colors[v], alpha=0.15, lw=0, gid=v)
                else:
                    for _, seed in measured.sort_values("epoch").groupby(run):
                        ax.plot(seed["epoch"], seed[m], color=colors[v], lw=0.5, alpha=0.5, ls=ls, gid=v)
                sparse = len(epochs) < all_epochs  # test scores every eval_every epochs: mark the measured points
                sparse_any = sparse_any or sparse
                ax.plot(epochs, [x.mean for x in s], color=colors[v], lw=1.4, ls=ls, gid=v,
                        marker="o" if sparse else None, ms=3)
            banded, lined = banded or n >= MIN_BAND_N, lined or n < MIN_BAND_N
            handles.append(Line2D([], [], color=colors[v], lw=1.4, ls=ls, label=f"{labels[v]} (n={n})"))
        for ax, m in zip(axes, panels, strict=True):
            ax.set_ylabel(metric_label(m))
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
                   + ". n seeds per variant in the legend; dashed: the baseline; diverged runs are left out"
                   + ("; dots: the epochs with a test evaluation (recipe.eval_every)." if sparse_any else "."))
        return style.save(fig, out_dir, "curves", caption)

