"""SENet's squeezes (Table 11): global average, global max, and timm's mean of both; no parameters."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sesweep.training.models.attention import Squeeze, squeeze


class _SpatialMean(torch.autograd.Function):
    """Global average pooling whose backward is a broadcast view: autograd's own materialises the
    ``[N, C, H, W]`` gradient (a full write and read of memory) only to add it to the scale's gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ctx.shape
        return (grad / (h * w)).expand(n, c, h, w)


@squeeze("avg")
class AvgPool(Squeeze):
    """Global average pooling (the squeeze of SENet), ``[N, C, H, W] → [N, C, 1, 1]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SpatialMean.apply(x)


@squeeze("max")
class MaxPool(Squeeze):
    """Global max pooling (SENet Table 11); ``nn.AdaptiveMaxPool2d(1)``'s kernel, so a tie sends its whole
    gradient to one element (as every max-pool SE trained before this seam did)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool2d(x, 1)


@squeeze("avgmax")
class AvgMaxPool(Squeeze):
    """Mean of global average and global max pooling (timm's ``add_maxpool``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True))
