"""The numbers of a sweep's tables (what their CSV files hold): one row per variant with its statistics, the
factor and grouping columns, the Δ against its baseline and its Holm-adjusted p (one family: every variant vs
its baseline); and what the data says
about which columns a table shows (the class count: top-5 error only with more than 10 classes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from sesweep.analysis.equal_cost import adaptive_comparisons, ratio_label
from sesweep.analysis.factors import Analysis, baseline_contrasts, common_levels, is_attention_off
from sesweep.analysis.fmt import format_value
from sesweep.analysis.speed import speed_stats, variant_speeds
from sesweep.spec import ATTENTION_PREFIX
from sesweep.vocabulary import short_name


def _stat_columns(an: Analysis, variant: str, paired: bool = True) -> dict[str, Any]:
    """The numbers every table row carries for one variant (``paired``: with the Δ vs the baseline)."""
    row = an.table.loc[variant]
    out: dict[str, Any] = {"variant": variant, "n": int(row["n"])}
    if "n_expected" in row.index:
        out["n_expected"] = int(row["n_expected"])
    out |= {"n_diverged": int(row["n_diverged"]), "n_failed": int(row["n_failed"])}
    for m in ("top1_err", "top5_err"):
        if f"{m}_mean" in row.index:
            out |= {m: row[f"{m}_mean"], f"{m}_std": row[f"{m}_std"], f"{m}_ci_lo": row[f"{m}_ci_lo"],
                    f"{m}_ci_hi": row[f"{m}_ci_hi"]}
    for m in ("params", "se_params", "macs"):
        if f"{m}_mean" in row.index:
            out[m] = row[f"{m}_mean"]
    if paired and "d_top1_err_mean" in row.index:
        out |= {"d_top1_err": row["d_top1_err_mean"], "d_top1_err_ci_lo": row["d_top1_err_ci_lo"],
                "d_top1_err_ci_hi": row["d_top1_err_ci_hi"], "n_pairs": int(row["d_top1_err_n"]),
                "reference": row.get("d_top1_err_ref"), "p_t": row["d_top1_err_p_t"], "p_holm": math.nan,
                "p_perm": row["d_top1_err_p_perm"], "delta_note": row.get("d_top1_err_note") or None}
    return out


def _with_holm(an: Analysis, frame: pd.DataFrame) -> pd.DataFrame:
    """``p_holm``: a row's Δ is the contrast of its variant with its baseline, so its adjusted p is that
    contrast's in the one family of all variants vs their baseline (:func:`.factors.baseline_contrasts`) — the
    same p in every table and in comparisons.csv, never re-adjusted over a table's own rows."""
    if "p_t" in frame.columns:
        adjusted = {c.comparison.variant: c.comparison.p_holm for c in baseline_contrasts(an)}
        frame["p_holm"] = [adjusted.get(v, math.nan) for v in frame["variant"]]
    return frame


def group_levels(an: Analysis) -> list[str]:
    """The non-attention factors (architecture, recipe keys): tables group rows by them, never pool them."""
    return [k for k in an.factors if not k.startswith(ATTENTION_PREFIX)]


def factor_table(an: Analysis, key: str) -> pd.DataFrame:
    """A paper-style table for one factor: its attention variants by level, then the baseline row — once per
    architecture (and recipe) when the sweep varies those, each row's Δ against the baseline of its group.

    As in the paper, the other attention factors are held at the sweep's base value (:func:`held_levels`,
    named in the caption): a gate variant does not appear in the ratio table. The factor column holds the
    raw config values (NaN on a baseline row), so the CSV round-trips; ``p_holm`` adjusts the table's
    p-values as one family.
    """
    groups = group_levels(an)
    shown = [k for k in groups if k != key]
    held = {k: v for k, v in common_levels(an).items() if k != key}
    rows = []
    for group in _groups(an, groups):
        for v in group:
            config = an.configs.loc[v]
            if an.is_baseline(v) or is_attention_off(config) or any(format_value(config[k]) != held[k] for k in held):
                continue
            rows.append({short_name(key): config[key], **_group_columns(an, v, shown), **_stat_columns(an, v)})
        rows += [{short_name(key): math.nan if key.startswith(ATTENTION_PREFIX) else an.configs.at[b, key],
                  **_group_columns(an, b, shown), **_stat_columns(an, b)} for b in group if an.is_baseline(b)]
    return _with_holm(an, pd.DataFrame(rows))


def _groups(an: Analysis, keys: Sequence[str]) -> list[list[str]]:
    """The variants in sweep order, split where the non-attention factors ``keys`` change (the order groups
    by them, :func:`.factors.variant_order`)."""
    out: list[list[str]] = []
    last: tuple[str, ...] | None = None
    for v in an.order:
        here = tuple(format_value(an.configs.at[v, k]) for k in keys)
        if here != last:
            out.append([])
            last = here
        out[-1].append(v)
    return out


def _group_columns(an: Analysis, variant: str, keys: Sequence[str]) -> dict[str, Any]:
    return {short_name(k): an.configs.at[variant, k] for k in keys}


def speed_table(an: Analysis) -> pd.DataFrame:
    """Speed per variant and host/device, runs timed while the device was shared left out and counted."""
    table = speed_stats(an.sweep.runs).table
    order = {v: i for i, v in enumerate(an.order)}
    return table.sort_values(["host", "device_name", "variant"], key=lambda c: c.map(order) if c.name == "variant"
                             else c, kind="stable").reset_index(drop=True)


def overall_table(an: Analysis) -> pd.DataFrame:
    """Every variant, best mean top-1 error first, with cost and speed columns and the rank (speed only where
    every run ran on one device, from the runs that had it to themselves: :func:`.speed.variant_speeds`)."""
    factors = [k for k in an.factors if k != "model.attention.kind"]
    speeds = variant_speeds(an.sweep.runs)
    rows = []
    for v in an.order:
        config = an.configs.loc[v]
        row = an.table.loc[v]
        extra = speeds.get(v, {}) if speeds else {}
        off = is_attention_off(config)
        rows.append({**_stat_columns(an, v), "attention": config.get("model.attention.kind", math.nan),
                     **{short_name(k): math.nan if off and k.startswith("model.attention.") else config[k]
                        for k in factors},
                     **extra, "rank": row.get("rank", pd.NA)})
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["variant", "n", "n_diverged", "n_failed"])
    if "rank" in frame.columns:
        frame = frame.sort_values("rank", na_position="last", kind="stable")
    return _with_holm(an, frame.reset_index(drop=True))


def adaptive_table(an: Analysis) -> pd.DataFrame:
    """One row per adaptive variant against the fixed-ratio curve (:func:`.equal_cost.adaptive_comparisons`).

    ``se_params`` are the SE parameters the net has (a dynamic variant's allocated ones: its soft mask computes
    every unit); ``se_active_width`` a dynamic variant's mean share of the allocated hidden units active per test
    image (a width, not a cost; NaN for learnable variants); ``ratio_stage<K>`` the mean
    learned ratio of stage K; ``fixed_top1_err`` the fixed-r curve at equal SE params, NaN with the reason in
    ``fixed_note``; ``d_nearest*`` the paired difference to the fixed ratio nearest in SE params.
    """
    comps = adaptive_comparisons(an)
    stages = sorted({s for c in comps for s in c.stage_ratios})
    rows = []
    for c in comps:
        paired = c.paired
        rows.append({
            "adaptive": c.kind, "cost_weight": c.cost_weight, **_stat_columns(an, c.variant, paired=False),
            "se_params": c.se_params, "se_active_width": c.active_width,
            **{f"ratio_stage{s}": c.stage_ratios.get(s, math.nan) for s in stages},
            "fixed_r": ",".join(ratio_label(an, w).removeprefix("r=") for w in c.fixed),
            "fixed_top1_err": c.fixed_at_cost, "fixed_note": c.note, "d_fixed_curve": c.d_curve,
            "nearest": c.nearest if c.nearest else math.nan,
            "nearest_r": an.configs.at[c.nearest, "model.attention.reduction"] if c.nearest else math.nan,
            "nearest_se_params": c.nearest_cost,
            "d_nearest": paired.delta.mean if paired else math.nan,
            "d_nearest_ci_lo": paired.delta.ci_lo if paired else math.nan,
            "d_nearest_ci_hi": paired.delta.ci_hi if paired else math.nan,
            "n_pairs_nearest": paired.n if paired else 0,
            "p_t_nearest": paired.p_t if paired else math.nan, "p_perm_nearest": paired.p_perm if paired else math.nan,
            "note_nearest": (paired.note or None) if paired else None,
        })
    return pd.DataFrame(rows)


#: classes per data set (``recipe.dataset``; image folders say theirs in their ``data_id``), as sesweep.training.data
DATASET_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "fake": 10, "imagenet32": 1000, "imagenet64": 1000}


def classes_from_data_id(data_id: Any) -> int | None:
    """``imagefolder:100classes:train=…`` → 100; None where the identity does not say."""
    found = re.search(r"(?:^|:)(\d+)classes(?::|$)", str(data_id)) if isinstance(data_id, str) else None
    return int(found.group(1)) if found else None


def class_count(an: Analysis) -> int | None:
    """The most classes any run of the sweep has: ``model.num_classes`` when set, else its data identity (an
    image folder's), else its data set's; None when a run's count is unknown."""
    counts = []
    for _, run in an.sweep.runs.iterrows():
        value = run.get("model.num_classes")
        n = int(float(value)) if isinstance(value, int | float) and not pd.isna(value) else None
        if n is None and isinstance(value, str) and value.strip().isdigit():
            n = int(value)
        n = n or classes_from_data_id(run.get("data_id")) or DATASET_CLASSES.get(str(run.get("recipe.dataset")))
        if n is None:
            return None
        counts.append(n)
    return max(counts, default=None)


def shows_top5(classes: int | None) -> bool:
    """Top-5 error says something only with more than 10 classes (with 10 it is near 0); unknown: shown."""
    return classes is None or classes > 10
