"""The one spec schema: every knob of a run under one dotted name.

The dataclasses below *are* the schema: their type hints say what a value may be (``Literal`` lists the
allowed values), their ``metadata`` holds range checks, and their defaults are the defaults. Everything
that reads a config — ``KEY=VALUE`` on the command line, a sweep file, a row of ``runs.csv`` — goes through
:func:`build` so a bad value is always reported the same way: the dotted key, what was given, what is
allowed. Nothing is clamped or rounded silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import operator
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from sesweep.operators import EXCITATION_NAMES, SQUEEZE_NAMES


class SpecError(ValueError):
    """A bad key or value; ``str()`` is one line that names the key and what is allowed."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        self.key = key
        self.message = message
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}" if key else f"{where}{message}")

    def in_source(self, source: str) -> SpecError:
        """The same error, prefixed with the file (or other source) it came from."""
        return SpecError(self.key, self.message, source)


def _range(**bounds: float) -> dict[str, Any]:
    """Field metadata for numeric bounds: gt, ge, lt, le."""
    return {"bounds": bounds}


def _check(fn: Any, rule: str) -> dict[str, Any]:
    """Field metadata for a custom check: ``fn(value) -> bool`` and the rule it enforces, for messages."""
    return {"check": (fn, rule)}


Stages = Literal["all"] | tuple[int, ...]


@dataclass(frozen=True)
class AttentionSpec:
    """Channel attention inside each residual block (SE and its ablations)."""

    kind: Literal["none", "se"] = "se"
    reduction: float = field(default=16, metadata=_range(gt=0))
    min_hidden: int = field(default=1, metadata=_range(ge=0))
    divisor: int = field(default=1, metadata=_range(ge=1))
    #: the squeeze (:data:`sesweep.operators.SQUEEZES`): avg | max | avgmax | avgstd (SRM) | dct (FcaNet)
    pool: Literal[SQUEEZE_NAMES] = "avg"
    gate: Literal["sigmoid", "hard_sigmoid", "tanh", "relu", "identity"] = "sigmoid"
    placement: Literal["standard", "pre", "post", "identity"] = "standard"
    stages: Stages = "all"
    bias: bool = True
    #: none: fixed width; learnable: each block learns its width (≤ the width ``reduction`` gives);
    #: dynamic: a router picks a soft width per input sample
    adaptive: Literal["none", "learnable", "dynamic"] = "none"
    #: weight of the cost term that pulls adaptive widths down (0 = no pressure)
    cost_weight: float = field(default=0.0, metadata=_range(ge=0))
    #: what the cost term counts: the adaptive SE blocks' parameters or MACs as a share of the whole model's
    #: (so ``cost_weight`` reads "loss, in nats, that 100 % of the model's cost is worth")
    cost_unit: Literal["params", "macs"] = "params"
    #: SE weights' init: torch = PyTorch's default U(±1/√fan_in) (weights and biases); normal = N(0, init_std)
    #: weights, zero biases; kaiming = timm's Kaiming normal (fan_out, ReLU), zero biases
    init: Literal["torch", "normal", "kaiming"] = "torch"
    #: the std of the ``normal`` init (unused by the others)
    init_std: float = field(default=0.001, metadata=_range(gt=0))
    #: the excitation (:data:`sesweep.operators.EXCITATIONS`): mlp (SENet's, with the ratio) | none (SE-Var1) |
    #: channelwise (SE-Var2) | fc (SE-Var3) | eca; at its default it stays out of run keys (every key made
    #: before it existed means mlp)
    excitation: Literal[EXCITATION_NAMES] = field(default="mlp", metadata={"unkeyed_default": True})
    #: ECA's kernel: auto (k = |log2(C)/2 + 1/2| rounded up to odd, at least 3, C = the block's attended
    #: channels), one odd k for every block, or one odd k per stage
    eca_kernel: Literal["auto"] | int | tuple[int, ...] = field(default="auto", metadata={"check": (
        lambda v: v == "auto" or all(k >= 1 and k % 2 == 1 for k in (v if isinstance(v, tuple) else (v,))),
        "auto, an odd integer >= 1, or a list of them (one per stage)")})
    #: FcaNet's frequency selection of the dct pool: the first N of its ranked 7x7 frequencies (top1 = (0, 0),
    #: plain GAP up to a constant)
    dct_frequencies: Literal["top1", "top2", "top4", "top8", "top16", "top32"] = "top16"


@dataclass(frozen=True)
class ModelSpec:
    """A network: backbone plus attention."""

    arch: Literal[
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet164",
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "preresnet20", "preresnet32", "preresnet44", "preresnet56", "preresnet110", "preresnet164", "preresnet1001",
        "wrn16_4", "wrn16_8", "wrn16_10", "wrn22_8", "wrn28_10", "wrn40_4",
    ] = "resnet20"
    num_classes: Literal["auto"] | int = field(
        default="auto", metadata=_check(lambda v: v == "auto" or v >= 1, "'auto' or an integer >= 1")
    )
    attention: AttentionSpec = field(default_factory=AttentionSpec)


_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


@dataclass(frozen=True)
class RecipeSpec:
    """Everything about training and evaluation; shared by every variant of a sweep (matched)."""

    dataset: Literal["digits", "cifar10", "cifar100", "imagefolder", "imagenet32", "imagenet64", "fake"] = "digits"
    data_root: str | None = None
    train_subset: int | None = field(default=None, metadata=_range(ge=1))
    test_subset: int | None = field(default=None, metadata=_range(ge=1))
    image_size: int | None = field(default=None, metadata=_range(ge=8))
    epochs: int = field(default=15, metadata=_range(ge=1))
    batch_size: int = field(default=128, metadata=_range(ge=1))
    eval_batch_size: int = field(default=512, metadata=_range(ge=1))
    #: evaluate on the test set every N epochs (the last epoch always): fewer curve points, less time
    eval_every: int = field(default=1, metadata=_range(ge=1))
    lr: float = field(default=0.1, metadata=_range(gt=0))
    #: linear: the learning rate used is ``lr × batch_size / lr_reference_batch`` (Goyal et al. 2017), so
    #: ``lr`` is the rate at the reference batch; none: ``lr`` as given
    lr_scaling: Literal["none", "linear"] = "none"
    lr_reference_batch: int = field(default=256, metadata=_range(ge=1))
    momentum: float = field(default=0.9, metadata=_range(ge=0, lt=1))
    nesterov: bool = True
    weight_decay: float = field(default=5.0e-4, metadata=_range(ge=0))
    schedule: Literal["cosine", "step"] = "cosine"
    warmup_epochs: float = field(default=0, metadata=_range(ge=0))
    step_milestones: tuple[float, ...] = field(
        default=(0.5, 0.75),
        metadata=_check(lambda v: all(0 < m < 1 for m in v), "fractions of the schedule, each in (0, 1)"),
    )
    step_gamma: float = field(default=0.1, metadata=_range(gt=0, le=1))
    label_smoothing: float = field(default=0.0, metadata=_range(ge=0, lt=1))
    #: dropout between the two convs of each pre-activation basic block (WRN's); nets without that site: 0
    dropout: float = field(default=0.0, metadata=_range(ge=0, lt=1))
    #: standard: pad-4 random crop + flip (CIFAR); imagenet: random-resized crop (8-100 % of the area, aspect
    #: 3/4-4/3) to image_size + flip, and for test a resize to image_size·256/224 then a center crop;
    #: none: normalisation only
    augment: Literal["standard", "imagenet", "none"] = "standard"
    #: memory: decode the data set once into one uint8 tensor (on the training device); stream: decode image
    #: folders batch by batch in worker processes; auto: memory when the decoded splits fit memory_budget_gb
    loader: Literal["auto", "memory", "stream"] = "auto"
    memory_budget_gb: float = field(default=8.0, metadata=_range(gt=0))
    #: decoding processes of the stream loader (auto: one per CPU core, at most 8); the batches do not depend on it
    loader_workers: Literal["auto"] | int = field(
        default="auto", metadata=_check(lambda v: v == "auto" or v >= 0, "'auto' or an integer >= 0"))
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "auto"
    channels_last: bool = True
    device: str = field(default="auto", metadata=_check(_DEVICE.match, "auto, cpu, cuda or cuda:N"))


@dataclass(frozen=True)
class RunSpec:
    """One run: a variant (model) trained under a recipe with a seed."""

    model: ModelSpec = field(default_factory=ModelSpec)
    recipe: RecipeSpec = field(default_factory=RecipeSpec)
    seed: int = field(default=0, metadata=_range(ge=0))


# --------------------------------------------------------------------------------------------------
# dotted keys


def flatten(spec: Any, prefix: str = "") -> dict[str, Any]:
    """A spec dataclass as ``{dotted.key: value}``, leaves only, in schema order."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        value = getattr(spec, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{key}."))
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def schema_keys(cls: type = RunSpec) -> list[str]:
    """Every dotted leaf key of a spec class."""
    return list(flatten(cls()).keys())


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` → ``{"a": {"b": 1}}``; a key that is both a leaf and a section is an error."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise SpecError(".".join(parts[: i + 1]), "is a value, so it cannot also have sub-keys")
            node = nxt
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
            raise SpecError(key, "is a section; give one of its keys instead")
        node[parts[-1]] = value
    return out


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """``["model.arch=resnet50", "model.attention.stages=[2,3]"]`` → flat dict; values parse as YAML."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError("", f"'{item}' is not KEY=VALUE (for example model.attention.reduction=8)")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise SpecError(key, f"cannot parse value {raw!r}: {exc.__class__.__name__}") from None
    return out


# --------------------------------------------------------------------------------------------------
# validation: values → typed, checked dataclasses


def build(cls: type, data: Mapping[str, Any] | None = None, prefix: str = "") -> Any:
    """Validate a (nested) mapping against a spec class and return the frozen dataclass.

    Missing keys take their defaults; unknown keys, wrong types and out-of-range values raise
    :class:`SpecError` naming the dotted key and the allowed values.
    """
    data = dict(data or {})
    hints, fields = _schema(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        allowed = ", ".join(fields)
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
        section = prefix.rstrip(".") or "the top level"
        raise SpecError(f"{prefix}{key}", f"unknown key{hint}; allowed keys under {section}: {allowed}")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            sub = data.get(name, {})
            if dataclasses.is_dataclass(sub):
                sub = nest(flatten(sub))
            if not isinstance(sub, Mapping):
                raise SpecError(key, f"must be a section of keys, got {sub!r}")
            values[name] = build(hint, sub, f"{key}.")
            continue
        if name not in data:
            continue
        value = _coerce(key, data[name], hint)
        _check_metadata(key, value, f.metadata)
        values[name] = value
    return cls(**values)


@functools.cache
def _schema(cls: type) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """A spec class's type hints and fields, read once (resolving the hints is most of a build's time, which a
    10^4-variant sweep does 10^4 times)."""
    return get_type_hints(cls), {f.name: f for f in dataclasses.fields(cls)}


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return ", ".join(str(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin is tuple:
        return f"a list of {_describe(get_args(hint)[0])}"
    if hint is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against a type hint; convert only where nothing is lost (``5e-4`` text → float)."""
    origin = get_origin(hint)
    if origin is Literal:
        if value in get_args(hint) and not isinstance(value, bool):
            return value
        raise SpecError(key, f"{value!r} is not allowed; allowed: {_describe(hint)}")
    if origin in (Union, types.UnionType):
        errors: dict[Any, SpecError] = {}
        for alt in get_args(hint):
            try:
                return _coerce(key, value, alt)
            except SpecError as exc:
                errors[alt] = exc
        for alt, exc in errors.items():  # a list given for a list-typed option: say what is wrong inside it
            if get_origin(alt) is tuple and isinstance(value, list | tuple):
                raise exc
        raise SpecError(key, f"{value!r} is not allowed; allowed: {_describe(hint)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise SpecError(key, f"{value!r} is not allowed; allowed: {_describe(hint)}")
        return tuple(_coerce(f"{key}[{i}]", v, get_args(hint)[0]) for i, v in enumerate(value))
    if hint is type(None):
        if value is None:
            return None
        raise SpecError(key, f"{value!r} is not null")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise SpecError(key, f"{value!r} is not allowed; allowed: true, false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise SpecError(key, f"{value!r} is not an integer (nothing is rounded for you)")
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise SpecError(key, f"{value!r} is not a number") from None
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise SpecError(key, f"{value!r} is not a finite number")
            return int(value) if float(value).is_integer() else float(value)
        raise SpecError(key, f"{value!r} is not a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise SpecError(key, f"{value!r} is not a string")
    raise TypeError(f"spec type {hint!r} of {key} is not supported")  # a bug in the schema itself


_BOUNDS = {"gt": (operator.gt, ">"), "ge": (operator.ge, ">="), "lt": (operator.lt, "<"), "le": (operator.le, "<=")}


def _check_metadata(key: str, value: Any, metadata: Mapping[str, Any]) -> None:
    if value is None:
        return
    bounds = metadata.get("bounds", {})
    if not all(_BOUNDS[name][0](value, bound) for name, bound in bounds.items()):
        rule = " and ".join(f"{_BOUNDS[n][1]} {b}" for n, b in bounds.items())
        raise SpecError(key, f"{value!r} is out of range; allowed: {rule}")
    if "check" in metadata:
        fn, rule = metadata["check"]
        if not fn(value):
            raise SpecError(key, f"{value!r} is not allowed; allowed: {rule}")


# --------------------------------------------------------------------------------------------------
# run specs from the command line, and run keys


def run_spec(assignments: Mapping[str, Any] | None = None, base: RunSpec | None = None) -> RunSpec:
    """A :class:`RunSpec` from flat dotted overrides applied on top of ``base`` (or the defaults)."""
    merged = flatten(base or RunSpec())
    for key in assignments or {}:
        check_key(key, merged)
    merged.update(assignments or {})
    return build(RunSpec, nest(merged))


def check_key(key: str, known: Iterable[str]) -> None:
    """An unknown dotted key is an error naming it, the closest known key and its section's keys."""
    known = list(known)
    if key in known:
        return
    if any(k.startswith(f"{key}.") for k in known):
        raise SpecError(key, "is a section; give one of its keys instead")
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    section = key.rpartition(".")[0]
    siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == section]
    where = f"under {section}" if siblings else "at all"
    allowed = ", ".join(siblings) if siblings else ", ".join(known)
    raise SpecError(key, f"unknown key{hint}; allowed keys {where}: {allowed}")


#: the keys of the attention module: what an ablation varies (others — backbone, recipe — group the results)
ATTENTION_PREFIX = "model.attention."
