"""One report per sweep: ``reports/NAME/report.md`` and a self-contained ``report.html``.

The report says what was run (the spec, runs done of expected, what failed and why), what came out
(the paper-style tables and the figures), what it means (an automatic summary that calls a difference
significant only when the paired t-test over matched seeds says so, and says when n is too small for any
test) and where it came from (Python, torch, device, precision, code version). It is re-generated from
partial sweeps as well: every number carries its n.

The HTML embeds its figures as base64 PNG and its tables as HTML, with a few lines of CSS and no external
resource, so it can be mailed or attached to a review as one file.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sesweep.analysis.coverage import coverage_sentence
from sesweep.analysis.factors import Analysis, contrasts
from sesweep.analysis.figures import PAPER_DIR, FigureFile, is_adaptive_figure, is_sequential_figure, make_figures
from sesweep.analysis.fmt import count_column, format_value
from sesweep.analysis.published import Setting, sweep_setting
from sesweep.analysis.report_render import (  # noqa: F401  (Para … html_table: the report's blocks, re-exported)
    Block,
    Bullets,
    Code,
    Contents,
    FigureBlock,
    Para,
    Section,
    TableBlock,
    figure_width_in,
    html_table,
    render_html,
    render_markdown,
)
from sesweep.analysis.report_sequential import optional_stopping_note, sequential_section
from sesweep.analysis.report_text import (  # noqa: F401  (describe_contrast … verdict_line: re-exported)
    adaptive_items,
    caveat_items,
    comparisons_section,
    describe_contrast,
    equal_cost_sentence,
    verdict_line,
    verdict_section,
)
from sesweep.analysis.stats import finished
from sesweep.analysis.tables import ADAPTIVE, Table, build_tables, class_count, shows_top5
from sesweep.results import code_version
from sesweep.run_identity import RESULTS_VERSION
from sesweep.vocabulary import FIGURE_SLUGS, short_name

# --------------------------------------------------------------------------------------------------
# what was run


def _exclusions(runs: pd.DataFrame) -> list[str]:
    out = []
    for status in ("diverged", "failed"):
        rows = runs[runs["status"] == status] if status == "diverged" else \
            runs[~runs["status"].isin(["finished", "diverged"])]
        if len(rows):
            which = ", ".join(f"{r['variant']} seed {r.get('seed', '?')}" for _, r in rows.iterrows())
            out.append(f"{len(rows)} run{'s' if len(rows) > 1 else ''} {status} ({which}): counted, "
                       f"excluded from the means.")
    return out


# --------------------------------------------------------------------------------------------------
# the other sections


def runs_section(an: Analysis, expected: int | None) -> Section:
    runs = an.sweep.runs
    table = an.table
    cols = ["n_runs", "n", "n_diverged", "n_failed", "seeds"] + [c for c in ("n_expected", "missing_seeds")
                                                                 if c in table.columns]
    frame = table[cols].rename(columns={"n_runs": "recorded", "n": "finished", "n_diverged": "diverged",
                                        "n_failed": "failed", "seeds": "finished seeds", "n_expected": "expected",
                                        "missing_seeds": "seeds not finished"})
    frame = frame.rename_axis("variant").reset_index().fillna("")
    unseen = [str(v.get("name")) for v in an.sweep.manifest.get("variants", []) if isinstance(v, dict)
              and str(v.get("name")) not in an.order]
    if unseen:
        unseen = [f"No run recorded yet for {len(unseen)} variant{'s' if len(unseen) > 1 else ''} of the manifest: "
                  f"{', '.join(unseen)}."]
    missing = [*unseen, *_exclusions(runs)]
    blocks: list[Block] = [Para(coverage_sentence(an, expected)), *([Bullets(tuple(missing))] if missing else []),
                           TableBlock("Runs per variant.", frame.astype(str))]
    bad = runs[runs["status"] != "finished"]
    if len(bad):
        keep = [c for c in ("variant", "seed", "status", "reason", "run_key") if c in bad.columns]
        blocks.append(TableBlock("Runs that did not finish (excluded from the means).",
                                 bad[keep].fillna("").astype(str).reset_index(drop=True)))
    return Section("Runs", blocks)


def _value_counts(runs: pd.DataFrame, col: str) -> str:
    if col not in runs.columns:
        return "not recorded"
    counts = runs[col].dropna().astype(str).value_counts()
    return ", ".join(f"{k} ({v} run{'s' if v > 1 else ''})" for k, v in counts.items()) or "not recorded"


def environment_section(an: Analysis) -> Section:
    runs = finished(an.sweep.runs)
    items = [f"Python (runs): {_value_counts(runs, 'python_version')}" if "python_version" in runs.columns else
             f"Python (this report): {platform.python_version()}",
             f"torch: {_value_counts(runs, 'torch_version')}",
             f"device: {_value_counts(runs, 'resolved_device')}",
             f"device model: {_value_counts(runs, 'device_name')}; host: {_value_counts(runs, 'host')}",
             f"precision: {_value_counts(runs, 'resolved_precision')}",
             f"torch CPU threads: {_value_counts(runs, 'threads')}" + (
                 " (the same experiment at each count, not the same bits: CPU sums split by thread)"
                 if "threads" in runs.columns and runs["threads"].nunique() > 1 else ""),
             f"inference batch (latency): {_value_counts(runs, 'infer_batch')}"]
    if "code_version" in runs.columns:
        items.append(f"code version (runs): {_value_counts(runs, 'code_version')}")
    items.append(f"results version (runs): {_value_counts(runs, 'results_version')}; this code writes "
                 f"{RESULTS_VERSION}")
    if "data_id" in runs.columns:
        items.append(f"data: {_value_counts(runs, 'data_id')}")
    items.append(f"code version (this report): {code_version()}")
    items.append(f"report generated {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} on "
                 f"{platform.platform(terse=True)}")
    return Section("Environment", [Bullets(tuple(items))])


METHOD = ("Each variant's numbers are the mean over its finished seeds ± the half-width of the 95% Student-t "
          "confidence interval (t quantile with n−1 degrees of freedom, from scipy); no interval for n=1. "
          "Runs that diverged or failed are counted and excluded. Δ is the paired difference to the reference "
          "over matched seeds: two runs pair only when they agree on the seed (same data order, the same initial "
          "weights for every shared layer) and on every spec key the comparison does not vary — an SE net is "
          "compared with the plain ResNet of its own architecture and recipe, never another. Its interval is the "
          "t interval of the per-seed differences and p the two-sided paired t-test; where every seed gives the "
          "same difference (errors move in steps of 1/N_test) the test and interval are undefined and shown as "
          "n/a. Significance rests on Holm–Bonferroni adjusted p-values, one family per kind of comparison (all "
          "variants vs their baseline: the Δ column of every table, with the same adjusted p wherever it is "
          "printed; each factor's levels vs its reference level; the adaptive variants vs their nearest fixed "
          "ratio). Paper tables hold the other attention factors at the sweep's base value (else the "
          "schema default), as their captions say. The exact sign-flip permutation p-value (all 2ⁿ sign "
          "patterns) and the raw and adjusted p are in comparisons.csv. The rank orders variants by mean top-1 "
          "error (1 = lowest).")


def build_sections(an: Analysis, tables: Sequence[Table], figures: Sequence[FigureFile], expected: int | None,
                   notes: Sequence[str]) -> tuple[str, list[Section]]:
    """The report's title and sections, renderer-independent, in the order of a results section: what was run,
    the contents, the headline table beside SENet's numbers and its figure, the verdicts, the other tables and
    figures, the caveats (once), every comparison, then the runs, environment, spec and every run."""
    spec = an.sweep.spec
    title = f"Sweep report: {an.sweep.name}"
    setting = sweep_setting(an, class_count(an))
    found = contrasts(an, "top1_err") if "top1_err" in an.sweep.runs.columns else []
    adaptive, paired = adaptive_items(an)
    headline = next((t for t in tables if t.choice.number is not None), None) or \
        next((t for t in tables if t.choice.key is None), None)
    sequential = sequential_section(an, figures)  # its figure is shown there, not among the others
    figures = [f for f in figures if not is_sequential_figure(f)]
    key = key_figure(figures, headline.choice.key if headline is not None else None)
    intro = [str(spec.get("description") or "").strip(), setting_sentence(an, expected, setting)]
    sections = [Section("", [Para(t) for t in intro if t], 0), Section("Contents", [Contents()])]
    if headline is not None:
        note = optional_stopping_note(an)
        shown: list[Block] = [TableBlock(f"{headline.caption} {note}" if note else headline.caption, headline.shown)]
        shown += [FigureBlock(key, figure_width_in(key))] if key else []
        beside = ", beside SENet" if any(str(c).startswith("SENet") for c in headline.shown.columns) else ""
        sections.append(Section(f"Headline: {headline.choice.title.replace(': ', ', ', 1)}{beside}", shown))
    sections.append(verdict_section(an, [*found, *paired], headline))
    rest = [TableBlock(t.brief or t.caption, t.shown) for t in tables if t is not headline and t.choice is not ADAPTIVE]
    if rest:
        sections.append(Section("Tables", [Para(READING), *rest]))
    others = [f for f in figures if f is not key]
    section = adaptive_section(tables, others)
    if section is not None:
        sections.append(section)
    if [f for f in others if not is_adaptive_figure(f)]:
        sections.append(Section("Figures", [FigureBlock(f, figure_width_in(f)) for f in others
                                            if not is_adaptive_figure(f)]))
    sections.append(Section("Caveats", [Bullets(tuple(caveat_items(an, [*found, *paired], setting, headline,
                                                                   notes)))]))
    sections.append(comparisons_section(an, found, adaptive))
    sections.append(Section("Statistics", [Para(METHOD)]))
    if sequential is not None:
        sections.append(sequential)
    sections += [runs_section(an, expected), environment_section(an)]
    spec_text = an.sweep.spec_text or "(spec file not found: only the results directory was given)"
    where = f" ({an.sweep.spec_path})" if an.sweep.spec_path else ""
    sections.append(Section(f"Sweep spec{where}", [Code(spec_text.rstrip(), "yaml")]))
    sections.append(appendix_section(an, shows_top5(setting.classes)))
    return title, sections




def key_figure(figures: Sequence[FigureFile], factor: str | None) -> FigureFile | None:
    """The figure of the headline table's factor (its ``factor``, else its slug), else the first figure but the
    adaptive ones (they stay together in their own section); None where there is none."""
    if factor:
        slug = FIGURE_SLUGS.get(factor, short_name(factor))
        match = [f for f in figures if getattr(f, "factor", None) == factor] or [f for f in figures if f.slug == slug]
        if match:
            return match[0]
    return next((f for f in figures if not is_adaptive_figure(f)), None)


def setting_sentence(an: Analysis, expected: int | None, setting: Setting) -> str:
    """"resnet20 on digits (10 classes), 6 epochs, cpu; 16 of 16 expected runs finished …"."""
    runs = an.sweep.runs
    subset = [f"{what} subset {int(v):,}" for what, col in (("train", "recipe.train_subset"),
                                                                   ("test", "recipe.test_subset"))
              if col in runs.columns for v in runs[col].dropna().unique()[:1]]
    epochs = f"{'/'.join(map(str, setting.epochs))} epochs" if setting.epochs else ""
    device = ", ".join(str(d) for d in finished(runs).get("resolved_device", pd.Series(dtype=str)).dropna().unique())
    what = ", ".join(p for p in [setting.describe(), *subset, epochs, device] if p)
    return f"Setting: {what}. {coverage_sentence(an, expected)}"


def appendix_section(an: Analysis, top5: bool) -> Section:
    """Every run recorded, one row each, in the report's variant order and by seed."""
    runs = an.sweep.runs
    position = {v: i for i, v in enumerate(an.order)}
    runs = runs.assign(_at=runs["variant"].map(position).fillna(len(position))).sort_values(
        ["_at", "seed"] if "seed" in runs.columns else ["_at"], kind="stable")

    def col(name: str) -> pd.Series:
        return runs[name] if name in runs.columns else pd.Series(math.nan, index=runs.index)

    frame = pd.DataFrame({"variant": runs["variant"].astype(str),
                          "seed": [format_value(s) for s in col("seed")], "status": col("status").astype(str)})
    frame["top-1 err (%)"] = [f"{x:.2f}" if pd.notna(x) else "—" for x in col("top1_err")]
    if top5:
        frame["top-5 err (%)"] = [f"{x:.2f}" if pd.notna(x) else "—" for x in col("top5_err")]
    frame["params"] = count_column(list(col("params")))
    frame["epochs"] = [format_value(float(x)) if pd.notna(x) else "—" for x in col("epochs_done")]
    frame["run key"] = [str(k)[:8] for k in col("run_key")]
    caption = (f"Every run recorded in runs.csv ({len(frame)}), in the report's variant order: its status, test error "
               f"(— where it did not finish), parameters, the epochs it completed and the start of its run key "
               f"(results/{an.sweep.name}/runs/<run key>.json holds the whole record).")
    return Section("Appendix: every run", [TableBlock(caption, frame.reset_index(drop=True))])


READING = ("Read these tables as the headline table: error in % on the test set, mean ± 95% CI half-width "
           "(Student t) over n finished seeds (of expected), diverged and failed runs excluded and counted; Δ: the "
           "paired difference to the baseline over matched seeds [95% CI]; p: two-sided paired t-test, raw and "
           "Holm-adjusted over the family of all variants vs their baseline (the same p in every table); n/a: the "
           "same difference on every seed (zero spread).")
ADAPTIVE_INTRO = ("Adaptive SE learns each block's width (learnable) or picks it per input (dynamic) under a cost "
                  "weight w. Each adaptive variant is compared with the sweep's fixed-ratio SE variants at equal "
                  "SE parameters: the fixed-r curve interpolated at its cost (a difference of means), and the fixed "
                  "ratio nearest in SE params, paired by seed (with a CI and a test). Every variant is placed at "
                  "the SE params its net has: a dynamic variant's soft mask saves no computation, so it sits at "
                  "its allocated SE params, with its expected active width in a column of its own.")


def adaptive_section(tables: Sequence[Table], figures: Sequence[FigureFile]) -> Section | None:
    """The adaptive comparison's table and figures in one section; None for a sweep without adaptive variants."""
    blocks: list[Block] = [TableBlock(t.caption, t.shown) for t in tables if t.choice is ADAPTIVE]
    blocks += [FigureBlock(f, figure_width_in(f)) for f in figures if is_adaptive_figure(f)]
    return Section("Adaptive SE vs the fixed ratio of equal cost", [Para(ADAPTIVE_INTRO), *blocks]) if blocks else None


# --------------------------------------------------------------------------------------------------
# entry points


@dataclass(frozen=True)
class ReportFiles:
    """What ``sesweep report`` wrote."""

    markdown: Path
    html: Path
    figures: tuple[FigureFile, ...]
    #: what the report says it could not do (tables or figures requested but not drawn, and why)
    notes: tuple[str, ...] = ()


def _remove_old_figures(out_dir: Path) -> None:
    """The report folder is the report's: figures of an earlier report (a variant since removed, a figure no
    longer drawn) must not linger beside the new ones, where DVC's plots and MLflow would pick them up."""
    for folder, suffix in ((out_dir / "figures", ".png"), (out_dir / PAPER_DIR, ".pdf")):
        for old in folder.glob(f"*{suffix}") if folder.is_dir() else ():
            old.unlink()


def write_report(an: Analysis, out_dir: Path, *, expected: int | None = None, figures: bool = True,
                 notes: Sequence[str] = ()) -> ReportFiles:
    """Draw the figures and write report.md and report.html for an analysed sweep into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables, table_notes = build_tables(an)
    _remove_old_figures(out_dir)
    figs, fig_notes = make_figures(an, out_dir / "figures") if figures else ([], [])
    title, sections = build_sections(an, tables, figs, expected, [*notes, *table_notes, *fig_notes])
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(render_markdown(title, sections), encoding="utf-8")
    page.write_text(render_html(title, sections), encoding="utf-8")
    return ReportFiles(md, page, tuple(figs), (*table_notes, *fig_notes))
