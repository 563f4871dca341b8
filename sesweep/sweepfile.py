"""Reading a sweep file: YAML with duplicate keys rejected, and the checks of its top-level keys, name, seeds,
dotted overrides and ``tables:``/``figures:`` lists; every error is one :class:`~sesweep.spec.SpecError`."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from sesweep.spec import SpecError, check_key
from sesweep.vocabulary import check_names

#: the keys a sweep file may have at its top level
TOP_KEYS = ("name", "description", "model", "recipe", "seeds", "variants", "axes", "baseline", "tables", "figures")
NAME_RE = re.compile(r"^[a-z0-9_-]+$")


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


def sweep_seeds(data: Mapping[str, Any]) -> tuple[int, ...]:
    if "seeds" not in data:
        raise SpecError("seeds", "is missing; list the seeds every variant is trained with, e.g. seeds: [0, 1, 2]")
    seeds = data["seeds"]
    if not isinstance(seeds, list) or not seeds:
        raise SpecError("seeds", f"{seeds!r} is not allowed; allowed: a non-empty list of distinct integers >= 0")
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
