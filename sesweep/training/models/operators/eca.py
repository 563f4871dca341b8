"""ECA (Wang et al., CVPR 2020): a 1-D convolution of size k across the channels, ``σ(C1D_k(y))``.

The kernel (``model.attention.eca_kernel``): a given odd k, one odd k per stage, or ``auto`` — ECA's rule
``k = |log₂(C)/γ + b/γ|_odd`` with γ = 2, b = 1, as ECA's code rounds it (truncate, then an even value up by
one), at least 3 (timm's floor: k = 1 would gate each channel alone). **C is the channels the module gates**
(the block's output at the standard, post and identity sites, its input at pre), timm's convention: on
ResNet-50 it gives 5, 5, 5, 7 per stage, not the released 3, 5, 5, 7 — those are a hard-coded list in ECA's
code, and no single choice of C reproduces them (:func:`released_kernel_conventions`); give them as
``eca_kernel: [3, 5, 5, 7]``. Every block records the k it got (``BlockCost.width``).

A Conv1d ``conv`` with m input rows (m = 2 for pool avgstd) and one output row: m·k (+ 1 with bias) parameters
and m·k·C MACs per block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sesweep.spec import SpecError
from sesweep.training.models.attention import GATES, INITS, BlockCost, ChannelAttention, excitation, init_layer

#: ECA's γ and b
GAMMA, B = 2, 1


def eca_rule(channels: int, floor: int = 3) -> int:
    """ECA's adaptive kernel for ``channels``: ``t = int(|log₂ C / γ + b / γ|)``, odd t, else t + 1; ≥ ``floor``."""
    t = int(abs(math.log2(channels) / GAMMA + B / GAMMA))
    return max(floor, t if t % 2 else t + 1)


def kernel_for(att: Any, channels: int, stage: int) -> int:
    """The k of a block of ``channels`` at stage index ``stage`` under ``model.attention.eca_kernel``."""
    given = att.eca_kernel
    if given == "auto":
        return eca_rule(channels)
    return int(given[stage]) if isinstance(given, tuple) else int(given)


@excitation("eca")
class ECA(ChannelAttention):
    """ECA: every channel's gate sees its k nearest channels' descriptors through one shared kernel."""

    def __init__(self, channels: int, kernel: int = 3, pool: str = "avg", gate: str = "sigmoid", bias: bool = True,
                 block: str = "se", init: str = "torch", init_std: float = 0.001, att: Any = None) -> None:
        super().__init__(channels, pool, gate, block, att)
        if init not in INITS:
            raise ValueError(f"init {init!r}; allowed: {', '.join(INITS)}")
        if kernel < 1 or kernel % 2 == 0:
            raise SpecError("model.attention.eca_kernel", f"{kernel} at block {block}; allowed: an odd k >= 1")
        self.init, self.init_std = init, init_std
        self.conv = nn.Conv1d(self.multiplicity, 1, kernel, padding=(kernel - 1) // 2, bias=bias)
        self.gate = GATES[gate]()

    @property
    def kernel(self) -> int:
        return int(self.conv.kernel_size[0])

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        n = y.shape[0]
        return self.conv(y.view(n, self.multiplicity, self.channels)).view(n, self.channels, 1, 1)

    def cost(self) -> BlockCost:
        return self._block_cost(self.block_name, self.pool_kind, self.multiplicity, self.channels, self.kernel,
                          self.conv.bias is not None)

    @classmethod
    def _block_cost(cls, block: str, pool: str, m: int, channels: int, k: int, bias: bool) -> BlockCost:
        return BlockCost(block, "eca", pool, channels, "kernel", k, m * k + int(bias), m * k * channels, m * k,
                         "model.attention.eca_kernel", "ECA kernel")

    @classmethod
    def plan(cls, att: Any, channels: int, block: str, stage: int) -> BlockCost:
        k = kernel_for(att, channels, stage)
        return cls._block_cost(block, att.pool, cls.pool_multiplicity(att.pool), channels, k, att.bias)

    @classmethod
    def refuse(cls, att: Any, stages: int) -> None:
        super().refuse(att, stages)
        if isinstance(att.eca_kernel, tuple) and len(att.eca_kernel) != stages:
            raise SpecError("model.attention.eca_kernel", f"{list(att.eca_kernel)} has {len(att.eca_kernel)} "
                                                          f"kernels but the net has {stages} stages; allowed: "
                                                          f"auto, one odd k, or {stages} odd k (one per stage)")

    @classmethod
    def from_spec(cls, att: Any, channels: int, block: str, stage: int) -> ChannelAttention:
        return cls(channels, kernel_for(att, channels, stage), att.pool, att.gate, att.bias, block, att.init,
                   att.init_std, att)

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        fan_in = self.multiplicity * self.kernel
        init_layer(self.init, self.init_std, self.conv.weight, self.conv.bias, fan_in, self.kernel,
                   generator_for("conv.weight"), generator_for("conv.bias"))


def released_kernel_conventions(widths: tuple[int, ...] = (64, 128, 256, 512), expansion: int = 4
                                ) -> dict[str, list[int]]:
    """ECA's rule on ResNet-50's stages under each candidate C (the stage's planes, the first block's input,
    its output), with and without the k ≥ 3 floor: which, if any, gives the released [3, 5, 5, 7]."""
    inputs = (widths[0], *(w * expansion for w in widths[:-1]))
    candidates = {"planes": widths, "first block input": inputs, "block output": tuple(w * expansion for w in widths)}
    return {f"{name}{'' if floor == 3 else ', no floor'}": [eca_rule(c, floor) for c in cs]
            for name, cs in candidates.items() for floor in (3, 1)}
