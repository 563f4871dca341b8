"""A sweep file's variants before seeds: the axes (a cartesian product over dotted keys), the named variants,
the crossed baselines, and which variants are the baselines.

Variant names: every axes combination of the base (``r=4,pool=max``; the base alone, named ``base``, when there
are no axes), then the named variants in file order, then the crossed baselines (``baseline,arch=resnet32``).
Each error is one :class:`~sesweep.spec.SpecError` naming the dotted key and what is allowed; :mod:`sesweep.plan`
turns the variants into runs.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sesweep.results import DEFAULT_BASELINES  # the baseline's default names, in this order, without baseline:
from sesweep.run_identity import run_key
from sesweep.spec import ATTENTION_PREFIX, RunSpec, SpecError, flatten, run_spec
from sesweep.sweepfile import first_duplicate, flat_overrides, fmt_value

#: variant names: no '=' or ',' (those mark names derived from the axes), nothing a file system or CSV minds
VARIANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: short labels for axis keys in derived variant names (the last key segment otherwise)
LABELS = {"reduction": "r"}
#: the name of the base variant when a sweep has no axes
BASE_NAME = "base"
#: the name (prefix) of the baseline variants a ``baseline: {overrides}`` mapping crosses with the axes
BASELINE_NAME = "baseline"


@dataclass(frozen=True)
class Variant:
    """A model/recipe of the sweep before seeds: its name, its overrides of the base, where it came from."""

    name: str
    overrides: dict[str, Any]   # dotted key → value, relative to the base
    spec: RunSpec               # resolved, seed 0
    origin: str                 # "axes", "variants", "base" or "baseline" (crossed with the axes)


def sweep_axes(data: Mapping[str, Any], base: RunSpec, known: Sequence[str]) -> list[tuple[str, list[Any]]]:
    if "axes" not in data:
        return []
    raw = data["axes"]
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError("axes", f"{raw!r} is not allowed; allowed: a non-empty mapping of dotted keys to lists "
                                "of values, e.g. model.attention.reduction: [4, 8, 16] (or leave axes out)")
    flat = flat_overrides(raw, "axes", known)
    axes: list[tuple[str, list[Any]]] = []
    for key, values in flat.items():
        where = f"axes.{key}"
        if not isinstance(values, list) or not values:
            raise SpecError(where, f"{values!r} is not allowed; allowed: a non-empty list of distinct values")
        resolved: list[Any] = []
        for i, value in enumerate(values):
            try:
                spec = run_spec({key: value}, base)
            except SpecError as exc:
                detail = exc.message if exc.key == key else str(exc)
                raise SpecError(where, f"value {i + 1} of {len(values)}: {detail}") from None
            resolved.append(flatten(spec)[key])
        dup = first_duplicate(resolved)
        if dup is not None:
            raise SpecError(where, f"value {fmt_value(dup)} is listed twice; allowed: distinct values")
        axes.append((key, values))
    return axes


def expand_variants(data: Mapping[str, Any], base: RunSpec, axes: list[tuple[str, list[Any]]],
            known: Sequence[str]) -> list[Variant]:
    variants: list[Variant] = []
    if axes:
        labels = axis_labels(axes)
        for combo in itertools.product(*(vals for _, vals in axes)):
            overrides = {k: v for (k, _), v in zip(axes, combo, strict=True)}
            name = ",".join(f"{labels[k]}={fmt_value(v)}" for k, v in overrides.items())
            variants.append(Variant(name, overrides, run_spec(overrides, base), "axes"))
    else:
        variants.append(Variant(BASE_NAME, {}, base, "base"))

    raw = data.get("variants")
    if raw is None and "variants" in data:
        raise SpecError("variants", "is empty; give named variants or leave it out")
    if raw is None:
        return variants
    if not isinstance(raw, Mapping):
        raise SpecError("variants", f"must be a mapping of names to overrides, e.g. resnet: "
                                    f"{{model.attention.kind: none}}; got {raw!r}")
    taken = {v.name for v in variants}
    for name, over in raw.items():
        if not isinstance(name, str) or not VARIANT_RE.match(name):
            raise SpecError(f"variants.{name}", "is not an allowed variant name; allowed: letters, digits, "
                                                "_ . + - (starting with a letter or digit)")
        if name in taken:
            why = " (the base is called that when there are no axes)" if name == BASE_NAME and not axes else ""
            raise SpecError(f"variants.{name}", f"duplicate variant name{why}; every variant needs its own name")
        taken.add(name)
        if over is None:
            over = {}
        if not isinstance(over, Mapping):
            raise SpecError(f"variants.{name}", f"must be a mapping of dotted overrides, got {over!r}")
        flat = flat_overrides(over, f"variants.{name}", known)
        try:
            spec = run_spec(flat, base)
        except SpecError as exc:
            raise SpecError(f"variants.{name}.{exc.key}" if exc.key else f"variants.{name}", exc.message) from None
        variants.append(Variant(name, flat, spec, "variants"))
    return variants


def axis_labels(axes: list[tuple[str, list[Any]]]) -> dict[str, str]:
    """Axis key → its label in derived variant names: ``r`` for the ratio, else the last key segment (the
    whole key where two axes would share a label)."""
    short = {k: LABELS.get(k.rpartition(".")[2], k.rpartition(".")[2]) for k, _ in axes}
    counts = list(short.values())
    return {k: lab if counts.count(lab) == 1 else k for k, lab in short.items()}


def crossed_baselines(data: Mapping[str, Any], base: RunSpec, axes: list[tuple[str, list[Any]]],
                       known: Sequence[str], taken: set[str]) -> list[Variant]:
    """``baseline: {overrides}`` → one baseline variant per distinct run the overrides give across the axes.

    Every axes combination gets the overrides; combinations that resolve to the same run (a plain ResNet
    ignores the SE ratio) are one variant. The name is ``baseline`` plus the axis values that tell the
    baselines apart (``baseline,arch=resnet32``), so each variant has a baseline of its own architecture.
    """
    raw = data.get("baseline")
    if not isinstance(raw, Mapping):
        return []
    if not raw:
        raise SpecError("baseline", "is an empty mapping; give the overrides that make the baseline, e.g. "
                                    "{model.attention.kind: none}, or the name of a variant")
    over = flat_overrides(raw, "baseline", known)
    try:
        run_spec(over, base)
    except SpecError as exc:
        raise SpecError(f"baseline.{exc.key}" if exc.key else "baseline", exc.message) from None
    combos = [dict(zip([k for k, _ in axes], combo, strict=True))
              for combo in itertools.product(*(vals for _, vals in axes))] if axes else [{}]
    by_key: dict[str, tuple[dict[str, Any], RunSpec]] = {}
    for combo in combos:
        spec = run_spec({**combo, **over}, base)
        # within one plan the config tells runs apart; the data are read once, later (data_ids)
        by_key.setdefault(run_key(spec, str(spec.recipe.data_root), spec.recipe.loader), (combo, spec))
    distinct = list(by_key.values())
    telling = [k for k, _ in axes if len({json.dumps(c[k], default=str) for c, _ in distinct}) > 1]
    labels = axis_labels(axes)
    out = []
    for combo, spec in distinct:
        name = ",".join([BASELINE_NAME, *(f"{labels[k]}={fmt_value(combo[k])}" for k in telling)])
        if name in taken:
            raise SpecError(f"variants.{name}", "is the name of the crossed baseline (from baseline:); rename "
                                                "the variant")
        out.append(Variant(name, {**{k: combo[k] for k in telling}, **over}, spec, "baseline"))
    return out


def choose_baselines(data: Mapping[str, Any], variants: list[Variant], crossed: list[str], dropped: dict[str, str],
               axes: list[tuple[str, list[Any]]]) -> tuple[tuple[str, ...], list[str]]:
    """The sweep's baseline variants: the crossed ones, the one named, or a variant called resnet/baseline.

    A single named baseline cannot serve axes that change the backbone or the recipe (a depth sweep would
    compare SE-ResNet-56 with ResNet-20): that is an error pointing to the crossed form."""
    notes: list[str] = []
    names = [v.name for v in variants]
    raw = data.get("baseline")
    if crossed:
        chosen = list(crossed)
    elif raw is not None:
        if not isinstance(raw, str) or raw not in names:
            raise SpecError("baseline", f"{raw!r} is not a variant of this sweep; allowed: {', '.join(names)}, "
                                        "or a mapping of overrides crossed with the axes, e.g. "
                                        "{model.attention.kind: none}")
        chosen = [raw]
    else:
        chosen = [n for n in DEFAULT_BASELINES if n in names][:1]
    if chosen and not crossed:
        backbone = [k for k, _ in axes if not k.startswith(ATTENTION_PREFIX)]
        if backbone:
            raise SpecError("baseline", f"{chosen[0]!r} is one variant, but the axes vary {', '.join(backbone)}: "
                                        "each of those needs a baseline of its own; write the baseline as overrides "
                                        "crossed with the axes, e.g. baseline: {model.attention.kind: none}")
    out: list[str] = []
    for name in chosen:
        if name in dropped:
            notes.append(f"baseline {name} is the same run as {dropped[name]}; using {dropped[name]}")
            name = dropped[name]
        if name not in out:
            out.append(name)
    return tuple(out), notes
