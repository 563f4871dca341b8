"""SENet's excitation: the MLP ``C → C/r → C`` (SENet TPAMI Tables 10-14), the only operator with a ratio.

``SqueezeExcite(channels, reduction, min_hidden, divisor, pool, gate, bias, block, init, init_std)``: 1×1
convolutions ``fc1``/``fc2`` as the two FC layers (timm naming, which the checkpoints and the matched init keep).
The hidden width rule is :func:`~sesweep.training.models.attention.hidden_width`; a learned width
(``adaptive``) is a subclass registered in :data:`ADAPTIVE` by :mod:`..adaptive`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sesweep.operators import SQUEEZES as SQUEEZE_READS
from sesweep.spec import SpecError
from sesweep.training.models.attention import (
    GATES,
    INITS,
    SQUEEZES,
    BlockCost,
    ChannelAttention,
    HiddenWidth,
    excitation,
    hidden_width,
    init_layer,
)

#: ``adaptive`` mode → its module class (learnable, dynamic), filled by :mod:`sesweep.training.models.adaptive`
ADAPTIVE: dict[str, Callable[..., ChannelAttention]] = {}


def mlp_params(m: int, channels: int, hidden: int, bias: bool) -> tuple[int, int, int]:
    """Parameters, MACs and the weights ``max_layer_params`` bounds (both FCs, as one SE layer) of an MLP on an
    ``m·C`` descriptor."""
    fc1, fc2 = m * channels * hidden, hidden * channels
    return fc1 + fc2 + (hidden + channels if bias else 0), fc1 + fc2, fc1 + fc2


@excitation("mlp")
class SqueezeExcite(ChannelAttention):
    """x · gate(fc2(relu(fc1(pool(x))))) with 1×1 convolutions as the two FC layers (timm naming)."""

    def __init__(self, channels: int, reduction: float = 16, min_hidden: int = 1, divisor: int = 1,
                 pool: str = "avg", gate: str = "sigmoid", bias: bool = True, block: str = "se",
                 init: str = "torch", init_std: float = 0.001, att: Any = None) -> None:
        super().__init__(channels, pool, gate, block, att)
        if init not in INITS:
            raise ValueError(f"init {init!r}; allowed: {', '.join(INITS)}")
        self.init, self.init_std = init, init_std
        self.width = hidden_width(channels, reduction, min_hidden, divisor, block)
        hidden = self.width.hidden
        self.fc1 = nn.Conv2d(self.multiplicity * channels, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)
        self.gate = GATES[gate]()

    def excite(self, y: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(y)))

    def hidden_widths(self) -> list[HiddenWidth]:
        return [self.width]

    def cost(self) -> BlockCost:
        return self._block_cost(self.width, self.pool_kind, self.multiplicity, self.fc1.out_channels,
                          self.fc1.bias is not None)

    @staticmethod
    def _block_cost(w: HiddenWidth, pool: str, m: int, hidden: int, bias: bool) -> BlockCost:
        params, macs, largest = mlp_params(m, w.channels, hidden, bias)
        knob = "model.attention.min_hidden" if w.raised else "model.attention.reduction"
        return BlockCost(w.block, "mlp", pool, w.channels, "hidden", hidden, params, macs, largest, knob, "SE width")

    @classmethod
    def plan(cls, att: Any, channels: int, block: str, stage: int) -> BlockCost:
        w = hidden_width(channels, att.reduction, att.min_hidden, att.divisor, block)
        return cls._block_cost(w, att.pool, cls.pool_multiplicity(att.pool), w.hidden, att.bias)

    @classmethod
    def refuse(cls, att: Any, stages: int) -> None:
        if att.adaptive != "none" and (SQUEEZES[att.pool].multiplicity != 1 or SQUEEZE_READS[att.pool]):
            raise SpecError("model.attention.adaptive", f"{att.adaptive} does not go with pool {att.pool} (a learned "
                                                        f"width takes a plain one-value-per-channel squeeze); "
                                                        f"allowed with {att.pool}: none")

    @classmethod
    def from_spec(cls, att: Any, channels: int, block: str, stage: int) -> ChannelAttention:
        if att.adaptive != "none":
            return ADAPTIVE[att.adaptive](channels, att.reduction, att.min_hidden, att.divisor, att.pool, att.gate,
                                          att.bias, block, init=att.init, init_std=att.init_std)
        return cls(channels, att.reduction, att.min_hidden, att.divisor, att.pool, att.gate, att.bias, block,
                   att.init, att.init_std, att)

    def reset_parameters(self, generator_for: Callable[[str], torch.Generator]) -> None:
        """fc1 and fc2 as ``init`` says (:data:`INITS`), drawn from generators of the SE's own (by name)."""
        for name in ("fc1", "fc2"):
            fc: nn.Conv2d = getattr(self, name)
            init_layer(self.init, self.init_std, fc.weight, fc.bias, fc.in_channels, fc.out_channels,
                       generator_for(f"{name}.weight"), generator_for(f"{name}.bias"))


@dataclass(frozen=True)
class SEFactory:
    """Builds the SE MLP of one block from its knobs (an ``attn_layer`` of the ResNets, for tests and tools)."""

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
