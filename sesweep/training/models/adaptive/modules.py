"""The learnable and dynamic SE modules (a soft, monotone mask over a maximum-width hidden layer) and their
factory. How they work and the measured calibration of their constants: ``docs/adaptive.md``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from sesweep.training.models.attention import Attention, HiddenWidth
from sesweep.training.models.operators.mlp import ADAPTIVE, SEFactory, SqueezeExcite

#: mask temperature τ in hidden units (docs/adaptive.md says why 0.15)
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
    #: no fused join (:meth:`SqueezeExcite.residual_join`): the width records hook this module's forward
    residual_join = None

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
    """SE whose hidden width is learned per block (``adaptive: learnable``); see docs/adaptive.md.

    A :class:`SqueezeExcite` (same pool/gate/bias knobs, same ``fc1``/``fc2`` names and init draws, so it
    starts matched to the fixed SE of the same ``r``) plus one parameter ``width_logit`` and a soft mask.
    """

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 1, divisor: int = 1,
                 pool: str = "avg", gate: str = "sigmoid", bias: bool = True, block: str = "se",
                 temperature: float = TEMPERATURE, init: str = "torch", init_std: float = 0.001) -> None:
        super().__init__(channels, reduction, min_hidden, divisor, pool, gate, bias, block, init, init_std)
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
                 temperature: float = TEMPERATURE, init: str = "torch", init_std: float = 0.001) -> None:
        super().__init__(channels, reduction, min_hidden, divisor, pool, gate, bias, block, init, init_std)
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
ADAPTIVE.update(learnable=LearnableSE, dynamic=DynamicSE)  # the mlp operator's learned widths


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
                   pool=attention.pool, gate=attention.gate, bias=attention.bias, init=attention.init,
                   init_std=attention.init_std, adaptive=attention.adaptive)

    def __call__(self, channels: int, block: str) -> Attention:
        kind = LearnableSE if self.adaptive == "learnable" else DynamicSE
        return kind(channels, self.reduction, self.min_hidden, self.divisor, self.pool, self.gate, self.bias,
                    block, self.temperature, self.init, self.init_std)
