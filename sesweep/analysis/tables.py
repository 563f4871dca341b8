"""Paper-style tables of a sweep (SENet TPAMI Tables 10–14 and one overall table) as CSV, Markdown, LaTeX.

Which tables a sweep gets follows from what it varies (the spec keys that differ between variants): a
ratio sweep gets Table 10, a squeeze sweep Table 11, and so on; any other factor gets a table of the same
shape named after its key. Every table has the paper's columns (top-1, top-5, params) and what a reader
needs to trust them: mean ± 95% CI half-width, n (finished of expected), the runs excluded, and the paired
difference to the baseline with its CI and p-value.

CSV files hold the numbers (one column per statistic, round-trippable); Markdown and LaTeX hold the same
rows formatted for reading.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sesweep.analysis import published
from sesweep.analysis.speed import speed_stats, variant_speeds
from sesweep.analysis.stats import (
    ADAPTIVE_KEY,
    ADAPTIVE_KEYS,
    ATTENTION_PREFIX,
    INTERPOLATED,
    PAIRED_METRICS,
    Analysis,
    SweepDataError,
    adaptive_comparisons,
    adaptive_variants,
    analyze,
    common_levels,
    contrast_frame,
    contrasts,
    format_value,
    held_levels,
    holm,
    is_attention_off,
    load_sweep,
    ratio_label,
    short_name,
)
from sesweep.vocabulary import ADAPTIVE_TABLE, OVERALL_TABLE, PAPER_TABLES, table_choice_names


@dataclass(frozen=True)
class TableChoice:
    """One table to produce: its file stem, the factor it is about (None: overall) and its title."""

    slug: str
    key: str | None
    title: str
    number: int | None = None


# the table names (PAPER_TABLES, ALIASES, the overall and adaptive slugs) are defined in sesweep.vocabulary,
# where loading a sweep file checks its `tables:` list against them
OVERALL = TableChoice(OVERALL_TABLE, None, "all variants")
#: adaptive SE against the fixed-ratio curve; replaces factor tables of the adaptive knobs (they are its columns)
ADAPTIVE = TableChoice(ADAPTIVE_TABLE, ADAPTIVE_KEY, "adaptive SE against the fixed ratio of equal cost")


def choose_tables(factors: Sequence[str], requested: Sequence[Any] | None = None, *, adaptive: bool = False,
                  ) -> tuple[list[TableChoice], list[str]]:
    """The tables for a sweep's factors (paper tables first), filtered by the spec's ``tables:`` list.

    ``adaptive``: the sweep has adaptive-SE variants, so it gets the :data:`ADAPTIVE` table (before the
    overall one). Returns the choices and notes on requested tables that this sweep cannot produce.
    """
    choices = []
    for key in sorted(factors, key=lambda k: (PAPER_TABLES.get(k, (99,))[0], k)):
        if key == "model.attention.kind" or (adaptive and key in ADAPTIVE_KEYS):
            continue  # the baseline row in every table; the adaptive knobs are columns of the adaptive table
        if key in PAPER_TABLES:
            number, slug, title = PAPER_TABLES[key]
            choices.append(TableChoice(f"table{number}_{slug}", key, f"Table {number} layout: {title}", number))
        else:
            slug = key.replace("model.", "").replace("attention.", "").replace(".", "_")
            choices.append(TableChoice(f"factor_{slug}", key, f"{short_name(key)}"))
    if adaptive:
        choices.append(ADAPTIVE)
    choices.append(OVERALL)
    if not requested:
        return choices, []
    wanted = {str(r).strip().lower() for r in requested}
    keep = [c for c in choices if c is OVERALL or wanted & _names(c)]
    known = set().union(*(_names(c) for c in choices))
    notes = [f"table '{r}' was requested but this sweep does not vary its factor" for r in requested
             if str(r).strip().lower() not in known]
    return keep, notes


def _names(choice: TableChoice) -> set[str]:
    return table_choice_names(choice.slug, choice.key, choice.number)


# --------------------------------------------------------------------------------------------------
# numeric tables (what CSV holds)


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
    for m in ("params", "macs"):
        if f"{m}_mean" in row.index:
            out[m] = row[f"{m}_mean"]
    if paired and "d_top1_err_mean" in row.index:
        out |= {"d_top1_err": row["d_top1_err_mean"], "d_top1_err_ci_lo": row["d_top1_err_ci_lo"],
                "d_top1_err_ci_hi": row["d_top1_err_ci_hi"], "n_pairs": int(row["d_top1_err_n"]),
                "reference": row.get("d_top1_err_ref"), "p_t": row["d_top1_err_p_t"], "p_holm": math.nan,
                "p_perm": row["d_top1_err_p_perm"], "delta_note": row.get("d_top1_err_note") or None}
    return out


def _with_holm(frame: pd.DataFrame) -> pd.DataFrame:
    """``p_holm``: the table's paired t p-values Holm-adjusted as one family (one family per table)."""
    if "p_t" in frame.columns:
        frame["p_holm"] = holm(list(frame["p_t"]))
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
    return _with_holm(pd.DataFrame(rows))


def _groups(an: Analysis, keys: Sequence[str]) -> list[list[str]]:
    """The variants in sweep order, split where the non-attention factors ``keys`` change (the order groups
    by them, :func:`sesweep.analysis.stats.variant_order`)."""
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
    return _with_holm(frame.reset_index(drop=True))


def adaptive_table(an: Analysis) -> pd.DataFrame:
    """One row per adaptive variant against the fixed-ratio curve (:func:`sesweep.analysis.stats.adaptive_comparisons`).

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


# --------------------------------------------------------------------------------------------------
# formatted tables (what Markdown, LaTeX and HTML show)


def _num(x: Any, digits: int = 2) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:.{digits}f}".replace("-", "−")


def _signed(x: Any, digits: int = 2) -> str:
    return "—" if x is None or pd.isna(x) else f"{x:+.{digits}f}".replace("-", "−")


def mean_ci(mean: Any, lo: Any, hi: Any, digits: int = 2) -> str:
    """"22.28 ± 0.31" (the 95% CI half-width); the bare mean when there is no CI (n = 1); "—" for n = 0."""
    if mean is None or pd.isna(mean):
        return "—"
    if lo is None or pd.isna(lo):
        return _num(mean, digits)
    return f"{_num(mean, digits)} ± {_num((hi - lo) / 2, digits)}"


def p_value(p: Any) -> str:
    if p is None or pd.isna(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _p_cell(p: Any, n_pairs: Any, note: Any) -> str:
    """A p-value, or "n/a" where there were pairs but the t-test has no p (zero spread, one pair)."""
    if p is not None and not pd.isna(p):
        return p_value(p)
    return "n/a" if isinstance(note, str) and note and not pd.isna(n_pairs) and n_pairs > 0 else "—"


def count_column(values: Sequence[Any]) -> list[str]:
    """Parameters or MACs the way papers print them, one unit per column (272.5k, 28.09M, 4.089G).

    Four significant digits of the largest value, more (up to seven) where that would print two different
    counts alike: an SE block adds ~0.1% MACs, which must stay visible.
    """
    finite = [abs(float(v)) for v in values if v is not None and not pd.isna(v)]
    top = max(finite, default=0.0)
    scale, unit = next(((s, u) for s, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if top >= s), (1.0, ""))
    digits = max(0, 3 - math.floor(math.log10(top / scale))) if top > 0 else 0
    distinct = len(set(finite))
    while digits < 6 and len({f"{v / scale:.{digits}f}" for v in finite}) < distinct:
        digits += 1
    return ["—" if v is None or pd.isna(v) else f"{float(v) / scale:.{digits}f}{unit}" for v in values]


#: appended to a Δ whose Holm-adjusted p is below α (captions say so: :func:`significant_note`)
SIGNIFICANT_MARK = "*"


def significant_note(alpha: float = 0.05) -> str:
    return (f"{SIGNIFICANT_MARK}: Holm-adjusted p < {alpha:g}, significant after the correction for this table's "
            f"comparisons")


def _marked(delta: str, p_holm: Any, alpha: float = 0.05) -> str:
    """"−1.00 [−1.06, −0.94]" → "−1.00* [−1.06, −0.94]" when the Holm-adjusted p is below α."""
    if p_holm is None or pd.isna(p_holm) or p_holm >= alpha or delta == "—":
        return delta
    head, sep, tail = delta.partition(" ")
    return f"{head}{SIGNIFICANT_MARK}{sep}{tail}"


def display(frame: pd.DataFrame, baseline: str | Sequence[str] | None, *, top5: bool = True,
            alpha: float = 0.05) -> pd.DataFrame:
    """A numeric table (:func:`factor_table`, :func:`overall_table`) as strings for reading.

    ``top5``: show the top-5 error (False where the data has ≤ 10 classes, :func:`class_count`); a Δ whose
    Holm-adjusted p is below ``alpha`` carries :data:`SIGNIFICANT_MARK`."""
    numeric = {"variant", "n", "n_expected", "n_diverged", "n_failed", "top1_err", "top1_err_std", "top1_err_ci_lo",
               "top1_err_ci_hi", "top5_err", "top5_err_std", "top5_err_ci_lo", "top5_err_ci_hi", "params", "macs",
               "d_top1_err", "d_top1_err_ci_lo", "d_top1_err_ci_hi", "n_pairs", "p_t", "p_holm", "p_perm", "infer_ms",
               "train_img_per_s", "rank", "attention", "reference", "delta_note"}
    if frame.empty:
        return pd.DataFrame(columns=["variant", "n"])
    factor_cols = [c for c in frame.columns if c not in numeric]
    out = pd.DataFrame(index=frame.index)
    for c in factor_cols:
        out[c] = ["" if pd.isna(x) else format_value(x) for x in frame[c]]
    out["variant"] = frame["variant"]
    if "rank" in frame.columns:
        out.insert(0, "rank", [("—" if pd.isna(r) else str(int(r))) for r in frame["rank"]])
    if "attention" in frame.columns and not factor_cols:
        out["attention"] = frame["attention"]
    for m, name in [("top1_err", "top-1 err (%)"), ("top5_err", "top-5 err (%)")][:2 if top5 else 1]:
        if m in frame.columns:
            out[name] = [mean_ci(a, b, c) for a, b, c in zip(frame[m], frame[f"{m}_ci_lo"], frame[f"{m}_ci_hi"],
                                                               strict=True)]
    for m, name in (("params", "params"), ("macs", "MACs")):
        if m in frame.columns:
            out[name] = count_column(list(frame[m]))
    for m, name, digits in (("infer_ms", "infer (ms)", 2), ("train_img_per_s", "train (img/s)", 0)):
        if m in frame.columns and frame[m].notna().any():   # no column of dashes (every run timed while shared)
            out[name] = [_num(x, digits) for x in frame[m]]
    out["n"] = [_n_text(r) for _, r in frame.iterrows()]
    if (frame["n_diverged"] > 0).any() or (frame["n_failed"] > 0).any():
        out["excluded"] = [_excluded(r) for _, r in frame.iterrows()]
    bases = [baseline] if isinstance(baseline, str) else list(baseline or [])
    if "d_top1_err" in frame.columns and bases:
        is_base = frame["variant"].isin(bases)
        header = f"Δ top-1 vs {bases[0]}" if len(bases) == 1 else "Δ top-1 vs baseline (same arch)"
        out[header] = ["(baseline)" if b else _marked(_delta(r), r["p_holm"], alpha)
                       for b, (_, r) in zip(is_base, frame.iterrows(), strict=True)]
        out["p (paired t)"] = ["" if b else _p_cell(r["p_t"], r["n_pairs"], r.get("delta_note"))
                               for b, (_, r) in zip(is_base, frame.iterrows(), strict=True)]
        out["p (Holm)"] = ["" if b else _p_cell(r["p_holm"], r["n_pairs"], r.get("delta_note"))
                           for b, (_, r) in zip(is_base, frame.iterrows(), strict=True)]
    return out.reset_index(drop=True)


def _n_text(row: pd.Series) -> str:
    return f"{int(row['n'])}/{int(row['n_expected'])}" if "n_expected" in row.index else str(int(row["n"]))


def _excluded(row: pd.Series) -> str:
    parts = [f"{int(row[c])} {w}" for c, w in (("n_diverged", "diverged"), ("n_failed", "failed")) if row[c] > 0]
    return ", ".join(parts)


def _delta(row: pd.Series, col: str = "d_top1_err", n_col: str = "n_pairs") -> str:
    """"−0.70 [−1.20, −0.20]", or "−0.70 (n=1)" / "−0.70 (n=3, same on every seed)" without an interval."""
    if pd.isna(row[col]):
        return "—"
    if pd.isna(row[f"{col}_ci_lo"]):
        same = ", same on every seed" if int(row[n_col]) >= 2 else ""
        return f"{_signed(row[col])} (n={int(row[n_col])}{same})"
    return f"{_signed(row[col])} [{_signed(row[f'{col}_ci_lo'])}, {_signed(row[f'{col}_ci_hi'])}]"


#: the dynamic SE's expected active width in the adaptive table, labelled so it is never read as a cost
ACTIVE_WIDTH_COLUMN = "active width (dynamic: mean % of allocated hidden units; not a cost)"


def display_adaptive(frame: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """The adaptive table (:func:`adaptive_table`) as strings for reading."""
    if frame.empty:
        return pd.DataFrame(columns=["variant", "n"])
    out = pd.DataFrame({"adaptive": frame["adaptive"], "cost weight": [format_value(w) for w in frame["cost_weight"]],
                        "variant": frame["variant"]})
    out["n"] = [_n_text(r) for _, r in frame.iterrows()]
    out["top-1 err (%)"] = [mean_ci(a, b, c) for a, b, c in
                            zip(frame["top1_err"], frame["top1_err_ci_lo"], frame["top1_err_ci_hi"], strict=True)]
    costs = count_column(list(frame["se_params"]) + list(frame["nearest_se_params"]))  # one unit for both
    own, nearest = costs[:len(frame)], costs[len(frame):]
    out["SE params"] = own
    out[ACTIVE_WIDTH_COLUMN] = ["—" if pd.isna(x) else f"{100 * x:.0f}%" for x in frame["se_active_width"]]
    for col in (c for c in frame.columns if c.startswith("ratio_stage")):
        out[f"learned r (stage {col.removeprefix('ratio_stage')})"] = [_num(x, 1) for x in frame[col]]
    out["fixed-r top-1 at equal SE params"] = [_num(x) if note == INTERPOLATED else note
                                               for x, note in zip(frame["fixed_top1_err"], frame["fixed_note"],
                                                                  strict=True)]
    out["Δ vs fixed-r curve"] = [_signed(x) for x in frame["d_fixed_curve"]]
    out["nearest fixed r (SE params)"] = [
        "—" if pd.isna(r) else f"r={format_value(r)} ({c})"
        for r, c in zip(frame["nearest_r"], nearest, strict=True)]
    adjusted = holm(list(frame["p_t_nearest"]))
    out["Δ vs nearest [95% CI]"] = [_marked(_delta(r, "d_nearest", "n_pairs_nearest"), p, alpha)
                                    for (_, r), p in zip(frame.iterrows(), adjusted, strict=True)]
    out["p (paired t)"] = [_p_cell(p, n, note) for p, n, note in
                           zip(frame["p_t_nearest"], frame["n_pairs_nearest"], frame["note_nearest"], strict=True)]
    out["p (Holm)"] = [_p_cell(p, n, note) for p, n, note in
                       zip(adjusted, frame["n_pairs_nearest"], frame["note_nearest"], strict=True)]
    if (frame["n_diverged"] > 0).any() or (frame["n_failed"] > 0).any():
        out["excluded"] = [_excluded(r) for _, r in frame.iterrows()]
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# writers


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (first text columns left-aligned, the rest right-aligned)."""
    cols = [str(c) for c in frame.columns]
    align = [":--" if i < text_columns(frame) else "--:" for i in range(len(cols))]
    lines = ["| " + " | ".join(_md(c) for c in cols) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _md(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def text_columns(frame: pd.DataFrame) -> int:
    """How many leading columns are labels (factor values, rank, variant) rather than numbers."""
    cols = list(frame.columns)
    return cols.index("variant") + 1 if "variant" in cols else 1


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   "±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "—": "---", "–": "--", "<": r"$<$", ">": r"$>$",
                   "×": r"$\times$", "†": r"\textdagger{}"}


def latex_escape(text: Any) -> str:
    """Plain text → LaTeX that pdflatex compiles with no extra packages (``_`` → ``\\_``, ± → $\\pm$)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(frame: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table via ``DataFrame.to_latex``; every cell and header escaped here, once."""
    escaped = frame.map(latex_escape)
    escaped.columns = [latex_escape(c) for c in frame.columns]
    fmt = "l" * text_columns(frame) + "r" * (len(frame.columns) - text_columns(frame))
    return escaped.to_latex(index=False, escape=False, column_format=fmt, caption=latex_escape(caption),
                            label=label, position="t")


@dataclass(frozen=True)
class Table:
    """One produced table: its choice, numbers, formatted rows and caption."""

    choice: TableChoice
    numbers: pd.DataFrame
    shown: pd.DataFrame
    caption: str
    #: the caption without what every table of a report shares (the statistic, Δ, p, n/a): for a report that
    #: states that once
    brief: str = ""


def build_tables(an: Analysis) -> tuple[list[Table], list[str]]:
    """Every table this sweep gets, plus notes on requested tables it cannot produce."""
    choices, notes = choose_tables(an.factors, an.sweep.spec.get("tables"), adaptive=bool(adaptive_variants(an)))
    tables = []
    classes = class_count(an)
    top5 = shows_top5(classes)
    setting = published.sweep_setting(an, classes)
    for choice in choices:
        if choice is ADAPTIVE:
            numbers = adaptive_table(an)
            tables.append(Table(choice, numbers, display_adaptive(numbers, alpha=an.alpha),
                                f"{adaptive_caption(an)} {significant_note(an.alpha)}."))
            continue
        numbers = overall_table(an) if choice.key is None else factor_table(an, choice.key)
        shown = display(numbers, an.baselines, top5=top5, alpha=an.alpha)
        extra, sources = published.columns(an, choice.key, list(numbers.get("variant", [])), setting)
        for name, values in extra.items():
            shown[name] = values
        tables.append(Table(choice, numbers, shown, caption(an, choice, top5=top5, classes=classes, notes=sources),
                            caption(an, choice, notes=sources, brief=True)))
    speeds = speed_stats(an.sweep.runs)
    if not variant_speeds(an.sweep.runs) and not speeds.table.empty:  # several devices: speed only per device
        numbers = speed_table(an)
        tables.append(Table(SPEED, numbers, display_speed(numbers), f"Sweep {an.sweep.name}: {SPEED.title}. "
                            f"Means over the runs not timed while another worker shared the device. {speeds.caveat}"))
    return tables, notes


#: speed per host and device, produced when the runs of a sweep ran on more than one
SPEED = TableChoice("speed", None, "speed per host and device (never averaged across them)")


def display_speed(frame: pd.DataFrame) -> pd.DataFrame:
    """The speed table (:func:`speed_table`) as strings for reading."""
    out = pd.DataFrame({"variant": frame["variant"], "host": frame["host"], "device": frame["device_name"]})
    out["runs used"] = [f"{int(n)} of {int(t)}" for n, t in zip(frame["n"], frame["n_runs"], strict=True)]
    out["shared (excluded)"] = [str(int(x)) for x in frame["n_shared"]]
    out["infer (ms)"] = [_num(x, 2) for x in frame["infer_ms_mean"]]
    out["train (img/s)"] = [_num(x, 0) for x in frame["train_img_per_s_mean"]]
    return out


def caption(an: Analysis, choice: TableChoice, *, top5: bool = True, classes: int | None = None,
            notes: Sequence[str] = (), brief: bool = False) -> str:
    """What a reader of the table needs to know: the statistic, n, what is held, the pairing and the test
    (and ``notes``: where the published columns come from). ``brief``: only what is particular to this table
    (what it shows and holds, the significance mark, the sources, speed)."""
    what = f"Sweep {an.sweep.name}: {choice.title if choice.key else 'all variants, best first'}"
    held = [(k, h) for k, h in held_levels(an).items() if k != choice.key]
    if choice.key is not None and held:
        why = {"base": "the sweep's base value", "default": "the schema default, as the base value was not run",
               "first level": "the first level, as neither the base value nor the default was run"}
        levels = {source: ", ".join(f"{short_name(k)}={format_value(h.value)}" for k, h in held if h.source == source)
                  for source in why}
        parts = [f"at {why[source]} ({text})" for source, text in levels.items() if text]
        what += f" (other factors held {'; '.join(parts)})"
    groups = group_levels(an)
    if groups:
        what += f"; rows grouped by {', '.join(short_name(k) for k in groups)}"
    if len(an.baselines) > 1:
        ref = f"the baseline of the same {', '.join(short_name(k) for k in groups) or 'configuration'}"
    else:
        ref = an.baseline
    base = (f" Δ: paired difference to {ref} over matched seeds [95% CI]; p: two-sided paired t-test, raw and "
            f"Holm–Bonferroni adjusted over this table's comparisons; {significant_note(an.alpha)}; n/a: the same "
            f"difference on every seed (zero spread), where the t-test and its interval are undefined."
            if an.baselines else "")
    hidden = "" if top5 else (f" Top-5 error is not shown: with {classes} classes it is near 0 and says nothing "
                              f"(the CSV file has it).")
    speed = ""
    speeds = variant_speeds(an.sweep.runs)
    timed = any(pd.notna(x) for s in speeds.values() for x in s.values())
    if choice.key is None and speeds and not timed:
        speed = (" Speed: not shown, no run had its device to itself while it was timed. "
                 f"{speed_stats(an.sweep.runs).caveat}")
    elif choice.key is None and speeds:
        speed = (" Speed (infer, train): means over the runs that did not share their device with another "
                 f"worker. {speed_stats(an.sweep.runs).caveat}")
    elif choice.key is None:
        speed = " Speed: the runs ran on several devices, so speed is shown per device in its own table."
    sources = "".join(f" {n}" for n in notes)
    if brief:
        mark = f" {significant_note(an.alpha)}." if an.baselines else ""
        return f"{what}.{mark}{speed}{sources}"
    return (f"{what}. Error in % on the test set, mean ± 95% CI half-width (Student t) over n finished seeds "
            f"(of expected); diverged and failed runs are excluded from the means and counted.{base}{hidden}"
            f"{speed}{sources}")


#: classes per data set (``recipe.dataset``; image folders say theirs in their ``data_id``), as sesweep.training.data
DATASET_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "fake": 10}


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


def adaptive_caption(an: Analysis) -> str:
    """How the adaptive table's columns are computed, so each number can be checked by hand."""
    return (f"Sweep {an.sweep.name}: {ADAPTIVE.title}. Top-1 error in % on the test set, mean ± 95% CI half-width "
            f"(Student t) over n finished seeds (of expected). SE params: mean over the seeds; a learnable variant "
            f"counts its hardened net, a dynamic one its allocated SE (its soft mask computes every allocated "
            f"unit; MACs and latency likewise are the allocated net's), and its top-1 error is the soft mask's "
            f"(runs.csv: truncated_top1_err for the net truncated per image). Active width: a dynamic variant's "
            f"mean per-image hidden width over the whole test set as a share of the allocated hidden units, "
            f"averaged over the seeds — a width, not a cost (— for learnable variants). Learned r: C / effective "
            f"width, averaged over a stage's blocks and the seeds (dynamic: the mean per-image ratio on the test "
            f"set, last epoch). Fixed-r at equal SE params: the fixed-ratio variants' mean error linearly "
            f"interpolated in log(SE params) at the adaptive variant's SE params, never extrapolated; Δ vs "
            f"fixed-r curve: adaptive − that value. Nearest fixed r: the fixed ratio closest in log(SE params); "
            f"Δ: paired difference adaptive − nearest over matched seeds [95% CI]; p: two-sided paired t-test.")


def write_tables(an: Analysis, out_dir: Path) -> list[Path]:
    """Write every table as CSV, Markdown and LaTeX, plus variants.csv (all statistics) and comparisons.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables, _ = build_tables(an)
    written = []
    for t in tables:
        stem = out_dir / t.choice.slug
        t.numbers.to_csv(stem.with_suffix(".csv"), index=False)
        stem.with_suffix(".md").write_text(f"**{_md(t.caption)}**\n\n{to_markdown(t.shown)}")
        label = f"tab:{an.sweep.name}-{t.choice.slug}".replace("_", "-")
        stem.with_suffix(".tex").write_text(to_latex(t.shown, t.caption, label))
        written += [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    variants = out_dir / "variants.csv"
    an.table.join(an.configs).rename_axis("variant").to_csv(variants)
    comps = out_dir / "comparisons.csv"
    frames = [contrast_frame(contrasts(an, m)) for m in PAIRED_METRICS if f"{m}_mean" in an.table.columns]
    pd.concat(frames, ignore_index=True).to_csv(comps, index=False)
    return [*written, variants, comps]


# --------------------------------------------------------------------------------------------------
# command line: `sesweep aggregate TARGET`


def add_aggregate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sesweep aggregate``."""
    parser.add_argument("target", help="a sweep spec (experiments/NAME.yaml → results/NAME) or a results directory")
    parser.add_argument("--results", dest="results_root", type=Path, default=None, metavar="DIR",
                        help="results folder a spec's results are under (default results/, i.e. results/NAME)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS/tables)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON on stdout, and nothing else there; its keys are "
                             "stable: folder, files")


def run_aggregate(target: str | Path, *, results_root: Path | None = None, out: Path | None = None,
                  confidence: float = 0.95) -> list[Path]:
    """Load a sweep, aggregate it and write its tables; returns the files written."""
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {confidence}")
    sweep = load_sweep(target, results_root)
    an = analyze(sweep, confidence)
    paths = write_tables(an, out if out is not None else sweep.results_dir / "tables")
    paths = [*paths, write_metrics(an, (out.parent if out is not None else sweep.results_dir) / "metrics.json")]
    from sesweep.runner.tracking import log_sweep_outputs  # on the sweep's MLflow run, when it is tracked

    log_sweep_outputs(sweep.results_dir, "tables", paths)
    return paths


#: what ``metrics.json`` holds per variant (DVC's ``dvc metrics show`` / ``dvc exp show`` read it)
HEADLINE = ("top1_err_mean", "top1_err_ci_lo", "top1_err_ci_hi", "n", "d_top1_err_mean", "params_mean",
            "se_params_mean", "macs_mean")


def write_metrics(an: Analysis, path: Path) -> Path:
    """The headline numbers as nested JSON ``{statistic: {variant: value}}``; missing values are null."""
    table = an.table
    doc = {col.removesuffix("_mean"): {str(v): (None if pd.isna(x) else float(x)) for v, x in table[col].items()}
           for col in HEADLINE if col in table.columns}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Aggregate a sweep's runs: mean ± CI per variant, paired deltas vs the baseline, paper-style tables."""
    try:
        paths = run_aggregate(args.target, results_root=args.results_root, out=args.out, confidence=args.confidence)
    except (SweepDataError, ValueError) as exc:
        print(f"sesweep aggregate: error: {exc}", file=sys.stderr)
        return 2
    folder = paths[0].parent if paths else Path(".")
    if getattr(args, "json", False):
        from sesweep.cli import print_json

        print_json(args, {"folder": str(folder), "files": [str(p) for p in paths]})
        return 0
    print(f"wrote {len(paths)} files to {folder}: {', '.join(sorted({p.stem for p in paths}))}")
    return 0
