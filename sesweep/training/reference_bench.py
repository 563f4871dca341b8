"""The textbook baseline that ``sesweep bench`` measures sesweep against, and the JPEG folders it reads.

The reference is how a CIFAR training loop is usually written: torchvision ``datasets.ImageFolder`` over JPEG
files, ``transforms`` (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) decoded and
augmented per image in ``DataLoader`` worker processes, eager fp32, contiguous (NCHW) tensors, and
``optimizer.zero_grad(); loss.backward(); optimizer.step()``. It trains the very same network
(:func:`sesweep.training.models.build_model`), so a ratio against it measures the input pipeline, precision
and memory layout, not a different model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sesweep.spec import RunSpec
from sesweep.training.data import folder_classes, folder_files, largest_remainder
from sesweep.training.models import build_model

#: the usual CIFAR-10 normalisation constants of textbook loops
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
#: worker processes of the reference DataLoader: the PyTorch CIFAR-10 tutorial's value, and this machine's cores
DEFAULT_WORKERS = 2


# --------------------------------------------------------------------------------------------------
# JPEG folders


def write_digits_jpegs(root: Path, train_images: int, test_images: int, quality: int = 95) -> Path:
    """An ImageFolder (``root/{train,test}/<digit>/NNNNN.jpg``) of the embedded digits, upscaled to 32² RGB.

    Class-stratified (largest remainder); when more images are asked for than a split has, its images are
    written again under new names (the bench needs a number of files, not distinct pictures)."""
    from PIL import Image

    from sesweep.spec import RecipeSpec
    from sesweep.training.data import load_data

    splits = load_data(RecipeSpec(dataset="digits"))
    for split, data, n in (("train", splits.train, train_images), ("test", splits.test, test_images)):
        counts = torch.bincount(data.labels, minlength=len(data.classes)).tolist()
        quotas = largest_remainder(counts, n)
        for cls, quota in enumerate(quotas):
            members = torch.nonzero(data.labels == cls).flatten().tolist()
            folder = root / split / data.classes[cls]
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(quota):
                pixels = data.images[members[i % len(members)]].permute(1, 2, 0).contiguous().numpy()
                Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=quality)
    return root


def link_subset(source: Path, root: Path, train_images: int, test_images: int) -> Path:
    """An ImageFolder under ``root`` of symbolic links to a class-stratified subset of ``source``'s files
    (each class's first files in sorted order), so both loaders read exactly the same JPEGs."""
    classes = folder_classes(source)
    for split, n in (("train", train_images), ("test", test_images)):
        files, labels = folder_files(source / split, classes)
        counts = [labels.count(k) for k in range(len(classes))]
        quotas = largest_remainder(counts, min(n, len(files)))
        by_class: dict[int, list[str]] = {}
        for f, k in zip(files, labels, strict=True):
            by_class.setdefault(k, []).append(f)
        for k, quota in enumerate(quotas):
            folder = root / split / classes[k]
            folder.mkdir(parents=True, exist_ok=True)
            for f in by_class.get(k, [])[:quota]:
                (folder / os.path.basename(f)).symlink_to(os.path.abspath(f))
    return root


# --------------------------------------------------------------------------------------------------
# the reference loop


class ReferenceLoop:
    """The textbook loop over ``root/train``: ``ImageFolder`` + ``transforms`` + ``DataLoader``, eager fp32.

    The crop is the side of the folder's first image (32 for CIFAR), so it trains at the shape sesweep does."""

    def __init__(self, spec: RunSpec, root: Path, *, batch_size: int, workers: int = DEFAULT_WORKERS,
                 device: torch.device | None = None) -> None:
        from torchvision import datasets, transforms

        self.device = device or torch.device("cpu")
        self.dataset = datasets.ImageFolder(str(root / "train"))
        if not self.dataset.samples:
            raise ValueError(f"no images under {root / 'train'}")
        with self.dataset.loader(self.dataset.samples[0][0]) as first:  # the crop is the images' side (CIFAR: 32)
            crop = min(first.size)
        transform = transforms.Compose([
            transforms.RandomCrop(crop, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
        ])
        self.dataset.transform = transform
        self.loader = torch.utils.data.DataLoader(self.dataset, batch_size=batch_size, shuffle=True,
                                                  num_workers=workers, pin_memory=self.device.type == "cuda",
                                                  persistent_workers=workers > 0)
        torch.manual_seed(spec.seed)
        self.model = build_model(spec.model, len(self.dataset.classes), 3, spec.seed).to(self.device)
        r = spec.recipe
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=r.lr, momentum=r.momentum,
                                         nesterov=r.nesterov and r.momentum > 0, weight_decay=r.weight_decay)
        self.criterion = nn.CrossEntropyLoss()
        self._stream: Iterator[Any] | None = None

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        loss = self.criterion(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()  # what a textbook loop logs (and a sync point on a GPU)

    def epoch(self) -> tuple[int, list[float]]:
        """One pass over the loader: images trained and the loss of every step."""
        self.model.train()
        images, losses = 0, []
        for x, y in self.loader:
            losses.append(self.step(x, y))
            images += len(y)
        return images, losses

    def _batches(self) -> Iterator[Any]:
        while True:
            yield from self.loader

    def run(self, steps: int) -> tuple[float, int]:
        """Seconds and images for ``steps`` steps, epochs joined end to end (data loading included)."""
        self.model.train()
        if self._stream is None:
            self._stream = self._batches()
        start, images = time.perf_counter(), 0
        for _ in range(steps):
            x, y = next(self._stream)
            self.step(x, y)
            images += len(y)
        return time.perf_counter() - start, images


def reference_epoch(spec: RunSpec, root: Path, *, batch_size: int, workers: int,
                    device: torch.device) -> dict[str, Any]:
    """Wall clock of one reference epoch from nothing: dataset listing, workers, model, training."""
    start = time.perf_counter()
    loop = ReferenceLoop(spec, root, batch_size=batch_size, workers=workers, device=device)
    images, losses = loop.epoch()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": images, "img_per_s": images / seconds, "steps": len(losses),
            "first_loss": losses[0], "last_loss": losses[-1]}
