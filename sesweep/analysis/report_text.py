"""What a report says in words: one sentence per paired comparison, one verdict line per family of comparisons,
the caveats that limit every reading (each said once), and the adaptive variants' equal-cost sentences.

"Significant" rests on the Holm-adjusted p of a comparison's family, and a sentence says when n is too small for
any test (:func:`describe_contrast`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import pandas as pd

from sesweep.analysis.equal_cost import (
    ADAPTIVE_KEY,
    INTERPOLATED,
    OUTSIDE_RANGE,
    TOO_FEW_FIXED,
    AdaptiveComparison,
    adaptive_comparisons,
    ratio_label,
)
from sesweep.analysis.factors import (
    BASELINE_FAMILY,
    Analysis,
    Contrast,
    adjust_family,
    factor_levels,
    recipe_mismatch,
    variant_labels,
)
from sesweep.analysis.fmt import count, count_column, format_value, num_finite, p_phrase, signed_finite
from sesweep.analysis.published import Setting, describe_levels, direction_note, table_for_key
from sesweep.analysis.report_render import Block, Bullets, Para, Section
from sesweep.analysis.report_sequential import optional_stopping_note
from sesweep.analysis.speed import speed_stats, variant_speeds
from sesweep.analysis.stats import Comparison
from sesweep.analysis.tables import Table, shows_top5
from sesweep.vocabulary import short_name

#: the Holm family of the adaptive variants' paired comparisons with their nearest fixed ratio
ADAPTIVE_FAMILY = "adaptive vs nearest fixed r"
#: with this many matched pairs or fewer, the exact sign-flip test cannot reach p < 0.05 (2/2ⁿ ≥ 0.0625)
SIGN_FLIP_POWERLESS = 5
#: a recipe of fewer epochs is a short schedule, where SE's gain is not expected to show (DESIGN.md)
SHORT_SCHEDULE = 100


# --------------------------------------------------------------------------------------------------
# the comparisons

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
        return (f"{c.label}: one matched seed only (Δ {what} {signed_finite(d.mean)}{unit}, seed {comp.seeds[0]}): "
                f"n=1 is too small for a test.")
    if math.isnan(comp.p_t):
        return (f"{c.label}: Δ {what} {signed_finite(d.mean)}{unit} on every one of n={comp.n} seeds; p and CI n/a: "
                f"with zero spread the paired t-test and its interval are undefined "
                f"(sign-flip {p_phrase(comp.p_perm)}).")
    adjusted = comp.family_size > 0 and not math.isnan(comp.p_holm)
    holm = (f", Holm-adjusted {p_phrase(comp.p_holm)} over the {comp.family_size} comparisons of its family"
            if adjusted and comp.family_size > 1 else "")
    tests = f"paired t {p_phrase(comp.p_t)}{holm}, sign-flip {p_phrase(comp.p_perm)}, n={comp.n}"
    tail = "; n=2 gives the t-test one degree of freedom, treat as indicative" if caveat and comp.n == 2 else ""
    p_decides = comp.p_holm if adjusted else comp.p_t
    if p_decides < alpha and d.mean != 0:
        verb = "lowers" if d.mean < 0 else "raises"
        lo, hi = sorted((abs(d.ci_lo), abs(d.ci_hi))) if d.ci_lo * d.ci_hi > 0 else (d.ci_lo, d.ci_hi)
        subject, _, ref = c.label.partition(" vs ")
        return (f"{subject} {verb} {what} by {num_finite(abs(d.mean))}{unit} vs {ref} "
                f"(95% CI {num_finite(lo)}–{num_finite(hi)}, {tests}){tail}.")
    return (f"{c.label}: no significant difference in {what} (Δ {signed_finite(d.mean)}{unit}, 95% CI "
            f"{signed_finite(d.ci_lo)} to {signed_finite(d.ci_hi)}, {tests}){tail}.")


def comparisons_section(an: Analysis, found: Sequence[Contrast], adaptive: Sequence[str]) -> Section:
    """Every paired comparison in one sentence, grouped by Holm family (the caveats they share are stated once,
    in the Caveats section); the adaptive variants' equal-cost sentences with their family."""
    blocks: list[Block] = [Para(
        f"Each sentence: the paired difference in top-1 error over matched seeds, its 95% CI, the paired t-test (raw "
        f"and Holm-adjusted over its family) and the sign-flip test. Significant: Holm-adjusted p < {an.alpha:g}."
        + (f" {note}" if (note := optional_stopping_note(an)) else ""))]
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
            untested.append(f"{who(c, ref)} one matched seed only (Δ {signed_finite(d)}, no test)")
        elif math.isnan(comp.p_t):
            seeds = "both seeds" if comp.n == 2 else f"all {comp.n} seeds"
            untested.append(f"{who(c, ref)} {signed_finite(d)} points on {seeds}, no test (zero spread)")
        elif _p_decides(comp) < an.alpha and d != 0:
            parts.append(f"{who(c, ref)} {'better' if d < 0 else 'worse'} than {ref} by {num_finite(abs(d))} points "
                         f"(Holm {p_phrase(_p_decides(comp))}, n={comp.n})")
        else:
            same.append(c)
    if same:
        ds = sorted(c.comparison.delta.mean for c in same)
        ns = sorted({c.comparison.n for c in same})
        delta = f"Δ {signed_finite(ds[0])}" + (f" to {signed_finite(ds[-1])}" if len(ds) > 1 else "")
        p = f"Holm {p_phrase(_p_decides(same[0].comparison))}" if len(same) == 1 else f"all Holm p ≥ {an.alpha:g}"
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
    labels = variant_labels(an)
    ranked = an.table.dropna(subset=["top1_err_mean"]).sort_values("top1_err_mean") \
        if "top1_err_mean" in an.table.columns else pd.DataFrame()
    lines = [verdict_line(an, family, items) for family, items in _families(found).items()]
    if len(ranked) >= 2:
        best, worst = ranked.index[0], ranked.index[-1]
        # the significance rule only where comparisons follow: alone it reads as if something were significant
        rule = (f" Significant: Holm-adjusted p < {an.alpha:g} within each family of comparisons." if lines
                else " These means are not compared by a test (no baseline, no factor levels).")
        blocks.append(Para(f"Lowest mean top-1 error: {labels[best]} ({ranked.at[best, 'top1_err_mean']:.2f}%, "
                           f"n={int(ranked.at[best, 'n'])}); highest: {labels[worst]} "
                           f"({ranked.at[worst, 'top1_err_mean']:.2f}%, n={int(ranked.at[worst, 'n'])})." + rule))
    table = table_for_key(headline.choice.key) if headline is not None else None
    if table is not None and headline is not None and headline.choice.key:
        paper = describe_levels(table, factor_levels(an, headline.choice.key))
        lines += [f"{paper}{direction(an, found, headline, table)}"] if paper else []
    blocks.append(Bullets(tuple(lines)) if lines else Para("No paired comparison: no baseline and no factor levels."))
    blocks += [Para(note)] if (note := optional_stopping_note(an)) else []
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
    items = [note] if (note := optional_stopping_note(an)) else []
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
                     f"kind of comparison: {listed}; each contrast has one adjusted p, the same in every table and "
                     f"in comparisons.csv.")
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
                     f"{count(c.nearest_cost)})")
            paired.append(Contrast(ADAPTIVE_KEY, label, c.paired))
            slots.append(None)
    paired = adjust_family(paired, ADAPTIVE_FAMILY)
    described = iter([describe_contrast(c, an.alpha, caveat=False) for c in paired])
    return [item if item is not None else next(described) for item in slots], paired


def equal_cost_sentence(c: AdaptiveComparison) -> str:
    """"learned-w1 (learnable, cost weight 1) reaches 7.90% … at 6.000k SE params; the fixed-r curve at equal
    SE params gives 8.57%, …" — or why there is no fixed-r value at that cost."""
    who = f"{c.variant} ({c.kind}, cost weight {format_value(c.cost_weight)})"
    if c.top1.n == 0:
        return f"{who}: no finished run yet."
    head = (f"{who} reaches {c.top1.mean:.2f}% top-1 error (n={c.top1.n}) at {count(c.se_params)} "
            f"{'allocated ' if c.kind == 'dynamic' else ''}SE params")
    if c.kind == "dynamic" and pd.notna(c.active_width):
        head += (f" (its soft mask computes every allocated unit; expected active width "
                 f"{100 * c.active_width:.0f}% of them per test image, a width, not a cost)")
    if c.note == INTERPOLATED:
        return (f"{head}; the fixed-r curve at equal SE params gives {c.fixed_at_cost:.2f}%, a difference of "
                f"{signed_finite(c.d_curve)} points (of means, interpolated in log SE params).")
    if c.note == OUTSIDE_RANGE:
        lo, hi = count_column([c.fixed_costs[0], c.fixed_costs[-1]])
        return f"{head}, outside the fixed-r range ({lo}–{hi} SE params): not extrapolated, no fixed-r value."
    if c.note == TOO_FEW_FIXED:
        return f"{head}; fewer than 2 fixed-r variants finished, so there is no fixed-r curve at equal cost."
    return f"{head}."
