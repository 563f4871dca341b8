"""Model-level operations on adaptive SE: the cost term, budget shares, hardening to fixed widths, the logged
state and the dynamic widths recorded per block. Background: ``docs/adaptive.md``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from sesweep.training.models.adaptive.modules import AdaptiveSE, CostUnit, DynamicSE, LearnableSE
from sesweep.training.models.operators.mlp import SqueezeExcite


def adaptive_modules(model: nn.Module) -> list[tuple[str, AdaptiveSE]]:
    """``(module name, module)`` of every learnable or dynamic SE, in model order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AdaptiveSE)]


def adaptive_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Width logits and routers: give them their own optimizer group with ``weight_decay=0``.

    Weight decay on a width logit is a cost pressure of its own (towards θ = 0, the maximum here) that no
    ``cost_weight`` accounts for.
    """
    params: list[nn.Parameter] = []
    for _, m in adaptive_modules(model):
        params += [m.width_logit] if isinstance(m, LearnableSE) else list(m.router.parameters())
    return params


def cost_term(model: nn.Module, unit: CostUnit = "params", model_total: float | None = None) -> torch.Tensor:
    """The adaptive blocks' expected SE cost as a fraction of the whole model's cost (a 0-dim tensor).

    Add ``cost_weight * cost_term(model, unit)`` to the task loss after the forward pass (dynamic blocks
    use that forward's batch). ``model_total`` is the model's cost in millions of the same unit; for
    ``params`` it defaults to the model's parameter count, for ``macs`` pass the model's MACs per image
    (``sesweep.training.measure.model_cost(...)["macs"] / 1e6``). Why this unit: ``cost_weight`` reads as "loss
    (nats) that 100 % of the model's cost is worth", and on ResNet-20 it makes 0.01 no pressure, 0.1 weak
    and 1 strong within a few epochs (measured numbers in docs/adaptive.md). SE is cheap in MACs, so the
    same weight pulls far less with ``macs``. 0 (a constant) when the model has no adaptive block.
    """
    blocks = [m for _, m in adaptive_modules(model)]
    if not blocks:
        return torch.zeros(())
    if model_total is None:
        if unit != "params":
            raise ValueError(f"cost_term(unit={unit!r}) needs model_total: the model's {unit} in millions")
        model_total = sum(p.numel() for p in model.parameters()) / 1e6
    return torch.stack([m.expected_cost(unit) for m in blocks]).sum() / model_total


def _mean_width(m: AdaptiveSE, records: dict[str, list[torch.Tensor]] | None) -> torch.Tensor:
    """A block's effective width: a learnable block's own; a dynamic block's mean per-sample width over
    ``records`` (:func:`record_dynamic_widths`, e.g. the whole test set) when given, else over the last forward."""
    if isinstance(m, DynamicSE) and records is not None and records.get(m.width.block):
        return torch.cat(records[m.width.block]).mean()
    return m.width_tensor() if isinstance(m, LearnableSE) else m._width_now().mean()


def budget_fraction(model: nn.Module, unit: CostUnit = "params",
                    records: dict[str, list[torch.Tensor]] | None = None) -> float:
    """Σ expected SE cost / Σ maximum SE cost over the adaptive blocks: the share of the SE budget in use,
    in ``unit``. Dynamic blocks: at their mean per-sample width over ``records`` (pass the whole test set's;
    the cost is affine in the width, so this is the mean per-sample cost), else over the last forward's batch.
    A share of the *allocated* SE in one unit, not a cost: the soft mask runs every allocated unit."""
    blocks = [m for _, m in adaptive_modules(model)]
    if not blocks:
        return 0.0
    with torch.no_grad():
        return (sum(float(m._cost(_mean_width(m, records), unit)) for m in blocks)
                / sum(m.max_cost(unit) for m in blocks))


def active_width_fraction(model: nn.Module, records: dict[str, list[torch.Tensor]] | None = None) -> float:
    """Σ mean effective hidden width / Σ allocated hidden width H over the adaptive blocks: the share of the
    allocated hidden units in use on average (dynamic: over ``records`` when given, see :func:`budget_fraction`).
    A width, not a cost: a soft mask computes every allocated unit."""
    blocks = [m for _, m in adaptive_modules(model)]
    if not blocks:
        return 0.0
    with torch.no_grad():
        return sum(float(_mean_width(m, records)) for m in blocks) / sum(m.max_hidden for m in blocks)


@contextmanager
def truncated(model: nn.Module) -> Iterator[nn.Module]:
    """Within the ``with`` block, eval-mode forwards of every :class:`DynamicSE` hard-truncate each sample to
    its own width (:meth:`DynamicSE.hard_widths`), skipping the dropped units' arithmetic; training forwards
    stay soft."""
    blocks = [m for _, m in adaptive_modules(model) if isinstance(m, DynamicSE)]
    before = [m.truncate for m in blocks]
    for m in blocks:
        m.truncate = True
    try:
        yield model
    finally:
        for m, flag in zip(blocks, before, strict=True):
            m.truncate = flag


def cost_millions(model: nn.Module, unit: CostUnit = "params") -> float:
    """Σ expected SE cost of the adaptive blocks in millions (unnormalised, for logs)."""
    with torch.no_grad():
        return sum(float(m.expected_cost(unit)) for _, m in adaptive_modules(model))


def _stats(values: torch.Tensor) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std(unbiased=False)),
            "min": float(values.min()), "max": float(values.max())}


def adaptive_state(model: nn.Module) -> list[dict[str, Any]]:
    """One row per adaptive block for per-epoch logs: widths and ratios (and per-sample stats if dynamic)."""
    rows = []
    for name, m in adaptive_modules(model):
        eff = m.effective_width()
        row: dict[str, Any] = {"block": m.width.block, "module": name,
                               "kind": "learnable" if isinstance(m, LearnableSE) else "dynamic",
                               "channels": m.channels, "max_hidden": m.max_hidden, "effective_width": eff,
                               "effective_ratio": m.channels / eff}
        if isinstance(m, LearnableSE):
            row["hardened_width"] = m.hardened_width()
            row["dropped_mask_max"], row["kept_mask_min"] = m.hardening_masks()
        else:
            widths = m.last_widths()
            row.update({f"width_{k}": v for k, v in _stats(widths).items()})
            row.update({f"ratio_{k}": v for k, v in _stats(m.channels / widths).items()})
        rows.append(row)
    return rows


@torch.no_grad()
def harden(module: LearnableSE) -> SqueezeExcite:
    """The fixed SE of width ``k = hardened_width()`` that approximates ``module``.

    Keeps hidden units ``0..k-1`` and multiplies fc2's column ``i`` by ``m_i`` (each in ``[1/2, 1)``); exact
    for those units, so the change is the dropped units' contribution to fc2's input, removed: their masks are
    at most ≈ 1/2 (ε = 0.034 at an integer width; see docs/adaptive.md and
    :meth:`LearnableSE.hardening_masks`). Its ``HiddenWidth`` records the learned width (``exact``), ``k``
    (``hidden``) and the learned ratio.
    """
    k = module.hardened_width()
    mask = module.mask()[:k]
    se = SqueezeExcite(module.channels, module.channels / k, 1, 1, module.pool_kind, module.gate_kind,
                       module.has_bias, module.width.block, module.init, module.init_std)
    assert se.width.hidden == k, (se.width, k)
    se.width = module.hidden_widths()[0]
    se.to(device=module.fc1.weight.device, dtype=module.fc1.weight.dtype)
    se.fc1.weight.copy_(module.fc1.weight[:k])
    se.fc2.weight.copy_(module.fc2.weight[:, :k] * mask.to(se.fc2.weight.dtype).view(1, k, 1, 1))
    if module.has_bias:
        se.fc1.bias.copy_(module.fc1.bias[:k])
        se.fc2.bias.copy_(module.fc2.bias)
    return se.train(module.training)


def harden_model(model: nn.Module) -> nn.Module:
    """Replace every :class:`LearnableSE` in ``model`` (in place) by its :func:`harden` ed SE; returns it."""
    for name, module in adaptive_modules(model):
        if isinstance(module, LearnableSE):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, harden(module))
    return model


def harden_to_widths(model: nn.Module, widths: dict[str, int]) -> nn.Module:
    """Harden every :class:`LearnableSE` at a given width per block (e.g. a finished run's recorded widths):
    the structure of that run's deployable net, without its weights (for cost accounting)."""
    blocks = {m.width.block: m for _, m in adaptive_modules(model) if isinstance(m, LearnableSE)}
    missing = sorted(set(blocks) - set(widths))
    if missing:
        raise ValueError(f"no hardened width given for block(s) {', '.join(missing)}")
    for block, m in blocks.items():
        m.pin_width(int(widths[block]))
    return harden_model(model)


def set_temperature(model: nn.Module, temperature: float) -> None:
    """Set τ of every adaptive block (for annealing towards a harder mask late in training)."""
    if temperature <= 0:
        raise ValueError(f"temperature {temperature!r} must be > 0")
    for _, m in adaptive_modules(model):
        m.temperature = temperature


def dynamic_width_stats(model: nn.Module, records: dict[str, list[torch.Tensor]] | None = None
                        ) -> list[dict[str, Any]]:
    """Per-sample effective-ratio statistics (mean, std, min, max, n) of each dynamic block.

    Over ``records`` (from :func:`record_dynamic_widths`, e.g. a whole test set) when given, else over the
    last forward's batch.
    """
    rows = []
    for _, m in adaptive_modules(model):
        if isinstance(m, DynamicSE):
            widths = torch.cat(records[m.width.block]) if records is not None else m.last_widths()
            rows.append({"block": m.width.block, **_stats(m.channels / widths), "n": len(widths)})
    return rows


@contextmanager
def record_dynamic_widths(model: nn.Module) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Collect every dynamic block's per-sample widths over the forwards inside the ``with`` block.

    ``with record_dynamic_widths(model) as rec: evaluate(...)`` then ``dynamic_width_stats(model, rec)``.
    """
    records: dict[str, list[torch.Tensor]] = {}

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        assert isinstance(module, DynamicSE)
        records.setdefault(module.width.block, []).append(module.last_widths())

    handles = [m.register_forward_hook(hook) for _, m in adaptive_modules(model) if isinstance(m, DynamicSE)]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()
