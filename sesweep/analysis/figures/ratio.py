"""Error against the reduction ratio r, on a log₂ axis ticked at the tested ratios."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import NullLocator

from sesweep.analysis.factors import Analysis
from sesweep.analysis.figures import style
from sesweep.analysis.figures.held import dashed_note, held_groups, held_text
from sesweep.analysis.figures.layout import fit_tick_labels, legend_below
from sesweep.analysis.figures.marks import (
    baseline_line,
    ci_note,
    cost_reference,
    finished_values,
    mean_point,
    metric_label,
    panels,
    percent_axis,
    point_handles,
    relative_cost,
    relative_label,
    seed_points,
)
from sesweep.analysis.figures.style import COLUMN_IN, FONT_PT, PAGE_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.fmt import count, format_value
from sesweep.analysis.stats import summarize


def ratio_figure(an: Analysis, colors: Mapping[str, Any], out_dir: Path,
                 metric: str = "top1_err") -> FigureFile | None:
    """Error vs r on a log₂ axis ticked at the tested ratios: the variants that differ in r only (the other
    attention factors at their held levels, so no gate or pool variant and no adaptive one, whose r is only a
    maximum), one panel per architecture/recipe group; seeds, means joined by a line, CIs where n allows,
    params on a second axis, the group's baseline dashed."""
    key = "model.attention.reduction"
    groups = held_groups(an, key, min_levels=2)
    if not groups:
        return None
    with paper_style():
        fig = new_figure(COLUMN_IN if len(groups) == 1 else PAGE_IN, 2.4)
        axes = panels(fig, len(groups))
        handles: dict[str, Any] = {}
        ci, ns = False, []
        notes: list[str] = []
        for ax, (title, variants) in zip(axes, groups.items(), strict=True):
            variants = sorted(variants, key=lambda v: float(an.configs.at[v, key]))
            rs = [float(an.configs.at[v, key]) for v in variants]
            stats_ = [summarize(finished_values(an, v, metric), an.confidence) for v in variants]
            ns += [s.n for s in stats_]
            ax.plot(rs, [s.mean for s in stats_], color="black", lw=1.1, zorder=3)
            for v, r, s in zip(variants, rs, stats_, strict=True):
                vals = finished_values(an, v, metric)  # seeds just left of their mean (constant offset on log₂)
                seed_points(ax, np.full(len(vals), r * 0.9), vals, colors[v], v)
                ci |= mean_point(ax, r, s, metric, colors[v], v)
            costs = _params(an, [*variants, *{b for v in variants if (b := an.references.get(v))}])
            ref = cost_reference(an, variants, costs)
            if ref is not None:
                # the change in percent of the baseline's params, from 0: in absolute counts the axis spans
                # 272–278k, and a 2% change looks like a cliff
                rel = relative_cost(costs, ref)
                ys = [rel.get(v, np.nan) for v in variants]
                ax2 = ax.twinx()
                ax2.grid(False)
                handles["params"] = ax2.plot(rs, ys, color="0.45", ls=":", marker="s", ms=3, lw=1.0, zorder=1,
                                             label="params, Δ% (right axis)")[0]
                top = max((abs(y) for y in ys if np.isfinite(y)), default=1.0) or 1.0
                lo = min(0.0, *(y for y in ys if np.isfinite(y)))
                ax2.set_ylim(lo - 0.08 * top, max(0.0, *(y for y in ys if np.isfinite(y))) + 0.15 * top)
                percent_axis(ax2.yaxis)
                ax2.set_ylabel(relative_label("params", ref))
                notes.append(f"params as the change in % of {ref}'s {count(costs[ref])}")
            base = baseline_line(ax, an, metric, colors, variants)
            if base is not None:
                handles.setdefault(base.get_label(), base)
            ax.set_xscale("log", base=2)
            ax.set_xlim(rs[0] / 1.35, rs[-1] * 1.35)
            ax.set_xticks(sorted(set(rs)), [format_value(r) for r in sorted(set(rs))])
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xlabel("reduction ratio r")
            ax.set_title(title, fontsize=FONT_PT)
        axes[0].set_ylabel(metric_label(metric))
        fit_tick_labels(fig, [ax.xaxis for ax in axes])
        legend_below(fig, [*point_handles(ci), *handles.values()])
        what, why = ci_note(ci, ns)
        caption = (f"{metric_label(metric)} vs the reduction ratio r (log₂ axis, ticks at the tested ratios): "
                   f"every seed (small points, left), the {what} (large points, joined by the line); parameters on "
                   f"the right axis (dotted), {'; '.join(dict.fromkeys(notes)) or 'where known'}"
                   + (dashed_note(groups) if len(handles.keys() - {"params"}) else "")
                   + held_text(an, key, groups) + "." + why)
        return style.save(fig, out_dir, "ratio", caption, factor=key)



def _params(an: Analysis, variants: list[str]) -> dict[str, float]:
    """Mean params per variant, where the table has them."""
    if "params_mean" not in an.table.columns:
        return {}
    return {v: float(an.table.at[v, "params_mean"]) for v in dict.fromkeys(variants) if v in an.table.index}
