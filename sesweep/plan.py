"""A sweep file (``experiments/NAME.yaml``) → the manifest of its runs.

A sweep is a base run spec (``model:``, ``recipe:``), the ``axes`` to vary (a cartesian product over dotted
keys), extra named ``variants`` (dotted overrides of the base, not crossed with the axes), the ``baseline``
(a variant's name, or overrides such as ``{model.attention.kind: none}`` crossed with the axes, so a depth
sweep gets one plain ResNet per depth) and the ``seeds``.
:func:`load_plan` validates the whole file before anything runs — unknown keys, wrong types, impossible SE
widths, empty or duplicated axis values, duplicated variant names (also as duplicated YAML keys, which
PyYAML would silently collapse) — and every error is one :class:`~sesweep.spec.SpecError` line that names
the file, the dotted key and what is allowed. Nothing is written here.

Expansion order: every axes combination of the base (variant names such as ``r=4,pool=max``; the base
alone, named ``base``, when there are no axes), then the named variants in file order, then the crossed
baselines; each variant × the seeds. Two variants that resolve to the same spec are one run: the first
name is kept and the manifest says which name was dropped.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sesweep.spec import RunSpec, SpecError, check_key, flatten, run_key, run_spec, schema_keys
from sesweep.vocabulary import check_names

#: the keys a sweep file may have at its top level
TOP_KEYS = ("name", "description", "model", "recipe", "seeds", "variants", "axes", "baseline", "tables", "figures")
NAME_RE = re.compile(r"^[a-z0-9_-]+$")
#: variant names: no '=' or ',' (those mark names derived from the axes), nothing a file system or CSV minds
VARIANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: short labels for axis keys in derived variant names (the last key segment otherwise)
LABELS = {"reduction": "r"}
#: variant names the baseline defaults to, in this order, when ``baseline:`` is not given
DEFAULT_BASELINES = ("resnet", "baseline")
#: the name of the base variant when a sweep has no axes
BASE_NAME = "base"
#: the name (prefix) of the baseline variants a ``baseline: {overrides}`` mapping crosses with the axes
BASELINE_NAME = "baseline"
#: keys under this prefix change the attention only: one baseline serves every value of such an axis
ATTENTION_PREFIX = "model.attention."


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
class Variant:
    """A model/recipe of the sweep before seeds: its name, its overrides of the base, where it came from."""

    name: str
    overrides: dict[str, Any]   # dotted key → value, relative to the base
    spec: RunSpec               # resolved, seed 0
    origin: str                 # "axes", "variants", "base" or "baseline" (crossed with the axes)


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
        ids, unresolved = _data_ids(specs)
        runs = tuple(dataclasses.replace(r, spec=s, key=_key(s, ids), data_id=ids[_data_config(s.recipe)])
                     for r, s in zip(self.runs, specs, strict=True))
        if len({r.key for r in runs}) < len(runs):
            raise SpecError("--data-root", "variants of this sweep differ only in recipe.data_root, so one "
                                           "--data-root for all of them would make them the same runs")
        return dataclasses.replace(
            self, base=moved(self.base),
            variants=tuple(dataclasses.replace(v, spec=moved(v.spec)) for v in self.variants),
            runs=runs, unresolved=unresolved)

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
            over = ", ".join(f"{k}={_fmt(val)}" for k, val in v.overrides.items()) or "(the base)"
            lines.append(f"  {v.name:<{width}}  {over}{mark}")
        lines.append(f"  seeds: {', '.join(map(str, self.seeds))}")
        for dropped, kept in self.duplicates:
            lines.append(f"  note: variant {dropped} is the same run as {kept}; kept {kept}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.unresolved:
            lines.append(f"  note: run keys cannot be resolved ({self.unresolved}); the keys shown start with "
                         f"{UNRESOLVED!r} and nothing can run until the data are found (--data-root DIR)")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# YAML with duplicate keys rejected


def _find_duplicate_keys(node: yaml.Node, path: str = "") -> None:
    """Walk a composed YAML tree; a mapping with the same key twice is an error naming the dotted path."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                _find_duplicate_keys(value_node, path)
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            dotted = f"{path}.{key}" if path else str(key)
            if key in seen:
                raise SpecError(dotted, f"is given twice (lines {seen[key]} and {line}); YAML would silently "
                                        "keep the last one, so remove or rename one of them")
            seen[key] = line
            _find_duplicate_keys(value_node, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _find_duplicate_keys(item, f"{path}[{i}]")


def load_yaml(text: str) -> Any:
    """Safe YAML that rejects duplicate mapping keys (PyYAML alone keeps the last one silently)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _find_duplicate_keys(node)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise SpecError("", f"not valid YAML{where}: {problem}") from None


# --------------------------------------------------------------------------------------------------
# loading


def load_plan(path: str | Path) -> Plan:
    """Read and validate a sweep file; every error is a :class:`SpecError` prefixed with the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("", f"cannot read the sweep file: {exc.strerror or exc}").in_source(source) from None
    except UnicodeDecodeError:
        raise SpecError("", "the sweep file is not UTF-8 text").in_source(source) from None
    return parse_plan(text, source)


def parse_plan(text: str, source: str = "<sweep>") -> Plan:
    """Validate sweep text (see the module doc); errors are :class:`SpecError` prefixed with ``source``."""
    try:
        return _parse(text, source)
    except SpecError as exc:
        raise exc.in_source(source) from None


def _parse(text: str, source: str) -> Plan:
    data = load_yaml(text)
    if not isinstance(data, Mapping):
        raise SpecError("", "a sweep file is a mapping with keys " + ", ".join(TOP_KEYS))
    _check_top_keys(data)
    name = _name(data)
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
        base_flat.update(_flat_overrides(raw, section, known, prefix=f"{section}."))
    base = run_spec(base_flat)
    seeds = _seeds(data)
    axes = _axes(data, base, known)
    variants = _expand(data, base, axes, known)
    crossed = _crossed_baselines(data, base, axes, known, {v.name for v in variants})
    variants += crossed
    _check_models(variants)

    kept: list[Variant] = []
    by_key: dict[str, str] = {}
    duplicates: list[tuple[str, str]] = []
    ids, unresolved = _data_ids([v.spec for v in variants])
    for v in variants:
        key = _key(v.spec, ids)
        if key in by_key:
            duplicates.append((v.name, by_key[key]))
            continue
        by_key[key] = v.name
        kept.append(v)
    runs = tuple(Run(v.name, s, spec, _key(spec, ids), ids[_data_config(spec.recipe)])
                 for v in kept for s in seeds for spec in [dataclasses.replace(v.spec, seed=s)])
    baselines, notes = _baselines(data, variants, [v.name for v in crossed], dict(duplicates), axes)
    return Plan(name=name, description=description, source=source, spec_text=text, base=base, seeds=seeds,
                axes=tuple((k, tuple(vals)) for k, vals in axes), variants=tuple(kept), runs=runs,
                baselines=baselines, duplicates=tuple(duplicates), tables=_names_list(data, "tables"),
                figures=_names_list(data, "figures"), notes=tuple(notes), unresolved=unresolved)


#: the first character of a placeholder run key (a real key is 16 hex digits): the data are not here
UNRESOLVED = "?"


def _data_config(recipe: Any) -> tuple[str, str | None]:
    """What :func:`.training.data.data_identity` reads of a recipe: the data set, and where an image folder is."""
    return recipe.dataset, recipe.data_root if recipe.dataset == "imagefolder" else None


def _data_ids(specs: Sequence[RunSpec]) -> tuple[dict[tuple[str, str | None], str | None], str | None]:
    """The data identity of every distinct data config of ``specs`` (each read once), None where the data
    are not on this machine; and the first such error as one line (None when every identity is known)."""
    from sesweep.training.data import data_identity

    ids: dict[tuple[str, str | None], str | None] = {}
    unresolved = None
    for spec in specs:
        config = _data_config(spec.recipe)
        if config in ids:
            continue
        try:
            _check_readable(spec.recipe)
            ids[config] = data_identity(spec.recipe)
        except SpecError as exc:
            ids[config] = None
            unresolved = unresolved or str(exc)
        except OSError as exc:  # a folder that cannot be listed (permissions, a dead mount)
            ids[config] = None
            unresolved = unresolved or str(_unreadable(exc))
    return ids, unresolved


def _check_readable(recipe: Any) -> None:
    """An image folder that is there but cannot be listed is named as such (not as "no train/ folder")."""
    if recipe.dataset != "imagefolder" or recipe.data_root is None:
        return
    root = Path(recipe.data_root).expanduser()
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise SpecError("recipe.data_root", f"cannot read {root.resolve()}: permission denied")


def _unreadable(exc: OSError) -> SpecError:
    where = f" {exc.filename}" if exc.filename else ""
    return SpecError("recipe.data_root", f"cannot read{where}: {exc.strerror or exc}")


def check_data(plan: Plan) -> None:
    """Raise the :class:`SpecError` the runs of ``plan`` would each fail with at data loading, once, before
    anything is queued: an image folder without images (or with fewer than a subset asks for), a folder
    that cannot be read, CIFAR that is neither there nor downloadable, a subset larger than a built-in set.

    Image folders are only listed (and one image header read), never decoded: that is each run's work, and
    cached. Built-in sets are loaded once (CIFAR: downloaded once, here, if it is not there yet)."""
    from sesweep.training.data import _folder_classes, _folder_files, _folder_root, dataset_image_size, load_data

    if plan.unresolved:
        raise SpecError("", plan.unresolved)
    checked: set[tuple[Any, ...]] = set()
    for v in plan.variants:
        recipe = v.spec.recipe
        config = (recipe.dataset, recipe.data_root, recipe.train_subset, recipe.test_subset, recipe.image_size)
        if config in checked:
            continue
        checked.add(config)
        try:
            try:
                if recipe.dataset != "imagefolder":
                    load_data(recipe)
                    continue
                root = _folder_root(recipe)
                classes = _folder_classes(root)
                for split, n, key in (("train", recipe.train_subset, "recipe.train_subset"),
                                      ("test", recipe.test_subset, "recipe.test_subset")):
                    files, _ = _folder_files(root / split, classes)
                    if not files:
                        raise SpecError("recipe.data_root", f"no images in {split}/ under {root} (its class "
                                                            f"folders {', '.join(classes)} hold no image files)")
                    if n is not None and n > len(files):
                        raise SpecError(key, f"{n} is more than the {len(files)} images of the {split} split "
                                             f"under {root}")
                dataset_image_size(recipe)
            except OSError as exc:
                raise _unreadable(exc) from None
        except SpecError as exc:
            raise _in_variant(exc, v) from None


def _key(spec: RunSpec, ids: Mapping[tuple[str, str | None], str | None]) -> str:
    """The run key; where the data identity is unknown a placeholder (UNRESOLVED + 15 hex digits) that
    keeps runs apart within the plan (it hashes data_root instead) but can never equal a real key."""
    data_id = ids[_data_config(spec.recipe)]
    if data_id is not None:
        return run_key(spec, data_id)
    return UNRESOLVED + run_key(spec, f"unresolved:{spec.recipe.data_root}")[1:]


def _check_top_keys(data: Mapping[Any, Any]) -> None:
    for key in data:
        if key in TOP_KEYS:
            continue
        text = str(key)
        if text == "seed":
            raise SpecError("seed", "unknown key; a sweep lists its seeds as seeds: [0, 1, 2]")
        if text.startswith(("model.", "recipe.")):
            raise SpecError(text, "dotted spec keys go under model: or recipe: (the base), variants: or axes:")
        close = difflib.get_close_matches(text, TOP_KEYS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SpecError(text, f"unknown key{hint}; allowed keys at the top level: {', '.join(TOP_KEYS)}")


def _name(data: Mapping[str, Any]) -> str:
    if "name" not in data or data["name"] is None:
        raise SpecError("name", "is missing; every sweep needs a name (letters a-z, digits, _ and -): "
                                "its results go to results/<name>/")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError("name", f"{name!r} is not allowed; allowed: lower-case letters, digits, _ and - "
                                "(it names results/<name>/)")
    return name


def _seeds(data: Mapping[str, Any]) -> tuple[int, ...]:
    if "seeds" not in data:
        raise SpecError("seeds", "is missing; list the seeds every variant is trained with, e.g. seeds: [0, 1, 2]")
    seeds = data["seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise SpecError("seeds", f"{seeds!r} is not allowed; allowed: a non-empty list of distinct integers >= 0")
    for i, s in enumerate(seeds):
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise SpecError(f"seeds[{i}]", f"{s!r} is not allowed; allowed: an integer >= 0")
    dup = _first_duplicate(seeds)
    if dup is not None:
        raise SpecError("seeds", f"seed {dup} is listed twice; allowed: distinct integers >= 0")
    return tuple(seeds)


def _flat_overrides(raw: Mapping[Any, Any], where: str, known: Sequence[str], prefix: str = "") -> dict[str, Any]:
    """Nested or dotted keys (``attention: {reduction: 8}`` or ``attention.reduction: 8``) → dotted keys.

    ``where`` names the section for messages; ``prefix`` is prepended to every key (``model.`` for the
    base's model section). Each key is checked against the schema.
    """
    out: dict[str, Any] = {}

    def walk(node: Mapping[Any, Any], path: str) -> None:
        for k, v in node.items():
            if not isinstance(k, str) or not k:
                raise SpecError(f"{where}", f"key {k!r} is not a dotted spec key such as model.attention.reduction")
            key = f"{path}{k}"
            if isinstance(v, Mapping) and key not in known:
                if not v:
                    raise SpecError(_rel(where, prefix, key), "is an empty section")
                walk(v, f"{key}.")
                continue
            if key == "seed":
                raise SpecError(_rel(where, prefix, key), "the seed is not a variant setting; list seeds under seeds:")
            try:
                check_key(key, known)
            except SpecError as exc:
                raise SpecError(_rel(where, prefix, key), exc.message) from None
            out[key] = v

    walk(raw, prefix)
    return out


def _rel(where: str, prefix: str, key: str) -> str:
    """The dotted key as the user wrote it in ``where`` (the base sections already carry their prefix)."""
    return key if prefix else f"{where}.{key}"


def _axes(data: Mapping[str, Any], base: RunSpec, known: Sequence[str]) -> list[tuple[str, list[Any]]]:
    if "axes" not in data:
        return []
    raw = data["axes"]
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError("axes", f"{raw!r} is not allowed; allowed: a non-empty mapping of dotted keys to lists "
                                "of values, e.g. model.attention.reduction: [4, 8, 16] (or leave axes out)")
    flat = _flat_overrides(raw, "axes", known)
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
        dup = _first_duplicate(resolved)
        if dup is not None:
            raise SpecError(where, f"value {_fmt(dup)} is listed twice; allowed: distinct values")
        axes.append((key, values))
    return axes


def _expand(data: Mapping[str, Any], base: RunSpec, axes: list[tuple[str, list[Any]]],
            known: Sequence[str]) -> list[Variant]:
    variants: list[Variant] = []
    if axes:
        labels = _axis_labels(axes)
        for combo in itertools.product(*(vals for _, vals in axes)):
            overrides = {k: v for (k, _), v in zip(axes, combo, strict=True)}
            name = ",".join(f"{labels[k]}={_fmt(v)}" for k, v in overrides.items())
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
        flat = _flat_overrides(over, f"variants.{name}", known)
        try:
            spec = run_spec(flat, base)
        except SpecError as exc:
            raise SpecError(f"variants.{name}.{exc.key}" if exc.key else f"variants.{name}", exc.message) from None
        variants.append(Variant(name, flat, spec, "variants"))
    return variants


def _axis_labels(axes: list[tuple[str, list[Any]]]) -> dict[str, str]:
    """Axis key → its label in derived variant names: ``r`` for the ratio, else the last key segment (the
    whole key where two axes would share a label)."""
    short = {k: LABELS.get(k.rpartition(".")[2], k.rpartition(".")[2]) for k, _ in axes}
    counts = list(short.values())
    return {k: lab if counts.count(lab) == 1 else k for k, lab in short.items()}


def _check_models(variants: list[Variant]) -> None:
    """Every distinct model must be buildable (SE widths, stages, …); errors name where the value came from."""
    checked: dict[Any, SpecError | None] = {}
    for v in variants:
        probe = (v.spec.model, v.spec.recipe.dataset)
        if probe not in checked:
            try:
                check_model(v.spec)
                checked[probe] = None
            except SpecError as exc:
                checked[probe] = exc
        exc = checked[probe]
        if exc is None:
            continue
        raise _in_variant(exc, v, always=True)


def _in_variant(exc: SpecError, v: Variant, always: bool = False) -> SpecError:
    """The error of one variant, keyed where its value came from (``axes.…``, ``variants.NAME.…``) and naming
    the variant; an error of the base's value names no variant unless ``always``."""
    key = exc.key
    if key not in v.overrides:
        return SpecError(key, f"{exc.message} (variant {v.name})") if always else exc
    key = {"axes": f"axes.{key}", "baseline": f"baseline.{key}"}.get(v.origin, f"variants.{v.name}.{key}")
    return SpecError(key, f"{exc.message} (variant {v.name})")


def check_model(spec: RunSpec) -> None:
    """Raise the :class:`SpecError` building this run's model would raise, without building big models.

    The SE hidden width of every block is checked analytically with the same rule the model uses
    (:func:`sesweep.training.models.hidden_width`), so the message names the block; CIFAR-size models (milliseconds
    to build) are also built, which catches every other build-time check.
    """
    from sesweep.training.data import NUM_CLASSES, dataset_channels
    from sesweep.training.models import ARCHS, build_model, hidden_width
    from sesweep.training.models.build import attention_stages

    model = spec.model
    arch = ARCHS[model.arch]
    att = model.attention
    if att.kind == "se":
        stages = attention_stages(model)
        site = {"standard": "attn_branch", "pre": "attn_pre", "post": "attn_post",
                "identity": "attn_identity"}[att.placement]
        inplanes = arch.widths[0]
        for i, (n, planes) in enumerate(zip(arch.layers, arch.widths, strict=True)):
            cout = planes * arch.block.expansion
            for j in range(n):
                cin = inplanes if j == 0 else cout
                if stages is None or i + 2 in stages:
                    channels = cin if att.placement == "pre" else cout
                    hidden_width(channels, att.reduction, att.min_hidden, att.divisor, f"layer{i + 1}.{j}.{site}")
            inplanes = cout
    if arch.input_size <= 32:
        classes = NUM_CLASSES.get(spec.recipe.dataset)  # imagefolder: not known without reading the folders
        if classes is None and model.num_classes == "auto":
            classes = 2
        build_model(model, classes, dataset_channels(spec.recipe), spec.seed)


def _crossed_baselines(data: Mapping[str, Any], base: RunSpec, axes: list[tuple[str, list[Any]]],
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
    over = _flat_overrides(raw, "baseline", known)
    try:
        run_spec(over, base)
    except SpecError as exc:
        raise SpecError(f"baseline.{exc.key}" if exc.key else "baseline", exc.message) from None
    combos = [dict(zip([k for k, _ in axes], combo, strict=True))
              for combo in itertools.product(*(vals for _, vals in axes))] if axes else [{}]
    by_key: dict[str, tuple[dict[str, Any], RunSpec]] = {}
    for combo in combos:
        spec = run_spec({**combo, **over}, base)
        # within one plan the config tells runs apart; the data are read once, later (_data_ids)
        by_key.setdefault(run_key(spec, data_id=str(spec.recipe.data_root)), (combo, spec))
    distinct = list(by_key.values())
    telling = [k for k, _ in axes if len({json.dumps(c[k], default=str) for c, _ in distinct}) > 1]
    labels = _axis_labels(axes)
    out = []
    for combo, spec in distinct:
        name = ",".join([BASELINE_NAME, *(f"{labels[k]}={_fmt(combo[k])}" for k in telling)])
        if name in taken:
            raise SpecError(f"variants.{name}", "is the name of the crossed baseline (from baseline:); rename "
                                                "the variant")
        out.append(Variant(name, {**{k: combo[k] for k in telling}, **over}, spec, "baseline"))
    return out


def _baselines(data: Mapping[str, Any], variants: list[Variant], crossed: list[str], dropped: dict[str, str],
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


def _names_list(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """The ``tables:`` or ``figures:`` list; a name no table or figure has is an error naming the allowed ones
    (a name whose factor this sweep does not vary is valid: the report notes that it could not make it)."""
    raw = data.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise SpecError(key, f"{raw!r} is not allowed; allowed: a list of names")
    check_names(key, raw)
    return tuple(raw)


def _first_duplicate(values: Sequence[Any]) -> Any:
    seen: set[str] = set()
    for v in values:
        canon = json.dumps(v, sort_keys=True, default=str)
        if canon in seen:
            return v
        seen.add(canon)
    return None


def _fmt(value: Any) -> str:
    """A value as it appears in a derived variant name: YAML-like and short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    return str(value)
