"""SENet TPAMI Fig. 6: the excitation per channel, averaged over the test images of a few classes, for the last
block of each stage and the blocks of the last stage, beside the same net's excitation at initialisation (what
the untrained net already does is not learned behaviour). Drawn whenever the runs saved excitations."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns

from sesweep.analysis.equal_cost import finished_details
from sesweep.analysis.factors import Analysis, held_levels
from sesweep.analysis.figures import style
from sesweep.analysis.figures.layout import legend_below
from sesweep.analysis.figures.style import COLUMN_IN, FONT_PT, PAGE_IN, FigureFile, new_figure, paper_style, slugify
from sesweep.analysis.fmt import format_value

#: at most this many excitation figures (the variant at the held levels first)
MAX_EXCITATION_FIGURES = 3
#: at most this many classes per excitation panel (SENet TPAMI Fig. 6 shows four)
EXCITATION_CLASSES = 4
#: at most this many blocks per excitation figure
EXCITATION_BLOCKS = 6
#: the class colours: a qualitative palette whose first colours stay distinct (seaborn's "dark" gave two
#: near-identical reds to classes 1 and 3)
CLASS_PALETTE = "tab10"
#: the excitation at initialisation (the mean over the classes): light and wide, under the trained lines
INIT_COLOR = "0.55"


@dataclass(frozen=True)
class Change:
    """What training changed in one block's excitation, against the same net at initialisation."""

    block: str
    stage: int
    #: Pearson correlation over channels of the class-mean profile, trained against initial (1: the same shape)
    shape: float
    #: the spread between classes: the std over classes per channel, averaged over channels
    spread: float
    spread_init: float


def block_change(trained: pd.DataFrame, init: pd.DataFrame, block: str, stage: int) -> Change | None:
    """The :class:`Change` of one block, over the classes both profiles have; None where init lacks it."""
    t, i = trained[trained["block"] == block], init[init["block"] == block] if not init.empty else init
    classes = sorted(set(t["class"]) & set(i["class"])) if not i.empty else []
    if not classes:
        return None
    tm = np.array([np.asarray(t[t["class"] == c].iloc[0]["mean"], dtype=float) for c in classes])
    im = np.array([np.asarray(i[i["class"] == c].iloc[0]["mean"], dtype=float) for c in classes])
    a, b = tm.mean(axis=0), im.mean(axis=0)
    shape = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan
    return Change(block, stage, shape, float(tm.std(axis=0).mean()), float(im.std(axis=0).mean()))


def change_text(changes: Sequence[Change]) -> str:
    """The caption's sentence on what training changed: the shape of the class mean and the spread of classes."""
    if not changes:
        return ""
    shapes = [c.shape for c in changes if np.isfinite(c.shape)]
    parts = []
    if shapes:
        kept = ("largely the initial one" if min(shapes) >= 0.8 else
                "changed from the initial one" if max(shapes) < 0.5 else "partly the initial one")
        parts.append(f"the channel pattern of the class mean is {kept} (its correlation over channels with the "
                     f"initial one is {min(shapes):.2f}–{max(shapes):.2f}, in the panel titles)")
    grew = [(c, c.spread / c.spread_init) for c in changes if c.spread_init > 0]
    if grew:
        low, high = min(grew, key=lambda g: g[1]), max(grew, key=lambda g: g[1])
        parts.append(f"the spread between classes (std over the classes per channel, mean over channels) is "
                     f"{low[1]:.2g}× its initial value in {_short(low[0])} ({low[0].spread_init:.2g} → "
                     f"{low[0].spread:.2g}) and {high[1]:.2g}× in {_short(high[0])} ({high[0].spread_init:.2g} → "
                     f"{high[0].spread:.2g})")
    return " What training changed: " + "; ".join(parts) + "."


def _short(change: Change) -> str:
    return f"stage {change.stage} · {change.block.removesuffix('.attn_branch')}"


def excitation_figures(an: Analysis, out_dir: Path) -> list[FigureFile]:
    """The excitation figures of the variants that saved excitations (:func:`excitation_variants`)."""
    drawn = [excitation_figure(an, v, out_dir) for v in excitation_variants(an)]
    return [f for f in drawn if f is not None]


def excitation_variants(an: Analysis) -> list[str]:
    """Variants that saved excitations, the one at every attention factor's held level first, at most a few."""
    have = [v for v in an.order if excitation_rows(an, v)[1]]
    held = {k: format_value(h.value) for k, h in held_levels(an).items()}
    ref = [v for v in have if all(format_value(an.configs.at[v, k]) == lv for k, lv in held.items())]
    ordered = ref[:1] + [v for v in have if v not in ref[:1]]
    return ordered[:MAX_EXCITATION_FIGURES]


def excitation_rows(an: Analysis, variant: str) -> tuple[int | None, list[dict[str, Any]]]:
    """The saved excitation of one run of a variant (the lowest finished seed that saved it)."""
    for seed, detail in finished_details(an, variant):
        if detail.get("excitation"):
            return seed, list(detail["excitation"])
    return None, []


def initial_rows(an: Analysis, variant: str, seed: int | None) -> list[dict[str, Any]]:
    """The same run's excitation at initialisation (``excitation_init``; empty for a run from before it was
    recorded)."""
    detail = next((d for s, d in finished_details(an, variant) if s == seed), {})
    return list(detail.get("excitation_init") or [])


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
    """Mean excitation per channel for a few classes and their average, one panel per block, the same net's
    mean excitation at initialisation under them."""
    seed, rows = excitation_rows(an, variant)
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    init = pd.DataFrame(initial_rows(an, variant, seed))
    blocks = pick_blocks(list(zip(frame["stage"].astype(int), frame["block"].astype(str), strict=True)))
    classes = sorted(frame["class"].unique())[:EXCITATION_CLASSES]
    palette = sns.color_palette(CLASS_PALETTE, len(classes))
    cols = min(3, len(blocks))
    nrows = math.ceil(len(blocks) / cols)
    changes: list[Change] = []
    with paper_style():
        fig = new_figure(PAGE_IN if cols > 1 else COLUMN_IN, 1.85 * nrows + 0.2)
        handles: list[Any] = []
        for i, (stage, block) in enumerate(blocks):
            ax = fig.add_subplot(nrows, cols, i + 1)
            part = frame[frame["block"] == block]
            every = np.array([np.asarray(m, dtype=float) for m in part["mean"]])
            change = block_change(frame, init, block, stage)
            if change is not None:
                start = np.array([np.asarray(m, dtype=float) for m in init[init["block"] == block]["mean"]])
                (ref,) = ax.plot(np.arange(start.shape[1]), start.mean(axis=0), color=INIT_COLOR, lw=2.2, alpha=0.6,
                                 zorder=1, label="at initialisation (mean of classes)", gid="init")
                changes.append(change)
            for c, color in zip(classes, palette, strict=True):
                row = part[part["class"] == c]
                if row.empty:
                    continue
                y = np.asarray(row.iloc[0]["mean"], dtype=float)
                (ln,) = ax.plot(np.arange(len(y)), y, color=color, lw=0.8, alpha=0.9, label=f"class {c}", zorder=2)
                if i == 0:
                    handles.append(ln)
            (avg,) = ax.plot(np.arange(every.shape[1]), every.mean(axis=0), color="black", lw=0.9, ls="--",
                             label=f"trained, mean of {len(part)} classes", zorder=3)
            if i == 0:
                handles.append(avg)
                handles += [ref] if change is not None else []
            shape = f"\nρ with init {change.shape:.2f}" if change is not None and np.isfinite(change.shape) else ""
            ax.set_title(f"stage {stage} · {block.removesuffix('.attn_branch')}{shape}", fontsize=FONT_PT)
            ax.set_xlim(0, every.shape[1] - 1)
            if i % cols == 0:
                ax.set_ylabel("excitation")
            if i >= len(blocks) - cols:
                ax.set_xlabel("channel index")
        legend_below(fig, handles, max_ncol=len(handles))
        reference = (f" Grey, wide: the same net at initialisation (seed {seed} before training, the same probe "
                     f"images), the mean over the classes." + change_text(changes)) if changes else (
            " No excitation at initialisation was recorded for this run (a run from before it was), so what "
            "training changed cannot be told from the pattern the untrained net already has.")
        caption = (f"Excitation of {variant} (seed {seed}): the gate's output per channel, averaged over the test "
                   f"images of each class (SENet TPAMI Fig. 6 style), for the last block of each stage and the "
                   f"blocks of the last stage.{reference} {probe_description(an, variant, seed)}")
        return style.save(fig, out_dir, f"excitation_{slugify(variant)}", caption)
