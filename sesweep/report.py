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

import argparse
import base64
import datetime as dt
import html
import math
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sesweep.figures import DPI, FigureFile, is_adaptive_figure, make_figures
from sesweep.spec import RESULTS_VERSION
from sesweep.stats import (
    ADAPTIVE_KEY,
    INTERPOLATED,
    OUTSIDE_RANGE,
    TOO_FEW_FIXED,
    AdaptiveComparison,
    Analysis,
    Contrast,
    SweepDataError,
    adaptive_comparisons,
    adjust_family,
    analyze,
    contrasts,
    finished,
    format_value,
    load_sweep,
    ratio_label,
    recipe_mismatch,
    variant_labels,
)
from sesweep.tables import ADAPTIVE, Table, build_tables, count_column, text_columns, to_markdown
from sesweep.tracking import code_version

#: the Holm family of the adaptive variants' paired comparisons with their nearest fixed ratio
ADAPTIVE_FAMILY = "adaptive vs nearest fixed r"
#: with this many matched pairs or fewer, the exact sign-flip test cannot reach p < 0.05 (2/2ⁿ ≥ 0.0625)
SIGN_FLIP_POWERLESS = 5


# --------------------------------------------------------------------------------------------------
# content: one list of blocks, rendered twice (Markdown and HTML)


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class TableBlock:
    caption: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class FigureBlock:
    figure: FigureFile
    width_in: float


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""


Block = Para | Bullets | TableBlock | FigureBlock | Code


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


# --------------------------------------------------------------------------------------------------
# the summary


def _pts(x: float) -> str:
    return f"{x:.2f}".replace("-", "−")


def _p(p: float) -> str:
    """"p=0.049", "p<0.001": three decimals near the threshold, so 0.049 is never printed as 0.05."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


def _metric_words(metric: str) -> str:
    return {"top1_err": "top-1 error", "top5_err": "top-5 error", "test_loss": "test loss"}.get(metric, metric)


def describe_contrast(c: Contrast, alpha: float = 0.05) -> str:
    """One sentence: the paired difference, its CI, the tests and n — or why there is no test.

    "Significant" rests on the Holm-adjusted p of the contrast's family when it has one (the report's
    contrasts always do), else on the raw paired t p."""
    comp = c.comparison
    what = _metric_words(comp.metric)
    unit = " points" if comp.metric.endswith("_err") else ""
    d = comp.delta
    if comp.n == 0:
        why = f" ({comp.note})" if comp.note.startswith("not matched") else ""
        return f"{c.label}: no matched seeds finished in both{why}, so nothing to compare."
    if comp.n == 1:
        return (f"{c.label}: one matched seed only (Δ {what} {_signed(d.mean)}{unit}, seed {comp.seeds[0]}): "
                f"n=1 is too small for a test.")
    if math.isnan(comp.p_t):
        return (f"{c.label}: Δ {what} {_signed(d.mean)}{unit} on every one of n={comp.n} seeds; p and CI n/a: with "
                f"zero spread the paired t-test and its interval are undefined (sign-flip {_p(comp.p_perm)}).")
    adjusted = comp.family_size > 0 and not math.isnan(comp.p_holm)
    holm = (f", Holm-adjusted {_p(comp.p_holm)} over the {comp.family_size} comparisons of its family"
            if adjusted and comp.family_size > 1 else "")
    tests = f"paired t {_p(comp.p_t)}{holm}, sign-flip {_p(comp.p_perm)}, n={comp.n}"
    caveat = "; n=2 gives the t-test one degree of freedom, treat as indicative" if comp.n == 2 else ""
    p_decides = comp.p_holm if adjusted else comp.p_t
    if p_decides < alpha and d.mean != 0:
        verb = "lowers" if d.mean < 0 else "raises"
        lo, hi = sorted((abs(d.ci_lo), abs(d.ci_hi))) if d.ci_lo * d.ci_hi > 0 else (d.ci_lo, d.ci_hi)
        subject, _, ref = c.label.partition(" vs ")
        return (f"{subject} {verb} {what} by {_pts(abs(d.mean))}{unit} vs {ref} "
                f"(95% CI {_pts(lo)}–{_pts(hi)}, {tests}){caveat}.")
    return (f"{c.label}: no significant difference in {what} (Δ {_signed(d.mean)}{unit}, 95% CI "
            f"{_signed(d.ci_lo)} to {_signed(d.ci_hi)}, {tests}){caveat}.")


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def summary_items(an: Analysis, expected: int | None, notes: Sequence[str]) -> list[str]:
    """The automatic summary: coverage, exclusions, then every contrast, then caveats."""
    runs = an.sweep.runs
    items = [_coverage(an, expected)]
    unseen = [str(v.get("name")) for v in an.sweep.manifest.get("variants", []) if isinstance(v, dict)
              and str(v.get("name")) not in an.order]
    if unseen:
        items.append(f"No run recorded yet for {len(unseen)} variant{'s' if len(unseen) > 1 else ''} of the "
                     f"manifest: {', '.join(unseen)}.")
    items += _exclusions(runs)
    labels = variant_labels(an)
    ranked = an.table.dropna(subset=["top1_err_mean"]).sort_values("top1_err_mean") \
        if "top1_err_mean" in an.table.columns else pd.DataFrame()
    if len(ranked) >= 2:
        best, worst = ranked.index[0], ranked.index[-1]
        items.append(f"Lowest mean top-1 error: {labels[best]} ({ranked.at[best, 'top1_err_mean']:.2f}%, "
                     f"n={int(ranked.at[best, 'n'])}); highest: {labels[worst]} "
                     f"({ranked.at[worst, 'top1_err_mean']:.2f}%, n={int(ranked.at[worst, 'n'])}).")
    found = contrasts(an, "top1_err") if "top1_err" in runs.columns else []
    items += [describe_contrast(c, an.alpha) for c in found]
    adaptive, paired = adaptive_items(an)
    items += adaptive
    found += paired
    families = _family_sizes(found)
    if families:
        listed = ", ".join(f"{name} ({m})" for name, m in families.items())
        items.append(f"Significance at α={an.alpha:g} rests on Holm–Bonferroni adjusted p-values, one family per "
                     f"table of comparisons: {listed}; raw and adjusted p are in comparisons.csv.")
    if any(2 <= c.comparison.n <= SIGN_FLIP_POWERLESS for c in found):
        items.append(f"With n ≤ {SIGN_FLIP_POWERLESS} matched seeds the exact sign-flip test cannot reach "
                     f"p < 0.05 (its smallest p is 2/2ⁿ), so the paired t-test decides what is called significant; "
                     f"the sign-flip p is shown as a check that needs no normality assumption.")
    if an.baseline is None:
        items.append("No baseline variant (spec 'baseline:', a variant named resnet/baseline, or the one variant "
                     "without attention): no Δ vs baseline.")
    mismatch = recipe_mismatch(an.configs)
    if mismatch:
        items.append(f"Warning: the recipe differs between variants ({', '.join(mismatch)}): those variants are "
                     f"not matched, and only runs with the same recipe are paired.")
    items += list(an.sweep.warnings) + list(notes)
    return items


def _family_sizes(found: Sequence[Contrast]) -> dict[str, int]:
    """Family name → number of tested comparisons, for the families that hold a test."""
    return {c.comparison.family: c.comparison.family_size for c in found if c.comparison.family_size > 0}


def adaptive_items(an: Analysis) -> tuple[list[str], list[Contrast]]:
    """Per adaptive variant: its error and SE params against the fixed-r curve at equal SE params, then its
    paired comparison with the fixed ratio nearest in SE params (the only one with an interval, so the only
    one that may be called significant). Also returns those paired contrasts."""
    slots: list[str | None] = []   # None: where a paired sentence goes, once its family is adjusted
    paired: list[Contrast] = []
    for c in adaptive_comparisons(an):
        slots.append(equal_cost_sentence(c))
        if c.paired is not None and c.nearest is not None:
            label = (f"{c.variant} vs {ratio_label(an, c.nearest)} (the fixed ratio nearest in SE params, "
                     f"{_count(c.nearest_cost)})")
            paired.append(Contrast(ADAPTIVE_KEY, label, c.paired))
            slots.append(None)
    paired = adjust_family(paired, ADAPTIVE_FAMILY)
    described = iter([describe_contrast(c, an.alpha) for c in paired])
    return [item if item is not None else next(described) for item in slots], paired


def _count(value: float) -> str:
    return count_column([value])[0]


def equal_cost_sentence(c: AdaptiveComparison) -> str:
    """"learned-w1 (learnable, cost weight 1) reaches 7.90% … at 6.000k SE params; the fixed-r curve at equal
    SE params gives 8.57%, …" — or why there is no fixed-r value at that cost."""
    who = f"{c.variant} ({c.kind}, cost weight {format_value(c.cost_weight)})"
    if c.top1.n == 0:
        return f"{who}: no finished run yet."
    head = (f"{who} reaches {c.top1.mean:.2f}% top-1 error (n={c.top1.n}) at {_count(c.se_params)} "
            f"{'allocated ' if c.kind == 'dynamic' else ''}SE params")
    if c.kind == "dynamic" and pd.notna(c.active_width):
        head += (f" (its soft mask computes every allocated unit; expected active width "
                 f"{100 * c.active_width:.0f}% of them per test image, a width, not a cost)")
    if c.note == INTERPOLATED:
        return (f"{head}; the fixed-r curve at equal SE params gives {c.fixed_at_cost:.2f}%, a difference of "
                f"{_signed(c.d_curve)} points (of means, interpolated in log SE params).")
    if c.note == OUTSIDE_RANGE:
        lo, hi = count_column([c.fixed_costs[0], c.fixed_costs[-1]])
        return f"{head}, outside the fixed-r range ({lo}–{hi} SE params): not extrapolated, no fixed-r value."
    if c.note == TOO_FEW_FIXED:
        return f"{head}; fewer than 2 fixed-r variants finished, so there is no fixed-r curve at equal cost."
    return f"{head}."


def _coverage(an: Analysis, expected: int | None) -> str:
    runs = an.sweep.runs
    done = len(finished(runs))
    if expected is not None:
        state = "complete" if done >= expected else "partial"
        return (f"{done} of {expected} expected runs finished ({state}); {len(runs)} recorded in runs.csv, "
                f"{len(an.order)} variants.")
    seeds = an.sweep.seeds
    hint = (f"; {len(an.order)} variants × {len(seeds)} seeds seen = {len(an.order) * len(seeds)} at least"
            if seeds else "")
    return f"{done} of {len(runs)} runs recorded in runs.csv finished (expected total unknown{hint})."


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
    blocks: list[Block] = [Para(_coverage(an, expected)), TableBlock("Runs per variant.", frame.astype(str))]
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
          "n/a. Significance rests on Holm–Bonferroni adjusted p-values, one family per table (all variants vs "
          "their baseline; each factor's levels vs its reference level; the adaptive variants vs their nearest "
          "fixed ratio). Paper tables hold the other attention factors at the sweep's base value (else the "
          "schema default), as their captions say. The exact sign-flip permutation p-value (all 2ⁿ sign "
          "patterns) and the raw and adjusted p are in comparisons.csv. The rank orders variants by mean top-1 "
          "error (1 = lowest).")


def build_sections(an: Analysis, tables: Sequence[Table], figures: Sequence[FigureFile], expected: int | None,
                   notes: Sequence[str]) -> tuple[str, list[Section]]:
    """The report's title and sections, renderer-independent."""
    spec = an.sweep.spec
    title = f"Sweep report: {an.sweep.name}"
    head = Section("", [Para(str(spec.get("description") or "").strip())] if spec.get("description") else [], 0)
    sections = [head, Section("Summary", [Bullets(tuple(summary_items(an, expected, notes)))]),
                runs_section(an, expected)]
    sections.append(Section("Tables", [TableBlock(t.caption, t.shown) for t in tables if t.choice is not ADAPTIVE]))
    adaptive = adaptive_section(tables, figures)
    if adaptive is not None:
        sections.append(adaptive)
    figures = [f for f in figures if not is_adaptive_figure(f)]
    if figures:
        sections.append(Section("Figures", [FigureBlock(f, _width_in(f)) for f in figures]))
    sections.append(environment_section(an))
    spec_text = an.sweep.spec_text or "(spec file not found: only the results directory was given)"
    where = f" ({an.sweep.spec_path})" if an.sweep.spec_path else ""
    sections.append(Section(f"Sweep spec{where}", [Code(spec_text.rstrip(), "yaml")]))
    sections.append(Section("Statistics", [Para(METHOD)]))
    return title, sections


ADAPTIVE_INTRO = ("Adaptive SE learns each block's width (learnable) or picks it per input (dynamic) under a cost "
                  "weight w. Each adaptive variant is compared with the sweep's fixed-ratio SE variants at equal "
                  "SE parameters: the fixed-r curve interpolated at its cost (a difference of means), and the fixed "
                  "ratio nearest in SE params, paired by seed (with a CI and a test). Every variant is placed at "
                  "the SE params its net has: a dynamic variant's soft mask saves no computation, so it sits at "
                  "its allocated SE params, with its expected active width in a column of its own.")


def adaptive_section(tables: Sequence[Table], figures: Sequence[FigureFile]) -> Section | None:
    """The adaptive comparison's table and figures in one section; None for a sweep without adaptive variants."""
    blocks: list[Block] = [TableBlock(t.caption, t.shown) for t in tables if t.choice is ADAPTIVE]
    blocks += [FigureBlock(f, _width_in(f)) for f in figures if is_adaptive_figure(f)]
    return Section("Adaptive SE vs the fixed ratio of equal cost", [Para(ADAPTIVE_INTRO), *blocks]) if blocks else None


def _width_in(figure: FigureFile) -> float:
    """The figure's width in inches, read from the PNG header (the report shows it at paper size)."""
    with figure.png.open("rb") as fh:
        header = fh.read(24)
    return int.from_bytes(header[16:20], "big") / DPI


# --------------------------------------------------------------------------------------------------
# renderers


def render_markdown(title: str, sections: Sequence[Section], figure_dir: str = "figures") -> str:
    lines = [f"# {title}", ""]
    for s in sections:
        if s.title:
            lines += [f"{'#' * s.level} {s.title}", ""]
        for b in s.blocks:
            lines += [*_md_block(b, figure_dir), ""]
    return "\n".join(lines).rstrip() + "\n"


def _md_block(b: Block, figure_dir: str) -> list[str]:
    if isinstance(b, Para):
        return [b.text]
    if isinstance(b, Bullets):
        return [f"- {item}" for item in b.items]
    if isinstance(b, TableBlock):
        return [f"**{b.caption}**", "", to_markdown(b.frame).rstrip()]
    if isinstance(b, FigureBlock):
        f = b.figure
        return [f"![{f.slug}]({figure_dir}/{f.png.name})", "", f"*{f.caption}* ([PDF]({figure_dir}/{f.pdf.name}))"]
    return [f"```{b.lang}", b.text, "```"]


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1240px; margin: 2em auto;
       padding: 0 1.5em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .85em; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .55em; border-bottom: 1px solid #e3e3e3; text-align: right; white-space: nowrap; }
th { border-bottom: 2px solid #999; background: #fafafa; }
td.text, th.text { text-align: left; }
.caption { font-size: .88em; color: #444; margin-bottom: .3em; max-width: 75em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .88em; color: #444; max-width: 48em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: .85em; }
.scroll { overflow-x: auto; }
li { margin: .25em 0; }
"""


def render_html(title: str, sections: Sequence[Section]) -> str:
    """A single HTML file: CSS inline, figures as data: URIs, nothing fetched from anywhere."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
             f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        if s.title:
            parts.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
        parts += [_html_block(b) for b in s.blocks]
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def _html_block(b: Block) -> str:
    if isinstance(b, Para):
        return f"<p>{html.escape(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, TableBlock):
        table = html_table(b.frame)
        return f'<div class="caption">{html.escape(b.caption)}</div>\n<div class="scroll">{table}</div>'
    if isinstance(b, FigureBlock):
        data = base64.b64encode(b.figure.png.read_bytes()).decode("ascii")
        width = round(b.width_in * 150)
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b.figure.slug)}" '
                f'style="width:{width}px"><figcaption>{html.escape(b.figure.caption)}</figcaption></figure>')
    return f"<pre><code>{html.escape(b.text)}</code></pre>"


def html_table(frame: pd.DataFrame) -> str:
    """A plain HTML table; label columns (up to the variant) left-aligned, numbers right-aligned."""
    k = text_columns(frame)

    def cell(tag: str, i: int, value: object) -> str:
        cls = ' class="text"' if i < k else ""
        return f"<{tag}{cls}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, c) for i, c in enumerate(frame.columns))
    rows = ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>"
            for r in frame.itertuples(index=False)]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# --------------------------------------------------------------------------------------------------
# entry points


@dataclass(frozen=True)
class ReportFiles:
    """What ``sesweep report`` wrote."""

    markdown: Path
    html: Path
    figures: tuple[FigureFile, ...]


def expected_runs(spec_path: Path | None) -> tuple[int | None, str]:
    """The number of runs the sweep's plan expands to (via :mod:`sesweep.plan`), or None and why not.

    Used only when neither the caller nor the runner's ``manifest.json`` says how many runs there are.
    """
    if spec_path is None:
        return None, ""
    try:
        from sesweep.plan import load_plan
        from sesweep.spec import SpecError
    except ImportError:
        return None, ""
    try:
        return len(load_plan(spec_path).runs), ""
    except (SpecError, OSError, ValueError) as exc:
        return None, f"The expected run count is unknown: the spec does not expand to a plan ({exc})."


def write_report(an: Analysis, out_dir: Path, *, expected: int | None = None, figures: bool = True,
                 notes: Sequence[str] = ()) -> ReportFiles:
    """Draw the figures and write report.md and report.html for an analysed sweep into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables, table_notes = build_tables(an)
    figs, fig_notes = make_figures(an, out_dir / "figures") if figures else ([], [])
    title, sections = build_sections(an, tables, figs, expected, [*notes, *table_notes, *fig_notes])
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(render_markdown(title, sections), encoding="utf-8")
    page.write_text(render_html(title, sections), encoding="utf-8")
    return ReportFiles(md, page, tuple(figs))


def run_report(target: str | Path, *, results_root: Path | None = None, out: Path | None = None,
               reports_root: Path | None = None, expected: int | None = None, confidence: float = 0.95,
               figures: bool = True) -> ReportFiles:
    """Load, analyse and report a sweep.

    ``expected`` (the number of runs the sweep should have) defaults to the runner's manifest.json, else
    to the spec's plan when it can be expanded.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {confidence}")
    sweep = load_sweep(target, results_root)
    an = analyze(sweep, confidence)
    note = ""
    if expected is None:
        expected = sweep.expected
    if expected is None:
        expected, note = expected_runs(sweep.spec_path)
    folder = out if out is not None else (reports_root or Path("reports")) / sweep.name
    return write_report(an, folder, expected=expected, figures=figures, notes=[note] if note else [])


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sesweep report``."""
    parser.add_argument("target", help="a sweep spec (experiments/NAME.yaml → results/NAME) or a results directory")
    parser.add_argument("--results", dest="results_root", type=Path, default=None, metavar="DIR",
                        help="results folder a spec's results are under (default results/, i.e. results/NAME)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: reports/NAME)")
    parser.add_argument("--expected", type=int, default=None,
                        help="how many runs the sweep should have (default: from RESULTS/NAME/manifest.json, "
                             "else from expanding the spec)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--no-figures", action="store_true", help="tables and summary only (faster)")


def cmd_report(args: argparse.Namespace) -> int:
    """Write reports/NAME/report.md and a self-contained report.html (tables, figures, summary)."""
    try:
        files = run_report(args.target, results_root=args.results_root, out=args.out, expected=args.expected,
                           confidence=args.confidence, figures=not args.no_figures)
    except (SweepDataError, ValueError) as exc:
        print(f"sesweep report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {files.markdown}, {files.html} and {len(files.figures)} figures (PNG + PDF) "
          f"in {files.markdown.parent / 'figures'}")
    return 0
