"""The channel-attention operators, one file per family, each registered by name in
:data:`~sesweep.training.models.attention.EXCITATIONS` / :data:`~sesweep.training.models.attention.SQUEEZES`
by importing it here (its registry line). The spec keys each reads are declared torch-free in
:mod:`sesweep.operators`; ``tests/test_operators.py`` keeps the two name lists equal.

Nothing outside this package names an operator: a ResNet gets its ``attn_layer`` from :class:`AttentionFactory`,
``plan_checks``, ``budget`` and ``sesweep info`` ask :func:`operator_for` for a block's cost and refusals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sesweep.training.models.attention import (
    EXCITATIONS,
    SQUEEZES,
    BlockCost,
    ChannelAttention,
    stage_of,
)

# the registry lines: importing a family's file registers its operators (excitations and squeezes)
from sesweep.training.models.operators import avgstd, channelwise, dct, eca, fc, gate_only, mlp, pools  # noqa: F401

__all__ = ["EXCITATIONS", "SQUEEZES", "AttentionFactory", "BlockCost", "operator_for", "plan_block"]


def operator_for(att: Any) -> type[ChannelAttention]:
    """The module class of an attention spec's excitation."""
    return EXCITATIONS[att.excitation]


def plan_block(att: Any, channels: int, block: str) -> BlockCost:
    """One block's attention cost and width as its operators declare them, their refusals raised first."""
    SQUEEZES[att.pool].refuse(att, channels, block)
    return operator_for(att).plan(att, channels, block, stage_of(block))


@dataclass(frozen=True)
class AttentionFactory:
    """The ``attn_layer`` of a ResNet for an attention spec: refuses a knob pair once, then builds each block's
    module through its operator's one constructor (``from_spec``). ``stages`` is the backbone's stage count."""

    att: Any
    stages: int

    def __post_init__(self) -> None:
        operator_for(self.att).refuse(self.att, self.stages)

    def __call__(self, channels: int, block: str) -> ChannelAttention:
        return operator_for(self.att).from_spec(self.att, channels, block, stage_of(block))
