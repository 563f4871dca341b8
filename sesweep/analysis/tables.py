"""Paper-style tables of a sweep (SENet TPAMI Tables 10–14 and one overall table) as CSV, Markdown, LaTeX.

Which tables a sweep gets follows from what it varies (the spec keys that differ between variants): a
ratio sweep gets Table 10, a squeeze sweep Table 11, and so on; any other factor gets a table of the same
shape named after its key. Every table has the paper's columns (top-1, top-5, params) and what a reader
needs to trust them: mean ± 95% CI half-width, n (finished of expected), the runs excluded, and the paired
difference to the baseline with its CI and p-value.

CSV files hold the numbers (one column per statistic, round-trippable: :mod:`.table_numbers`); Markdown and LaTeX
hold the same rows formatted for reading (:mod:`.table_display`). This module chooses the tables (one registry,
:data:`BUILDERS`, over the names of :mod:`sesweep.vocabulary`), builds, captions and writes them, and is
``sesweep aggregate``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from sesweep.analysis import published
from sesweep.analysis.equal_cost import ADAPTIVE_KEY, ADAPTIVE_KEYS, adaptive_variants
from sesweep.analysis.factors import (
    BASELINE_FAMILY,
    Analysis,
    baseline_contrasts,
    contrast_frame,
    contrasts,
    held_levels,
)
from sesweep.analysis.fmt import format_value
from sesweep.analysis.speed import speed_stats, variant_speeds
from sesweep.analysis.stats import PAIRED_METRICS
from sesweep.analysis.table_display import (  # noqa: F401  (ACTIVE_WIDTH_COLUMN … to_markdown: re-exported)
    ACTIVE_WIDTH_COLUMN,
    display,
    display_adaptive,
    display_speed,
    md_cell,
    significant_note,
    text_columns,
    to_latex,
    to_markdown,
)
from sesweep.analysis.table_numbers import (  # noqa: F401  (DATASET_CLASSES … classes_from_data_id: re-exported)
    DATASET_CLASSES,
    adaptive_table,
    class_count,
    classes_from_data_id,
    factor_table,
    group_levels,
    overall_table,
    shows_top5,
    speed_table,
)
from sesweep.vocabulary import (
    ADAPTIVE_TABLE,
    OVERALL_TABLE,
    PAPER_TABLES,
    factor_table_slug,
    short_name,
    table_choice_names,
)


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
#: speed per host and device, produced when the runs of a sweep ran on more than one
SPEED = TableChoice("speed", None, "speed per host and device (never averaged across them)")


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
        slug, number = factor_table_slug(key)
        title = f"Table {number} layout: {PAPER_TABLES[key][2]}" if key in PAPER_TABLES else f"{short_name(key)}"
        choices.append(TableChoice(slug, key, title, number))
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
    """Every name that selects a table: its slug, the vocabulary's aliases, its factor and table number."""
    return table_choice_names(choice.slug, choice.key, choice.number)


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


class _Context(NamedTuple):
    """What every table of one sweep shares: its class count, whether top-5 is shown, its published setting."""

    classes: int | None
    top5: bool
    setting: published.Setting


def _factor_or_overall(an: Analysis, choice: TableChoice, ctx: _Context) -> Table:
    numbers = overall_table(an) if choice.key is None else factor_table(an, choice.key)
    shown = display(numbers, an.baselines, top5=ctx.top5, alpha=an.alpha)
    extra, sources = published.columns(an, choice.key, list(numbers.get("variant", [])), ctx.setting)
    for name, values in extra.items():
        shown[name] = values
    return Table(choice, numbers, shown, caption(an, choice, top5=ctx.top5, classes=ctx.classes, notes=sources),
                 caption(an, choice, notes=sources, brief=True))


def _adaptive(an: Analysis, choice: TableChoice, ctx: _Context) -> Table:
    numbers = adaptive_table(an)
    return Table(choice, numbers, display_adaptive(numbers, alpha=an.alpha),
                 f"{adaptive_caption(an)} {significant_note(an.alpha)}.")


def _speed(an: Analysis, choice: TableChoice, ctx: _Context) -> Table:
    numbers = speed_table(an)
    return Table(choice, numbers, display_speed(numbers), f"Sweep {an.sweep.name}: {choice.title}. "
                 f"Means over the runs not timed while another worker shared the device. "
                 f"{speed_stats(an.sweep.runs).caveat}")


#: the one table registry: a table's name (:mod:`sesweep.vocabulary`; every factor's table is ``factor``) → its
#: builder; the names a ``tables:`` list may select it by are the vocabulary's (:func:`_names`)
BUILDERS: dict[str, Callable[[Analysis, TableChoice, _Context], Table]] = {
    "factor": _factor_or_overall, OVERALL_TABLE: _factor_or_overall, ADAPTIVE_TABLE: _adaptive, SPEED.slug: _speed}


def builder(choice: TableChoice) -> Callable[[Analysis, TableChoice, _Context], Table]:
    """The registry's builder of a chosen table."""
    return BUILDERS.get(choice.slug) or BUILDERS["factor"]


def build_tables(an: Analysis) -> tuple[list[Table], list[str]]:
    """Every table this sweep gets, plus notes on requested tables it cannot produce."""
    choices, notes = choose_tables(an.factors, an.sweep.spec.get("tables"), adaptive=bool(adaptive_variants(an)))
    classes = class_count(an)
    ctx = _Context(classes, shows_top5(classes), published.sweep_setting(an, classes))
    tables = [builder(choice)(an, choice, ctx) for choice in choices]
    speeds = speed_stats(an.sweep.runs)
    if not variant_speeds(an.sweep.runs) and not speeds.table.empty:  # several devices: speed only per device
        tables.append(builder(SPEED)(an, SPEED, ctx))
    return tables, notes


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
    family = sum(c.comparison.family_size > 0 for c in baseline_contrasts(an)) if an.baselines else 0
    base = (f" Δ: paired difference to {ref} over matched seeds [95% CI]; p: two-sided paired t-test, raw and "
            f"Holm–Bonferroni adjusted over the family '{BASELINE_FAMILY}' ({family} comparisons: every variant vs its "
            f"baseline, the same p in every table); {significant_note(an.alpha)}; n/a: the same "
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
        stem.with_suffix(".md").write_text(f"**{md_cell(t.caption)}**\n\n{to_markdown(t.shown)}")
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
