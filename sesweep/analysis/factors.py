"""What a sweep varies and how its variants are read: factors, baselines, held levels, variant order, the
:class:`Analysis` every table, figure and report shares, the variants' labels and the contrasts a summary states.

Works on the resolved spec keys of runs.csv (:func:`variant_configs`) and the runner's manifest; the statistics
themselves are :mod:`.stats`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

import numpy as np
import pandas as pd

from sesweep.analysis.fmt import format_value
from sesweep.analysis.stats import (
    NON_FACTOR_KEYS,
    Comparison,
    aggregate,
    compare,
    family_size,
    holm,
    same_value,
    spec_columns,
    summarize,
)
from sesweep.results import DEFAULT_BASELINES
from sesweep.spec import ATTENTION_PREFIX, RunSpec, flatten
from sesweep.vocabulary import short_name

if TYPE_CHECKING:
    from sesweep.results import Sweep


def variant_configs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: its resolved spec keys (from any of its runs, failed ones included)."""
    cols = spec_columns(runs)
    return runs.groupby("variant", sort=False)[cols].first() if cols else pd.DataFrame(index=runs["variant"].unique())


def is_attention_off(config: Mapping[str, Any]) -> bool:
    return str(config.get("model.attention.kind", "se")) == "none"


def varied_keys(configs: pd.DataFrame) -> list[str]:
    """Spec keys whose value differs between variants (the sweep's factors).

    Attention sub-keys are compared among attention variants only: a ResNet baseline still carries the
    default ``reduction`` etc., which mean nothing without attention.
    """
    attn_rows = configs.loc[np.array([not is_attention_off(r) for _, r in configs.iterrows()], dtype=bool)]
    keys = []
    for key in configs.columns:
        if key in NON_FACTOR_KEYS:
            continue
        rows = attn_rows if key.startswith("model.attention.") and key != "model.attention.kind" else configs
        if rows[key].astype(str).nunique() > 1:
            keys.append(key)
    return keys


def find_baseline(spec: Mapping[str, Any], configs: pd.DataFrame) -> str | None:
    """The spec's ``baseline``; else a variant called resnet/baseline; else the one variant without attention."""
    named = spec.get("baseline")
    if isinstance(named, str) and named in configs.index:
        return named
    for name in DEFAULT_BASELINES:
        if name in configs.index:
            return name
    off = [v for v, row in configs.iterrows() if is_attention_off(row)]
    return str(off[0]) if len(off) == 1 else None


def find_baselines(manifest: Mapping[str, Any], spec: Mapping[str, Any], configs: pd.DataFrame) -> list[str]:
    """The baseline variants that have runs: the runner's manifest (``baselines``, one per backbone when the
    sweep crosses its baseline with the axes), else :func:`find_baseline` on the spec."""
    listed = manifest.get("baselines")
    if not isinstance(listed, list):
        listed = [manifest["baseline"]] if manifest.get("baseline") else []
    found = [str(b) for b in listed if str(b) in configs.index]
    if found or listed:
        return found
    one = find_baseline(spec, configs)
    return [one] if one is not None else []


def group_keys(configs: pd.DataFrame) -> list[str]:
    """The factors that are not attention knobs (``model.arch``, recipe keys): a variant is only ever compared
    with a baseline — and tables only ever pool rows — that agree on all of them."""
    return [k for k in varied_keys(configs) if not k.startswith(ATTENTION_PREFIX)]


def baseline_references(configs: pd.DataFrame, baselines: Sequence[str]) -> dict[str, str | None]:
    """Variant → its baseline: the one baseline that agrees with it on every non-attention spec key (same
    architecture, same recipe); None where no baseline does. Baselines map to themselves."""
    keys = [k for k in configs.columns if not k.startswith(ATTENTION_PREFIX) and k not in NON_FACTOR_KEYS]
    out: dict[str, str | None] = {}
    for v, row in configs.iterrows():
        if v in baselines:
            out[str(v)] = str(v)
            continue
        match = [b for b in baselines if all(same_value(configs.at[b, k], row[k]) for k in keys)]
        out[str(v)] = match[0] if len(match) == 1 else None
    return out


def literal_order(key: str) -> list[Any] | None:
    """The allowed values of a spec key in schema order (e.g. placement: standard, pre, post, identity)."""
    cls: Any = RunSpec
    hint: Any = None
    for part in key.split("."):
        try:
            hint = get_type_hints(cls).get(part)
        except TypeError:
            return None
        if hint is None:
            return None
        cls = hint
    args = get_args(hint)
    if get_origin(hint) is not None and args and all(isinstance(a, str) for a in args):
        return list(args)
    return None


def sort_value(key: str, value: Any) -> tuple[int, float, str]:
    """A sort key that orders numbers numerically, schema literals in schema order, the rest as text."""
    order = literal_order(key)
    if order is not None and value in order:
        return (0, float(order.index(value)), "")
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def variant_order(configs: pd.DataFrame, baselines: str | Sequence[str] | None, keys: Sequence[str],
                  manifest: Mapping[str, Any] | None = None) -> list[str]:
    """Grouped by the non-attention factors (architecture, recipe), in each group its baseline first.

    With the runner's ``manifest`` (its ``runs``, else its ``variants``): the spec's order — the order the
    manifest first names each variant (axes levels as written, then the named variants in file order), the
    groups in the order their first variant comes; variants the manifest does not name follow. Without one:
    the groups and then the variants ordered by their factor values (r = 2, 4, 8 …), then by name."""
    bases = [baselines] if isinstance(baselines, str) else list(baselines or [])
    groups = [k for k in keys if not k.startswith(ATTENTION_PREFIX)]
    rest = [k for k in keys if k not in groups]

    def rank(v: Any) -> tuple[Any, ...]:
        return ([sort_value(k, configs.at[v, k]) for k in groups], v not in bases,
                [sort_value(k, configs.at[v, k]) for k in rest], str(v))

    fallback = [str(v) for v in sorted(configs.index, key=rank)]
    manifest = manifest or {}
    listed = [r.get("variant") for r in manifest.get("runs") or [] if isinstance(r, Mapping)] or \
        [v.get("name") for v in manifest.get("variants") or [] if isinstance(v, Mapping)]
    position = {str(v): i for i, v in enumerate(dict.fromkeys(listed)) if v is not None}
    if not any(v in position for v in fallback):
        return fallback
    spec_order = sorted(fallback, key=lambda v: position.get(v, len(position)))   # stable: the unnamed keep theirs
    group_of = {v: tuple(str(configs.at[v, k]) for k in groups) for v in spec_order}
    first = {g: i for i, g in reversed(list(enumerate(group_of[v] for v in spec_order)))}
    return sorted(spec_order, key=lambda v: (first[group_of[v]], v not in bases))


@dataclass(frozen=True)
class Held:
    """The level a factor is held at (paper tables) or compared against (factor contrasts), and why."""

    value: Any
    source: str          # "base" (the sweep's base value), "default" (the schema default) or "first level"


def base_value(key: str, manifest: Mapping[str, Any], spec: Mapping[str, Any]) -> Any:
    """The sweep's resolved base value of a key: the manifest's ``base`` (the runner resolves it), else the
    spec's nested ``model:``/``recipe:`` sections; None when neither says."""
    base = manifest.get("base")
    if isinstance(base, Mapping) and key in base:
        return base[key]
    node: Any = spec
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def held_level(key: str, levels: Sequence[Any], manifest: Mapping[str, Any], spec: Mapping[str, Any]) -> Held:
    """A factor's reference level: the sweep's base value, else the schema default, else the first level in
    sort order — never a count of which level happens to have most variants."""
    default = flatten(RunSpec()).get(key)
    base = base_value(key, manifest, spec)
    candidates = (("base", default if base is None else base), ("default", default))  # unset: the default
    for source, candidate in candidates:
        if candidate is None:
            continue
        for level in levels:
            if same_value(level, candidate):
                return Held(level, source)
    return Held(levels[0] if levels else None, "first level")


def reference_value(key: str, spec: Mapping[str, Any], levels: Sequence[Any],
                    manifest: Mapping[str, Any] | None = None) -> Any:
    """A factor's reference level (:func:`held_level`'s value)."""
    return held_level(key, levels, manifest or {}, spec).value


def factor_pairs(configs: pd.DataFrame, key: str, reference: Any, keys: Sequence[str],
                 baseline: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """(variant, reference variant) pairs differing in ``key`` only, the reference at level ``reference``."""
    bases = [baseline] if isinstance(baseline, str) else list(baseline or [])
    rows = {v: r for v, r in configs.iterrows() if v not in bases and not is_attention_off(r)}
    others = [k for k in keys if k != key]
    pairs = []
    for v, row in rows.items():
        if same_value(row[key], reference):
            continue
        match = [w for w, r in rows.items() if same_value(r[key], reference)
                 and all(same_value(r[k], row[k]) for k in others)]
        if len(match) == 1:
            pairs.append((str(v), str(match[0])))
    return pairs


@dataclass(frozen=True)
class Analysis:
    """A sweep, aggregated: what tables, figures and the report share."""

    sweep: Sweep
    configs: pd.DataFrame
    factors: list[str]
    baseline: str | None         # the first baseline (the only one unless the sweep crosses it with the axes)
    order: list[str]
    table: pd.DataFrame          # :func:`aggregate`, rows in ``order``
    confidence: float = 0.95
    alpha: float = 0.05
    baselines: tuple[str, ...] = ()
    #: variant → its baseline (same architecture and recipe), None where the sweep has none
    references: dict[str, str | None] = field(default_factory=dict)

    def is_baseline(self, variant: str) -> bool:
        return variant in self.baselines


def analyze(sweep: Sweep, confidence: float = 0.95) -> Analysis:
    """Aggregate a loaded sweep: baselines, factors, variant order and the per-variant statistics."""
    runs = sweep.runs
    configs = variant_configs(runs)
    factors = varied_keys(configs)
    baselines = find_baselines(sweep.manifest, sweep.spec, configs)
    refs = baseline_references(configs, baselines)
    order = variant_order(configs, baselines, factors, sweep.manifest)
    table = aggregate(runs, refs, seeds=sweep.seeds, confidence=confidence).reindex(order)
    return Analysis(sweep, configs, factors, baselines[0] if baselines else None, order, table, confidence,
                    1.0 - confidence, tuple(baselines), refs)


def recipe_mismatch(configs: pd.DataFrame) -> list[str]:
    """Recipe keys that differ between variants: such variants are not matched, say so."""
    return [k for k in varied_keys(configs) if k.startswith("recipe.")]


# --------------------------------------------------------------------------------------------------
# labels and the contrasts a summary talks about


def held_levels(an: Analysis) -> dict[str, Held]:
    """Per attention factor (but ``kind``): the level paper tables hold it at and labels leave unsaid — the
    sweep's base value, else the schema default (:func:`held_level`). Non-attention factors (architecture,
    recipe) are not held: tables group by them."""
    keys = [k for k in an.factors if k.startswith(ATTENTION_PREFIX) and k != "model.attention.kind"]
    return {k: held_level(k, factor_levels(an, k), an.sweep.manifest, an.sweep.spec) for k in keys}


def common_levels(an: Analysis) -> dict[str, str]:
    """Per held factor, its held level formatted (:func:`held_levels`)."""
    return {k: format_value(h.value) for k, h in held_levels(an).items()}


def variant_labels(an: Analysis) -> dict[str, str]:
    """How the report names a variant, in its prose, tables, figures and legends: by its name, as the tables'
    variant column does, so one variant has one label everywhere. (A label derived from the factors, "operator=
    none" or "r=4, adaptive=learnable, cost_weight=1", named the tables' "se_var1" and "learned" differently.)
    Factor *levels* are compared as "pool=max vs pool=avg" (:func:`contrasts`); that names levels, not variants."""
    return {v: v for v in an.order}


@dataclass(frozen=True)
class Contrast:
    """One comparison the report states: against the baseline, or a factor level against its reference."""

    factor: str | None           # None: against the baseline
    label: str                   # "r=8 vs resnet", "pool=max vs pool=avg"
    comparison: Comparison


#: the family of the contrasts of every variant against its baseline (the overall table's Δ column)
BASELINE_FAMILY = "vs baseline"


def baseline_contrasts(an: Analysis, metric: str = "top1_err") -> list[Contrast]:
    """Every variant against its baseline (same architecture and recipe), Holm-adjusted as the one family
    :data:`BASELINE_FAMILY`: the Δ column of every table is this contrast, so every table prints this p."""
    labels = variant_labels(an)
    out = []
    for v in an.order:
        ref = an.references.get(v)
        if an.baselines and not an.is_baseline(v):
            comp = compare(an.sweep.runs, v, ref, metric, an.confidence) if ref else Comparison(
                v, "", metric, (), (), summarize([]), math.nan, math.nan,
                "no baseline with the same architecture and recipe")
            out.append(Contrast(None, f"{labels[v]} vs {labels[ref] if ref else 'baseline'}", comp))
    return adjust_family(out)


def contrasts(an: Analysis, metric: str = "top1_err") -> list[Contrast]:
    """Every variant against its baseline (:func:`baseline_contrasts`), then, per factor, every level against
    the reference level with everything else equal; Holm-adjusted within each family (:data:`BASELINE_FAMILY`,
    then one family per factor)."""
    out = []
    for key in an.factors:
        if key == "model.attention.kind" or (an.baselines and _only_baseline_differs(an, key)):
            continue
        levels = factor_levels(an, key)
        ref = held_level(key, levels, an.sweep.manifest, an.sweep.spec).value
        for v, w in factor_pairs(an.configs, key, ref, an.factors, an.baselines):
            comp = compare(an.sweep.runs, v, w, metric, an.confidence, vary={key})
            name = short_name(key)
            rest = [k for k in an.factors if k not in (key, "model.attention.kind")]
            where = ", ".join(f"{short_name(k)}={format_value(an.configs.at[v, k])}" for k in rest)
            label = f"{name}={format_value(an.configs.at[v, key])} vs {name}={format_value(ref)}"
            out.append(Contrast(key, f"{label} ({where})" if where else label, comp))
    return baseline_contrasts(an, metric) + adjust_family(out)


def family_of(c: Contrast) -> str:
    """The Holm family of a contrast: all contrasts against the baseline, or one factor's level contrasts."""
    return BASELINE_FAMILY if c.factor is None else f"{short_name(c.factor)} levels"


def adjust_family(items: Sequence[Contrast], family: str | None = None) -> list[Contrast]:
    """The contrasts with Holm–Bonferroni adjusted p-values, one family per :func:`family_of` (or all in
    ``family``); a contrast without a p-value stays unadjusted and does not count."""
    names = [family or family_of(c) for c in items]
    out = list(items)
    for name in dict.fromkeys(names):
        idx = [i for i, n in enumerate(names) if n == name]
        ps = [items[i].comparison.p_t for i in idx]
        size = family_size(ps)
        for i, p in zip(idx, holm(ps), strict=True):
            comp = dataclasses.replace(items[i].comparison, p_holm=p, family=name, family_size=size)
            out[i] = dataclasses.replace(items[i], comparison=comp)
    return out


def _only_baseline_differs(an: Analysis, key: str) -> bool:
    """A non-attention key that only the baselines change is already covered by the baseline contrasts."""
    others = an.configs.drop(index=list(an.baselines))
    return not key.startswith(ATTENTION_PREFIX) and others[key].astype(str).nunique() <= 1


def factor_levels(an: Analysis, key: str) -> list[Any]:
    """The distinct values of a factor among the attention variants, in sort order."""
    keep = [not an.is_baseline(str(v)) and not is_attention_off(r) for v, r in an.configs.iterrows()]
    rows = an.configs.loc[np.array(keep, dtype=bool)]
    seen: list[Any] = []
    for value in rows[key] if key in rows.columns else []:
        if not any(same_value(value, s) for s in seen):
            seen.append(value)
    return sorted(seen, key=lambda x: sort_value(key, x))


def contrast_frame(items: Sequence[Contrast]) -> pd.DataFrame:
    """The contrasts as a table (comparisons.csv): raw ``p_t`` and Holm-adjusted ``p_holm`` within ``family``."""
    return pd.DataFrame([{"factor": c.factor or "baseline", "label": c.label, **c.comparison.as_row()}
                         for c in items])
