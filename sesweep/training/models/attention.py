"""Squeeze-and-Excitation: one module, every ablation knob a constructor argument.

``SqueezeExcite(channels, reduction, min_hidden, divisor, pool, gate, bias, block, init, init_std)`` covers
SENet TPAMI Tables 10 (ratio), 11 (squeeze: avg / max) and 12 (excitation gate), and the SE's initialisation
(:data:`INITS`). The hidden width rule is explicit
(:func:`hidden_width`) and every block reports the width it got, so a ratio ablation never hides a clamp.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sesweep.spec import SpecError


@dataclass(frozen=True)
class HiddenWidth:
    """How one block's hidden width was derived: visible in ``sesweep info`` and in run records."""

    block: str
    channels: int
    reduction: float
    exact: float      # channels / reduction before any rounding
    hidden: int       # the width the block got
    rounded: bool     # hidden != exact because of the divisor rounding
    raised: bool      # hidden was lifted to min_hidden

    @property
    def effective_reduction(self) -> float:
        return self.channels / self.hidden


def hidden_width(channels: int, reduction: float, min_hidden: int = 1, divisor: int = 1,
                 block: str = "se") -> HiddenWidth:
    """``max(min_hidden, round_to_divisor(channels / reduction))``; halves round up.

    A ratio larger than the channel count, or a width that rounds to 0, is an error naming ``block``:
    the caller chose an impossible SE, and silently widening it would corrupt a ratio ablation.
    ``min_hidden`` is the one explicit lower bound; a block it lifts is flagged ``raised``.
    """
    if reduction <= 0:
        raise SpecError("model.attention.reduction", f"{reduction!r} must be > 0 (block {block})")
    if reduction > channels:
        raise SpecError(
            "model.attention.reduction",
            f"r={reduction:g} is larger than the {channels} channels of block {block}; "
            f"allowed: 0 < r <= {channels} there (or leave this stage out with model.attention.stages)",
        )
    exact = channels / reduction
    rounded = divisor * math.floor(exact / divisor + 0.5)
    if rounded < 1:
        raise SpecError(
            "model.attention.divisor",
            f"block {block}: {channels}/{reduction:g} = {exact:g} rounds to 0 with divisor {divisor}; "
            f"allowed there: divisor <= {2 * exact:g} or a smaller ratio",
        )
    hidden = max(min_hidden, rounded)
    return HiddenWidth(block, channels, reduction, exact, hidden, rounded != exact, hidden > rounded)


class AvgMaxPool(nn.Module):
    """Mean of global average and global max pooling (timm's ``add_maxpool``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True))


class _SpatialMean(torch.autograd.Function):
    """Global average pooling whose backward is a broadcast view: autograd's own materialises the
    ``[N, C, H, W]`` gradient (a full write and read of memory) only to add it to the scale's gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ctx.shape
        return (grad / (h * w)).expand(n, c, h, w)


class AvgPool(nn.Module):
    """Global average pooling (the squeeze of SENet), ``[N, C, H, W] → [N, C, 1, 1]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SpatialMean.apply(x)


class _ScaleAddReLU(torch.autograd.Function):
    """``relu(x · s + shortcut)``: a block's join with SE at the standard site, with a lean backward.

    Why: the SE costs little arithmetic but several passes over the block's activation, and on a CPU those
    passes are what an SE block costs. Forward: an in-place ReLU, and no tensors saved but the output and the
    inputs. Backward: ReLU's own mask kernel once, shared by both inputs' gradients. The forward rounds as the
    plain ``relu(x * s + shortcut)`` does (no fused multiply-add), so this SE computes bit for bit what the
    unfused one, and the adaptive SEs pinned to its width, compute.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        y = (x * s + shortcut).relu_()
        ctx.save_for_backward(x, s, y)
        ctx.shortcut_dtype = shortcut.dtype
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, s, y = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, y, 0)  # ReLU's own backward (masked_fill is 10x slower)
        wide = torch.promote_types(grad.dtype, torch.float32)  # bf16 sums over H·W lose the small terms
        grad_s = (grad * x).sum((2, 3), keepdim=True, dtype=wide).to(s.dtype)
        return (grad * s).to(x.dtype), grad_s, grad.to(ctx.shortcut_dtype)


def scale_add_relu(x: torch.Tensor, s: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """``relu(x * s + shortcut)`` with a fused forward and backward (:class:`_ScaleAddReLU`)."""
    return _ScaleAddReLU.apply(x, s, shortcut)


POOLS: dict[str, Callable[[], nn.Module]] = {
    "avg": AvgPool,
    "max": lambda: nn.AdaptiveMaxPool2d(1),
    "avgmax": AvgMaxPool,
}

GATES: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "identity": nn.Identity,
}


#: how an SE's two 1×1 convs are initialised (``model.attention.init``): PyTorch's default U(±1/√fan_in) for
#: weights and biases; N(0, init_std) weights and zero biases (a widespread SE implementation's); timm's Kaiming
#: normal (fan_out, ReLU) weights and zero biases
INITS = ("torch", "normal", "kaiming")


class Attention(nn.Module):
    """Base of every channel-attention module: counted as attention cost, initialised by name."""

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        raise NotImplementedError

    def hidden_widths(self) -> list[HiddenWidth]:
        """The hidden width(s) this module uses, for cost reports."""
        raise NotImplementedError


class SqueezeExcite(Attention):
    """x · gate(fc2(relu(fc1(pool(x))))) with 1×1 convolutions as the two FC layers (timm naming)."""

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 1, divisor: int = 1,
                 pool: str = "avg", gate: str = "sigmoid", bias: bool = True, block: str = "se",
                 init: str = "torch", init_std: float = 0.001) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init {init!r}; allowed: {', '.join(INITS)}")
        self.init, self.init_std = init, init_std
        self.width = hidden_width(channels, reduction, min_hidden, divisor, block)
        hidden = self.width.hidden
        self.pool = POOLS[pool]()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = GATES[gate]()

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel scale s ∈ gate range, shape [N, C, 1, 1] (saved for the excitation figures)."""
        return self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excitation(x)

    def residual_join(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``relu(self(x) + shortcut)``, fused (:func:`scale_add_relu`): the standard site's join. It does not
        call ``forward``, so forward hooks of this module do not fire there (the gate's do)."""
        return scale_add_relu(x, self.excitation(x), shortcut)

    def hidden_widths(self) -> list[HiddenWidth]:
        return [self.width]

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        """fc1 and fc2 as ``init`` says (:data:`INITS`), drawn from generators of the SE's own (by name)."""
        for fc_name in ("fc1", "fc2"):
            fc: nn.Conv2d = getattr(self, fc_name)
            with torch.no_grad():
                if self.init == "torch":
                    bound = 1.0 / math.sqrt(fc.in_channels)
                    for pname, param in fc.named_parameters():
                        param.uniform_(-bound, bound, generator=generator_for(f"{fc_name}.{pname}"))
                    continue
                gen = generator_for(f"{fc_name}.weight")
                if self.init == "normal":
                    fc.weight.normal_(0.0, self.init_std, generator=gen)
                else:
                    nn.init.kaiming_normal_(fc.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                if fc.bias is not None:
                    fc.bias.zero_()


@dataclass(frozen=True)
class SEFactory:
    """Builds the SE of one block from the attention spec's knobs (the ``attn_layer`` of the ResNets)."""

    reduction: float = 16
    min_hidden: int = 1
    divisor: int = 1
    pool: str = "avg"
    gate: str = "sigmoid"
    bias: bool = True
    init: str = "torch"
    init_std: float = 0.001

    def __call__(self, channels: int, block: str) -> SqueezeExcite:
        return SqueezeExcite(channels, self.reduction, self.min_hidden, self.divisor, self.pool,
                             self.gate, self.bias, block, self.init, self.init_std)
