"""Batches built on the training device from one resident uint8 copy of a split (the airbench recipe).

Matched runs: the epoch's data order and every augmentation draw come from a CPU ``torch.Generator`` seeded
from ``(seed, epoch)`` only (:func:`epoch_generator`), so every variant sees the same images in the same order
with the same crops and flips, on any device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from sesweep.training.data.images import ImageSet

#: pixels of zero padding for the standard random crop (He et al. 2016: pad 4, crop back to 32)
CROP_PAD = 4


# --------------------------------------------------------------------------------------------------
# batches on the device


def _affine(mean: Sequence[float], std: Sequence[float], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(x/255 - mean)/std`` as ``x * a - b`` with a, b shaped [1, C, 1, 1] (std floored at 1e-6)."""
    m = torch.tensor(mean, dtype=torch.float32)
    s = torch.tensor(std, dtype=torch.float32).clamp_min(1e-6)
    a = (1.0 / (255.0 * s)).view(1, -1, 1, 1).to(device)
    b = (m / s).view(1, -1, 1, 1).to(device)
    return a, b


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for one epoch's order and augmentation; depends on (seed, epoch) only.

    Hashing (rather than ``seed * K + epoch``) keeps every (seed, epoch) pair on its own stream, and the
    ``sesweep.data`` salt keeps it apart from the model-initialisation stream of the same seed. The salt is a
    literal, not this module's name: changing it would change every run's data order.
    """
    digest = hashlib.sha256(f"sesweep.data:{seed}:{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


class TrainBatches:
    """Training batches built on the device from one resident uint8 copy of the train split.

    ``standard`` augmentation = zero-pad by 4, random crop back to H×W, random horizontal flip (when
    ``flip``), then normalisation; ``none`` = normalisation only. The padded train set is stored once
    in NHWC order; a strided ``unfold`` view exposes all (2·4+1)² crop windows of every image without
    copying, so a batch's crops are one advanced-indexing gather, its flips one ``where``, and the
    NHWC result is already ``channels_last`` after a free ``permute``.

    Per epoch (generator from :func:`epoch_generator`), in this order: a permutation of the N images,
    crop offsets ``randint(0, 9, (N, 2))`` (row, column), flip coins ``rand(N) < 0.5`` — all drawn
    whatever ``augment``/``flip`` say, so they are identical for every variant and device. The last
    partial batch is dropped unless it is the only one.
    """

    def __init__(self, data: ImageSet, *, batch_size: int, mean: Sequence[float], std: Sequence[float],
                 augment: bool, flip: bool, seed: int, device: torch.device | str,
                 channels_last: bool) -> None:
        n = len(data)
        if n < 2:
            raise ValueError(f"training needs at least 2 images (BatchNorm), got {n}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.num_images = n
        self.batch_size = min(batch_size, n)
        self.augment = augment
        self.flip = flip and augment
        self.seed = seed
        self.channels_last = channels_last
        _, _, h, w = data.images.shape
        self.height, self.width = h, w
        pad = CROP_PAD if augment else 0
        x = data.images.to(self.device)
        if pad:
            x = F.pad(x, (pad, pad, pad, pad))
        self._images = x.permute(0, 2, 3, 1).contiguous()  # [N, H+2p, W+2p, C] uint8, resident
        # [N, 2p+1, 2p+1, H, W, C] view: window (i, j) of image n is the crop at row i, column j
        self._windows = self._images.unfold(1, h, 1).unfold(2, w, 1).permute(0, 1, 2, 4, 5, 3)
        self._labels = data.labels.to(self.device)
        self._a, self._b = _affine(mean, std, self.device)

    def __len__(self) -> int:
        return max(1, self.num_images // self.batch_size)

    @property
    def samples_per_epoch(self) -> int:
        return len(self) * self.batch_size

    def draws(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The epoch's (permutation, crop offsets [N, 2], flip coins) on the CPU."""
        g = epoch_generator(self.seed, epoch)
        n = self.num_images
        perm = torch.randperm(n, generator=g)
        offsets = torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        return perm, offsets, flips

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)``: float32 normalised [B, C, H, W] and int64 [B], both on the device."""
        perm, offsets, flips = (t.to(self.device) for t in self.draws(epoch))
        bs = self.batch_size
        for k in range(len(self)):
            index = perm[k * bs : (k + 1) * bs]
            if self.augment:
                rows, cols = offsets[k * bs : (k + 1) * bs].unbind(1)
                x = self._windows[index, rows, cols]  # [B, H, W, C]
                if self.flip:
                    x = torch.where(flips[k * bs : (k + 1) * bs].view(-1, 1, 1, 1), x.flip(2), x)
            else:
                x = self._images[index]
            yield self._finish(x), self._labels[index]

    def _finish(self, x_nhwc: torch.Tensor) -> torch.Tensor:
        x = (x_nhwc.permute(0, 3, 1, 2) * self._a).sub_(self._b)  # uint8 × float32 → float32, NHWC layout
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)  # a no-op here, except for C = 1
        return x.contiguous()


def eval_batches(data: ImageSet, *, batch_size: int, mean: Sequence[float], std: Sequence[float],
                 device: torch.device | str, channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation batches in data order, the last partial batch kept; normalised like training."""
    device = torch.device(device)
    a, b = _affine(mean, std, device)
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device, non_blocking=True)
        x = (x * a).sub_(b)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, data.labels[start : start + batch_size].to(device, non_blocking=True)
