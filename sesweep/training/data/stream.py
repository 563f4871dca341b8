"""The stream loader: image folders decoded batch by batch in worker processes, for data that do not fit memory.

What a batch holds is decided in the main process's terms only: the epoch's order and every augmentation
draw come from :mod:`.augment` (functions of ``(seed, epoch)`` and the position), the workers decode the
files of a position range with the same :class:`.imagefolder.Decode` as the memory loader, and the last
steps (pad-crop-flip, normalisation) run on the training device as there. So the stream and the memory loader
give the same batches, with any number of workers (``tests/test_stream.py``).

Workers are ``torch.utils.data`` processes: persistent for a run, pinned memory on a GPU, a few batches of
prefetch. Their only input is a position range; they draw nothing from the main process's RNG (the loader has
a generator of its own, so dropout and everything else seeded there stay matched).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sesweep.spec import SpecError
from sesweep.training.data.augment import epoch_draws, imagenet_batch, imagenet_draws, pad_crop_flip
from sesweep.training.data.batches import _affine, batch_count, finish
from sesweep.training.data.imagefolder import Decode, check_sizes
from sesweep.training.data.images import ImageSet, channel_histograms

#: batches each decoding worker keeps ready (DataLoader's prefetch_factor)
PREFETCH = 4
#: at most this many decoding workers for ``loader_workers: auto``
MAX_WORKERS = 8


def worker_count(setting: str | int) -> int:
    """``recipe.loader_workers``: a number, or auto = one per CPU core available to this process, at most 8."""
    if setting != "auto":
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cores))


@dataclass(frozen=True)
class FileSet:
    """One split as files: paths (one numpy array, so forked workers share its pages), labels, class names, and
    how each file is decoded. The streamed twin of :class:`.images.ImageSet`."""

    files: np.ndarray
    labels: torch.Tensor
    classes: tuple[str, ...]
    decode: Decode
    workers: int = 0

    channels = 3  # every image is converted to RGB

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def path(self, i: int) -> str:
        return os.fsdecode(self.files[i])

    def take(self, index: torch.Tensor) -> ImageSet:
        """The images at ``index``, decoded into memory (the excitation probe, the latency batch)."""
        images = _decode_many(self, index.tolist())
        return ImageSet(torch.stack(images), self.labels[index].clone(), self.classes)

    def subset(self, index: torch.Tensor) -> FileSet:
        return FileSet(self.files[index.numpy()], self.labels[index].clone(), self.classes, self.decode, self.workers)

    def eval_batches(self, *, batch_size: int, mean: Sequence[float], std: Sequence[float],
                     device: torch.device | str, channels_last: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation batches in file order, the last partial batch kept; the memory loader's arithmetic."""
        device = torch.device(device)
        a, b = _affine(mean, std, device)
        ranges = [(s, min(s + batch_size, len(self))) for s in range(0, len(self), batch_size)]
        for x, y in _loader(_RangeDecoder(self), ranges, self.workers, device):
            x = (x.to(device, non_blocking=True) * a).sub_(b)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(device, non_blocking=True)


def file_set(files: Sequence[str], labels: Sequence[int], classes: tuple[str, ...], decode: Decode,
             workers: int) -> FileSet:
    return FileSet(np.array([os.fsencode(f) for f in files]), torch.tensor(list(labels), dtype=torch.int64),
                   classes, decode, workers)


def _decode_many(files: FileSet, index: Sequence[int]) -> list[torch.Tensor]:
    out = []
    for i in index:
        path = files.path(i)
        try:
            out.append(files.decode(path))
        except (OSError, ValueError) as exc:
            raise SpecError("recipe.data_root", f"cannot read image {path}: {exc}") from exc
    return out


def stream_histograms(files: FileSet, index: torch.Tensor | None,
                      chunk: int = 256) -> tuple[torch.Tensor, set[tuple[int, int]]]:
    """:func:`.images.channel_histograms` of the images at ``index`` (None: all), decoded by the workers, and
    the distinct (height, width) of those decoded images."""
    order = list(range(len(files))) if index is None else index.tolist()
    ranges = [(s, min(s + chunk, len(order))) for s in range(0, len(order), chunk)]
    total = torch.zeros(3, 256, dtype=torch.int64)
    sizes: set[tuple[int, int]] = set()
    for hist, seen in _loader(_HistogramDecoder(files, order), ranges, files.workers, torch.device("cpu")):
        total += hist
        sizes |= {tuple(hw) for hw in seen.tolist()}
    return total, sizes


def stack_same(images: list[torch.Tensor], what: str) -> torch.Tensor:
    """One batch; images not of one square size (no ``recipe.image_size`` to resize them) are a one-line error
    (:func:`.imagefolder.check_sizes`)."""
    check_sizes((tuple(x.shape[1:]) for x in images), what)
    return torch.stack(images)


# --------------------------------------------------------------------------------------------------
# training batches


class StreamBatches:
    """Training batches decoded by workers; the same interface and the same batches as :class:`.TrainBatches`."""

    def __init__(self, data: FileSet, *, batch_size: int, mean: Sequence[float], std: Sequence[float],
                 augment: str, flip: bool, seed: int, device: torch.device | str, channels_last: bool,
                 crop_size: int) -> None:
        self.num_batches, self.batch_size = batch_count(len(data), batch_size)
        self.device = torch.device(device)
        self.augment = augment
        self.flip = flip and augment != "none"
        self.channels_last = channels_last
        self._a, self._b = _affine(mean, std, self.device)
        self._decoder = _TrainDecoder(data, seed, self.batch_size, augment, self.flip, crop_size)
        self._sampler = _EpochSampler(self.num_batches)
        self._loader = _loader(self._decoder, self._sampler, data.workers, self.device, persistent=True)

    def __len__(self) -> int:
        return self.num_batches

    @property
    def samples_per_epoch(self) -> int:
        return len(self) * self.batch_size

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self._sampler.epoch = epoch
        for x, y, offsets, flips in self._loader:
            x = x.to(self.device, non_blocking=True)
            if self.augment == "standard":
                x = pad_crop_flip(x, offsets, flips if self.flip else None)
            else:
                x = x.permute(0, 2, 3, 1)
            yield finish(x, self._a, self._b, self.channels_last), y.to(self.device, non_blocking=True)


class _EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(epoch, batch)``; the epoch is set before each pass (the sampler runs in the main process)."""

    def __init__(self, batches: int) -> None:
        self.batches, self.epoch = batches, 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, k) for k in range(self.batches)])

    def __len__(self) -> int:
        return self.batches


class _TrainDecoder(Dataset):
    """Batch ``k`` of epoch ``e``: the files at positions ``k·B … (k+1)·B`` of the epoch's permutation, decoded;
    ImageNet crops are cut here (on the CPU), the standard crop on the device after transfer."""

    def __init__(self, data: FileSet, seed: int, batch_size: int, augment: str, flip: bool, crop_size: int) -> None:
        self.data, self.seed, self.batch_size = data, seed, batch_size
        self.augment, self.flip, self.crop_size = augment, flip, crop_size
        self._epoch: tuple[int, Any] | None = None  # this worker's draws of the epoch it is in

    def __len__(self) -> int:
        return len(self.data) // self.batch_size

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, ...]:
        epoch, k = item
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_draws(self.seed, epoch, len(self.data), self.augment))
        draws = self._epoch[1]
        positions = slice(k * self.batch_size, (k + 1) * self.batch_size)
        index = draws.perm[positions]
        images = _decode_many(self.data, index.tolist())
        labels = self.data.labels[index]
        if self.augment == "imagenet":
            uniforms, flips = imagenet_draws(self.seed, epoch, k, len(index))
            empty = torch.empty(0)
            return imagenet_batch(images, uniforms, flips & self.flip, self.crop_size), labels, empty, empty
        x = stack_same(images, "the train split")
        if self.augment == "standard":
            return x, labels, draws.offsets[positions], draws.flips[positions]
        return x, labels, torch.empty(0), torch.empty(0)


class _RangeDecoder(Dataset):
    """Images ``start … stop`` of a split in order (evaluation)."""

    def __init__(self, data: FileSet) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        start, stop = item
        return stack_same(_decode_many(self.data, range(start, stop)), "the split"), self.data.labels[start:stop]


class _HistogramDecoder(Dataset):
    """Per-channel value histograms of the images at ``order[start:stop]``: a worker returns 6 kB, not the images."""

    def __init__(self, data: FileSet, order: list[int]) -> None:
        self.data, self.order = data, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        start, stop = item
        images = _decode_many(self.data, self.order[start:stop])
        sizes = torch.tensor(sorted({tuple(x.shape[1:]) for x in images}), dtype=torch.int64).view(-1, 2)
        return sum(channel_histograms(x[None]) for x in images), sizes


def _loader(dataset: Dataset, sampler: Any, workers: int, device: torch.device, persistent: bool = False) -> DataLoader:
    """A DataLoader of whole batches (``batch_size=None``: each item is one batch) with its own generator."""
    extra: dict[str, Any] = {"prefetch_factor": PREFETCH, "persistent_workers": persistent} if workers else {}
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=workers,
                      pin_memory=device.type == "cuda", generator=torch.Generator(), **extra)
