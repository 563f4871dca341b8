"""SENet's published numbers, as data, and the columns that put them beside a sweep's own.

Source: J. Hu, L. Shen, S. Albanie, G. Sun, E. Wu, "Squeeze-and-Excitation Networks", IEEE TPAMI 2019
(arXiv:1709.01507v4) — cited below as "SENet TPAMI v4". Tables 10–14 are its ablations on ImageNet with
SE-ResNet-50 (single-crop top-1 / top-5 error %, FC biases removed, a long schedule of ~300 epochs with
label smoothing); Tables 4 and 5 its CIFAR-10 and CIFAR-100 results, the original net and the same net with
SE, with the original papers' recipes. Parameter counts are the paper's, in millions; None where the paper
prints none.

The ablation numbers are a reference for the *direction* and *ranking* of a factor's levels: their values
are only comparable with an ImageNet ResNet-50 run on the paper's schedule. :func:`setting_note` says so
in words for a table's caption.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sesweep.analysis.factors import Analysis, is_attention_off
from sesweep.analysis.fmt import num_or_blank, signed_finite
from sesweep.vocabulary import PUBLISHED_TABLES, SHORT_NAMES

SOURCE = "SENet TPAMI v4"


@dataclass(frozen=True)
class PublishedRow:
    """One row of an ImageNet ablation table: a level of one spec key and SE-ResNet-50's errors there."""

    table: int
    key: str | None          # the spec key the table varies; None for the ResNet-50 baseline
    level: Any               # that key's value in sesweep's vocabulary (16, "max", (2,), "all", "pre")
    label: str               # as the paper prints it
    top1: float
    top5: float | None = None
    params_m: float | None = None
    paper: str = SOURCE

    @property
    def source(self) -> str:
        return f"{self.paper}, Table {self.table}"


#: the spec key each ablation table varies (SENet TPAMI v4 Tables 10–14, ECA-Net Table 2; ImageNet, ResNet-50),
#: from the one factor vocabulary
TABLE_KEYS: dict[int, str] = PUBLISHED_TABLES
#: ECA-Net (Wang et al., CVPR 2020), read from a transcription of the paper, not the PDF
ECA_SOURCE = "ECA-Net"

#: ResNet-50 on ImageNet, the reference of every ablation table (Table 10's "original", Table 13's first row)
IMAGENET_BASELINE = PublishedRow(10, None, None, "ResNet-50", 23.30, 6.55, 25.6)


def _rows(table: int, rows: Sequence[tuple[Any, str, float, float | None, float | None]],
          paper: str = SOURCE) -> dict[Any, PublishedRow]:
    return {level: PublishedRow(table, TABLE_KEYS[table], level, label, top1, top5, params, paper)
            for level, label, top1, top5, params in rows}


#: table number → level → row
ABLATIONS: dict[int, dict[Any, PublishedRow]] = {
    10: _rows(10, [(2, "r=2", 22.29, 6.00, 45.7), (4, "r=4", 22.25, 6.09, 35.7), (8, "r=8", 22.26, 5.99, 30.7),
                   (16, "r=16", 22.28, 6.03, 28.1), (32, "r=32", 22.72, 6.20, 26.9)]),
    11: _rows(11, [("max", "Max", 22.57, 6.09, None), ("avg", "Avg", 22.28, 6.03, None)]),
    12: _rows(12, [("relu", "ReLU", 23.47, 6.98, None), ("tanh", "Tanh", 23.00, 6.38, None),
                   ("sigmoid", "Sigmoid", 22.28, 6.03, None)]),
    13: _rows(13, [((2,), "SE Stage 2", 23.03, 6.48, 25.6), ((3,), "SE Stage 3", 23.04, 6.32, 25.7),
                   ((4,), "SE Stage 4", 22.68, 6.22, 26.4), ("all", "SE All", 22.28, 6.03, 28.1)]),
    14: _rows(14, [("standard", "SE", 22.28, 6.03, None), ("pre", "SE-PRE", 22.23, 6.00, None),
                   ("post", "SE-POST", 22.78, 6.35, None), ("identity", "SE-Identity", 22.20, 6.15, None)]),
    # ECA-Net Table 2 prints accuracy (vanilla 75.20 / 92.25, SE 76.71 / 93.38, Var1 76.00 / 92.90, Var2 77.07 /
    # 93.31, Var3 77.42 / 93.64, ECA k = 3 77.43 / 93.65): here as error, 100 − accuracy
    2: _rows(2, [("mlp", "SE", 23.29, 6.62, None), ("none", "SE-Var1", 24.00, 7.10, None),
                 ("channelwise", "SE-Var2", 22.93, 6.69, None), ("fc", "SE-Var3", 22.58, 6.36, None),
                 ("eca", "ECA (k = 3)", 22.57, 6.35, None)], ECA_SOURCE),
}
#: ECA-Net Table 2's vanilla ResNet-50 (its own baseline: 75.20 / 92.25 % accuracy)
ECA_BASELINE = PublishedRow(2, None, None, "ResNet-50", 24.80, 7.75, None, ECA_SOURCE)
#: each published table's own ResNet-50 (as that paper trained it), and the paper's name in column heads
BASELINES: dict[int, PublishedRow] = {2: ECA_BASELINE}
PAPER_SHORT = {SOURCE: "SENet", ECA_SOURCE: "ECA-Net"}
#: what each paper's ablation tables put attention on
PAPER_NET = {SOURCE: "ImageNet SE-ResNet-50", ECA_SOURCE: "ImageNet ResNet-50"}


def baseline_row(table: int) -> PublishedRow:
    """The ResNet-50 row the levels of published ``table`` are compared with."""
    return BASELINES.get(table, IMAGENET_BASELINE)


def paper_short(table: int) -> str:
    """``SENet`` or ``ECA-Net``: the paper of published ``table``, as column heads name it."""
    return PAPER_SHORT[baseline_row(table).paper]


@dataclass(frozen=True)
class CifarResult:
    """One row of SENet's CIFAR tables: top-1 error % of the original net and of the net with SE."""

    table: int               # 4: CIFAR-10, 5: CIFAR-100
    arch: str                # sesweep's name of the net (``model.arch``)
    paper_arch: str
    dataset: str             # ``recipe.dataset``
    original: float
    se: float
    note: str = ""

    @property
    def source(self) -> str:
        return f"{SOURCE}, Table {self.table}"


_PREACT = "the pre-activation ResNet of He et al., Identity Mappings, ECCV 2016"
_WRN = "Zagoruyko & Komodakis, Wide Residual Networks, 2016"
#: (arch, dataset) → result. SENet's ResNet-110/164 are the pre-activation nets it cites (``preresnet110``,
#: ``preresnet164``): the post-activation ``resnet110``/``resnet164`` are other nets and match no row here
CIFAR: dict[tuple[str, str], CifarResult] = {(c.arch, c.dataset): c for c in (
    CifarResult(4, "preresnet110", "ResNet-110", "cifar10", 6.37, 5.21, _PREACT),
    CifarResult(4, "preresnet164", "ResNet-164", "cifar10", 5.46, 4.39, _PREACT),
    CifarResult(4, "wrn16_8", "WRN-16-8", "cifar10", 4.27, 3.88, _WRN),
    CifarResult(5, "preresnet110", "ResNet-110", "cifar100", 26.88, 23.85, _PREACT),
    CifarResult(5, "preresnet164", "ResNet-164", "cifar100", 24.33, 21.31, _PREACT),
    CifarResult(5, "wrn16_8", "WRN-16-8", "cifar100", 20.43, 19.14, _WRN),
)}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "digits": "digits", "fake": "fake data",
                 "imagenet": "ImageNet", "imagenet32": "ImageNet 32×32", "imagenet64": "ImageNet 64×64"}
#: downsampled ImageNet (Chrabaszcz et al. 2017): 1000 classes, but not the full-resolution images SENet used
DOWNSAMPLED_IMAGENET = ("imagenet32", "imagenet64")
#: the configuration of "SE" in SENet's CIFAR and main tables (and the level every ablation holds)
STANDARD_SE = {"model.attention.reduction": 16, "model.attention.pool": "avg", "model.attention.gate": "sigmoid",
               "model.attention.placement": "standard", "model.attention.stages": "all",
               "model.attention.adaptive": "none"}


# --------------------------------------------------------------------------------------------------
# looking numbers up


def normalize_level(key: str, value: Any) -> Any:
    """A config value as the tables' levels are keyed: numbers as float, stages as a tuple or "all",
    other values as lower-case text; None for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if key == "model.attention.stages":
        if isinstance(value, int | float):
            return (int(value),)
        if isinstance(value, list | tuple):
            return tuple(int(v) for v in value)
        text = str(value).strip().lower()
        if text == "all":
            return "all"
        numbers = re.findall(r"\d+", text)
        return tuple(int(n) for n in numbers) if numbers else text
    if key == "model.attention.reduction":
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value).strip().lower()


def imagenet_row(table: int, value: Any) -> PublishedRow | None:
    """SENet's row of ablation ``table`` at this level, or None where the paper has no such level."""
    if table not in ABLATIONS:
        return None
    key = TABLE_KEYS[table]
    level = normalize_level(key, value)
    return next((row for lv, row in ABLATIONS[table].items() if normalize_level(key, lv) == level), None)


def table_for_key(key: str | None) -> int | None:
    """The ablation table that varies this spec key, if any."""
    return next((t for t, k in TABLE_KEYS.items() if k == key), None)


def cifar_result(arch: Any, dataset: Any) -> CifarResult | None:
    """SENet's CIFAR result for this net on this data set, or None."""
    return CIFAR.get((str(arch), str(dataset)))


# --------------------------------------------------------------------------------------------------
# what a sweep ran on, and the columns beside its tables


@dataclass(frozen=True)
class Setting:
    """What a sweep's runs trained: the nets, the data set, how many classes and epochs."""

    archs: tuple[str, ...]
    dataset: str             # "cifar10" also for an image folder named so (e.g. data/cifar10)
    classes: int | None
    epochs: tuple[int, ...]

    @property
    def dataset_name(self) -> str:
        return DATASET_NAMES.get(self.dataset, self.dataset)

    @property
    def is_imagenet_resnet50(self) -> bool:
        return self.archs == ("resnet50",) and (
            self.dataset == "imagenet" or (self.classes == 1000 and self.dataset not in DOWNSAMPLED_IMAGENET))

    def describe(self) -> str:
        classes = f", {self.classes} classes" if self.classes else ""
        return f"{', '.join(self.archs) or 'unknown net'} on {self.dataset_name}{classes}"


def _distinct(runs: pd.DataFrame, col: str) -> list[Any]:
    if col not in runs.columns:
        return []
    return list(dict.fromkeys(v for v in runs[col].tolist() if v is not None and not pd.isna(v)))


def sweep_setting(an: Analysis, classes: int | None = None) -> Setting:
    """The sweep's :class:`Setting`, read off its runs (an image folder is named after its folder when that
    names a CIFAR set: ``data/cifar10`` → cifar10)."""
    runs = an.sweep.runs
    datasets = [str(d) for d in _distinct(runs, "recipe.dataset")]
    dataset = datasets[0] if len(datasets) == 1 else ", ".join(datasets) or "unknown data"
    if dataset == "imagefolder":
        roots = [str(r).rstrip("/").rsplit("/", 1)[-1].lower() for r in _distinct(runs, "recipe.data_root")]
        named = {m.group(0) for r in roots if (m := re.search(r"cifar100|cifar10|imagenet", r))}
        dataset = named.pop() if len(named) == 1 else "an image folder"
    epochs = tuple(sorted(int(e) for e in _distinct(runs, "recipe.epochs")))
    return Setting(tuple(str(a) for a in _distinct(runs, "model.arch")), dataset, classes, epochs)


def _standard_se(config: Mapping[str, Any]) -> bool:
    return not is_attention_off(config) and all(
        k not in config or normalize_level(k, config[k]) == normalize_level(k, v) for k, v in STANDARD_SE.items())


def columns(an: Analysis, key: str | None, variants: Sequence[str], setting: Setting,
            ) -> tuple[dict[str, list[str]], list[str]]:
    """The published columns beside a table's rows (``variants``, in order) and the caption sentences that
    say where they come from and what they can be compared for.

    ImageNet: "SENet top-1 (%)" and "SENet Δ vs ResNet-50" for the table's factor ``key`` when it is one of
    Tables 10–14 (blank where the paper has no such level; ResNet-50 on the baseline rows). CIFAR: the
    original → SE errors when the sweep's net and data set are one of the paper's (the plain net's rows and
    the standard SE's; blank elsewhere)."""
    out: dict[str, list[str]] = {}
    notes: list[str] = []
    table = table_for_key(key)
    if table is not None:
        top1, delta, hits = [], [], 0
        base, paper = baseline_row(table), paper_short(table)
        for v in variants:
            if an.is_baseline(v) or is_attention_off(an.configs.loc[v]):
                row: PublishedRow | None = base
            else:
                row = imagenet_row(table, an.configs.at[v, key])
                hits += row is not None
            top1.append(num_or_blank(row.top1) if row else "")
            delta.append(signed_finite(row.top1 - base.top1) if row and row.key else "")
        if hits:
            out |= {f"{paper} top-1 (%)": top1, f"{paper} Δ vs ResNet-50": delta}
            notes.append(imagenet_note(table, setting))
    cifar = [c for a in setting.archs if (c := cifar_result(a, setting.dataset))]
    if len(cifar) == 1:
        c = cifar[0]
        errs, deltas = [], []
        for v in variants:
            config = an.configs.loc[v]
            plain, standard = is_attention_off(config), _standard_se(config)
            errs.append(num_or_blank(c.original) if plain else num_or_blank(c.se) if standard else "")
            deltas.append(signed_finite(c.se - c.original) if standard else "")
        if any(deltas):
            name = DATASET_NAMES.get(c.dataset, c.dataset)
            out |= {f"SENet {name} err (%)": errs, f"SENet {name} Δ vs {c.paper_arch}": deltas}
            notes.append(f"SENet {name} columns: {c.source}, {c.paper_arch} ({c.note}) on {name}, the original net "
                         f"and the net with SE (r=16), the original paper's recipe; shown on the plain net's rows and "
                         f"the standard SE's only.")
    return out, notes


def imagenet_note(table: int, setting: Setting) -> str:
    """Where the ImageNet columns come from, and — when this sweep is not the paper's setting — that only
    the direction and ranking of the levels can be compared, not the values."""
    base = baseline_row(table)
    schedule = "100 epochs; single runs, read from a transcription of the paper" if table in BASELINES else \
        "long schedule of ~300 epochs"
    head = (f"{paper_short(table)} columns: {base.paper}, Table {table} ({PAPER_NET[base.paper]}, {schedule}); "
            f"Δ vs ResNet-50's {base.top1:.2f}% top-1 error; blank where the paper has no such level.")
    if setting.is_imagenet_resnet50:
        return head
    epochs = f", {'/'.join(map(str, setting.epochs))} epochs" if setting.epochs else ""
    if setting.dataset in DOWNSAMPLED_IMAGENET:
        epochs += " (downsampled; the paper's values are for full-resolution ImageNet, 224×224 crops)"
    return (f"{head} This sweep is {setting.describe()}{epochs}, not ImageNet ResNet-50: only the direction and "
            f"ranking of the levels are comparable with the paper's column, not the values.")


def describe_levels(table: int, levels: Sequence[Any]) -> str:
    """One line on what SENet found at these levels of ``table`` (the sweep's): their spread and their Δ vs
    ResNet-50 — the direction a sweep of this factor may be held against."""
    rows = list(dict.fromkeys(r for lv in levels if (r := imagenet_row(table, lv)) is not None))
    if not rows:
        return ""
    key_name = SHORT_NAMES[TABLE_KEYS[table]]
    base = baseline_row(table)
    where = f"{base.paper}, Table {table} ({PAPER_NET[base.paper]})"
    best, worst = min(rows, key=lambda r: r.top1), max(rows, key=lambda r: r.top1)
    deltas = sorted(r.top1 - base.top1 for r in rows)
    if len(rows) == 1:
        return (f"{where}, at the {key_name} level run here: "
                f"{best.label} {best.top1:.2f}%, {signed_finite(deltas[0])} points vs ResNet-50.")
    beside = "below" if deltas[-1] < 0 else "above" if deltas[0] > 0 else "around"
    return (f"{where}, at the {key_name} levels run here: "
            f"{', '.join(f'{r.label} {r.top1:.2f}%' for r in rows)} — best {best.label}, worst {worst.label}, "
            f"{worst.top1 - best.top1:.2f} points apart, all {beside} ResNet-50's {base.top1:.2f}% "
            f"(Δ {signed_finite(deltas[0])} to {signed_finite(deltas[-1])}).")


def direction_note(table: int, levels: Sequence[Any], deltas: Sequence[float], significant: int, ref: str) -> str:
    """" Here the same levels are all above resnet (Δ +0.01 to +0.87 points, 0 of 4 significant): not SENet's
    direction." — a sweep's Δ vs its baseline at ``levels`` against the side of ResNet-50 SENet's are on; ""
    where either side has nothing."""
    theirs = [r.top1 - baseline_row(table).top1 for lv in levels if (r := imagenet_row(table, lv)) is not None]
    if not deltas or not theirs:
        return ""

    def side(ds: Sequence[float]) -> str:
        return "below" if max(ds) < 0 else "above" if min(ds) > 0 else "on both sides of"

    ds = sorted(deltas)
    ours = side(ds)
    paper = paper_short(table)
    verdict = f"{paper}'s direction" if ours == side(theirs) else f"not {paper}'s direction"
    return (f" Here the same levels are {'all ' if ours != 'on both sides of' else ''}{ours} {ref} "
            f"(Δ {signed_finite(ds[0])} to {signed_finite(ds[-1])} points, {significant} of {len(ds)} significant): "
            f"{verdict}.")
