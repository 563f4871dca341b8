"""ECA-Net's SE-Var2 (Table 2): one weight per channel and descriptor, ``σ(w ⊙ y + b)``; with pool avgstd it is
SRM's channel-wise FC (two weights per channel: mean and std; SRM's batch norm after it is left out).

Parameters ``weight`` ``[m, C]`` and ``bias`` ``[C]`` (when ``model.attention.bias``): m·C (+ C). MACs: 0 under
the convention of :mod:`sesweep.training.measure` (elementwise, like the channel scaling; not a convolution).
The init reads each gate's fan-in as m and its fan-out as 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sesweep.training.models.attention import GATES, INITS, BlockCost, ChannelAttention, excitation, init_layer


@excitation("channelwise")
class ChannelWise(ChannelAttention):
    """SE-Var2: ``z_c = Σ_j w_jc · y_jc + b_c`` over the m descriptors of channel c."""

    def __init__(self, channels: int, pool: str = "avg", gate: str = "sigmoid", bias: bool = True,
                 block: str = "se", init: str = "torch", init_std: float = 0.001, att: Any = None) -> None:
        super().__init__(channels, pool, gate, block, att)
        if init not in INITS:
            raise ValueError(f"init {init!r}; allowed: {', '.join(INITS)}")
        self.init, self.init_std = init, init_std
        self.weight = nn.Parameter(torch.empty(self.multiplicity, channels))
        self.bias = nn.Parameter(torch.empty(channels)) if bias else None
        self.gate = GATES[gate]()

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        n = y.shape[0]
        z = (y.view(n, self.multiplicity, self.channels) * self.weight).sum(1)
        if self.bias is not None:
            z = z + self.bias
        return z.view(n, self.channels, 1, 1)

    def cost(self) -> BlockCost:
        params = self.weight.numel() + (0 if self.bias is None else self.bias.numel())
        return BlockCost(self.block_name, "channelwise", self.pool_kind, self.channels, "", None, params, 0, params)

    @classmethod
    def plan(cls, att: Any, channels: int, block: str, stage: int) -> BlockCost:
        from_pool = cls.pool_multiplicity(att.pool)
        params = from_pool * channels + (channels if att.bias else 0)
        return BlockCost(block, "channelwise", att.pool, channels, "", None, params, 0, params)

    @classmethod
    def from_spec(cls, att: Any, channels: int, block: str, stage: int) -> ChannelAttention:
        return cls(channels, att.pool, att.gate, att.bias, block, att.init, att.init_std, att)

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        init_layer(self.init, self.init_std, self.weight, self.bias, self.multiplicity, 1,
                   generator_for("weight"), generator_for("bias"))
