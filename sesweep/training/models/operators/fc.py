"""ECA-Net's SE-Var3 (Table 2): one full FC, no reduction, ``σ(W y + b)`` with W ``[C, m·C]``.

A 1×1 convolution ``fc`` (m·C → C): m·C² (+ C) parameters and m·C² MACs per block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sesweep.training.models.attention import GATES, INITS, BlockCost, ChannelAttention, excitation, init_layer


@excitation("fc")
class FullFC(ChannelAttention):
    """SE-Var3: every channel's gate sees every channel's descriptor."""

    def __init__(self, channels: int, pool: str = "avg", gate: str = "sigmoid", bias: bool = True,
                 block: str = "se", init: str = "torch", init_std: float = 0.001, att: Any = None) -> None:
        super().__init__(channels, pool, gate, block, att)
        if init not in INITS:
            raise ValueError(f"init {init!r}; allowed: {', '.join(INITS)}")
        self.init, self.init_std = init, init_std
        self.fc = nn.Conv2d(self.multiplicity * channels, channels, 1, bias=bias)
        self.gate = GATES[gate]()

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        return self.fc(y)

    def cost(self) -> BlockCost:
        return self._block_cost(self.block_name, self.pool_kind, self.multiplicity, self.channels,
                                self.fc.bias is not None)

    @classmethod
    def _block_cost(cls, block: str, pool: str, m: int, channels: int, bias: bool) -> BlockCost:
        weights = m * channels * channels
        return BlockCost(block, "fc", pool, channels, "", None, weights + (channels if bias else 0), weights, weights,
                         label=f"full FC {m * channels:,} x {channels:,}")

    @classmethod
    def plan(cls, att: Any, channels: int, block: str, stage: int) -> BlockCost:
        return cls._block_cost(block, att.pool, cls.pool_multiplicity(att.pool), channels, att.bias)

    @classmethod
    def from_spec(cls, att: Any, channels: int, block: str, stage: int) -> ChannelAttention:
        return cls(channels, att.pool, att.gate, att.bias, block, att.init, att.init_std, att)

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        init_layer(self.init, self.init_std, self.fc.weight, self.fc.bias, self.fc.in_channels, self.fc.out_channels,
                   generator_for("fc.weight"), generator_for("fc.bias"))
