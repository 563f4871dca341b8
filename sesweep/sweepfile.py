"""Reading a sweep file: YAML with duplicate keys rejected, and the checks of its top-level keys, name, seeds,
dotted overrides and ``tables:``/``figures:`` lists; every error is one :class:`~sesweep.spec.SpecError`."""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from sesweep.seed_policy import parse_seed_policy
from sesweep.spec import SpecError, check_key
from sesweep.vocabulary import check_names

#: the keys a sweep file may have at its top level
TOP_KEYS = ("name", "description", "model", "recipe", "seeds", "variants", "axes", "baseline", "tables", "figures",
            "max_runs", "max_train_flop", "max_layer_params")
NAME_RE = re.compile(r"^[a-z0-9_-]+$")
#: a sweep of more runs is refused when it is loaded, before anything is expanded, unless ``max_runs`` allows it
MAX_RUNS = 10_000
#: the default limit on a sweep's training compute, in FLOP (``max_train_flop``; estimated by
#: :mod:`sesweep.budget`): 2.7x the largest shipped sweep (experiments/senet-imagenet-stages-placement.yaml,
#: 7.5e19: 24 SE-ResNet-50 runs x 100 ImageNet epochs)
MAX_TRAIN_FLOP = 2e20
#: the most parameters one layer of a model may have unless ``max_layer_params`` allows more: ResNet-152's
#: largest has 2.4M and a 1000-class head 2M; above it a typo (num_classes: 1000000000, reduction: 0.0001) would
#: allocate gigabytes before the first step
MAX_LAYER_PARAMS = 100_000_000
#: a sweep file whose YAML expands (anchors and aliases followed) to more nodes is refused before it is walked
MAX_YAML_NODES = 100_000
#: a longer sweep file is refused before it is parsed (parsing 7 MB of YAML takes seconds)
MAX_CHARS = 1_000_000


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


def _expanded_size(node: yaml.Node, memo: dict[int, int], open_: set[int]) -> int:
    """How many nodes the tree has with every alias followed (shared nodes counted once per use), capped just
    above :data:`MAX_YAML_NODES`: an alias bomb (nested anchors, 10 levels of 9 → 3.5e9 nodes) is measured, not
    walked."""
    if id(node) in memo:
        return memo[id(node)]
    if id(node) in open_:
        raise SpecError("", f"not valid here: a YAML anchor refers to itself (line {node.start_mark.line + 1})")
    open_.add(id(node))
    size = 1
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else \
        node.value if isinstance(node, yaml.SequenceNode) else []
    for child in children:
        size = min(size + _expanded_size(child, memo, open_), MAX_YAML_NODES + 1)
    open_.discard(id(node))
    memo[id(node)] = size
    return size


#: libyaml's safe loader where PyYAML was built with it (10× faster on a huge file), else the pure-Python one
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """Safe YAML that rejects duplicate mapping keys (PyYAML alone keeps the last one silently) and documents
    that expand past :data:`MAX_YAML_NODES` (anchor/alias bombs)."""
    if len(text) > MAX_CHARS:
        raise SpecError("", f"the sweep file is {len(text):,} characters long, more than the limit of {MAX_CHARS:,}; "
                            "a sweep file is a few kB (a long list of seeds or values? fewer will do)")
    try:
        node = yaml.compose(text, Loader=_LOADER)
        if node is not None:
            if _expanded_size(node, {}, set()) > MAX_YAML_NODES:
                raise SpecError("", f"the sweep file holds more than {MAX_YAML_NODES:,} YAML values (counting each "
                                    "use of an anchor); a sweep file needs far fewer")
            _find_duplicate_keys(node)
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise SpecError("", f"not valid YAML{where}: {problem}") from None


# --------------------------------------------------------------------------------------------------
# top-level keys


def check_top_keys(data: Mapping[Any, Any]) -> None:
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


def sweep_name(data: Mapping[str, Any]) -> str:
    if "name" not in data or data["name"] is None:
        raise SpecError("name", "is missing; every sweep needs a name (letters a-z, digits, _ and -): "
                                "its results go to results/<name>/")
    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError("name", f"{name!r} is not allowed; allowed: lower-case letters, digits, _ and - "
                                "(it names results/<name>/)")
    return name


def check_size(data: Mapping[str, Any], axis_lengths: Sequence[int], seeds: int) -> None:
    """Refuse a sweep of more than ``max_runs`` runs (default :data:`MAX_RUNS`) before it is expanded, with the
    count and the key that allows it: a 10^5-point grid or a million seeds would take minutes just to plan."""
    train_flop_limit(data)  # checked at load; the estimate needs the models (sesweep.budget, at run)
    limit = data.get("max_runs", MAX_RUNS)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise SpecError("max_runs", f"{limit!r} is not allowed; allowed: an integer >= 1")
    grid = 1
    for n in axis_lengths:
        grid *= n
    variants = data.get("variants") if isinstance(data.get("variants"), Mapping) else {}
    crossed = grid if isinstance(data.get("baseline"), Mapping) and axis_lengths else 0
    runs = (grid + len(variants) + crossed) * seeds
    if runs > limit:
        where = " x ".join(map(str, axis_lengths)) or "1"
        raise SpecError("max_runs", f"this sweep has {runs:,} runs ({where} axis points + {len(variants)} variants"
                                    f"{f' + {crossed} crossed baselines' if crossed else ''}, x {seeds} seeds), more "
                                    f"than the limit of {limit:,}; if you mean it, set max_runs: {runs} in the "
                                    "sweep file")


def train_flop_limit(data: Mapping[str, Any]) -> float:
    """``max_train_flop``: the most training compute (FLOP) the sweep may ask for; default
    :data:`MAX_TRAIN_FLOP`. A number > 0 (``1.0e+22``; ``1e22``, a string to YAML, is read too)."""
    raw = data.get("max_train_flop", MAX_TRAIN_FLOP)
    try:
        value = float(raw) if isinstance(raw, int | float | str) and not isinstance(raw, bool) else math.nan
    except (ValueError, OverflowError):
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise SpecError("max_train_flop", f"{raw!r} is not allowed; allowed: a number of FLOP > 0, e.g. 1.0e+22")
    return value


def layer_params_limit(data: Mapping[str, Any]) -> int:
    """``max_layer_params``: the most parameters one layer of the sweep's models may have; default
    :data:`MAX_LAYER_PARAMS`. An integer >= 1."""
    limit = data.get("max_layer_params", MAX_LAYER_PARAMS)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise SpecError("max_layer_params", f"{limit!r} is not allowed; allowed: an integer >= 1")
    return limit


def sweep_seeds(data: Mapping[str, Any]) -> tuple[int, ...]:
    if "seeds" not in data:
        raise SpecError("seeds", "is missing; list the seeds every variant is trained with, e.g. seeds: [0, 1, 2]")
    seeds = data["seeds"]
    if isinstance(seeds, Mapping):  # a seed policy: the plan holds every seed up to its max
        return parse_seed_policy(seeds).seeds
    if not isinstance(seeds, list) or not seeds:
        raise SpecError("seeds", f"{seeds!r} is not allowed; allowed: a non-empty list of distinct integers >= 0, "
                                 "or a policy {start: 4, max: 20, step: 2, margin: 0.3, alpha: 0.05}")
    for i, s in enumerate(seeds):
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise SpecError(f"seeds[{i}]", f"{s!r} is not allowed; allowed: an integer >= 0")
    dup = first_duplicate(seeds)
    if dup is not None:
        raise SpecError("seeds", f"seed {dup} is listed twice; allowed: distinct integers >= 0")
    return tuple(seeds)


def flat_overrides(raw: Mapping[Any, Any], where: str, known: Sequence[str], prefix: str = "") -> dict[str, Any]:
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


def names_list(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """The ``tables:`` or ``figures:`` list; a name no table or figure has is an error naming the allowed ones
    (a name whose factor this sweep does not vary is valid: the report notes that it could not make it)."""
    raw = data.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise SpecError(key, f"{raw!r} is not allowed; allowed: a list of names")
    check_names(key, raw)
    return tuple(raw)


def first_duplicate(values: Sequence[Any]) -> Any:
    seen: set[str] = set()
    for v in values:
        canon = json.dumps(v, sort_keys=True, default=str)
        if canon in seen:
            return v
        seen.add(canon)
    return None


def fmt_value(value: Any) -> str:
    """A value as it appears in a derived variant name: YAML-like and short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(fmt_value(v) for v in value) + "]"
    return str(value)
