"""ECA-Net's question as a figure: top-1 error against attention parameters, one point per operator variant.

The x axis is logarithmic (SE-Var3 has ~10^4-10^7 attention parameters, ECA tens, SE-Var1 and the plain net
none), so a variant with 0 sits on its own tick at the left edge, a decade below the smallest non-zero count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from sesweep.analysis.factors import Analysis, variant_labels
from sesweep.analysis.figures import style
from sesweep.analysis.figures.layout import legend_below
from sesweep.analysis.figures.marks import (
    ci_note,
    finished_values,
    mean_point,
    metric_label,
    point_handles,
    seed_points,
)
from sesweep.analysis.figures.style import COLUMN_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.fmt import format_value
from sesweep.analysis.stats import summarize
from sesweep.vocabulary import FIGURE_SLUGS


def zero_position(counts: list[float]) -> float:
    """Where 0 attention parameters sit on the log axis: a decade below the smallest non-zero count (1 if none)."""
    positive = [c for c in counts if c > 0]
    return 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1.0


def operators_figure(an: Analysis, key: str, colors: Mapping[str, Any], out_dir: Path,
                     metric: str = "top1_err") -> FigureFile | None:
    """Every variant's seeds and mean (± CI where n allows) at its mean attention parameters (log x); the
    baseline starred and dashed across; each point labelled with its operator. None without two variants."""
    variants = [v for v in an.order if an.table.at[v, "n"] > 0 and "se_params_mean" in an.table.columns]
    if len(variants) < 2:
        return None
    labels = variant_labels(an)
    counts = [float(an.table.at[v, "se_params_mean"]) for v in variants]
    zero = zero_position(counts)
    with paper_style():
        fig = new_figure(COLUMN_IN, 2.7)
        ax = fig.add_subplot()
        ax.set_xscale("log")
        handles, ci, ns = [], False, []
        for v, count in zip(variants, counts, strict=True):
            x = count if count > 0 else zero
            vals = finished_values(an, v, metric)
            s = summarize(vals, an.confidence)
            ns.append(s.n)
            jitter = x * 10 ** np.linspace(-0.04, 0.04, len(vals))
            seed_points(ax, jitter, vals, colors[v], v, alpha=0.45)
            is_base = an.is_baseline(v)
            ci |= mean_point(ax, x * 10 ** 0.09, s, metric, colors[v], v, marker="*" if is_base else "o",
                             ms=9 if is_base else 5)
            if is_base:
                ax.axhline(s.mean, color=colors[v], lw=0.8, ls="--", zorder=1)
            operator = format_value(an.configs.at[v, key]) if key in an.configs.columns else ""
            level = "" if is_base or operator in ("", labels[v]) else f" ({operator})"  # not "eca (eca)"
            handles.append(Line2D([], [], ls="", marker="*" if is_base else "o", ms=7 if is_base else 5,
                                  color=colors[v], mec="black", mew=0.5,
                                  label=f"{labels[v]}{level}, n={s.n}"))
        ticks = sorted({zero, *(c for c in counts if c > 0)})
        lo, hi = math.floor(math.log10(zero)), math.ceil(math.log10(max(ticks) * 1.5))
        ax.set_xlim(10 ** (lo - 0.3), 10 ** (hi + 0.1))
        major = [10.0 ** e for e in range(lo + 1, hi + 1)]
        ax.set_xticks([zero, *major], ["0", *(f"$10^{{{int(math.log10(t))}}}$" for t in major)])
        ax.set_xlabel("attention parameters (log; 0 at the left)")
        ax.set_ylabel(metric_label(metric))
        legend_below(fig, [*handles, *point_handles(ci)[:1]], max_ncol=2)
        what, why = ci_note(ci, ns)
        caption = (f"{metric_label(metric)} against attention parameters per variant (ECA-Net Table 2's question): "
                   f"every seed (faint points) and the {what} (right of them); star and dashed line: the baseline; "
                   f"x is logarithmic, variants without attention parameters (the plain net, SE-Var1) at the '0' "
                   f"tick.{why}")
        return style.save(fig, out_dir, FIGURE_SLUGS[key], caption, factor=key)
