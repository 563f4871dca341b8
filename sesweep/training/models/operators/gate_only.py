"""ECA-Net's SE-Var1 (Wang et al., CVPR 2020, Table 2): no excitation layers, the gate on the pooled descriptor.

``x · gate(pool(x))``: 0 parameters, 0 MACs. It needs one descriptor per channel, so it refuses pool avgstd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from sesweep.training.models.attention import GATES, BlockCost, ChannelAttention, excitation


@excitation("none")
class GateOnly(ChannelAttention):
    """SE-Var1: σ(y) with y the pooled descriptor."""

    pools: ClassVar[tuple[str, ...] | None] = ("avg", "max", "avgmax", "dct")

    def __init__(self, channels: int, pool: str = "avg", gate: str = "sigmoid", block: str = "se",
                 att: Any = None) -> None:
        super().__init__(channels, pool, gate, block, att)
        self.gate = GATES[gate]()

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def cost(self) -> BlockCost:
        return BlockCost(self.block_name, "none", self.pool_kind, self.channels, "", None, 0, 0, 0)

    @classmethod
    def plan(cls, att: Any, channels: int, block: str, stage: int) -> BlockCost:
        return BlockCost(block, "none", att.pool, channels, "", None, 0, 0, 0)

    @classmethod
    def from_spec(cls, att: Any, channels: int, block: str, stage: int) -> ChannelAttention:
        return cls(channels, att.pool, att.gate, block, att)

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        """Nothing to draw."""
