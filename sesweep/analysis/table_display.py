"""A sweep's tables as text: the numeric tables (:mod:`.table_numbers`) formatted for reading, then written as
GitHub Markdown or booktabs LaTeX (the HTML report renders the same formatted frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from sesweep.analysis.equal_cost import INTERPOLATED
from sesweep.analysis.fmt import count_column, format_value, mean_ci, num, p_cell, signed
from sesweep.analysis.stats import holm
from sesweep.vocabulary import COST_FACTOR_COLUMNS

#: appended to a Δ whose Holm-adjusted p is below α (captions say so: :func:`significant_note`)
SIGNIFICANT_MARK = "*"


def significant_note(alpha: float = 0.05) -> str:
    return f"{SIGNIFICANT_MARK}: Holm-adjusted p < {alpha:g}, significant after the correction for its family"


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
               "se_params",
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
    if "se_params" in frame.columns and set(factor_cols) & COST_FACTOR_COLUMNS:
        # ECA-Net Table 2's layout: the operator's own cost, exact (ECA adds tens of parameters, SE-Var1 none;
        # "0.03k" would hide what the column is there to show)
        out.insert(list(out.columns).index("params") + 1 if "params" in out.columns else len(out.columns),
                   "attention params", [exact_count(x) for x in frame["se_params"]])
    for m, name, digits in (("infer_ms", "infer (ms)", 2), ("train_img_per_s", "train (img/s)", 0)):
        if m in frame.columns and frame[m].notna().any():   # no column of dashes (every run timed while shared)
            out[name] = [num(x, digits) for x in frame[m]]
    out["n"] = [_n_text(r) for _, r in frame.iterrows()]
    if (frame["n_diverged"] > 0).any() or (frame["n_failed"] > 0).any():
        out["excluded"] = [_excluded(r) for _, r in frame.iterrows()]
    bases = [baseline] if isinstance(baseline, str) else list(baseline or [])
    if "d_top1_err" in frame.columns and bases:
        is_base = frame["variant"].isin(bases)
        header = f"Δ top-1 vs {bases[0]}" if len(bases) == 1 else "Δ top-1 vs baseline (same arch)"
        out[header] = ["(baseline)" if b else _marked(_delta(r), r["p_holm"], alpha)
                       for b, (_, r) in zip(is_base, frame.iterrows(), strict=True)]
        out["p (paired t)"] = ["" if b else p_cell(r["p_t"], r["n_pairs"], r.get("delta_note"))
                               for b, (_, r) in zip(is_base, frame.iterrows(), strict=True)]
        out["p (Holm)"] = ["" if b else p_cell(r["p_holm"], r["n_pairs"], r.get("delta_note"))
                           for b, (_, r) in zip(is_base, frame.iterrows(), strict=True)]
    return out.reset_index(drop=True)


def exact_count(value: Any) -> str:
    """A parameter count in full with thousands separators ("4,032", "0"); "—" where unknown."""
    return "—" if value is None or pd.isna(value) else f"{round(float(value)):,}"


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
        return f"{signed(row[col])} (n={int(row[n_col])}{same})"
    return f"{signed(row[col])} [{signed(row[f'{col}_ci_lo'])}, {signed(row[f'{col}_ci_hi'])}]"


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
        out[f"learned r (stage {col.removeprefix('ratio_stage')})"] = [num(x, 1) for x in frame[col]]
    out["fixed-r top-1 at equal SE params"] = [num(x) if note == INTERPOLATED else note
                                               for x, note in zip(frame["fixed_top1_err"], frame["fixed_note"],
                                                                  strict=True)]
    out["Δ vs fixed-r curve"] = [signed(x) for x in frame["d_fixed_curve"]]
    out["nearest fixed r (SE params)"] = [
        "—" if pd.isna(r) else f"r={format_value(r)} ({c})"
        for r, c in zip(frame["nearest_r"], nearest, strict=True)]
    adjusted = holm(list(frame["p_t_nearest"]))
    out["Δ vs nearest [95% CI]"] = [_marked(_delta(r, "d_nearest", "n_pairs_nearest"), p, alpha)
                                    for (_, r), p in zip(frame.iterrows(), adjusted, strict=True)]
    out["p (paired t)"] = [p_cell(p, n, note) for p, n, note in
                           zip(frame["p_t_nearest"], frame["n_pairs_nearest"], frame["note_nearest"], strict=True)]
    out["p (Holm)"] = [p_cell(p, n, note) for p, n, note in
                       zip(adjusted, frame["n_pairs_nearest"], frame["note_nearest"], strict=True)]
    if (frame["n_diverged"] > 0).any() or (frame["n_failed"] > 0).any():
        out["excluded"] = [_excluded(r) for _, r in frame.iterrows()]
    return out.reset_index(drop=True)


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (first text columns left-aligned, the rest right-aligned)."""
    cols = [str(c) for c in frame.columns]
    align = [":--" if i < text_columns(frame) else "--:" for i in range(len(cols))]
    lines = ["| " + " | ".join(md_cell(c) for c in cols) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def md_cell(value: Any) -> str:
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


def display_speed(frame: pd.DataFrame) -> pd.DataFrame:
    """The speed table (:func:`speed_table`) as strings for reading."""
    out = pd.DataFrame({"variant": frame["variant"], "host": frame["host"], "device": frame["device_name"]})
    out["runs used"] = [f"{int(n)} of {int(t)}" for n, t in zip(frame["n"], frame["n_runs"], strict=True)]
    out["shared (excluded)"] = [str(int(x)) for x in frame["n_shared"]]
    out["infer (ms)"] = [num(x, 2) for x in frame["infer_ms_mean"]]
    out["train (img/s)"] = [num(x, 0) for x in frame["train_img_per_s_mean"]]
    return out
