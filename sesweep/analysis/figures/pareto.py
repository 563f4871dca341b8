"""Accuracy against cost (params, MACs, latency): seeds, means, baselines starred, the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.lines import Line2D

from sesweep.analysis.factors import Analysis, variant_labels
from sesweep.analysis.figures import style
from sesweep.analysis.figures.layout import legend_below
from sesweep.analysis.figures.marks import (
    ci_note,
    cost_reference,
    finished_values,
    mean_point,
    metric_label,
    percent_axis,
    plain_axis,
    point_handles,
    relative_cost,
    relative_label,
    scale_of,
    seed_points,
)
from sesweep.analysis.figures.style import COLUMN_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.fmt import count
from sesweep.analysis.speed import speed_stats, variant_speeds
from sesweep.analysis.stats import summarize


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
    name = {"params": "params", "macs": "MACs", "infer_ms": "inference latency"}[cost]
    # params and MACs as the change in % of the baseline's: in counts the MACs axis spans 0.08% and reads as a
    # large spread; latency (noisy, measured) stays in ms
    ref = cost_reference(an, variants, dict(zip(variants, xs, strict=True))) if cost != "infer_ms" else None
    absolute = dict(zip(variants, xs, strict=True))
    if ref is not None:
        rel = relative_cost(absolute, ref)
        xs = [rel[v] for v in variants]
        scale, unit = 1.0, "%"
    else:
        scale, unit = scale_of(xs, "ms" if cost == "infer_ms" else "count")
    with paper_style():
        fig = new_figure(COLUMN_IN, 2.5)
        ax = fig.add_subplot()
        handles = []
        ci, ns = False, []
        for v, x, y in zip(variants, xs, ys, strict=True):
            if not (np.isfinite(x) and np.isfinite(y)):
                continue
            is_base = an.is_baseline(v)
            vals = finished_values(an, v, metric)
            s = summarize(vals, an.confidence)
            ns.append(s.n)
            seed_points(ax, np.full(len(vals), x / scale), vals, colors[v], v, alpha=0.45)
            ci |= mean_point(ax, x / scale, s, metric, colors[v], v, marker="*" if is_base else "o",
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
        plain_axis(ax)
        if ref is not None:
            percent_axis(ax.xaxis)
            ax.set_xlabel(relative_label(name, ref, absolute[ref]))
        else:
            ax.set_xlabel(f"{name} ({unit})" if unit else name)
        ax.set_ylabel(metric_label(metric))
        legend_below(fig, [*handles, *point_handles(ci)[:1]], max_ncol=2)
        what, why = ci_note(ci, ns)
        relative = (f" x axis: {name} as the change in % of {ref}'s {count(absolute[ref])}, so the axis says how big a "
                    f"difference is." if ref is not None else "")
        drawn = [variants[i] for i in front]
        front_text = ("line: the Pareto front of the means (no variant is both cheaper and better)" if len(front) >= 2
                      else f"no front line: {labels[drawn[0]]} is both the cheapest and the best, so no variant "
                           f"trades {name} for accuracy" if drawn else "no Pareto front: no finite point")
        caption = (f"Accuracy against cost: {metric_label(metric)} vs mean {name} per variant, every seed (faint "
                   f"points) and the {what}; star: baseline; {front_text}.{relative}{why} "
                   + (f"Latency: median eval-mode forward time of one batch, mean over the runs that did not share "
                      f"their device with another worker (runs on several devices are not plotted). "
                      f"{speed_stats(an.sweep.runs).caveat}" if cost == "infer_ms" else ""))
        return style.save(fig, out_dir, f"pareto_{cost}", caption.strip())



#: the costs a Pareto figure is drawn against, in order
COSTS = ("params", "macs", "infer_ms")


def pareto_figures(an: Analysis, colors: Mapping[str, Any], out_dir: Path, wants: Callable[[Sequence[str]], bool],
                   notes: list[str]) -> list[FigureFile | None]:
    """A Pareto figure per cost that varies and that ``wants`` one of the names of (``params``, ``macs``,
    ``latency``/``infer_ms`` or a name of them all); latency only from unshared timings, else a note."""
    out: list[FigureFile | None] = []
    for cost in COSTS:
        timed = cost != "infer_ms" or any(math.isfinite(s["infer_ms"])  # unshared timings on one device
                                          for s in variant_speeds(an.sweep.runs).values())
        if timed and _varies(an, cost) and wants(("pareto", "cost", "accuracy_cost", cost,
                                                  "latency" if cost == "infer_ms" else cost)):
            out.append(pareto_figure(an, cost, colors, out_dir))
        elif not timed and _varies(an, cost):
            notes.append("no latency Pareto figure: no run was timed with its device to itself (or the runs "
                         "ran on several devices), and shared timings are never plotted")
    return out


def _varies(an: Analysis, cost: str) -> bool:
    """A Pareto plot needs the cost and the error of at least two variants, and the cost to differ."""
    col, err = f"{cost}_mean", "top1_err_mean"
    if col not in an.table.columns or err not in an.table.columns:
        return False
    ok = an.table[[col, err]].dropna()
    return len(ok) >= 2 and ok[col].nunique() > 1
