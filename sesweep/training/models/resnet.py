"""ResNets with pluggable attention: the baseline and every SE variant come from this one code path.

The layout and parameter names are torchvision's (``conv1, bn1, layer1.0.conv1, …, fc``), so with no
attention the state dict matches ``torchvision.models.resnetXX()`` key for key. Attention enters each block
through one factory (``attn_layer``, as in timm) at one of four sites — SENet TPAMI Table 14:

* ``standard``  residual branch output, before the sum:  relu(SE(F(x)) + x)
* ``pre``       input of the residual branch:            relu(F(SE(x)) + x)
* ``post``      after the sum and its ReLU:              SE(relu(F(x) + x))
* ``identity``  on the identity (shortcut) branch:       relu(F(x) + SE(x))

Unused sites are ``nn.Identity`` (no parameters), so the SE model with its gate forced to 1 computes
exactly the baseline's function.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
import torch.nn.functional as F
from torch import nn

#: ``attn_layer(channels, block_name) -> nn.Module``
AttnLayer = Callable[[int, str], nn.Module]

PLACEMENTS = ("standard", "pre", "post", "identity")


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """He et al. (2016) option A: subsample and zero-pad the new channels; no parameters."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, cout - cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))


class AttentionSites(nn.Module):
    """Mixin: the four attention sites of a residual block, all but one (or all) ``nn.Identity``."""

    attn_pre: nn.Module
    attn_branch: nn.Module
    attn_identity: nn.Module
    attn_post: nn.Module

    def _place_attention(self, attn_layer: AttnLayer | None, placement: str, cin: int, cout: int,
                         name: str) -> None:
        if placement not in PLACEMENTS:
            raise ValueError(f"placement {placement!r}; allowed: {', '.join(PLACEMENTS)}")
        site = {"standard": "attn_branch", "pre": "attn_pre", "post": "attn_post",
                "identity": "attn_identity"}[placement]
        for s in ("attn_pre", "attn_branch", "attn_identity", "attn_post"):
            setattr(self, s, nn.Identity())
        if attn_layer is not None:
            channels = cin if placement == "pre" else cout
            setattr(self, site, attn_layer(channels, f"{name}.{site}"))

    def _join(self, x: torch.Tensor, branch: Callable[[torch.Tensor], torch.Tensor],
              shortcut: torch.Tensor) -> torch.Tensor:
        out = branch(self.attn_pre(x))
        shortcut = self.attn_identity(shortcut)
        fused = getattr(self.attn_branch, "residual_join", None)  # plain SE: scale, add and ReLU in one pass
        out = fused(out, shortcut) if fused is not None else self.relu(self.attn_branch(out) + shortcut)
        return self.attn_post(out)


class BasicBlock(AttentionSites):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attn_layer: AttnLayer | None = None, placement: str = "standard", name: str = "") -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self._place_attention(attn_layer, placement, inplanes, planes, name)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self._join(x, self.residual, shortcut)


class Bottleneck(AttentionSites):
    """torchvision's (ResNet v1.5) bottleneck: the stride sits on the 3×3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attn_layer: AttnLayer | None = None, placement: str = "standard", name: str = "") -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self._place_attention(attn_layer, placement, inplanes, planes * self.expansion, name)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self._join(x, self.residual, shortcut)


class ResNet(nn.Module):
    """A ResNet of either family; stage k (SENet's conv{k}_x naming) is ``layer{k-1}``.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage.
        widths: planes per stage (64..512 for ImageNet, 16/32/64 for CIFAR).
        stem: ``imagenet`` (7×7/2 conv + 3×3/2 max pool) or ``cifar`` (3×3 conv).
        shortcut: ``projection`` (1×1 conv + BN, torchvision) or ``pad`` (He et al. option A).
        attn_layer: factory for the attention module of a block, or ``None`` for the baseline.
        attn_placement: one of :data:`PLACEMENTS`.
        attn_stages: stage numbers that get attention; ``None`` = all.
    """

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: list[int], widths: list[int],
                 stem: str = "imagenet", shortcut: str = "projection", num_classes: int = 1000,
                 in_channels: int = 3, attn_layer: AttnLayer | None = None, attn_placement: str = "standard",
                 attn_stages: Collection[int] | None = None) -> None:
        super().__init__()
        self.inplanes = widths[0]
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        elif stem == "cifar":
            self.conv1 = conv3x3(in_channels, self.inplanes)
            self.maxpool = nn.Identity()
        else:
            raise ValueError(f"stem {stem!r}; allowed: imagenet, cifar")
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        for i, (n, planes) in enumerate(zip(layers, widths, strict=True)):
            stage = i + 2
            use_attn = attn_layer if attn_stages is None or stage in attn_stages else None
            layer = self._make_layer(block, planes, n, 1 if i == 0 else 2, shortcut, use_attn,
                                     attn_placement, f"layer{i + 1}")
            setattr(self, f"layer{i + 1}", layer)
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int, stride: int,
                    shortcut: str, attn_layer: AttnLayer | None, placement: str, name: str) -> nn.Sequential:
        cout = planes * block.expansion
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != cout:
            if shortcut == "pad":
                downsample = PadShortcut(self.inplanes, cout, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, cout, stride), nn.BatchNorm2d(cout))
        blocks_ = [block(self.inplanes, planes, stride, downsample, attn_layer, placement, f"{name}.0")]
        self.inplanes = cout
        blocks_ += [block(self.inplanes, planes, 1, None, attn_layer, placement, f"{name}.{j}")
                    for j in range(1, blocks)]
        return nn.Sequential(*blocks_)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer in self.stages():
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))
