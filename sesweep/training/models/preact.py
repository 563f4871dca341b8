"""Pre-activation ResNets (He et al., Identity Mappings in Deep Residual Networks, ECCV 2016) and Wide ResNets
(Zagoruyko & Komodakis, 2016): the CIFAR networks of SENet's Tables 4 and 5, with the same attention knobs as
:mod:`sesweep.training.models.resnet`.

A pre-activation block is ``x + F(x)`` with ``F = conv(relu(bn(conv(relu(bn(x))))))`` (basic) or three
BN-ReLU-conv units (bottleneck, 1×1 → 3×3 → 1×1, expansion 4, the stride on the 3×3). Where the shape changes,
the shortcut is a 1×1 projection conv without BN (``downsample.0``) applied, as in both papers' code, to the
pre-activated input ``relu(bn1(x))``. A Wide ResNet is this net with basic blocks of widths 16k/32k/64k and
optionally dropout between the two convolutions (``dropout``, WRN's only dropout site; bottlenecks have none).
The stem is one 3×3 conv (16 channels, no BN), and a final BN-ReLU (``bn1``, named like the reference WRN
code's) precedes the global pool and ``fc``.

Attention sites (SENet TPAMI Table 14, adapted: there is no ReLU after the sum of a pre-activation block):

* ``standard``  residual branch output, before the sum:            SE(F(x)) + x
* ``pre``       branch input, after its BN-ReLU (the first conv's input; ``cin`` channels)
* ``post``      after the sum:                                     SE(F(x) + x)
* ``identity``  on the shortcut (after the projection, if any):     F(x) + SE(x)

The join is the plain ``branch · s + shortcut``: the fused ``relu(x·s + shortcut)`` of the post-activation
blocks (:meth:`~sesweep.training.models.attention.SqueezeExcite.residual_join`) is never used here. Parameter
and module names follow the ResNets' (``conv1``, ``layer1.0.conv1``, ``layer1.0.bn1``, ``layer1.0.attn_branch``,
``fc``), so the name-keyed init (:mod:`.init`) matches the baseline and every SE variant layer for layer.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from sesweep.training.models.resnet import AttentionSites, AttnLayer, conv1x1, conv3x3


class _PreActJoin(AttentionSites):
    """The attention sites of a pre-activation block and its join (no ReLU after the sum)."""

    relu: nn.Module
    bn1: nn.BatchNorm2d
    downsample: nn.Module | None

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(act)
        out = self.attn_branch(self.residual(self.attn_pre(act)))
        return self.attn_post(out + self.attn_identity(shortcut))


class PreActBasicBlock(_PreActJoin):
    """BN-ReLU-conv3×3-BN-ReLU-[dropout]-conv3×3; ``dropout`` > 0 adds WRN's dropout between the convs."""

    expansion = 1
    has_dropout = True

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attn_layer: AttnLayer | None = None, placement: str = "standard", name: str = "",
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None  # p = 0: no module at all
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample
        self.stride = stride
        self._place_attention(attn_layer, placement, inplanes, planes, name)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The branch after its first BN-ReLU (``x`` is already pre-activated)."""
        out = self.relu(self.bn2(self.conv1(x)))
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv2(out)


class PreActBottleneck(_PreActJoin):
    """BN-ReLU-conv1×1-BN-ReLU-conv3×3(stride)-BN-ReLU-conv1×1(×4)."""

    expansion = 4
    has_dropout = False

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 attn_layer: AttnLayer | None = None, placement: str = "standard", name: str = "",
                 dropout: float = 0.0) -> None:
        super().__init__()
        if dropout > 0:
            raise ValueError("the pre-activation bottleneck has no dropout site")
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = downsample
        self.stride = stride
        self._place_attention(attn_layer, placement, inplanes, planes * self.expansion, name)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn2(self.conv1(x)))
        out = self.relu(self.bn3(self.conv2(out)))
        return self.conv3(out)


class PreActResNet(nn.Module):
    """A pre-activation ResNet or Wide ResNet for CIFAR; stage k (SENet's naming) is ``layer{k-1}``.

    Args:
        block: ``PreActBasicBlock`` or ``PreActBottleneck``.
        layers: blocks per stage.
        widths: planes per stage (16/32/64, times k for a WRN).
        stem_width: channels of the 3×3 stem conv (16 in both papers).
        dropout: dropout between the convs of each basic block (WRN); 0 = none (no module at all).
        attn_layer, attn_placement, attn_stages: as for :class:`~sesweep.training.models.resnet.ResNet`.
    """

    def __init__(self, block: type[PreActBasicBlock | PreActBottleneck], layers: list[int], widths: list[int],
                 stem_width: int = 16, num_classes: int = 10, in_channels: int = 3,
                 attn_layer: AttnLayer | None = None, attn_placement: str = "standard",
                 attn_stages: Collection[int] | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.inplanes = stem_width
        self.conv1 = conv3x3(in_channels, stem_width)
        for i, (n, planes) in enumerate(zip(layers, widths, strict=True)):
            use_attn = attn_layer if attn_stages is None or i + 2 in attn_stages else None
            layer = self._make_layer(block, planes, n, 1 if i == 0 else 2, use_attn, attn_placement,
                                     f"layer{i + 1}", dropout)
            setattr(self, f"layer{i + 1}", layer)
        self.num_stages = len(layers)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, num_classes)

    def _make_layer(self, block: type[PreActBasicBlock | PreActBottleneck], planes: int, blocks: int,
                    stride: int, attn_layer: AttnLayer | None, placement: str, name: str,
                    dropout: float) -> nn.Sequential:
        cout = planes * block.expansion
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != cout:
            downsample = nn.Sequential(conv1x1(self.inplanes, cout, stride))
        blocks_ = [block(self.inplanes, planes, stride, downsample, attn_layer, placement, f"{name}.0", dropout)]
        self.inplanes = cout
        blocks_ += [block(self.inplanes, planes, 1, None, attn_layer, placement, f"{name}.{j}", dropout)
                    for j in range(1, blocks)]
        return nn.Sequential(*blocks_)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for layer in self.stages():
            x = layer(x)
        return self.relu(self.bn1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))
