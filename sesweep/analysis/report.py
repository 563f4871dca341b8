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
import datetime as dt
import math
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sesweep.analysis.figures import DPI, PAPER_DIR, FigureFile, is_adaptive_figure, make_figures
from sesweep.analysis.published import Setting, describe_levels, direction_note, sweep_setting, table_for_key
from sesweep.analysis.report_render import (  # noqa: F401  (Para … html_table: the report's blocks, re-exported)
    Block,
    Bullets,
    Code,
    Contents,
    FigureBlock,
    Para,
    Section,
    TableBlock,
    html_table,
    render_html,
    render_markdown,
)
from sesweep.analysis.speed import speed_stats, variant_speeds
from sesweep.analysis.stats import (
    ADAPTIVE_KEY,
    BASELINE_FAMILY,
    INTERPOLATED,
    OUTSIDE_RANGE,
    TOO_FEW_FIXED,
    AdaptiveComparison,
    Analysis,
    Comparison,
    Contrast,
    SweepDataError,
    adaptive_comparisons,
    adjust_family,
    analyze,
    contrasts,
    factor_levels,
    finished,
    format_value,
    load_sweep,
    ratio_label,
    recipe_mismatch,
    short_name,
    variant_labels,
)
from sesweep.analysis.tables import ADAPTIVE, Table, build_tables, class_count, count_column, shows_top5
from sesweep.runner.tracking import code_version
from sesweep.spec import RESULTS_VERSION

#: the Holm family of the adaptive variants' paired comparisons with their nearest fixed ratio
ADAPTIVE_FAMILY = "adaptive vs nearest fixed r"
#: with this many matched pairs or fewer, the exact sign-flip test cannot reach p < 0.05 (2/2ⁿ ≥ 0.0625)
SIGN_FLIP_POWERLESS = 5
#: a recipe of fewer epochs is a short schedule, where SE's gain is not expected to show (DESIGN.md)
SHORT_SCHEDULE = 100


# --------------------------------------------------------------------------------------------------
# the comparisons


def _pts(x: float) -> str:
    return f"{x:.2f}".replace("-", "−")


def _p(p: float) -> str:
    """"p=0.049", "p<0.001": three decimals near the threshold, so 0.049 is never printed as 0.05."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


def _metric_words(metric: str) -> str:
    return {"top1_err": "top-1 error", "top5_err": "top-5 error", "test_loss": "test loss"}.get(metric, metric)


def describe_contrast(c: Contrast, alpha: float = 0.05, *, caveat: bool = True) -> str:
    """One sentence: the paired difference, its CI, the tests and n — or why there is no test.

    "Significant" rests on the Holm-adjusted p of the contrast's family when it has one (the report's
    contrasts always do), else on the raw paired t p. ``caveat``: end a sentence at n=2 with the one-degree-
    of-freedom caveat (the report states it once, in its caveats, instead)."""
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
    tail = "; n=2 gives the t-test one degree of freedom, treat as indicative" if caveat and comp.n == 2 else ""
    p_decides = comp.p_holm if adjusted else comp.p_t
    if p_decides < alpha and d.mean != 0:
        verb = "lowers" if d.mean < 0 else "raises"
        lo, hi = sorted((abs(d.ci_lo), abs(d.ci_hi))) if d.ci_lo * d.ci_hi > 0 else (d.ci_lo, d.ci_hi)
        subject, _, ref = c.label.partition(" vs ")
        return (f"{subject} {verb} {what} by {_pts(abs(d.mean))}{unit} vs {ref} "
                f"(95% CI {_pts(lo)}–{_pts(hi)}, {tests}){tail}.")
    return (f"{c.label}: no significant difference in {what} (Δ {_signed(d.mean)}{unit}, 95% CI "
            f"{_signed(d.ci_lo)} to {_signed(d.ci_hi)}, {tests}){tail}.")


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "−")


def comparisons_section(an: Analysis, found: Sequence[Contrast], adaptive: Sequence[str]) -> Section:
    """Every paired comparison in one sentence, grouped by Holm family (the caveats they share are stated once,
    in the Caveats section); the adaptive variants' equal-cost sentences with their family."""
    blocks: list[Block] = [Para(
        f"Each sentence: the paired difference in top-1 error over matched seeds, its 95% CI, the paired t-test (raw "
        f"and Holm-adjusted over its family) and the sign-flip test. Significant: Holm-adjusted p < {an.alpha:g}.")]
    for family, items in _families(c for c in found if c.factor != ADAPTIVE_KEY).items():
        many = "s" if len(items) > 1 else ""
        blocks += [Para(f"{_family_title(an, family, items)} — {len(items)} comparison{many}:"),
                   Bullets(tuple(describe_contrast(c, an.alpha, caveat=False) for c in items))]
    if adaptive:
        blocks += [Para("Adaptive SE against the fixed ratios of equal cost:"), Bullets(tuple(adaptive))]
    return Section("Comparisons", blocks)


def _families(found: Iterable[Contrast]) -> dict[str, list[Contrast]]:
    out: dict[str, list[Contrast]] = {}
    for c in found:
        out.setdefault(c.comparison.family or BASELINE_FAMILY, []).append(c)
    return out


def _reference(c: Contrast) -> str:
    """"r=16" of "r=4 vs r=16 (pool=avg)"; "r=4" of "learned vs r=4 (the fixed ratio nearest …)"."""
    return c.label.partition(" vs ")[2].split(" (")[0]


def _family_title(an: Analysis, family: str, items: Sequence[Contrast]) -> str:
    """"vs resnet", "r (vs r=16)", "adaptive (vs the nearest fixed r)": what a family compares."""
    if family == BASELINE_FAMILY:
        return f"vs {an.baseline}" if len(an.baselines) == 1 else "vs baseline (same architecture and recipe)"
    if family == ADAPTIVE_FAMILY:
        return "adaptive (vs the fixed r nearest in SE params)"
    refs = {_reference(c) for c in items}
    name = short_name(items[0].factor) if items[0].factor else family
    return f"{name} (vs {refs.pop()})" if len(refs) == 1 else name


def verdict_line(an: Analysis, family: str, items: Sequence[Contrast]) -> str:
    """One line per family: which levels are indistinguishable from the reference here (all Holm p ≥ α), which
    are better or worse and by how much, and which have no test (one seed, zero spread)."""
    refs = [_reference(c) for c in items]
    one_ref = len(set(refs)) == 1

    def who(c: Contrast, ref: str) -> str:
        subject = c.label.partition(" vs ")[0]
        subject = c.comparison.variant if ", " in subject else subject   # "r=4, adaptive=learnable, …": its name
        return subject if one_ref else f"{subject} (vs {ref})"

    same, parts, untested = [], [], []
    for c, ref in zip(items, refs, strict=True):
        comp, d = c.comparison, c.comparison.delta.mean
        if comp.n == 0:
            untested.append(f"{who(c, ref)} no matched seeds")
        elif comp.n == 1:
            untested.append(f"{who(c, ref)} one matched seed only (Δ {_signed(d)}, no test)")
        elif math.isnan(comp.p_t):
            seeds = "both seeds" if comp.n == 2 else f"all {comp.n} seeds"
            untested.append(f"{who(c, ref)} {_signed(d)} points on {seeds}, no test (zero spread)")
        elif _p_decides(comp) < an.alpha and d != 0:
            parts.append(f"{who(c, ref)} {'better' if d < 0 else 'worse'} than {ref} by {_pts(abs(d))} points "
                         f"(Holm {_p(_p_decides(comp))}, n={comp.n})")
        else:
            same.append(c)
    if same:
        ds = sorted(c.comparison.delta.mean for c in same)
        ns = sorted({c.comparison.n for c in same})
        delta = f"Δ {_signed(ds[0])}" + (f" to {_signed(ds[-1])}" if len(ds) > 1 else "")
        p = f"Holm {_p(_p_decides(same[0].comparison))}" if len(same) == 1 else f"all Holm p ≥ {an.alpha:g}"
        n = f"n={ns[0]}" + (f"–{ns[-1]}" if len(ns) > 1 else "")
        target = f"from {refs[0]}" if one_ref else "from their references"
        parts.insert(0, f"{', '.join(who(c, _reference(c)) for c in same)} indistinguishable {target} here "
                        f"({delta} points, {p}, {n})")
    return f"{_family_title(an, family, items)}: {'; '.join(parts + untested)}."


def _p_decides(comp: Comparison) -> float:
    """The p that decides significance: Holm-adjusted within the family when adjusted, else the raw t p."""
    return comp.p_holm if comp.family_size > 0 and not math.isnan(comp.p_holm) else comp.p_t


def verdict_section(an: Analysis, found: Sequence[Contrast], headline: Table | None) -> Section:
    """The short answer: the best and worst variant, then one line per family of comparisons, then what SENet
    found at the headline factor's levels (the direction a reader may hold the sweep against)."""
    blocks: list[Block] = []
    labels = {v: v if ", " in label else label for v, label in variant_labels(an).items()}
    ranked = an.table.dropna(subset=["top1_err_mean"]).sort_values("top1_err_mean") \
        if "top1_err_mean" in an.table.columns else pd.DataFrame()
    if len(ranked) >= 2:
        best, worst = ranked.index[0], ranked.index[-1]
        blocks.append(Para(f"Lowest mean top-1 error: {labels[best]} ({ranked.at[best, 'top1_err_mean']:.2f}%, "
                           f"n={int(ranked.at[best, 'n'])}); highest: {labels[worst]} "
                           f"({ranked.at[worst, 'top1_err_mean']:.2f}%, n={int(ranked.at[worst, 'n'])}). "
                           f"Significant: Holm-adjusted p < {an.alpha:g} within each family of comparisons."))
    lines = [verdict_line(an, family, items) for family, items in _families(found).items()]
    table = table_for_key(headline.choice.key) if headline is not None else None
    if table is not None and headline is not None and headline.choice.key:
        paper = describe_levels(table, factor_levels(an, headline.choice.key))
        lines += [f"{paper}{direction(an, found, headline, table)}"] if paper else []
    blocks.append(Bullets(tuple(lines)) if lines else Para("No paired comparison: no baseline and no factor levels."))
    return Section("Verdict", blocks)


def direction(an: Analysis, found: Sequence[Contrast], headline: Table, table: int) -> str:
    """The headline rows' Δ vs the baseline against the side of ResNet-50 SENet's levels are on
    (:func:`sesweep.analysis.published.direction_note`)."""
    rows = [str(v) for v in headline.numbers.get("variant", []) if not an.is_baseline(str(v))]
    ours = [c.comparison for c in found if c.factor is None and c.comparison.variant in rows and c.comparison.n > 0]
    k = sum(_p_decides(c) < an.alpha for c in ours if not math.isnan(_p_decides(c)))
    return direction_note(table, [an.configs.at[v, headline.choice.key] for v in rows], [c.delta.mean for c in ours],
                          k, an.baseline if len(an.baselines) == 1 else "their baseline")


def caveat_items(an: Analysis, found: Sequence[Contrast], setting: Setting, headline: Table | None,
                 notes: Sequence[str]) -> list[str]:
    """What limits every reading of this sweep, each said once (not once per comparison)."""
    items = []
    tested = [c.comparison.n for c in found if c.comparison.n >= 2]
    if 2 in tested:
        k = tested.count(2)
        who = "Every tested comparison" if k == len(tested) else f"{k} of the {len(tested)} tested comparisons"
        items.append(f"{who} rests on n=2 matched seeds: the paired t-test then has one degree of freedom (its 95% "
                     f"CI spans ±12.7 standard errors of the mean difference), so read those p-values and intervals "
                     f"as indicative only; more seeds are the remedy.")
    if any(2 <= n <= SIGN_FLIP_POWERLESS for n in tested):
        items.append(f"With n ≤ {SIGN_FLIP_POWERLESS} matched seeds the exact sign-flip test cannot reach "
                     f"p < 0.05 (its smallest p is 2/2ⁿ), so the paired t-test decides what is called significant; "
                     f"the sign-flip p is shown as a check that needs no normality assumption.")
    families = {c.comparison.family: c.comparison.family_size for c in found if c.comparison.family_size > 0}
    if families:
        listed = ", ".join(f"{name} ({m})" for name, m in families.items())
        items.append(f"Significance at α={an.alpha:g} rests on Holm–Bonferroni adjusted p-values, one family per "
                     f"table of comparisons: {listed}; raw and adjusted p are in comparisons.csv.")
    if setting.epochs and max(setting.epochs) < SHORT_SCHEDULE:
        epochs = "/".join(map(str, setting.epochs))
        items.append(f"Short schedule ({epochs} epochs): at short schedules SE's gain does not appear — measured here "
                     f"on full CIFAR-10 at 10 epochs, SE-ResNet-20 was 0.46 points worse than ResNet-20 over 3 seeds, "
                     f"where published full-length schedules put it 0.4–1 point better. A sweep this short checks "
                     f"the machinery and the statistics; it cannot show whether SE helps, nor confirm the paper's "
                     f"direction.")
    if headline is not None and any(str(c).startswith("SENet") for c in headline.shown.columns) \
            and not setting.is_imagenet_resnet50:
        items.append(f"The SENet columns are the paper's ImageNet SE-ResNet-50 numbers; this sweep is "
                     f"{setting.describe()}, so only the direction and ranking of the levels can be compared, "
                     f"not the values.")
    if setting.classes is not None and not shows_top5(setting.classes):
        items.append(f"Top-5 error is not shown: with {setting.classes} classes it is near 0 and says nothing (it "
                     f"stays in the CSV tables).")
    timed = [c for c in ("infer_ms", "train_img_per_s") if c in an.sweep.runs.columns
             and an.sweep.runs[c].notna().any()]
    if timed:
        where = " (shown per device: the runs ran on several)" if not variant_speeds(an.sweep.runs) else ""
        items.append(f"Speed (inference latency, training throughput){where} compares the variants of this sweep "
                     f"with each other on hardware other work may share; it is no benchmark across machines. "
                     f"{speed_stats(an.sweep.runs).caveat}")
    if an.baseline is None:
        items.append("No baseline variant (spec 'baseline:', a variant named resnet/baseline, or the one variant "
                     "without attention): no Δ vs baseline.")
    mismatch = recipe_mismatch(an.configs)
    if mismatch:
        items.append(f"Warning: the recipe differs between variants ({', '.join(mismatch)}): those variants are "
                     f"not matched, and only runs with the same recipe are paired.")
    return [*items, *an.sweep.warnings, *notes]


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
    described = iter([describe_contrast(c, an.alpha, caveat=False) for c in paired])
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
    unseen = [str(v.get("name")) for v in an.sweep.manifest.get("variants", []) if isinstance(v, dict)
              and str(v.get("name")) not in an.order]
    if unseen:
        unseen = [f"No run recorded yet for {len(unseen)} variant{'s' if len(unseen) > 1 else ''} of the manifest: "
                  f"{', '.join(unseen)}."]
    missing = [*unseen, *_exclusions(runs)]
    blocks: list[Block] = [Para(_coverage(an, expected)), *([Bullets(tuple(missing))] if missing else []),
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
    key = key_figure(figures, headline.choice.key if headline is not None else None)
    intro = [str(spec.get("description") or "").strip(), setting_sentence(an, expected, setting)]
    sections = [Section("", [Para(t) for t in intro if t], 0), Section("Contents", [Contents()])]
    if headline is not None:
        shown = [TableBlock(headline.caption, headline.shown)] + ([FigureBlock(key, _width_in(key))] if key else [])
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
        sections.append(Section("Figures", [FigureBlock(f, _width_in(f)) for f in others if not is_adaptive_figure(f)]))
    sections.append(Section("Caveats", [Bullets(tuple(caveat_items(an, [*found, *paired], setting, headline,
                                                                   notes)))]))
    sections.append(comparisons_section(an, found, adaptive))
    sections.append(Section("Statistics", [Para(METHOD)]))
    sections += [runs_section(an, expected), environment_section(an)]
    spec_text = an.sweep.spec_text or "(spec file not found: only the results directory was given)"
    where = f" ({an.sweep.spec_path})" if an.sweep.spec_path else ""
    sections.append(Section(f"Sweep spec{where}", [Code(spec_text.rstrip(), "yaml")]))
    sections.append(appendix_section(an, shows_top5(setting.classes)))
    return title, sections


#: the figure of each paper factor, by slug, until figures carry the factor they show (``FigureFile.factor``)
FIGURE_SLUGS = {"model.attention.reduction": "ratio", "model.attention.pool": "squeeze", "model.attention.gate": "gate",
                "model.attention.stages": "stages", "model.attention.placement": "integration"}


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
    return f"Setting: {what}. {_coverage(an, expected)}"


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
           "Holm-adjusted over the table's comparisons; n/a: the same difference on every seed (zero spread).")
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
# entry points


@dataclass(frozen=True)
class ReportFiles:
    """What ``sesweep report`` wrote."""

    markdown: Path
    html: Path
    figures: tuple[FigureFile, ...]
    #: what the report says it could not do (tables or figures requested but not drawn, and why)
    notes: tuple[str, ...] = ()


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
    files = write_report(an, folder, expected=expected, figures=figures, notes=[note] if note else [])
    from sesweep.runner.tracking import log_sweep_outputs  # on the sweep's MLflow run, when it is tracked

    log_sweep_outputs(sweep.results_dir, "report", [files.markdown, files.html, *files.figures])
    return files


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
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON on stdout, and nothing else there; its keys are "
                             "stable: markdown, html, figures (slug, caption, png, pdf), notes")


def cmd_report(args: argparse.Namespace) -> int:
    """Write reports/NAME/report.md and a self-contained report.html (tables, figures, summary)."""
    try:
        files = run_report(args.target, results_root=args.results_root, out=args.out, expected=args.expected,
                           confidence=args.confidence, figures=not args.no_figures)
    except (SweepDataError, ValueError) as exc:
        print(f"sesweep report: error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        from sesweep.cli import print_json

        print_json(args, {"markdown": str(files.markdown), "html": str(files.html),
                          "figures": [{"slug": f.slug, "caption": f.caption, "png": str(f.png), "pdf": str(f.pdf)}
                                      for f in files.figures],
                          "notes": list(files.notes)})
        return 0
    print(f"wrote {files.markdown}, {files.html} and {len(files.figures)} figures: PNG in "
          f"{files.markdown.parent / 'figures'}, PDF in {files.markdown.parent / PAPER_DIR}")
    return 0
