"""The random draws of an epoch and the augmentations built from them, shared by both loaders.

Matched runs rest on this module: the epoch's order and every augmentation draw are functions of
``(seed, epoch)`` and a position in the epoch only — never of the loader, the number of decoding workers or
the model — so the memory loader (:mod:`.batches`) and the stream loader (:mod:`.stream`) call the same
functions on the same draws and produce the same bytes.

* ``standard`` (CIFAR): per epoch a permutation, crop offsets and flip coins (:func:`epoch_draws`).
* ``imagenet``: per epoch the permutation; per batch a generator of its own (:func:`batch_generator`) for
  the random-resized-crop uniforms and the flip coins, so a stream worker draws one batch without the
  epoch's 1.28 M × 40 numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: pixels of zero padding for the standard random crop (He et al. 2016: pad 4, crop back to 32)
CROP_PAD = 4
#: random-resized crop (Szegedy et al. 2015, torchvision's defaults): area share and aspect-ratio ranges, and
#: how many boxes are tried before the central fallback
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10
#: the ImageNet test transform resizes the shorter side to image_size × 256/224, then center-crops image_size
TEST_RESIZE = 256 / 224


def _generator(text: str) -> torch.Generator:
    digest = hashlib.sha256(text.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator for one epoch's order (and standard augmentation); depends on (seed, epoch) only.

    Hashing (rather than ``seed * K + epoch``) keeps every (seed, epoch) pair on its own stream, and the
    ``sesweep.data`` salt keeps it apart from the model-initialisation stream of the same seed. The salt is a
    literal, not this module's name: changing it would change every run's data order.
    """
    return _generator(f"sesweep.data:{seed}:{epoch}")


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    """The CPU generator of one batch's ImageNet augmentation; depends on (seed, epoch, batch) only."""
    return _generator(f"sesweep.augment:{seed}:{epoch}:{batch}")


@dataclass(frozen=True)
class EpochDraws:
    """One epoch's draws: ``perm`` [N] (position → image), and for ``standard`` the crop offsets [N, 2]
    (row, column) and flip coins [N] by position (``None`` for the other augmentations)."""

    perm: torch.Tensor
    offsets: torch.Tensor | None
    flips: torch.Tensor | None


def epoch_draws(seed: int, epoch: int, n: int, augment: str) -> EpochDraws:
    """Draw order: the permutation, then (standard and none) offsets ``randint(0, 9, (N, 2))`` and coins
    ``rand(N) < 0.5`` — drawn for ``none`` too, so its order equals standard's."""
    g = epoch_generator(seed, epoch)
    perm = torch.randperm(n, generator=g)
    if augment == "imagenet":
        return EpochDraws(perm, None, None)
    offsets = torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=g)
    flips = torch.rand(n, generator=g) < 0.5
    return EpochDraws(perm, offsets, flips)


def imagenet_draws(seed: int, epoch: int, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch's crop uniforms [B, attempts, 4] (area, log-aspect, row, column; float64) and flip coins [B]."""
    g = batch_generator(seed, epoch, batch)
    uniforms = torch.rand(size, CROP_ATTEMPTS, 4, generator=g, dtype=torch.float64)
    flips = torch.rand(size, generator=g) < 0.5
    return uniforms, flips


# --------------------------------------------------------------------------------------------------
# standard: pad-4 crop and flip


def pad_crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
    """uint8 [B, C, H, W] → the crops at ``offsets`` of the zero-padded images, flipped where ``flips``, as
    NHWC [B, H, W, C]. The memory loader does the same on its resident, padded copy (:class:`.TrainBatches`)."""
    b, _, h, w = images.shape
    padded = F.pad(images, (CROP_PAD,) * 4).permute(0, 2, 3, 1)
    windows = padded.unfold(1, h, 1).unfold(2, w, 1).permute(0, 1, 2, 4, 5, 3)
    rows, cols = offsets.to(images.device).unbind(1)
    x = windows[torch.arange(b, device=images.device), rows, cols]
    if flips is not None:
        x = torch.where(flips.to(images.device).view(-1, 1, 1, 1), x.flip(2), x)
    return x


# --------------------------------------------------------------------------------------------------
# imagenet: random-resized crop, and the test transform


def crop_box(uniforms: Sequence[Sequence[float]], height: int, width: int) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of a random-resized crop, torchvision's rule with the uniforms given.

    Up to :data:`CROP_ATTEMPTS` boxes of area share U(0.08, 1) and log-uniform aspect in [3/4, 4/3]; the first
    that fits is placed uniformly; if none fits, the central crop of the largest allowed aspect. Plain
    float64 arithmetic on Python numbers, so every platform computes the same box.
    """
    area = height * width
    lo, hi = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for u_area, u_ratio, u_top, u_left in uniforms:
        target = area * (CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * u_area)
        aspect = math.exp(lo + (hi - lo) * u_ratio)
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(u_top * (height - h + 1)), int(u_left * (width - w + 1)), h, w
    ratio = width / height
    if ratio < CROP_RATIO[0]:
        w, h = width, round(width / CROP_RATIO[0])
    elif ratio > CROP_RATIO[1]:
        h, w = height, round(height * CROP_RATIO[1])
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 [C, H, W] → uint8 [C, height, width]: antialiased bilinear, rounded once (as :func:`.images.resize`)."""
    if tuple(image.shape[-2:]) == (height, width):
        return image
    x = F.interpolate(image[None].float(), size=(height, width), mode="bilinear", align_corners=False,
                      antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)[0]


def resized_crop(image: torch.Tensor, uniforms: Sequence[Sequence[float]], size: int, flip: bool) -> torch.Tensor:
    """One training image under ImageNet augmentation: the random-resized crop to ``size``², flipped if asked."""
    top, left, h, w = crop_box(uniforms, int(image.shape[-2]), int(image.shape[-1]))
    out = resize_to(image[:, top : top + h, left : left + w], size, size)
    return out.flip(-1) if flip else out


def imagenet_batch(images: Sequence[torch.Tensor], uniforms: torch.Tensor, flips: torch.Tensor,
                   size: int) -> torch.Tensor:
    """uint8 [B, C, size, size]: :func:`resized_crop` of each image (any sizes) with its row of the draws."""
    rows, coins = uniforms.tolist(), flips.tolist()
    return torch.stack([resized_crop(img, rows[i], size, coins[i]) for i, img in enumerate(images)])


def center_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    """The ImageNet test transform: shorter side to ``floor(size × 256/224)``, then the central ``size``²."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    short = math.floor(size * TEST_RESIZE)
    nh, nw = (short, math.floor(short * w / h)) if h <= w else (math.floor(short * h / w), short)
    x = resize_to(image, nh, nw)
    top, left = round((nh - size) / 2), round((nw - size) / 2)
    return x[:, top : top + size, left : left + size].contiguous()
