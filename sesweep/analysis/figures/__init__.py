"""Figures of a sweep, at paper size, only for what the sweep varies; one registry says which (docs/figures.md).

One module per figure family (ratio, factors, pareto, curves, adaptive, excitation), one for the look and the
saving (style), one for the measured layout (layout).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes

from sesweep.analysis.equal_cost import ADAPTIVE_KEYS, adaptive_variants
from sesweep.analysis.factors import Analysis, is_attention_off
from sesweep.analysis.figures import style
from sesweep.analysis.figures.adaptive import (
    ADAPTIVE_MARKERS,
    adaptive_figures,
    adaptive_pareto_figure,
    adaptive_ratio_figure,
    adaptive_trajectory_figure,
    is_adaptive_figure,
)
from sesweep.analysis.figures.curves import curves_figure
from sesweep.analysis.figures.excitation import excitation_figure, excitation_figures
from sesweep.analysis.figures.factors import factor_figure
from sesweep.analysis.figures.layout import LayoutWarning, fit_tick_labels, layout_problems, legend_below
from sesweep.analysis.figures.marks import MIN_BAND_N, MIN_CI_N
from sesweep.analysis.figures.operators import operators_figure
from sesweep.analysis.figures.pareto import pareto_figure, pareto_figures, pareto_front
from sesweep.analysis.figures.ratio import ratio_figure
from sesweep.analysis.figures.sequential import is_sequential_figure, sequential_figure
from sesweep.analysis.figures.style import (
    BASELINE_COLOR,
    COLUMN_IN,
    DPI,
    FONT_PT,
    FORMATS,
    PAGE_IN,
    PALETTE_ORDER,
    PAPER_DIR,
    FigureFile,
    new_figure,
    paper_rc,
    paper_style,
    save,
    slugify,
    variant_colors,
)
from sesweep.analysis.sequential_results import sweep_policy
from sesweep.analysis.stats import finished
from sesweep.vocabulary import FACTORS, FIGURE_NAMES, PAPER_TABLES, factor_figure_names, short_name

__all__ = [
    "ADAPTIVE_MARKERS", "BASELINE_COLOR", "COLUMN_IN", "DPI", "FIGURE_NAMES", "FONT_PT", "FORMATS", "MIN_BAND_N",
    "MIN_CI_N", "PAGE_IN", "PALETTE_ORDER", "PAPER_DIR", "REGISTRY", "Axes", "FigureFile", "Job", "Kind",
    "LayoutWarning", "adaptive_pareto_figure", "adaptive_ratio_figure", "adaptive_trajectory_figure", "curves_figure",
    "excitation_figure", "excitation_figures", "factor_figure", "fit_tick_labels", "is_adaptive_figure",
    "is_sequential_figure", "layout_problems", "legend_below", "make_figures", "new_figure", "paper_rc",
    "paper_style", "pareto_figure", "pareto_front", "ratio_figure", "save", "sequential_figure", "slugify", "style",
    "variant_colors",
]

# the names a spec's `figures:` list may use are defined in sesweep.vocabulary (FIGURE_NAMES: figure kind →
# names; factor_figure_names: those of one factor's figure), where loading a sweep file checks them
_factor_names = factor_figure_names


@dataclass
class Job:
    """What every builder gets: the sweep, its colours, where to write, the spec's ``figures:`` list, the notes."""

    an: Analysis
    colors: Mapping[str, Any]
    out_dir: Path
    requested: Sequence[Any] | None
    notes: list[str] = field(default_factory=list)

    def wants(self, names: Sequence[str]) -> bool:
        """The ``figures:`` list names one of ``names`` (no list: every figure is wanted)."""
        if not self.requested:
            return True
        return bool({str(r).strip().lower() for r in self.requested} & {n.lower() for n in names})


@dataclass(frozen=True)
class Kind:
    """One row of the registry: a figure, or a family of them (one per factor), and the names that select it."""

    name: str
    #: what of this kind the sweep can draw: ``[None]`` for the one figure, a factor key per factor figure, or []
    targets: Callable[[Analysis], list[str | None]]
    #: the names that select a target (from :mod:`sesweep.vocabulary`)
    names: Callable[[str | None], tuple[str, ...]]
    #: draws a target (None where there is nothing to show)
    build: Callable[[Job, str | None], list[FigureFile | None]]
    #: drawn whatever the ``figures:`` list says (its names are still names this sweep can draw)
    always: bool = False


def _one(an: Analysis) -> list[str | None]:
    return [None]


def _named(kind: str) -> Callable[[str | None], tuple[str, ...]]:
    return lambda _: FIGURE_NAMES[kind]


def _has_se(an: Analysis) -> bool:
    """Any attention variant with a finished run (else there is nothing to plot against r)."""
    return any(not is_attention_off(an.configs.loc[v]) and an.table.at[v, "n"] > 0 for v in an.order)


def _ratio_targets(an: Analysis) -> list[str | None]:
    return [None] if "model.attention.reduction" in an.factors and _has_se(an) else []


def _factor_keys(an: Analysis) -> list[str | None]:
    """The varied model keys with a figure of their own (not the ratio's; an adaptive sweep's cost knobs are in
    the adaptive figures), in the sweep's factor order."""
    adaptive = adaptive_variants(an)
    return [k for k in an.factors if k not in ("model.attention.kind", "model.attention.reduction")
            and k.startswith("model.") and not (adaptive and k in ADAPTIVE_KEYS) and _figure_kind(k) == "factor"]


def _figure_kind(key: str) -> str:
    """The figure family that draws a factor (:class:`sesweep.vocabulary.Factor`): ``factor`` unless it says."""
    return FACTORS[key].figure_kind if key in FACTORS else "factor"


def _operator_keys(an: Analysis) -> list[str | None]:
    """The varied factors drawn against attention parameters (the excitation operator)."""
    return [k for k in an.factors if _figure_kind(k) == "operators"] if _has_se(an) else []


def _factor(job: Job, key: str | None) -> list[FigureFile | None]:
    assert key is not None
    if not _has_se(job.an):
        return []
    slug = PAPER_TABLES[key][1] if key in PAPER_TABLES else slugify(short_name(key))
    slug = "gate" if key == "model.attention.gate" else slug
    return [factor_figure(job.an, key, job.colors, job.out_dir, slug)]


#: every figure a sweep can get, in the order they are drawn (and shown)
REGISTRY: tuple[Kind, ...] = (
    Kind("ratio", _ratio_targets, _named("ratio"), lambda job, _: [ratio_figure(job.an, job.colors, job.out_dir)]),
    Kind("factor", _factor_keys, lambda key: factor_figure_names(str(key)), _factor),
    Kind("operators", _operator_keys, lambda key: factor_figure_names(str(key)),
         lambda job, key: [operators_figure(job.an, str(key), job.colors, job.out_dir)]),
    Kind("pareto", _one, _named("pareto"),
         lambda job, _: pareto_figures(job.an, job.colors, job.out_dir, job.wants, job.notes)),
    Kind("adaptive", lambda an: [None] if adaptive_variants(an) else [], _named("adaptive"),
         lambda job, _: adaptive_figures(job.an, job.colors, job.out_dir)),
    Kind("curves", _one, _named("curves"), lambda job, _: [curves_figure(job.an, job.colors, job.out_dir)]),
    Kind("excitation", _one, _named("excitation"), lambda job, _: list(excitation_figures(job.an, job.out_dir)),
         always=True),
    Kind("sequential", lambda an: [None] if sweep_policy(an) is not None else [], _named("sequential"),
         lambda job, _: [sequential_figure(job.an, job.colors, job.out_dir)], always=True),
)


def make_figures(an: Analysis, out_dir: Path) -> tuple[list[FigureFile], list[str]]:
    """Every figure this sweep supports (filtered by the spec's ``figures:`` list, except the excitation figure,
    drawn whenever the runs saved excitations, and a sequential sweep's figure of its confidence sequences),
    plus notes."""
    if finished(an.sweep.runs).empty:
        return [], ["no run has finished yet: no figures"]
    job = Job(an, variant_colors(an.order, an.baseline), out_dir, an.sweep.spec.get("figures"))
    out: list[FigureFile | None] = []
    known: set[str] = set()
    for kind in REGISTRY:
        for target in kind.targets(an):
            names = kind.names(target)
            known |= set(names)
            if kind.always or job.wants(names):
                out += kind.build(job, target)
    notes = job.notes + [f"figure '{r}' was requested but this sweep cannot draw it" for r in job.requested or []
                         if str(r).strip().lower() not in {n.lower() for n in known}]
    return [f for f in out if f is not None], notes
