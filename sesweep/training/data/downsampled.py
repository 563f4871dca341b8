"""``imagenet32`` / ``imagenet64``: Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter 2017, "A Downsampled
Variant of ImageNet as an Alternative to the CIFAR datasets", arXiv:1707.08819), read from its npz release into
one uint8 tensor per split.

The release (https://image-net.org/download-images.php, files made by github.com/PatrykChrabaszcz/Imagenet32_Scripts
``image2numpy_imagenet_{train,val}.py``): ``Imagenet32_train_npz.zip`` and ``Imagenet32_val_npz.zip`` unzip to
``Imagenet32_train_npz/train_data_batch_{1..10}.npz`` and ``Imagenet32_val_npz/val_data.npz``; the 64×64 train set
comes in two zips, ``Imagenet64_train_part1_npz/`` (batches 1-5) and ``Imagenet64_train_part2_npz/`` (6-10). Each
file holds ``data``: uint8 [N, 3·S·S], one image per row, channel-planar (the R plane, then G, then B, each
row-major), ``labels``: 1..1000 (1-based, in the order of the ILSVRC devkit's ``map_clsloc.txt`` — not the
sorted-wnid order of an ImageFolder), and in train files ``mean`` (ignored: the statistics are measured on the
train split actually trained on, as for every data set). The npz files carry no class names, so class k is
named by its 1-based npz label, ``str(k + 1)``. The validation set is the test split.

``recipe.data_root`` is the folder holding those release folders, or one folder holding all 11 files, or one of
the release folders itself (its parent is then used). Each file must be found exactly once."""

from __future__ import annotations

import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sesweep.datasets import DOWNSAMPLED_SIDES, npz_files
from sesweep.spec import RecipeSpec, SpecError
from sesweep.training.data.images import ImageSet

#: classes of the release (npz labels 1..1000)
NUM_CLASSES = 1000


# --------------------------------------------------------------------------------------------------
# reading: labels and array headers first (cheap, for the plan's checks), then the pixels


@dataclass(frozen=True)
class NpzSplit:
    """One split's files, their image counts and 0-based labels (read and checked, pixels not read)."""

    files: tuple[Path, ...]
    counts: tuple[int, ...]
    labels: np.ndarray  # int64, 0-based, in file order

    def __len__(self) -> int:
        return sum(self.counts)


def _data_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of the ``data`` member, from its .npy header alone (no decompression of the pixels)."""
    with zipfile.ZipFile(path) as z, z.open("data.npy") as member:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read(member)
    return shape, dtype


def scan_split(files: list[Path], dataset: str) -> NpzSplit:
    """Read and check every file's labels and ``data`` header: uint8 [N, 3·S·S], N labels in 1..1000."""
    side = DOWNSAMPLED_SIDES[dataset]
    counts, labels = [], []
    for path in files:
        try:
            with np.load(path) as f:
                members = list(f.files)
                y = np.asarray(f["labels"]) if "labels" in members else None
            shape, dtype = _data_header(path) if "data" in members else ((), None)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise SpecError("recipe.data_root", f"cannot read {path} ({type(exc).__name__}: {exc})") from None
        if y is None or dtype is None:
            raise SpecError("recipe.data_root", f"{path} is not a downsampled-ImageNet npz file: it has "
                                                f"{', '.join(members) or 'no arrays'}, not data and labels")
        if dtype != np.uint8 or shape[1:] != (3 * side * side,) or y.shape != shape[:1]:
            raise SpecError("recipe.data_root", f"{path} is malformed for {dataset}: {shape} {dtype} data, "
                                                f"{y.shape[0] if y.ndim else 0} labels (expected uint8 "
                                                f"[N, {3 * side * side}] and N labels)")
        if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 1 or y.max() > NUM_CLASSES):
            raise SpecError("recipe.data_root", f"{path} has labels outside 1..{NUM_CLASSES} "
                                                f"({y.min()}..{y.max()}; the release's labels are 1-based)")
        counts.append(int(shape[0]))
        labels.append(y.astype(np.int64) - 1)
    return NpzSplit(tuple(files), tuple(counts), np.concatenate(labels) if labels else np.zeros(0, np.int64))


def scan_npz(recipe: RecipeSpec) -> tuple[NpzSplit, NpzSplit]:
    train, val = npz_files(recipe)
    return scan_split(train, recipe.dataset), scan_split([val], recipe.dataset)


def _read_pixels(split: NpzSplit, dataset: str, desc: str) -> torch.Tensor:
    """The split's images, uint8 [N, 3, S, S], filled file by file into one preallocated tensor: the peak is
    the whole split plus one file's rows (64×64 train: 15.7 GB + 1.6 GB), never a second copy of the split."""
    from tqdm import tqdm

    side = DOWNSAMPLED_SIDES[dataset]
    out = torch.empty((len(split), 3, side, side), dtype=torch.uint8)
    flat = out.view(len(split), -1)
    start = 0
    with tqdm(total=len(split), desc=desc, unit="img", disable=None, leave=False, file=sys.stderr) as bar:
        for path, n in zip(split.files, split.counts, strict=True):
            try:
                with np.load(path) as f:
                    rows = f["data"]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise SpecError("recipe.data_root", f"cannot read {path} ({type(exc).__name__}: {exc})") from None
            if rows.shape != (n, 3 * side * side) or rows.dtype != np.uint8:
                raise SpecError("recipe.data_root", f"{path} changed while it was read: {rows.shape} {rows.dtype}")
            flat[start:start + n] = torch.from_numpy(rows)
            del rows
            start += n
            bar.update(n)
    return out


def load_downsampled(recipe: RecipeSpec) -> tuple[ImageSet, ImageSet]:
    """Both splits of ``imagenet32`` / ``imagenet64`` (train: the 10 batches in order; test: val_data.npz)."""
    classes = tuple(str(k) for k in range(1, NUM_CLASSES + 1))
    train, val = scan_npz(recipe)
    sets = []
    for split, which in ((train, "train"), (val, "test")):
        images = _read_pixels(split, recipe.dataset, f"{recipe.dataset} {which}")
        sets.append(ImageSet(images, torch.from_numpy(split.labels), classes))
    return sets[0], sets[1]
