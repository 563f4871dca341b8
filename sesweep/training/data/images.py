"""Images in memory: :class:`ImageSet` (uint8 [N, C, H, W]), :class:`DataSplits`, and the tensor operations on
them that do not depend on where the images came from (stratified subsets, channel statistics, resizing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def take(self, index: torch.Tensor) -> ImageSet:
        """The images at ``index`` (a probe, a batch), as a new set."""
        return ImageSet(self.images[index].contiguous(), self.labels[index].clone(), self.classes)


@dataclass(frozen=True)
class DataSplits:
    """A data set ready for training: both splits plus the normalisation measured on the train split."""

    name: str
    train: Any  # ImageSet in memory, or a FileSet streamed from an image folder (:mod:`.stream`)
    test: Any
    mean: tuple[float, ...]  # per channel, 0..1 scale, from the (subset) train split (:func:`stats_index`)
    std: tuple[float, ...]
    flip: bool  # horizontal flips keep the label (False for digits: a mirrored 2 is not a 2)
    #: side of the model's input; None: the train images' own (ImageNet augmentation crops to a size of its own)
    input_size: int | None = None
    #: which loader serves these splits (memory or stream), for the run's record
    loader: str = "memory"

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def channels(self) -> int:
        return int(self.train.channels)

    @property
    def image_size(self) -> int:
        """Side of the (square) model input; loading guarantees it is square."""
        return self.input_size or int(self.train.images.shape[-1])


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
    return data.take(subset_index(data.labels, len(data.classes), n, key, split))


def subset_index(labels: torch.Tensor, classes: int, n: int, key: str = "", split: str = "") -> torch.Tensor:
    """The indices of :func:`subset`'s images, in original order (any split: in memory or a list of files)."""
    total = int(labels.shape[0])
    if n > total:
        raise SpecError(key, f"{n} is more than the {total} images of the {split} split")
    counts = torch.bincount(labels, minlength=classes).tolist()
    quotas = largest_remainder(counts, n)
    keep = torch.zeros(total, dtype=torch.bool)
    for cls, quota in enumerate(quotas):
        if quota:
            keep[torch.nonzero(labels == cls).flatten()[:quota]] = True
    return torch.nonzero(keep).flatten()


#: the normalisation statistics are measured on at most this many train images (a stratified prefix, as
#: :func:`subset` picks them): every image of CIFAR's 50,000, a fixed sample of ImageNet's 1.28 M
STATS_IMAGES = 50_000


def stats_index(labels: torch.Tensor, classes: int) -> torch.Tensor | None:
    """Which train images the mean/std are measured on; None: all of them."""
    n = int(labels.shape[0])
    return None if n <= STATS_IMAGES else subset_index(labels, classes, STATS_IMAGES)


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
    return stats_from_histograms(channel_histograms(images))


def channel_histograms(images: torch.Tensor) -> torch.Tensor:
    """int64 [C, 256]: how often each value occurs per channel (sums of these are exact, in any order)."""
    return torch.stack([torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(images.shape[1])])


def stats_from_histograms(hists: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std on the 0..1 scale from :func:`channel_histograms`."""
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(hists.shape[0]):
        hist = hists[c].to(torch.float64)
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
