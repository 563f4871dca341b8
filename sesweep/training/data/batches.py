"""Batches built on the training device from one resident uint8 copy of a split (the airbench recipe).

Matched runs: the epoch's data order and every augmentation draw come from :mod:`.augment` — functions of
``(seed, epoch)`` and the position in the epoch only — so every variant sees the same images in the same order
with the same crops and flips, on any device, and the stream loader (:mod:`.stream`) gives the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from sesweep.spec import SpecError
from sesweep.training.data.augment import CROP_PAD, EpochDraws, epoch_draws, imagenet_batch, imagenet_draws
from sesweep.training.data.images import ImageSet

AUGMENTS = ("standard", "imagenet", "none")


# --------------------------------------------------------------------------------------------------
# batches on the device


def _affine(mean: Sequence[float], std: Sequence[float], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``(x/255 - mean)/std`` as ``x * a - b`` with a, b shaped [1, C, 1, 1] (std floored at 1e-6)."""
    m = torch.tensor(mean, dtype=torch.float32)
    s = torch.tensor(std, dtype=torch.float32).clamp_min(1e-6)
    a = (1.0 / (255.0 * s)).view(1, -1, 1, 1).to(device)
    b = (m / s).view(1, -1, 1, 1).to(device)
    return a, b


def finish(x_nhwc: torch.Tensor, a: torch.Tensor, b: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 NHWC → normalised float32 NCHW (``channels_last`` memory layout if asked): the last step of every
    training batch, in both loaders."""
    x = (x_nhwc.permute(0, 3, 1, 2) * a).sub_(b)  # uint8 × float32 → float32, NHWC layout
    if channels_last:
        return x.contiguous(memory_format=torch.channels_last)  # a no-op here, except for C = 1
    return x.contiguous()


def batch_count(num_images: int, batch_size: int) -> tuple[int, int]:
    """``(batches per epoch, batch size)``: the last partial batch is dropped. A batch larger than the train split
    is an error, not silently shrunk to it (the run would train with another batch size than its key says)."""
    if num_images < 2:
        raise ValueError(f"training needs at least 2 images (BatchNorm), got {num_images}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if batch_size > num_images:
        raise SpecError("recipe.batch_size", f"{batch_size} is more than the {num_images} training images; allowed: "
                                             f"at most {num_images} (or more images: recipe.train_subset)")
    return num_images // batch_size, batch_size


class TrainBatches:
    """Training batches built on the device from one resident uint8 copy of the train split.

    ``augment``: ``standard`` = zero-pad by 4, random crop back to H×W, random horizontal flip (when ``flip``);
    ``imagenet`` = random-resized crop to ``crop_size`` and flip (:func:`.augment.resized_crop`, image by
    image); ``none`` = normalisation only. For ``standard`` the padded train set is stored once in NHWC order;
    a strided ``unfold`` view exposes all (2·4+1)² crop windows of every image without copying, so a batch's
    crops are one advanced-indexing gather, its flips one ``where``, and the NHWC result is already
    ``channels_last`` after a free ``permute``.
    """

    def __init__(self, data: ImageSet, *, batch_size: int, mean: Sequence[float], std: Sequence[float],
                 augment: str, flip: bool, seed: int, device: torch.device | str,
                 channels_last: bool, crop_size: int | None = None) -> None:
        if augment not in AUGMENTS:
            raise ValueError(f"augment {augment!r}; allowed: {', '.join(AUGMENTS)}")
        n = len(data)
        self.num_batches, self.batch_size = batch_count(n, batch_size)
        self.device = torch.device(device)
        self.num_images = n
        self.augment = augment
        self.flip = flip and augment != "none"
        self.seed = seed
        self.channels_last = channels_last
        _, _, h, w = data.images.shape
        self.crop_size = crop_size or h
        x = data.images.to(self.device)
        if augment == "standard":
            x = F.pad(x, (CROP_PAD,) * 4)
        if augment == "imagenet":
            self._images = x  # [N, C, H, W]: crops are cut image by image
        else:
            self._images = x.permute(0, 2, 3, 1).contiguous()  # [N, H+2p, W+2p, C] uint8, resident
        # [N, 2p+1, 2p+1, H, W, C] view: window (i, j) of image n is the crop at row i, column j
        self._windows = self._images.unfold(1, h, 1).unfold(2, w, 1).permute(0, 1, 2, 4, 5, 3) \
            if augment == "standard" else None
        self._labels = data.labels.to(self.device)
        self._a, self._b = _affine(mean, std, self.device)

    def __len__(self) -> int:
        return self.num_batches

    @property
    def samples_per_epoch(self) -> int:
        return len(self) * self.batch_size

    def draws(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The epoch's (permutation, crop offsets [N, 2], flip coins) on the CPU (:func:`.augment.epoch_draws`)."""
        d = epoch_draws(self.seed, epoch, self.num_images, self.augment)
        return d.perm, d.offsets, d.flips

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)``: float32 normalised [B, C, H, W] and int64 [B], both on the device."""
        d = epoch_draws(self.seed, epoch, self.num_images, self.augment)
        d = EpochDraws(*(t.to(self.device) if t is not None else None for t in (d.perm, d.offsets, d.flips)))
        bs = self.batch_size
        for k in range(len(self)):
            index = d.perm[k * bs : (k + 1) * bs]
            if self.augment == "standard":
                rows, cols = d.offsets[k * bs : (k + 1) * bs].unbind(1)
                x = self._windows[index, rows, cols]  # [B, H, W, C]
                if self.flip:
                    x = torch.where(d.flips[k * bs : (k + 1) * bs].view(-1, 1, 1, 1), x.flip(2), x)
            elif self.augment == "imagenet":
                uniforms, flips = imagenet_draws(self.seed, epoch, k, len(index))
                x = imagenet_batch(self._images[index], uniforms, flips & self.flip, self.crop_size)
                x = x.permute(0, 2, 3, 1)
            else:
                x = self._images[index]
            yield finish(x, self._a, self._b, self.channels_last), self._labels[index]


def eval_batches(data: Any, *, batch_size: int, mean: Sequence[float], std: Sequence[float],
                 device: torch.device | str, channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation batches in data order, the last partial batch kept; normalised like training.

    ``data``: an :class:`ImageSet`, or a streamed split (:class:`.stream.FileSet`), which decodes its own."""
    if not isinstance(data, ImageSet):
        return data.eval_batches(batch_size=batch_size, mean=mean, std=std, device=device,
                                 channels_last=channels_last)
    return _memory_eval(data, batch_size, mean, std, torch.device(device), channels_last)


def _memory_eval(data: ImageSet, batch_size: int, mean: Sequence[float], std: Sequence[float],
                 device: torch.device, channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    a, b = _affine(mean, std, device)
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device, non_blocking=True)
        x = (x * a).sub_(b)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, data.labels[start : start + batch_size].to(device, non_blocking=True)
