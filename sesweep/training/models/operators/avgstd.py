"""SRM's style pooling (Lee et al., ICCV 2019): the mean and the standard deviation of each channel.

The descriptor is ``[mean | std]`` (two blocks of C), so the excitation sees 2C values: the MLP and the full FC
take 2C inputs, the channel-wise excitation two weights per channel (SRM's channel-wise FC, here without its
batch norm), ECA a 1-D convolution with two input rows. SE-Var1 (no excitation) cannot turn 2C values into C
gates and refuses it.
"""

from __future__ import annotations

import torch

from sesweep.training.models.attention import Squeeze, squeeze

#: added to the variance before the square root (SRM's), so a constant channel has a finite gradient
EPS = 1e-5


@squeeze("avgstd")
class AvgStdPool(Squeeze):
    """``[N, C, H, W] → [N, 2C, 1, 1]``: per channel the mean, then per channel √(var + ε) (biased variance)."""

    multiplicity = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), keepdim=True, correction=0)
        return torch.cat([mean, (var + EPS).sqrt()], dim=1)
