"""The names a sweep file's ``tables:`` and ``figures:`` lists may use — their one definition.

:mod:`.analysis.tables` and :mod:`.analysis.figures` pick what to draw with these names; :mod:`.plan`
rejects a name outside them when the sweep file is loaded (exit 2, before any run), listing the allowed
ones. A name that is valid in general but whose factor this sweep does not vary (``stages`` in a ratio
sweep) loads, and the report notes that it could not produce it. No heavy imports here (no torch, pandas
or matplotlib): loading a sweep file must stay fast.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sesweep.spec import SpecError, schema_keys


@dataclass(frozen=True)
class Factor:
    """One factor's names everywhere: its paper table (number, source), the slug of its table and of its figure,
    its short label, its title, and which figure family draws it (``factor``: a bar per level; ``operators``:
    top-1 error against attention parameters). The analysis, the figures, the report and ``published.py`` read
    these; nothing else keeps a factor → name map."""

    key: str
    short: str
    table: int | None = None      # its table number in ``paper`` (also the key of its published numbers)
    slug: str = ""                # file stem part of its table: table10_ratio
    title: str = ""
    figure: str = ""              # slug of its figure
    paper: str = "SENet TPAMI"
    figure_kind: str = "factor"
    #: its table shows the attention parameters of each level (ECA-Net Table 2's layout)
    attention_cost: bool = False


#: every factor with a name of its own, paper tables first (SENet TPAMI Tables 10-14, ECA-Net Table 2)
FACTORS: dict[str, Factor] = {f.key: f for f in (
    Factor("model.attention.reduction", "r", 10, "ratio", "reduction ratio r", "ratio"),
    Factor("model.attention.pool", "pool", 11, "squeeze", "squeeze operator", "squeeze"),
    Factor("model.attention.gate", "gate", 12, "excitation", "excitation operator", "gate"),
    Factor("model.attention.stages", "stages", 13, "stages", "SE in different stages", "stages"),
    Factor("model.attention.placement", "placement", 14, "integration", "integration strategy", "integration"),
    Factor("model.attention.excitation", "operator", 2, "operators", "ECA-Net's excitation operators",
           "operators", "ECA-Net", "operators", attention_cost=True),
    Factor("model.attention.adaptive", "adaptive"),
    Factor("model.attention.kind", "attention"),
    Factor("model.arch", "arch"),
)}
#: factor key → (paper table number, slug, title): the factors with a paper table
PAPER_TABLES: dict[str, tuple[int, str, str]] = {
    f.key: (f.table, f.slug, f.title) for f in FACTORS.values() if f.table is not None}
#: paper table number → the factor key its published numbers vary (``analysis.published``)
PUBLISHED_TABLES: dict[int, str] = {f.table: f.key for f in FACTORS.values() if f.table is not None}
#: the table columns (short names) of factors whose tables show attention parameters
COST_FACTOR_COLUMNS = frozenset(f.short for f in FACTORS.values() if f.attention_cost)
#: factor key → the slug of its figure
FIGURE_SLUGS: dict[str, str] = {f.key: f.figure for f in FACTORS.values() if f.figure}
#: the table of every variant, and the table of adaptive SE against the fixed ratio of equal cost
OVERALL_TABLE = "overall"
ADAPTIVE_TABLE = "adaptive"
#: names a spec's ``tables:`` list may use for each table, besides its slug and number
ALIASES: dict[str, tuple[str, ...]] = {
    "operators": ("operator", "eca", "eca_table2"),
    "ratio": ("reduction", "r"), "squeeze": ("pool",), "excitation": ("gate",), "stages": ("stage",),
    "integration": ("placement",), OVERALL_TABLE: ("all", "variants", "summary"),
    ADAPTIVE_TABLE: ("learned", "learnable", "dynamic", "cost_weight", "equal_cost"),
}

#: figure kind → names a spec's ``figures:`` list may use for it
FIGURE_NAMES: dict[str, tuple[str, ...]] = {
    "ratio": ("ratio", "reduction", "r", "table10"),
    "pareto": ("pareto", "cost", "accuracy_cost", "params", "macs", "latency", "infer_ms"),
    "curves": ("curves", "learning_curves", "learning"),
    "excitation": ("excitation", "excitations", "fig6", "activations"),
    "adaptive": ("adaptive", "learned", "learnable", "dynamic", "widths", "equal_cost", "cost_weight"),
    "sequential": ("sequential", "confidence_sequence", "confidence_sequences"),
}

#: short names of the usual factors, as the papers write them
SHORT_NAMES = {f.key: f.short for f in FACTORS.values()}


def short_name(key: str) -> str:
    return SHORT_NAMES.get(key, key.rpartition(".")[2])


# --------------------------------------------------------------------------------------------------
# tables


def factor_table_slug(key: str) -> tuple[str, int | None]:
    """The file stem of a factor's table (``table10_ratio``, ``factor_arch``) and its SENet table number."""
    if key in PAPER_TABLES:
        number, slug, _ = PAPER_TABLES[key]
        return f"table{number}_{slug}", number
    return "factor_" + key.replace("model.", "").replace("attention.", "").replace(".", "_"), None


def table_choice_names(slug: str, key: str | None = None, number: int | None = None) -> set[str]:
    """Every name that selects one table: its file stem and slug, their aliases, its factor's key and short
    name, its SENet table number (``10``, ``table10``, ``table 10``)."""
    short = slug.split("_", 1)[-1]
    names = {slug, short, *ALIASES.get(short, ())}
    if key:
        names |= {key, short_name(key)}
    if number is not None:
        names |= {str(number), f"table{number}", f"table {number}"}
    return names


def table_factor_keys() -> list[str]:
    """Spec keys that can have a table of their own when a sweep varies them (``model.attention.kind`` is the
    baseline row of every table; the seed is never varied between variants)."""
    return [k for k in schema_keys() if k not in ("seed", "model.attention.kind")]


def table_names() -> list[str]:
    """Every name a ``tables:`` list may use (lower case), sorted."""
    names = table_choice_names(OVERALL_TABLE) | table_choice_names(ADAPTIVE_TABLE)
    for key in table_factor_keys():
        names |= table_choice_names(*_slug_key_number(key))
    return sorted(names)


def _slug_key_number(key: str) -> tuple[str, str, int | None]:
    slug, number = factor_table_slug(key)
    return slug, key, number


# --------------------------------------------------------------------------------------------------
# figures


def factor_figure_names(key: str) -> tuple[str, ...]:
    """Names that select the figure of one factor (not the ratio: that is the ``ratio`` figure)."""
    names = [key, short_name(key), key.rpartition(".")[2]]
    if key in PAPER_TABLES:
        number, slug, _ = PAPER_TABLES[key]
        names += [slug, f"table{number}"]
    if key in ("model.attention.gate", "model.attention.excitation"):
        names = [n for n in names if n != "excitation"]  # "excitation" is the Fig. 6 plot
    return tuple(names)


def figure_factor_keys() -> list[str]:
    """Spec keys that can have a figure of their own: the model's, but the attention kind and the ratio."""
    return [k for k in schema_keys() if k.startswith("model.")
            and k not in ("model.attention.kind", "model.attention.reduction")]


def figure_names() -> list[str]:
    """Every name a ``figures:`` list may use (lower case), sorted."""
    names = {n for kind in FIGURE_NAMES.values() for n in kind}
    names |= {n for key in figure_factor_keys() for n in factor_figure_names(key)}
    return sorted(names)


# --------------------------------------------------------------------------------------------------
# checking a sweep file's lists


def check_names(field: str, requested: Sequence[Any]) -> None:
    """Raise :class:`SpecError` (one line: the field, the name, the closest name, the allowed names) for the
    first entry of a ``tables:`` or ``figures:`` list that no table or figure is ever called."""
    allowed = set(table_names() if field == "tables" else figure_names())
    for i, name in enumerate(requested):
        wanted = str(name).strip().lower()
        if wanted in allowed:
            continue
        close = difflib.get_close_matches(wanted, sorted(allowed), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        what = "table" if field == "tables" else "figure"
        raise SpecError(f"{field}[{i}]", f"{name!r} is not a {what} name{hint}; allowed: {describe(field)}")


def describe(field: str) -> str:
    """The allowed names of ``tables:`` or ``figures:`` for an error message: each named table or figure with
    its other names, then the per-factor names."""
    if field == "tables":
        named = [(OVERALL_TABLE, ALIASES[OVERALL_TABLE]), (ADAPTIVE_TABLE, ALIASES[ADAPTIVE_TABLE])]
        named += [(slug, (*ALIASES.get(slug, ()), f"table{number}", short_name(key)))
                  for key, (number, slug, _) in PAPER_TABLES.items()]
        factors = "a table per other varied spec key: its dotted key, its last part or factor_<key> " \
                  "(model.arch, arch, factor_arch; recipe.lr, lr, factor_recipe_lr)"
    else:
        named = [(kind, names[1:]) for kind, names in FIGURE_NAMES.items()]
        named += [(short_name(key), _others(factor_figure_names(key), short_name(key))) for key in PAPER_TABLES
                  if key != "model.attention.reduction"]
        factors = "a figure per other varied model key: its dotted key or its last part (model.arch, arch)"
    listed = "; ".join(f"{name} ({', '.join(_unique(others, name))})" if others else name for name, others in named)
    return f"{listed}; or {factors}"


def _others(names: Iterable[str], first: str) -> tuple[str, ...]:
    return tuple(n for n in names if n != first and "." not in n)


def _unique(names: Iterable[str], first: str) -> list[str]:
    return [n for n in dict.fromkeys(names) if n != first]
