"""Seeded, name-keyed initialisation: the heart of *matched* variants.

Every parameter tensor is drawn from its own generator, seeded by ``(seed, parameter name)``. A layer
therefore gets the same initial weights whatever else the model contains: the baseline and any SE
variant agree in every layer they share, and the SE weights come from generators of their own. Those are
named by the block, not by the site in it (:func:`attention_init_name`: ``layer1.0.attn_branch`` and
``layer1.0.attn_post`` both draw as ``layer1.0.se``), so a placement contrast starts from the same SE weights
wherever the channel counts agree.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

from sesweep.training.models.attention import Attention


def generator_for(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded by a stable hash of ``seed`` and ``name`` (not Python's salted ``hash``)."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def attention_init_name(name: str) -> str:
    """The generator name of the attention module at ``name``: its site (``attn_branch``, ``attn_pre``, …)
    replaced by ``se``, so every placement of one block's SE draws the same weights."""
    parent, _, leaf = name.rpartition(".")
    if not leaf.startswith("attn_"):
        return name
    return f"{parent}.se" if parent else "se"


@torch.no_grad()
def init_weights(model: nn.Module, seed: int) -> None:
    """torchvision's ResNet init scheme, each tensor drawn from its own named generator.

    Convolutions: Kaiming normal (fan_out, ReLU); BatchNorm: γ=1, β=0; Linear: PyTorch's default
    U(±1/√fan_in). Attention modules initialise themselves from their own named generators.
    """
    owned: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(f"{prefix}.") for prefix in owned):
            continue
        if isinstance(module, Attention):
            key = attention_init_name(name)
            module.reset_parameters(lambda pname, prefix=key: generator_for(seed, f"{prefix}.{pname}"))
            owned.append(name)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator_for(seed, f"{name}.weight"))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            bound = 1.0 / math.sqrt(module.in_features)
            module.weight.uniform_(-bound, bound, generator=generator_for(seed, f"{name}.weight"))
            if module.bias is not None:
                module.bias.uniform_(-bound, bound, generator=generator_for(seed, f"{name}.bias"))

