"""Images in memory: :class:`ImageSet` (uint8 [N, C, H, W]), :class:`DataSplits`, and the tensor operations on
them that do not depend on where the images came from (stratified subsets, channel statistics, resizing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sesweep.spec import SpecError

# --------------------------------------------------------------------------------------------------
# containers


@dataclass(frozen=True)
class ImageSet:
    """One split: ``images`` uint8 [N, C, H, W] (contiguous, CPU), ``labels`` int64 [N], class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DataSplits:
    """A data set ready for training: both splits plus the normalisation measured on the train split."""

    name: str
    train: ImageSet
    test: ImageSet
    mean: tuple[float, ...]  # per channel, 0..1 scale, from the (subset) train split
    std: tuple[float, ...]
    flip: bool  # horizontal flips keep the label (False for digits: a mirrored 2 is not a 2)

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        """Side of the (square) images; loading guarantees they are square."""
        return int(self.train.images.shape[-1])


# --------------------------------------------------------------------------------------------------
# subsets, statistics, resizing


def subset(data: ImageSet, n: int | None, key: str, split: str) -> ImageSet:
    """The first ``n`` images, stratified: class quotas ∝ class frequency, original order kept.

    Quotas use the largest-remainder method (ties to the lower class index), so they sum to exactly
    ``n``; each class contributes its first images, so a smaller subset is a prefix of a larger one
    per class and a quick sweep trains on the same images as a longer one.
    """
    if n is None:
        return data
    total = len(data)
    if n > total:
        raise SpecError(key, f"{n} is more than the {total} images of the {split} split")
    counts = torch.bincount(data.labels, minlength=len(data.classes)).tolist()
    quotas = largest_remainder(counts, n)
    keep = torch.zeros(total, dtype=torch.bool)
    for cls, quota in enumerate(quotas):
        if quota:
            keep[torch.nonzero(data.labels == cls).flatten()[:quota]] = True
    index = torch.nonzero(keep).flatten()
    return ImageSet(data.images[index].contiguous(), data.labels[index].clone(), data.classes)


def largest_remainder(counts: Sequence[int], n: int) -> list[int]:
    """Integer quotas proportional to ``counts`` that sum to ``n`` (exact integer arithmetic)."""
    total = sum(counts)
    if total == 0:
        return [0] * len(counts)
    quotas = [n * c // total for c in counts]
    remainders = [n * c % total for c in counts]
    order = sorted(range(len(counts)), key=lambda k: (-remainders[k], k))
    for k in order[: n - sum(quotas)]:
        quotas[k] += 1
    return quotas


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std on the 0..1 scale.

    From a 256-bin histogram per channel: exact for uint8 data, and ~10× faster than float passes
    over the whole split (0.5 s for CIFAR-10's train split on 2 cores).
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).to(torch.float64)
        total = hist.sum()
        mean = (hist * values).sum() / total
        var = (hist * (values - mean).square()).sum() / total
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bilinear resize to ``size``×``size`` (float or uint8 in, uint8 out, rounded once)."""
    if images.dtype == torch.uint8 and tuple(images.shape[-2:]) == (size, size):
        return images.contiguous()
    out = torch.empty((*images.shape[:2], size, size), dtype=torch.uint8)
    for start in range(0, images.shape[0], 2048):
        x = images[start : start + 2048].to(torch.float32)
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + 2048] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out
