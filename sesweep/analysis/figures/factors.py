"""Categorical factors (squeeze, gate, placement, stages, …): one category per level, the others held."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sesweep.analysis.factors import Analysis, sort_value
from sesweep.analysis.figures import style
from sesweep.analysis.figures.held import dashed_note, held_groups, held_text
from sesweep.analysis.figures.layout import fit_tick_labels, legend_below
from sesweep.analysis.figures.marks import (
    baseline_line,
    ci_note,
    finished_values,
    mean_point,
    metric_label,
    panels,
    point_handles,
    seed_points,
)
from sesweep.analysis.figures.style import COLUMN_IN, FONT_PT, PAGE_IN, FigureFile, new_figure, paper_style
from sesweep.analysis.fmt import format_value
from sesweep.analysis.stats import summarize
from sesweep.vocabulary import short_name


def factor_figure(an: Analysis, key: str, colors: Mapping[str, Any], out_dir: Path, slug: str,
                  metric: str = "top1_err") -> FigureFile | None:
    """One category per level of the factor, the other attention factors at their held levels (one panel per
    architecture/recipe group): every seed as a point, the mean right of them with its CI where n allows, the
    group's baseline dashed. None where no group has two levels to compare."""
    groups = held_groups(an, key, min_levels=2)
    if not groups:
        return None
    level = {v: format_value(an.configs.at[v, key]) for vs in groups.values() for v in vs}
    with paper_style():
        cats = sum(len(set(level[v] for v in vs)) for vs in groups.values())
        fig = new_figure(COLUMN_IN if cats <= 6 and len(groups) == 1 else PAGE_IN, 2.3)
        axes = panels(fig, len(groups))
        bases: dict[str, Any] = {}
        ci, ns = False, []
        for ax, (title, variants) in zip(axes, groups.items(), strict=True):
            raw = {level[v]: an.configs.at[v, key] for v in variants}
            levels = sorted(raw, key=lambda lv: sort_value(key, raw[lv]))
            for i, lv in enumerate(levels):
                here = [v for v in variants if level[v] == lv]
                for j, v in enumerate(here):  # variants sharing a level (differing in no factor) side by side
                    x = i + (j - (len(here) - 1) / 2) * 0.8 / len(here)
                    vals = finished_values(an, v, metric).to_numpy()
                    s = summarize(vals, an.confidence)
                    ns.append(s.n)
                    seed_points(ax, x - 0.1 / len(here) + np.linspace(-0.05, 0.05, len(vals)) / len(here), vals,
                                colors[v], v)
                    ci |= mean_point(ax, x + 0.12 / len(here), s, metric, colors[v], v)
            # n under each level, so a single-seed mean is never mistaken for a robust one
            counts = {lv: "/".join(str(int(an.table.at[v, "n"])) for v in variants if level[v] == lv) for lv in levels}
            ax.set_xticks(range(len(levels)), [f"{lv}\nn={counts[lv]}" for lv in levels])
            ax.set_xlim(-0.5, len(levels) - 0.5)
            ax.xaxis.grid(False)
            base = baseline_line(ax, an, metric, colors, variants)
            if base is not None:
                bases.setdefault(base.get_label(), base)
            ax.set_xlabel(short_name(key))
            ax.set_title(title, fontsize=FONT_PT)
        axes[0].set_ylabel(metric_label(metric))
        fit_tick_labels(fig, [ax.xaxis for ax in axes])
        legend_below(fig, [*point_handles(ci), *bases.values()])
        what, why = ci_note(ci, ns)
        caption = (f"{metric_label(metric)} by {short_name(key)}: every seed (small points) and the {what} "
                   f"(large point, right); n = finished seeds"
                   + (dashed_note(groups) if bases else "")
                   + held_text(an, key, groups) + "." + why)
        return style.save(fig, out_dir, slug, caption, factor=key)

