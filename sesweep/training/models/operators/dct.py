"""FcaNet's multi-spectral DCT pooling (Qin et al., ICCV 2021): channel groups pooled with fixed 2-D DCT bases.

The C channels are split into N equal groups, group i pooled with the 2-D DCT basis of frequency (u_i, v_i):
``y_c = Σ_hw x_chw · B_u(h) · B_v(w)``, ``B_u(h) = cos(π u (h + ½) / H) / √H``, times √2 for u ≠ 0 (the
orthonormal DCT-II). The frequencies are FcaNet's, ranked on a 7×7 grid; on an H×W map they scale by H // 7
and W // 7 as FcaNet scales them (at least 1, so a map under 7 pixels keeps the 7×7 indices, and its high
frequencies alias). Frequency (0, 0) is plain GAP times √(HW); ``top16``, FcaNet's shipped default, uses 16.
The bases depend only on the map size: built on first use, kept per size, never saved (no parameters).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sesweep.spec import SpecError
from sesweep.training.models.attention import Squeeze, squeeze

#: FcaNet's ranked 7×7 frequencies (``get_freq_indices``, "top"): ``topN`` uses the first N
TOP_U = (0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1)
TOP_V = (0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3)


def frequencies(selection: str) -> list[tuple[int, int]]:
    """The (u, v) pairs of a selection such as ``top16``, on FcaNet's 7×7 grid."""
    n = int(selection.removeprefix("top"))
    return list(zip(TOP_U[:n], TOP_V[:n], strict=True))


def dct_1d(size: int, freq: int) -> torch.Tensor:
    """The orthonormal DCT-II basis vector of ``freq`` over ``size`` positions."""
    pos = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi * freq * (pos + 0.5) / size) / math.sqrt(size)
    return basis * (math.sqrt(2.0) if freq else 1.0)


def dct_bases(freqs: list[tuple[int, int]], h: int, w: int) -> torch.Tensor:
    """``[N, H, W]``: the 2-D basis of each frequency on an H×W map (indices scaled by H // 7, W // 7)."""
    sh, sw = max(1, h // 7), max(1, w // 7)
    return torch.stack([torch.outer(dct_1d(h, u * sh), dct_1d(w, v * sw)) for u, v in freqs])


@squeeze("dct")
class DCTPool(Squeeze):
    """``[N, C, H, W] → [N, C, 1, 1]``: channel group i pooled with the DCT basis of frequency i."""

    def __init__(self, channels: int, block: str, att: Any) -> None:
        super().__init__(channels, block, att)
        self.selection = "top16" if att is None else att.dct_frequencies
        self.freqs = frequencies(self.selection)
        self.refuse(att, channels, block)
        self._bases: dict[tuple[int, int, torch.device, torch.dtype], torch.Tensor] = {}

    @classmethod
    def refuse(cls, att: Any, channels: int, block: str) -> None:
        n = len(frequencies("top16" if att is None else att.dct_frequencies))
        if channels % n:
            raise SpecError("model.attention.dct_frequencies", f"{n} frequencies need channels divisible by {n}, "
                                                               f"but block {block} has {channels}; allowed there: "
                                                               f"a topN with N dividing {channels}")

    def weights(self, h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``[C, H, W]``: each channel's basis (group i of C/N channels gets frequency i)."""
        key = (h, w, device, dtype)
        if key not in self._bases:
            bases = dct_bases(self.freqs, h, w)
            per_group = self.channels // len(self.freqs)
            self._bases[key] = bases.repeat_interleave(per_group, dim=0).to(device=device, dtype=dtype)
        return self._bases[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weights(x.shape[2], x.shape[3], x.device, x.dtype)).sum((2, 3), keepdim=True)

