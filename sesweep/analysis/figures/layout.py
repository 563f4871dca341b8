"""Figure layout measured on the rendered figure, not judged by eye (what is checked: docs/figures.md).

:func:`layout_problems` lists what a reviewer would reject; :func:`legend_below` and :func:`fit_tick_labels` make
legends and tick labels fit.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

#: pixels (at the figure's dpi) an extent may reach past the image or into a neighbour before it counts:
#: anti-aliasing and rounding of text extents, never a visibly clipped or overprinted glyph
TOLERANCE_PX = 1.0
#: white space kept between a legend and the figure's left and right edges (inches)
LEGEND_MARGIN_IN = 0.05
LEGEND_KW: dict[str, Any] = {"frameon": False, "handlelength": 1.6, "columnspacing": 1.0}


class LayoutWarning(UserWarning):
    """A saved figure has a layout problem (:func:`layout_problems`)."""


def _renderer(fig: Figure) -> Any:
    fig.draw_without_rendering()  # runs the layout engine, so every extent is where it will be drawn
    return fig.canvas.get_renderer()  # type: ignore[attr-defined]


def _name(artist: Any) -> str:
    if isinstance(artist, Legend):
        labels = [t.get_text().replace("\n", " ") for t in artist.get_texts()][:2]
        return f"legend {labels}"
    if isinstance(artist, Text):
        text = artist.get_text().replace("\n", " ")
        return repr(text if len(text) <= 40 else text[:39] + "…")
    return type(artist).__name__


def _overlap(a: Bbox, b: Bbox) -> bool:
    """Two extents share more than the tolerance in both directions."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > TOLERANCE_PX) and (min(a.y1, b.y1) - max(a.y0, b.y0) > TOLERANCE_PX)


def drawn_tick_labels(axis: Axis) -> list[list[Text]]:
    """The tick labels an axis draws (ticks inside the view interval, visible, non-empty), one list per side
    (bottom/left labels, top/right labels). Call after the figure was drawn."""
    lo, hi = sorted(axis.get_view_interval())
    span = abs(hi - lo) or 1.0
    major = list(axis.get_major_ticks())
    major_locs = {round(t.get_loc(), 12) for t in major}
    ticks = major + [t for t in axis.get_minor_ticks() if round(t.get_loc(), 12) not in major_locs]
    sides: list[list[Text]] = [[], []]
    for tick in ticks:
        loc = tick.get_loc()
        if loc is None or not (lo - 1e-9 * span <= loc <= hi + 1e-9 * span):
            continue
        for side, label in enumerate((tick.label1, tick.label2)):
            if label.get_visible() and label.get_text().strip():
                sides[side].append(label)
    return sides


def _tick_label_ids(fig: Figure) -> set[int]:
    ids = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ids |= {id(lab) for t in (*axis.get_major_ticks(), *axis.get_minor_ticks()) for lab in (t.label1, t.label2)}
    return ids


def _legends(fig: Figure) -> list[Legend]:
    return [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]


def _free_texts(fig: Figure) -> list[Text]:
    """Visible non-empty texts that are neither tick labels nor inside a legend: axis labels, titles, annotations."""
    skip = _tick_label_ids(fig)
    for leg in _legends(fig):
        skip |= {id(t) for t in (*leg.get_texts(), leg.get_title())}
    out = []
    for t in fig.findobj(Text):
        if id(t) in skip or not t.get_visible() or not t.get_text().strip():
            continue
        if t.axes is not None and not t.axes.get_visible():
            continue
        out.append(t)
    return out


def layout_problems(fig: Figure) -> list[str]:
    """What does not fit, measured on the drawn figure: (a) a text, legend or axes outside the image, (b) tick
    labels of one axis overlapping, (c) a legend over an axes' plotting area, (d) texts overlapping each other
    or a tick label. Empty when the figure is clean."""
    renderer = _renderer(fig)
    box = fig.bbox
    problems: list[str] = []
    ticks = {(i, name, side): labels for i, ax in enumerate(fig.axes) if ax.get_visible()
             for name, axis in (("x", ax.xaxis), ("y", ax.yaxis))
             for side, labels in enumerate(drawn_tick_labels(axis))}
    free = _free_texts(fig)
    legends = [leg for leg in _legends(fig) if leg.get_visible()]
    every_tick = list(itertools.chain(*ticks.values()))
    extents: list[tuple[Any, Bbox]] = [(t, t.get_window_extent(renderer)) for t in [*free, *every_tick]]
    extents += [(leg, leg.get_window_extent(renderer)) for leg in legends]
    extents += [(ax, ax.get_window_extent(renderer)) for ax in fig.axes if ax.get_visible()]
    for artist, ext in extents:
        past = {"left": box.x0 - ext.x0, "right": ext.x1 - box.x1, "bottom": box.y0 - ext.y0, "top": ext.y1 - box.y1}
        out = {side: px for side, px in past.items() if px > TOLERANCE_PX}
        if out:
            where = ", ".join(f"{math.ceil(px)} px past the {side}" for side, px in out.items())
            problems.append(f"outside the figure: {_name(artist)} ({where})")
    for (i, name, _), labels in ticks.items():
        for a, b in itertools.combinations(labels, 2):
            if _overlap(a.get_window_extent(renderer), b.get_window_extent(renderer)):
                problems.append(f"overlapping tick labels on axes {i} {name}: {_name(a)} and {_name(b)}")
    for leg in legends:
        for i, ax in enumerate(fig.axes):
            if ax.get_visible() and _overlap(leg.get_window_extent(renderer), ax.get_window_extent(renderer)):
                problems.append(f"{_name(leg)} overlaps the plotting area of axes {i}")
    for a, b in itertools.chain(itertools.combinations(free, 2), itertools.product(free, every_tick)):
        if _overlap(a.get_window_extent(renderer), b.get_window_extent(renderer)):
            problems.append(f"overlapping texts: {_name(a)} and {_name(b)}")
    return problems


# --------------------------------------------------------------------------------------------------
# making things fit


def _wrap(labels: Sequence[str], widths: Sequence[float], room: float) -> list[str]:
    """Labels wider than ``room`` pixels wrapped at a character count scaled from their measured width."""
    out = []
    for label, width in zip(labels, widths, strict=True):
        if width <= room or len(label) < 2:
            out.append(label)
            continue
        chars = max(8, int(len(label) * room / width) - 1)
        out.append("\n".join(textwrap.wrap(label, chars, break_long_words=True)))
    return out


def legend_below(fig: Figure, handles: Iterable[Any], max_ncol: int = 4) -> Legend | None:
    """A legend under the axes that fits the figure's width: of 1 … ``max_ncol`` columns, each with the labels
    wrapped to its share of the width, the lowest legend that fits (ties: fewer columns); the figure grows by
    the legend's height, so the axes keep theirs."""
    handles = [h for h in handles if h is not None]
    if not handles:
        return None
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    room = fig.bbox.width - 2 * LEGEND_MARGIN_IN * fig.dpi
    labels = [str(h.get_label()) for h in handles]

    def fitted(ncol: int, widths: Sequence[float], per_column: float) -> tuple[list[str], Bbox]:
        """Labels for ``ncol`` columns (as they are if that fits, else wrapped to an estimated share of the width
        per column, tighter while the measured legend is still too wide) and the extent of that legend."""
        share = math.inf
        for _ in range(4):
            texts = _wrap(labels, widths, share)
            leg = fig.legend(handles=handles, labels=texts, loc="outside lower center", ncol=ncol, **LEGEND_KW)
            box = leg.get_window_extent(renderer)
            leg.remove()
            if box.width <= room:
                break
            estimate = (room - ncol * per_column) / ncol
            share = estimate if share > estimate else share - (box.width - room) / ncol - 1
        return texts, box

    leg = fig.legend(handles=handles, labels=labels, loc="outside lower center", ncol=1, **LEGEND_KW)
    widths = [t.get_window_extent(renderer).width for t in leg.get_texts()]
    per_column = leg.get_window_extent(renderer).width - max(widths)  # handle, pads around one column's text
    leg.remove()
    options = [(ncol, *fitted(ncol, widths, per_column)) for ncol in range(1, min(max_ncol, len(handles)) + 1)]
    fits = [o for o in options if o[2].width <= room] or options[:1]
    lowest = min(o[2].height for o in fits)
    ncol, texts, _ = min((o for o in fits if o[2].height <= lowest + 3), key=lambda o: o[0])  # 3 px: same lines
    leg = fig.legend(handles=handles, labels=texts, loc="outside lower center", ncol=ncol, **LEGEND_KW)
    # whole hundredths of an inch, so the image at any dpi that is a multiple of 100 is the figure, pixel for pixel
    fig.set_figheight(round(fig.get_figheight() + leg.get_window_extent(renderer).height / fig.dpi, 2))
    return leg


def fit_tick_labels(fig: Figure, axes: Iterable[Axis]) -> None:
    """Tick labels of an axis that would print over each other are turned 30°, then 90° if that is not enough
    (one draw per round for all ``axes``)."""
    pending = list(axes)
    for rotation, ha in ((30, "right"), (90, "center")):
        renderer = _renderer(fig)
        crowded = []
        for axis in pending:
            extents = [t.get_window_extent(renderer) for t in drawn_tick_labels(axis)[0]]
            if any(_overlap(a, b) for a, b in itertools.combinations(extents, 2)):
                crowded.append(axis)
        for axis in crowded:
            for t in drawn_tick_labels(axis)[0]:
                t.set_rotation(rotation)
                t.set_horizontalalignment(ha)
                t.set_rotation_mode("anchor" if rotation != 90 else "default")
        pending = crowded
        if not pending:
            return
