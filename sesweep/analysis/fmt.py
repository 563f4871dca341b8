"""Every value formatter of the analysis, defined once: config values, numbers, intervals, p-values, counts.

Where two formatters print the same value differently they are both here, under names that say how: the
table cells' :func:`num` and :func:`signed` print a missing value as "—", the sentences' :func:`num_finite`
and :func:`signed_finite` are only ever given finite values; :func:`p_value` is a table cell ("0.049"),
:func:`p_phrase` a sentence's ("p=0.049").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd


def format_value(value: Any) -> str:
    """A config value as people write it: 16.0 → 16, "[2, 3]" stays, NaN → —."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def num(x: Any, digits: int = 2) -> str:
    """A table cell: ``digits`` decimals with a true minus sign (−); a missing value (None, NaN) is "—"."""
    return "—" if x is None or pd.isna(x) else f"{x:.{digits}f}".replace("-", "−")


def signed(x: Any, digits: int = 2) -> str:
    """A table cell with its sign (+0.31, −1.20); a missing value (None, NaN) is "—"."""
    return "—" if x is None or pd.isna(x) else f"{x:+.{digits}f}".replace("-", "−")


def num_finite(x: float) -> str:
    """Two decimals with a true minus sign, for a sentence's finite value (NaN would print as "nan")."""
    return f"{x:.2f}".replace("-", "−")


def signed_finite(x: float) -> str:
    """Two decimals with their sign and a true minus sign, for a sentence's finite value (NaN: "nan")."""
    return f"{x:+.2f}".replace("-", "−")


def num_or_blank(x: float | None) -> str:
    """A published number: two decimals (ASCII minus), blank for None (a level the paper has no number for)."""
    return "" if x is None else f"{x:.2f}"


def mean_ci(mean: Any, lo: Any, hi: Any, digits: int = 2) -> str:
    """"22.28 ± 0.31" (the 95% CI half-width); the bare mean when there is no CI (n = 1); "—" for n = 0."""
    if mean is None or pd.isna(mean):
        return "—"
    if lo is None or pd.isna(lo):
        return num(mean, digits)
    return f"{num(mean, digits)} ± {num((hi - lo) / 2, digits)}"


def p_value(p: Any) -> str:
    """A table cell: "0.049", "<0.001"; a missing p is "—"."""
    if p is None or pd.isna(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_cell(p: Any, n_pairs: Any, note: Any) -> str:
    """A p-value, or "n/a" where there were pairs but the t-test has no p (zero spread, one pair)."""
    if p is not None and not pd.isna(p):
        return p_value(p)
    return "n/a" if isinstance(note, str) and note and not pd.isna(n_pairs) and n_pairs > 0 else "—"


def p_phrase(p: float) -> str:
    """"p=0.049", "p<0.001": three decimals near the threshold, so 0.049 is never printed as 0.05."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


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


def count(value: float) -> str:
    """One parameter or MAC count as :func:`count_column` prints it alone."""
    return count_column([value])[0]
