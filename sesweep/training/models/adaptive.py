"""Squeeze-and-Excitation whose reduction ratio is learned (``model.attention.adaptive``).

Why not ``r = int(1/θ)``: the integer cast has zero gradient almost everywhere, so θ never learns. Here the
hidden layer is allocated at the maximum width ``H`` (the width ``reduction`` gives through
:func:`hidden_width`) and a *soft, monotone mask* over its units decides how many are used:

* **mask** — unit ``i`` (0-based) gets ``m_i = sigmoid((w - i - 1/2) / τ)``, applied to the hidden
  activations between fc1's ReLU and fc2. ``m`` is non-increasing in ``i`` (the first units are always the
  most "on"), and ``m_i >= 1/2`` exactly when ``i < round_half_up(w)``.
* **width** — ``w`` (in hidden units) comes from one unconstrained parameter θ per block:
  ``w = lo + κ·softplus(R·(θ + 1)/κ)`` with ``R = H - lo``, ``lo = min_hidden`` and κ = 0.1. θ is measured in
  fractions of the learnable range (θ = 0 is ``H``, θ = -1 is ``lo``) and ``w`` is linear in it down to a
  smooth knee at ``lo``: θ → -∞ gives ``w → lo`` from above (1 by default; ``0⁺`` with ``min_hidden=0``),
  and the effective width below stays positive. There is no upper knee: for θ > 0, ``w > H`` and the mask
  saturates (every unit on), so the *effective* width stays in ``(0, H)``. Nothing is clamped. Why not
  ``w = H·sigmoid(θ)``: its slope at the maximum is ≈ ``H - w`` → 0, so a width that starts at the maximum
  (as every run does) barely moves under any cost weight; here the only damping at the start is the top
  unit's mask slope. Weight decay on θ would pull towards θ = 0, the maximum (never a hidden cost
  pressure); leave it off anyway (:func:`adaptive_parameters`).
* **init** — θ = 0, ``w = H``. Every mask value is within ``ε = sigmoid(-1/(2τ))`` of 1 — the top unit's
  (ε = 0.034 at τ = 0.15); the next one is within 5e-5 — so a new learnable SE computes almost the fixed SE
  of the same ``r``, and :meth:`LearnableSE.pin_width` at ``H`` makes it compute exactly that (a hard mask
  of ones).
* **effective width** — ``Σ_i m_i`` (the expected number of active units; within ~ε of ``w``), a float in
  ``(0, H]``; effective ratio = ``C / effective width``.
* **temperature** τ = 0.15 hidden units (:data:`TEMPERATURE`): small enough that the mask is nearly binary
  and the init is within a few percent of one fixed-SE unit; large enough that the gradient reaching θ
  through the top unit at init is a useful fraction (``ε(1-ε)/τ ≈ 0.22``) of its value in mid-range, so
  widths leave the maximum when a cost asks. The slope ``Σ_i m_i(1-m_i)/τ`` of the effective width is
  0.44 at integer and 1.68 at half-integer widths (τ = 0.1: 0.13 and 2.5; τ = 0.2: 0.71 and 1.32): widths
  linger near integers, where the first dropped unit's mask is ε, so hardening there removes little.
* **cost** — :meth:`LearnableSE.expected_cost`: SE parameters ``(2C + b)·width + b·C`` or SE MACs
  ``2C·width`` per image (the two 1×1 FCs on the pooled vector), in millions, differentiable in θ through the
  effective width. :func:`cost_term` sums the blocks and divides by the *whole model's* cost in the same
  unit, so it is the SE's share of the network (ResNet-20 with max r=2: 0.057 of its parameters at full
  width) and ``cost_weight`` reads "loss (nats) that 100 % of the model's cost is worth". Measured on
  ResNet-20, max r=2 (H = 8/16/32), SGD lr 0.1 (θ too, no weight decay on θ), cosine, seed 0 — share of
  the SE budget in use at the end (:func:`budget_fraction`): digits 16×16, 15 epochs (165 steps):
  0 → 0.996, 0.01 → 0.988, 0.1 → 0.979, 1 → 0.335 (widths 8/8/8, 12/13/13, 9/4/3); CIFAR-10 (5,000
  images, 16×16, 5 epochs, 195 steps): 0 → 0.999, 0.1 → 0.974, 1 → 0.236 (8/8/8, 12/12/13, 1/1/1). So
  0.01 is no pressure, 0.1 weak, 1 strong. Dividing by the maximum SE cost instead made 0.01 already cut
  6-13 % and 0.1 cut 80 % — too steep for a 0.01…1 grid. A width pushed to its minimum tends to stay
  there (the knee's slope fades), as one pushed above ``H`` does (the mask's slope fades).
* **hardening** — :func:`harden`: ``k = max(1, min_hidden, floor(effective_width + 1/2))`` (round half up,
  min 1), keep units ``0..k-1`` (the largest mask values, by monotonicity) and fold their mask values into
  fc2's columns (``fc2[:, i] · m_i``; the kept masks are in ``[1/2, 1)``, not rounded to 1). It is an
  approximation, not the same function: the kept units' contribution is reproduced exactly, the dropped
  units' share ``Σ_{i>=k} m_i·fc2[:, i]·h_i`` of fc2's input is removed. The first dropped unit's mask is ε
  (0.034) when ``w`` is an integer and approaches 1/2 as ``w`` nears a half-integer from below (at most
  0.5006 over all widths at τ = 0.15: near ``H`` the mask's sum falls a hair short of ``w``); the ones after
  it are ≤ ε. :meth:`LearnableSE.hardening_masks` gives both values per block (logged as
  ``dropped_mask_max`` / ``kept_mask_min`` in the adaptive log); ``soft_top1_err`` against ``top1_err`` in
  a run's record is hardening's measured effect. BatchNorm statistics are not re-estimated afterwards:
  measured on the smoke sweep's learned variant (digits, 6 epochs; cost weight 1 seeds 0-3, 0.2 and 4
  seeds 0-1; dropped masks up to 0.47), hardening left every run's top-1 error unchanged (test loss within
  1e-4, logits within 0.04 where measured), and re-estimating BN on one training epoch moved the soft and
  the hardened nets' errors identically (-0.56 to +0.28 points, 1-2 of 359 images: noise of the
  re-estimate, not a repair).

:class:`DynamicSE` replaces the one θ per block by a router (a linear layer on the squeezed descriptor) that
gives a θ per sample; its cost term uses the batch-mean width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from sesweep.training.models.attention import Attention, HiddenWidth, SEFactory, SqueezeExcite

#: mask temperature τ in hidden units (see the module docstring for why 0.15)
TEMPERATURE = 0.15
#: sharpness κ of the width parametrisation's knee at the minimum width, in hidden units
KNEE = 0.1

CostUnit = Literal["params", "macs"]
COST_UNITS = ("params", "macs")


def round_half_up(x: float) -> int:
    """``floor(x + 1/2)``: the rounding of learned widths (Python's ``round`` rounds halves to even)."""
    return math.floor(x + 0.5)


def soft_width(theta: torch.Tensor, lo: float, hi: float, knee: float = KNEE) -> torch.Tensor:
    """The width in hidden units for θ: ``lo + κ·softplus(R·(θ + 1)/κ)``, ``R = hi - lo``.

    Linear in θ (slope R) above a smooth knee at ``lo``: θ = 0 is ``hi`` (the maximum), θ = -1 is ``lo``
    (+ κ ln 2), θ → -∞ gives ``w → lo`` from above. There is no upper knee: above ``hi`` the *mask*
    saturates (every unit on), which is the only saturation the width sees; nothing is clamped.
    """
    span = hi - lo
    if span <= 0:  # min_hidden >= H: nothing to learn (θ still gets a zero gradient)
        return theta * 0.0 + hi
    return lo + knee * F.softplus((theta + 1.0) * span / knee)


class _Transient:
    """Holds the last forward's graph-attached width; dropped (not copied) by ``copy.deepcopy``.

    ``sesweep.training.measure.count_macs`` deep-copies models, and a tensor in the middle of an autograd graph
    cannot be deep-copied.
    """

    def __init__(self) -> None:
        self.value: torch.Tensor | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _Transient:
        return _Transient()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.value = None


class _AdaptiveMixin:
    """What learnable and dynamic SE share: the mask, the cost formulas and the width bookkeeping."""

    width: HiddenWidth
    fc1: nn.Conv2d
    fc2: nn.Conv2d
    temperature: float
    min_width: float
    _centres: torch.Tensor

    def _init_mask(self, pool: str, gate: str, min_hidden: int, temperature: float) -> None:
        """The mask's state, after the SE's own ``__init__`` has allocated H hidden units."""
        if temperature <= 0:
            raise ValueError(f"temperature {temperature!r} must be > 0")
        self.pool_kind, self.gate_kind, self.min_hidden = pool, gate, min_hidden
        self.temperature = temperature
        self.min_width = float(min(max(min_hidden, 0), self.max_hidden))
        self.register_buffer("_centres", torch.arange(self.max_hidden, dtype=torch.float32) + 0.5,
                             persistent=False)

    @property
    def channels(self) -> int:
        return self.width.channels

    @property
    def max_hidden(self) -> int:
        """H: the allocated hidden width (the one ``reduction`` gives)."""
        return self.width.hidden

    @property
    def has_bias(self) -> bool:
        return self.fc1.bias is not None

    def _mask(self, w: torch.Tensor) -> torch.Tensor:
        """Soft mask ``sigmoid((w - i - 1/2)/τ)`` over the hidden units; ``w`` of shape [...] → [..., H]."""
        return torch.sigmoid((w.unsqueeze(-1) - self._centres) / self.temperature)

    def _cost(self, eff_width: torch.Tensor, unit: str) -> torch.Tensor:
        """SE cost in millions for an effective hidden width (a tensor, so it stays differentiable)."""
        c, b = self.channels, float(self.has_bias)
        if unit == "params":
            return ((2 * c + b) * eff_width + b * c + self._extra_params()) / 1e6
        if unit == "macs":
            return (2 * c * eff_width + self._extra_macs()) / 1e6
        raise ValueError(f"cost unit {unit!r}; allowed: {', '.join(COST_UNITS)}")

    def _extra_params(self) -> int:
        return 0

    def _extra_macs(self) -> int:
        return 0

    def max_cost(self, unit: CostUnit = "params") -> float:
        """The cost at the full width H (the normaliser of :func:`budget_fraction`), in millions."""
        return float(self._cost(torch.tensor(float(self.max_hidden)), unit))


class LearnableSE(_AdaptiveMixin, SqueezeExcite):
    """SE whose hidden width is learned per block (``adaptive: learnable``); see the module docstring.

    A :class:`SqueezeExcite` (same pool/gate/bias knobs, same ``fc1``/``fc2`` names and init draws, so it
    starts matched to the fixed SE of the same ``r``) plus one parameter ``width_logit`` and a soft mask.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 1, divisor: int = 1,
                 pool: str = "avg", gate: str = "sigmoid", bias: bool = True, block: str = "se",
                 temperature: float = TEMPERATURE) -> None:
        super().__init__(channels, reduction, min_hidden, divisor, pool, gate, bias, block)
        self._init_mask(pool, gate, min_hidden, temperature)
        self.width_logit = nn.Parameter(torch.zeros(()))
        self.pinned: int | None = None

    # -- width ------------------------------------------------------------------------------------------

    def soft_width(self) -> torch.Tensor:
        """``w`` in hidden units (0-dim tensor, differentiable in ``width_logit``)."""
        return soft_width(self.width_logit, self.min_width, float(self.max_hidden))

    def mask(self) -> torch.Tensor:
        """The mask over the H hidden units: soft, or the hard 0/1 mask of a pinned width."""
        if self.pinned is not None:
            return (self._centres < self.pinned).to(self._centres.dtype)
        return self._mask(self.soft_width())

    def width_tensor(self) -> torch.Tensor:
        """Effective width ``Σ mask`` as a differentiable 0-dim tensor (what the cost term uses)."""
        return self.mask().sum()

    def effective_width(self) -> float:
        """Effective hidden width ``Σ_i m_i`` in ``(0, H]``, a plain float."""
        with torch.no_grad():
            return float(self.width_tensor())

    def effective_ratio(self) -> float:
        """Effective reduction ratio ``C / effective width``."""
        return self.channels / self.effective_width()

    def hardened_width(self) -> int:
        """``k``: the effective width rounded half up, at least ``max(1, min_hidden)``."""
        return max(1, self.min_hidden, round_half_up(self.effective_width()))

    def hardening_masks(self) -> tuple[float, float]:
        """What :func:`harden` would do to this block: ``(largest mask value among the units it drops (0.0 when
        it drops none), smallest mask value among the units it keeps and folds into fc2)``."""
        with torch.no_grad():
            mask, k = self.mask(), self.hardened_width()
            return float(mask[k:].max()) if k < len(mask) else 0.0, float(mask[:k].min())

    def pin_width(self, k: int | None) -> None:
        """Replace the soft mask by a hard one keeping the first ``k`` units (``None``: learn again).

        ``pin_width(H)`` makes the block compute exactly the fixed SE with the same weights.
        """
        if k is not None and not 1 <= k <= self.max_hidden:
            raise ValueError(f"pinned width {k} outside 1..{self.max_hidden} (block {self.width.block})")
        self.pinned = k

    # -- forward, cost, reports ------------------------------------------------------------------------

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(self.pool(x)))
        if self.pinned != self.max_hidden:  # pinned at H: no multiply at all, bit-identical to the fixed SE
            h = h * self.mask().to(h.dtype).view(1, -1, 1, 1)
        return self.gate(self.fc2(h))

    def expected_cost(self, unit: CostUnit = "params") -> torch.Tensor:
        """SE parameters or per-image MACs in millions at the current soft width (differentiable)."""
        return self._cost(self.width_tensor(), unit)

    def hidden_widths(self) -> list[HiddenWidth]:
        """The width hardening would give: learned ratio, effective width, rounded ``k`` (see ``harden``)."""
        eff = self.effective_width()
        k = self.hardened_width()
        return [HiddenWidth(self.width.block, self.channels, self.channels / eff, eff, k, k != eff,
                            k > round_half_up(eff))]

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        """fc1/fc2 exactly as the fixed SE draws them (same generator names); the width at its maximum."""
        super().reset_parameters(generator_for)
        with torch.no_grad():
            self.width_logit.zero_()

    def extra_repr(self) -> str:
        return f"max_hidden={self.max_hidden}, min_width={self.min_width:g}, temperature={self.temperature:g}"


class DynamicSE(_AdaptiveMixin, SqueezeExcite):
    """SE whose width depends on the input (``adaptive: dynamic``): a router picks a soft width per sample.

    ``router`` (Linear C → 1) maps the squeezed descriptor to a per-sample θ, parametrised like
    :class:`LearnableSE`'s (θ = 0 is the maximum). The router starts at zero, so at init the block computes
    exactly what a new :class:`LearnableSE` does and learns to route from there. The cost term uses the
    batch-mean effective width of the last forward; :meth:`last_widths` gives the per-sample widths.

    The soft mask saves no computation: every sample runs the full FCs at the allocated width H, which is
    what params, MACs and latency count. With ``truncate`` set (see :func:`truncated`), an eval-mode forward
    instead computes each sample's FCs only up to its hard width ``k_n`` (:meth:`hard_widths`), samples grouped
    by ``k_n``: units ``i < k_n`` keep their soft mask values, the others (each ``m_i < 1/2``) are skipped.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 1, divisor: int = 1,
                 pool: str = "avg", gate: str = "sigmoid", bias: bool = True, block: str = "se",
                 temperature: float = TEMPERATURE) -> None:
        super().__init__(channels, reduction, min_hidden, divisor, pool, gate, bias, block)
        self._init_mask(pool, gate, min_hidden, temperature)
        self.router = nn.Linear(channels, 1)
        self._last = _Transient()
        self.truncate = False

    def _extra_params(self) -> int:
        return self.channels + 1

    def _extra_macs(self) -> int:
        return self.channels

    def _widths_for(self, descriptor: torch.Tensor) -> torch.Tensor:
        """Per-sample effective widths ``Σ_i m_{n,i}`` and masks for pooled descriptors [N, C]."""
        theta = self.router(descriptor).squeeze(-1)
        return self._mask(soft_width(theta.float(), self.min_width, float(self.max_hidden)))

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        s = self.pool(x)
        mask = self._widths_for(s.flatten(1))
        self._last.value = mask.sum(-1)
        if self.truncate and not self.training:
            return self._truncated_excitation(s, mask)
        h = self.act(self.fc1(s))
        return self.gate(self.fc2(h * mask.to(h.dtype).unsqueeze(-1).unsqueeze(-1)))

    def hard_widths(self, widths: torch.Tensor) -> torch.Tensor:
        """Per-sample hard widths ``k_n = max(1, min_hidden, round_half_up(w_n))`` (at most H), int64."""
        k = torch.floor(widths.detach() + 0.5).long()
        return k.clamp(min=max(1, self.min_hidden), max=self.max_hidden)

    def _truncated_excitation(self, s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The excitation with each sample's FCs computed only up to its hard width (no dropped-unit MACs)."""
        n, c = s.shape[:2]
        x = s.flatten(1)
        k = self.hard_widths(mask.sum(-1))
        w1, w2 = self.fc1.weight.flatten(1), self.fc2.weight.flatten(1)
        b1, b2 = self.fc1.bias, self.fc2.bias
        groups = k.unique().tolist()
        if len(groups) == 1:  # one width for the whole batch: no gather/scatter
            width = groups[0]
            h = self.act(F.linear(x, w1[:width], None if b1 is None else b1[:width]))
            return self.gate(F.linear(h * mask[:, :width].to(h.dtype), w2[:, :width], b2).view(n, c, 1, 1))
        out: torch.Tensor | None = None
        for width in groups:
            rows = (k == width).nonzero().squeeze(1)
            h = self.act(F.linear(x[rows], w1[:width], None if b1 is None else b1[:width]))
            part = F.linear(h * mask[rows, :width].to(h.dtype), w2[:, :width], b2)
            out = part.new_empty(n, c) if out is None else out
            out[rows] = part.to(out.dtype)
        assert out is not None
        return self.gate(out.view(n, c, 1, 1))

    def _width_now(self) -> torch.Tensor:
        """Per-sample widths of the last forward (graph attached), or of a zero descriptor before any."""
        if self._last.value is not None:
            return self._last.value
        zero = torch.zeros(1, self.channels, device=self.router.weight.device, dtype=self.router.weight.dtype)
        return self._widths_for(zero).sum(-1)

    def last_widths(self) -> torch.Tensor:
        """Per-sample effective widths of the last forward: a detached float CPU tensor [N]."""
        return self._width_now().detach().float().cpu()

    def effective_width(self) -> float:
        """Batch-mean effective width of the last forward (of a zero descriptor before any), a float."""
        return float(self.last_widths().mean())

    def effective_ratio(self) -> float:
        return self.channels / self.effective_width()

    def expected_cost(self, unit: CostUnit = "params") -> torch.Tensor:
        """Cost at the batch-mean width of the last forward, in millions (differentiable in the router)."""
        return self._cost(self._width_now().mean(), unit)

    def hidden_widths(self) -> list[HiddenWidth]:
        """The allocated width H: every sample runs the full FCs, so that is what params and MACs count."""
        return [self.width]

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        """fc1/fc2 as the fixed SE draws them; the router at zero (start at the maximum width, unrouted)."""
        super().reset_parameters(generator_for)
        with torch.no_grad():
            self.router.weight.zero_()
            self.router.bias.zero_()

    def extra_repr(self) -> str:
        return f"max_hidden={self.max_hidden}, min_width={self.min_width:g}, temperature={self.temperature:g}"


AdaptiveSE = LearnableSE | DynamicSE


@dataclass(frozen=True)
class AdaptiveSEFactory(SEFactory):
    """Builds the adaptive SE of one block: :class:`~sesweep.training.models.attention.SEFactory` plus the mode.

    ``reduction`` sets the *maximum* hidden width H (through ``hidden_width``, with ``min_hidden`` and
    ``divisor``); ``min_hidden`` is also the lower bound of the learned width.
    """

    adaptive: Literal["learnable", "dynamic"] = "learnable"
    temperature: float = TEMPERATURE

    def __post_init__(self) -> None:
        if self.adaptive not in ("learnable", "dynamic"):
            raise ValueError(f"adaptive {self.adaptive!r}; allowed: learnable, dynamic")

    @classmethod
    def from_spec(cls, attention: Any) -> AdaptiveSEFactory:
        """From a :class:`sesweep.spec.AttentionSpec` with ``adaptive`` learnable or dynamic."""
        return cls(reduction=attention.reduction, min_hidden=attention.min_hidden, divisor=attention.divisor,
                   pool=attention.pool, gate=attention.gate, bias=attention.bias, adaptive=attention.adaptive)

    def __call__(self, channels: int, block: str) -> Attention:
        kind = LearnableSE if self.adaptive == "learnable" else DynamicSE
        return kind(channels, self.reduction, self.min_hidden, self.divisor, self.pool, self.gate, self.bias,
                    block, self.temperature)


# -- model level ------------------------------------------------------------------------------------------

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
    and 1 strong within a few epochs (measured numbers in the module docstring). SE is cheap in MACs, so the
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
    at most ≈ 1/2 (ε = 0.034 at an integer width; see the module docstring and
    :meth:`LearnableSE.hardening_masks`). Its ``HiddenWidth`` records the learned width (``exact``), ``k``
    (``hidden``) and the learned ratio.
    """
    k = module.hardened_width()
    mask = module.mask()[:k]
    se = SqueezeExcite(module.channels, module.channels / k, 1, 1, module.pool_kind, module.gate_kind,
                       module.has_bias, module.width.block)
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
