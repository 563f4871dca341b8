"""A sweep file (``experiments/NAME.yaml``) → the manifest of its runs.

A sweep is a base run spec (``model:``, ``recipe:``), the ``axes`` to vary (a cartesian product over dotted
keys), extra named ``variants`` (dotted overrides of the base, not crossed with the axes), the ``baseline``
(a variant's name, or overrides such as ``{model.attention.kind: none}`` crossed with the axes, so a depth
sweep gets one plain ResNet per depth) and the ``seeds``.
:func:`load_plan` validates the whole file before anything runs — unknown keys, wrong types, impossible SE
widths, empty or duplicated axis values, duplicated variant names (also as duplicated YAML keys, which
PyYAML would silently collapse) — and every error is one :class:`~sesweep.spec.SpecError` line that names
the file, the dotted key and what is allowed. Nothing is written here. Reading the file and its top-level
keys: :mod:`sesweep.sweepfile`; its variants: :mod:`sesweep.variants`; the model and data checks and the data
identities: :mod:`sesweep.plan_checks`.

Expansion order: every axes combination of the base (variant names such as ``r=4,pool=max``; the base
alone, named ``base``, when there are no axes), then the named variants in file order, then the crossed
baselines; each variant × the seeds. Two variants that resolve to the same spec are one run: the first
name is kept and the manifest says which name was dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sesweep.plan_checks import check_data as check_data  # re-exported: the runner calls plan.check_data
from sesweep.plan_checks import check_model as check_model
from sesweep.plan_checks import check_models, check_recipes, data_config, data_ids
from sesweep.run_identity import run_key
from sesweep.seed_policy import SeedPolicy, sweep_policy
from sesweep.spec import RunSpec, SpecError, flatten, run_spec, schema_keys
from sesweep.sweepfile import (
    TOP_KEYS,
    check_size,
    check_top_keys,
    flat_overrides,
    fmt_value,
    layer_params_limit,
    load_yaml,
    names_list,
    sweep_name,
    sweep_seeds,
)
from sesweep.variants import Variant, choose_baselines, crossed_baselines, expand_variants, sweep_axes


@dataclass(frozen=True)
class Run:
    """One run of a sweep: variant × seed, its resolved spec and its run key."""

    variant: str
    seed: int
    spec: RunSpec
    key: str
    #: what data it reads (:func:`sesweep.training.data.data_identity`); None where the data are not on this machine
    data_id: str | None = None


@dataclass(frozen=True)
class Plan:
    """A validated sweep: its runs (deduplicated by run key) and what the report step needs."""

    name: str
    description: str
    source: str
    spec_text: str
    base: RunSpec
    seeds: tuple[int, ...]
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    variants: tuple[Variant, ...]            # kept variants, expansion order
    runs: tuple[Run, ...]                    # variant-major, then seeds in file order
    baselines: tuple[str, ...]               # the reference variants (one per backbone/recipe when crossed)
    duplicates: tuple[tuple[str, str], ...] = ()   # (dropped name, kept name)
    tables: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: why the run keys cannot be resolved (data not on this machine; one SpecError line), else None: such
    #: a plan can be listed, but not run; its keys are placeholders starting with UNRESOLVED
    unresolved: str | None = None
    #: what ``recipe.precision: auto`` was resolved to for this sweep (:meth:`with_precision`); None: not yet
    resolved_precision: str | None = None
    seed_policy: SeedPolicy | None = None    # seeds: {start, max, ...} (seeds and runs: at max); None: a list

    @property
    def keys(self) -> list[str]:
        return [r.key for r in self.runs]

    @property
    def baseline(self) -> str | None:
        """The first baseline variant (the only one unless ``baseline:`` is crossed with the axes)."""
        return self.baselines[0] if self.baselines else None

    def run_for(self, key: str) -> Run:
        for run in self.runs:
            if run.key == key:
                return run
        raise KeyError(key)

    def with_data_root(self, root: str | None) -> Plan:
        """The same plan reading its data from ``root`` (``--data-root``): the data identity, and so the run
        keys, are read again from there (the same data moved keep their keys; other data get other keys)."""
        if root is None:
            return self

        def moved(spec: RunSpec) -> RunSpec:
            return dataclasses.replace(spec, recipe=dataclasses.replace(spec.recipe, data_root=root))

        specs = [moved(r.spec) for r in self.runs]
        ids, unresolved = data_ids(specs)
        runs = tuple(dataclasses.replace(r, spec=s, key=_key(s, ids), data_id=ids[data_config(s.recipe)])
                     for r, s in zip(self.runs, specs, strict=True))
        if len({r.key for r in runs}) < len(runs):
            raise SpecError("--data-root", "variants of this sweep differ only in recipe.data_root, so one "
                                           "--data-root for all of them would make them the same runs")
        return dataclasses.replace(
            self, base=moved(self.base),
            variants=tuple(dataclasses.replace(v, spec=moved(v.spec)) for v in self.variants),
            runs=runs, unresolved=unresolved)

    def auto_precision(self) -> bool:
        """Whether some run asks for ``recipe.precision: auto`` (which the runner resolves once per sweep)."""
        return any(r.spec.recipe.precision == "auto" for r in self.runs)

    def with_precision(self, precision: str) -> Plan:
        """The same plan with ``recipe.precision: auto`` replaced by ``precision`` (what the sweep resolved it
        to, :mod:`sesweep.runner.precision`): the run keys name what the runs compute, so a result trained in
        fp32 is never taken for one trained in bf16."""
        if not self.auto_precision():
            return self

        def settled(spec: RunSpec) -> RunSpec:
            if spec.recipe.precision != "auto":
                return spec
            return dataclasses.replace(spec, recipe=dataclasses.replace(spec.recipe, precision=precision))

        ids = {data_config(r.spec.recipe): r.data_id for r in self.runs}
        runs = tuple(dataclasses.replace(r, spec=settled(r.spec), key=_key(settled(r.spec), ids)) for r in self.runs)
        owner: dict[str, str] = {}
        for run in runs:  # a variant asking for the precision auto resolved to is now the same run as the base
            other = owner.setdefault(run.key, run.variant)
            if other != run.variant:
                raise SpecError("recipe.precision", f"variants {other!r} and {run.variant!r} are the same run once "
                                                    f"auto is resolved to {precision} on this machine; give one "
                                                    "of them another explicit precision, or drop one")
        return dataclasses.replace(
            self, base=settled(self.base), runs=runs,
            variants=tuple(dataclasses.replace(v, spec=settled(v.spec)) for v in self.variants),
            resolved_precision=precision)

    def queue_order(self) -> list[Run]:
        """Runs in the order workers take them: seed-major, so partial results cover every variant early."""
        seed_rank = {s: i for i, s in enumerate(self.seeds)}
        variant_rank = {v.name: i for i, v in enumerate(self.variants)}
        return sorted(self.runs, key=lambda r: (seed_rank[r.seed], variant_rank[r.variant]))

    def manifest(self) -> dict[str, Any]:
        """The JSON-ready manifest: what will run, under which keys, and what was merged."""
        return {
            "name": self.name, "description": self.description, "source": self.source,
            "seeds": list(self.seeds), "baseline": self.baseline, "baselines": list(self.baselines),
            "base": flatten(self.base),
            "axes": {k: list(v) for k, v in self.axes},
            "variants": [{"name": v.name, "origin": v.origin, "overrides": v.overrides} for v in self.variants],
            "duplicates": [{"dropped": d, "kept": k} for d, k in self.duplicates],
            "notes": list(self.notes),
            "runs": [{"variant": r.variant, "seed": r.seed, "run_key": r.key} for r in self.runs],
            "tables": list(self.tables), "figures": list(self.figures),
            "resolved_precision": self.resolved_precision,
            **({"seed_policy": self.seed_policy.as_dict()} if self.seed_policy else {}),
        }

    def describe(self) -> str:
        """A short human summary: variants, their overrides, seeds and the run count (for --dry-run)."""
        lines = [f"sweep {self.name}: {len(self.variants)} variants x {len(self.seeds)} seeds = "
                 f"{len(self.runs)} runs  (source {self.source})"]
        if self.description:
            lines.append(f"  {self.description}")
        width = max(len(v.name) for v in self.variants)
        for v in self.variants:
            mark = "  (baseline)" if v.name in self.baselines else ""
            over = ", ".join(f"{k}={fmt_value(val)}" for k, val in v.overrides.items()) or "(the base)"
            lines.append(f"  {v.name:<{width}}  {over}{mark}")
        lines.append(f"  seeds: {', '.join(map(str, self.seeds))}")
        lines += [f"  {self.seed_policy.describe(len(self.variants))}"] if self.seed_policy else []
        for dropped, kept in self.duplicates:
            lines.append(f"  note: variant {dropped} is the same run as {kept}; kept {kept}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.resolved_precision:
            lines.append(f"  note: recipe.precision auto is {self.resolved_precision} for this sweep (resolved once, "
                         "on the machine that started it; part of the run keys)")
        if self.unresolved:
            lines.append(f"  note: run keys cannot be resolved ({self.unresolved}); the keys shown start with "
                         f"{UNRESOLVED!r} and nothing can run until the data are found (--data-root DIR)")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# loading


def load_plan(path: str | Path, *, models: bool = True) -> Plan:
    """Read and validate a sweep file; every error is a :class:`SpecError` prefixed with the file.

    ``models=False`` leaves out the model checks (:func:`~sesweep.plan_checks.check_models`: they build each
    CIFAR-size model, so they import torch), for what builds no model: ``sesweep status`` reads the plan's
    runs and keys (which no model check changes) and starts without torch. Every other check is made."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("", f"cannot read the sweep file: {exc.strerror or exc}").in_source(source) from None
    except UnicodeDecodeError:
        raise SpecError("", "the sweep file is not UTF-8 text").in_source(source) from None
    return parse_plan(text, source, models=models)


def parse_plan(text: str, source: str = "<sweep>", *, models: bool = True) -> Plan:
    """Validate sweep text (see the module doc and :func:`load_plan`); errors are :class:`SpecError` prefixed
    with ``source``."""
    try:
        return _parse(text, source, models)
    except SpecError as exc:
        raise exc.in_source(source) from None


def _parse(text: str, source: str, models: bool) -> Plan:
    data = load_yaml(text)
    if not isinstance(data, Mapping):
        raise SpecError("", "a sweep file is a mapping with keys " + ", ".join(TOP_KEYS))
    check_top_keys(data)
    name = sweep_name(data)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise SpecError("description", f"{description!r} is not a string")
    known = schema_keys()

    base_flat: dict[str, Any] = {}
    for section in ("model", "recipe"):
        raw = data.get(section)
        if raw is None:
            if section in data:
                raise SpecError(section, "is empty; give keys under it or leave it out")
            continue
        if not isinstance(raw, Mapping):
            raise SpecError(section, f"must be a section of keys, got {raw!r}")
        base_flat.update(flat_overrides(raw, section, known, prefix=f"{section}."))
    base = run_spec(base_flat)
    seeds = sweep_seeds(data)
    axes = sweep_axes(data, base, known)
    check_size(data, [len(values) for _, values in axes], len(seeds))
    variants = expand_variants(data, base, axes, known)
    crossed = crossed_baselines(data, base, axes, known, {v.name for v in variants})
    variants += crossed
    if models:
        check_models(variants, layer_params_limit(data))
    check_recipes(variants)

    kept: list[Variant] = []
    by_key: dict[str, str] = {}
    duplicates: list[tuple[str, str]] = []
    ids, unresolved = data_ids([v.spec for v in variants])
    for v in variants:
        key = _key(v.spec, ids)
        if key in by_key:
            duplicates.append((v.name, by_key[key]))
            continue
        by_key[key] = v.name
        kept.append(v)
    runs = tuple(Run(v.name, s, spec, _key(spec, ids), ids[data_config(spec.recipe)])
                 for v in kept for s in seeds for spec in [dataclasses.replace(v.spec, seed=s)])
    baselines, notes = choose_baselines(data, variants, [v.name for v in crossed], dict(duplicates), axes)
    return Plan(name=name, description=description, source=source, spec_text=text, base=base, seeds=seeds,
                axes=tuple((k, tuple(vals)) for k, vals in axes), variants=tuple(kept), runs=runs, notes=tuple(notes),
                baselines=baselines, duplicates=tuple(duplicates), tables=names_list(data, "tables"),
                figures=names_list(data, "figures"), unresolved=unresolved, seed_policy=sweep_policy(data))


#: the first character of a placeholder run key (a real key is 16 hex digits): the data are not here
UNRESOLVED = "?"


def _key(spec: RunSpec, ids: Mapping[tuple[str, str | None], str | None]) -> str:
    """The run key; where the data identity is unknown a placeholder (UNRESOLVED + 15 hex digits) that
    keeps runs apart within the plan (it hashes data_root instead) but can never equal a real key."""
    data_id = ids[data_config(spec.recipe)]
    if data_id is not None:
        return run_key(spec, data_id)
    return UNRESOLVED + run_key(spec, f"unresolved:{spec.recipe.data_root}", loader=spec.recipe.loader)[1:]
