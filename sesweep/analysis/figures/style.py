"""The one look of every figure: paper sizes and rc, one colour per variant, and saving (PNG + PDF, layout checked).

Figures are bare :class:`~matplotlib.figure.Figure` objects on the Agg canvas: no pyplot, no global state (the
style is an ``rc_context`` around each figure). See docs/figures.md.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib as mpl
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sesweep.analysis.figures.layout import LayoutWarning, layout_problems

COLUMN_IN = 3.5
PAGE_IN = 7.0
DPI = 200
FONT_PT = 8
BASELINE_COLOR = (0.25, 0.25, 0.25)
#: seaborn's colour-blind palette reordered so that the first few variants get the most distinct hues
#: (orange and vermilion far apart) and without its grey, which is close to the baseline's
PALETTE_ORDER = (0, 1, 2, 4, 9, 3, 5, 6, 8)
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
    #: what :func:`.layout.layout_problems` found when it was saved (empty: nothing)
    problems: tuple[str, ...] = ()


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

