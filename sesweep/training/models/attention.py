"""The base of every channel-attention operator: the module shape, the registries, the shared pieces.

Each operator (SENet's MLP, SE-Var1/2/3, ECA; the squeezes avg / max / avgmax / avgstd / dct) is one file under
:mod:`.operators` that registers its class here by name (:func:`excitation`, :func:`squeeze`). What they share
lives here: :class:`ChannelAttention` (``x · gate(excite(pool(x)))`` and the fused residual join), the gates,
the init rule (:func:`init_layer`), and the SE's explicit hidden-width rule (:func:`hidden_width`, every block
reporting the width it got, so a ratio ablation never hides a clamp).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

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



@dataclass(frozen=True)
class BlockCost:
    """One block's attention as its operator declares it before anything is built: the width (hidden units of
    an MLP, ECA's kernel k, or none), the parameters, the MACs (convolutions and matmuls only, the convention of
    :mod:`sesweep.training.measure`) and the largest single layer (what ``max_layer_params`` bounds)."""

    block: str
    excitation: str
    pool: str
    channels: int
    width_kind: str        # "hidden", "kernel" or "" (no width)
    width: int | None
    params: int
    macs: int
    largest_layer: int
    #: the key that sets ``largest_layer`` (the weights ``max_layer_params`` bounds); how a refusal names it
    knob: str = "model.attention.excitation"
    label: str = ""


class Squeeze(nn.Module):
    """A squeeze: ``[N, C, H, W] → [N, m·C, 1, 1]``, ``m`` descriptors per channel laid out as ``m`` blocks of C."""

    #: descriptors per channel (2 for mean + std)
    multiplicity: ClassVar[int] = 1

    def __init__(self, channels: int, block: str, att: Any) -> None:
        super().__init__()
        self.channels = channels

    @classmethod
    def refuse(cls, att: Any, channels: int, block: str) -> None:
        """Raise the one-line :class:`SpecError` for a pair of knobs this squeeze cannot take (default: none)."""


#: name → class of every squeeze and excitation operator (filled by :func:`squeeze` and :func:`excitation`
#: in each operator's own file under ``operators/``; the names are :mod:`sesweep.operators`' keys)
SQUEEZES: dict[str, type[Squeeze]] = {}
EXCITATIONS: dict[str, type[ChannelAttention]] = {}


def squeeze(name: str) -> Callable[[type[Squeeze]], type[Squeeze]]:
    """Class decorator: the squeeze operator called ``name`` (``model.attention.pool``)."""
    def register(cls: type[Squeeze]) -> type[Squeeze]:
        cls.name = name  # type: ignore[attr-defined]
        SQUEEZES[name] = cls
        return cls
    return register


def excitation(name: str) -> Callable[[type[ChannelAttention]], type[ChannelAttention]]:
    """Class decorator: the excitation operator called ``name`` (``model.attention.excitation``)."""
    def register(cls: type[ChannelAttention]) -> type[ChannelAttention]:
        cls.name = name
        EXCITATIONS[name] = cls
        return cls
    return register


def init_layer(init: str, init_std: float, weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int,
               fan_out: int, gen_w: torch.Generator, gen_b: torch.Generator | None) -> None:
    """One attention layer as ``init`` says (:data:`INITS`), from generators named by the layer: torch =
    U(±1/√fan_in) weights and biases; normal = N(0, init_std) weights; kaiming = N(0, √(2/fan_out)) weights;
    zero biases but for torch's."""
    with torch.no_grad():
        if init == "torch":
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=gen_w)
            if bias is not None:
                bias.uniform_(-bound, bound, generator=gen_b)
            return
        std = init_std if init == "normal" else math.sqrt(2.0) / math.sqrt(fan_out)  # torch's kaiming, bit for bit
        weight.normal_(0.0, std, generator=gen_w)
        if bias is not None:
            bias.zero_()


class ChannelAttention(Attention):
    """``x · gate(excite(pool(x)))``: every operator's module. A subclass is one excitation; its pool comes from
    :data:`SQUEEZES`, its gate from :data:`GATES` (``self.gate``: the module the excitation figures read).

    A subclass declares beside its module what the rest of the code asks it: ``plan`` (its width, parameters and
    MACs for a block of C channels, before anything is built), ``refuse`` (the knob pairs it cannot take, one
    line naming the pair) and ``from_spec`` (the one constructor from the attention spec).
    """

    name: ClassVar[str]
    #: the squeezes this excitation can take (None: all)
    pools: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, channels: int, pool: str = "avg", gate: str = "sigmoid", block: str = "se",
                 att: Any = None) -> None:
        super().__init__()
        self.channels, self.block_name = channels, block
        self.pool_kind, self.gate_kind = pool, gate
        self.pool = SQUEEZES[pool](channels, block, att)

    @property
    def multiplicity(self) -> int:
        return type(self.pool).multiplicity

    @staticmethod
    def pool_multiplicity(pool: str) -> int:
        """Descriptors per channel of the squeeze ``pool`` (what the excitation's input width is a multiple of)."""
        return SQUEEZES[pool].multiplicity

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        """The pooled descriptor ``[N, m·C, 1, 1]`` → the gate's input ``[N, C, 1, 1]``."""
        raise NotImplementedError

    def excitation(self, x: torch.Tensor) -> torch.Tensor:
        """The per-channel scale s ∈ gate range, shape [N, C, 1, 1] (saved for the excitation figures)."""
        return self.gate(self.excite(self.pool(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excitation(x)

    def residual_join(self, x: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        """``relu(self(x) + shortcut)``, fused (:func:`scale_add_relu`): the standard site's join. It does not
        call ``forward``, so forward hooks of this module do not fire there (the gate's do)."""
        return scale_add_relu(x, self.excitation(x), shortcut)

    def hidden_widths(self) -> list[HiddenWidth]:
        return []

    def cost(self) -> BlockCost:
        """This block as its operator declares it (:meth:`plan`), for ``sesweep info`` and run records."""
        raise NotImplementedError

    @classmethod
    def plan(cls, att: Any, channels: int, block: str, stage: int) -> BlockCost:
        """The block's width, parameters and MACs for ``channels`` at stage index ``stage``, without building."""
        raise NotImplementedError

    @classmethod
    def refuse(cls, att: Any, stages: int) -> None:
        """Raise the one-line :class:`SpecError` for a knob pair this excitation cannot take; ``stages`` is the
        backbone's stage count. Default: the pools it declares (:attr:`pools`), and no learned width."""
        if cls.pools is not None and att.pool not in cls.pools:
            raise SpecError("model.attention.pool", f"{att.pool} does not go with excitation {cls.name}; allowed "
                                                    f"with {cls.name}: {', '.join(cls.pools)}")
        if att.adaptive != "none":
            raise SpecError("model.attention.adaptive", f"{att.adaptive} does not go with excitation {cls.name} (a "
                                                        f"learned width is the mlp's hidden width); allowed: none")

    @classmethod
    def from_spec(cls, att: Any, channels: int, block: str, stage: int) -> ChannelAttention:
        raise NotImplementedError


def stage_of(block: str) -> int:
    """The stage index (0 = SENet's stage 2) of a block named ``layerK.J.site``, as the ResNets name them."""
    return int(block.split(".", 1)[0].removeprefix("layer")) - 1
