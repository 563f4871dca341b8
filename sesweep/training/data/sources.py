"""Loading the data set a recipe names: the built-in sets (digits, CIFAR-10/100, fake), image folders (through
:mod:`.imagefolder`), downsampled ImageNet's npz files (through :mod:`.downsampled`). What is known of a data
set without loading it (its classes, its image side, the data identity that is part of every run key, its
loader) is :mod:`sesweep.datasets`'."""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sesweep.datasets import (
    DIGITS_SPLIT_SEED,
    DIGITS_TEST_FRACTION,
    DOWNSAMPLED_SIDES,
    NATIVE_SIZE,
    NUM_CLASSES,
    dataset_image_size,
    resolved_loader,
)
from sesweep.spec import RecipeSpec, SpecError
from sesweep.training.data.augment import center_resize
from sesweep.training.data.downsampled import load_downsampled
from sesweep.training.data.imagefolder import load_imagefolder
from sesweep.training.data.images import (
    DataSplits,
    ImageSet,
    channel_stats,
    largest_remainder,
    resize,
    stats_index,
    subset,
)
from sesweep.training.data.loaders import load_stream

#: where CIFAR files live (or are downloaded to) when ``recipe.data_root`` is null
DEFAULT_DATA_ROOT = "~/.cache/sesweep/data"


# --------------------------------------------------------------------------------------------------
# loading


def load_data(recipe: RecipeSpec) -> DataSplits:
    """Load, subset, resize and measure the recipe's data set.

    Order of work: native splits → stratified subsets (so resizing touches only the images kept) →
    resize to ``image_size`` → per-channel mean/std of the train split that is actually trained on.
    ImageNet augmentation keeps the train images at their own size (the crops are cut from them) and gives the
    test images the ImageNet test transform. An image folder may be streamed instead (``recipe.loader``).
    """
    size = dataset_image_size(recipe)
    if resolved_loader(recipe) == "stream":
        return load_stream(recipe, size)
    if recipe.dataset == "digits":
        train, test = _load_digits(recipe.image_size)
    elif recipe.dataset in ("cifar10", "cifar100"):
        train, test = _load_cifar(recipe)
    elif recipe.dataset == "imagefolder":
        train, test = load_imagefolder(recipe, size)
    elif recipe.dataset in DOWNSAMPLED_SIDES:
        train, test = load_downsampled(recipe)
    elif recipe.dataset == "fake":
        train, test = _fake_split(1000, seed=0), _fake_split(200, seed=1)
    else:  # the spec's Literal makes this unreachable; kept so a new name fails loudly
        raise SpecError("recipe.dataset", f"unknown data set {recipe.dataset!r}")
    train = subset(train, recipe.train_subset, "recipe.train_subset", "train")
    test = subset(test, recipe.test_subset, "recipe.test_subset", "test")
    if len(train) < 2:
        key = "recipe.train_subset" if recipe.train_subset is not None else "recipe.data_root"
        raise SpecError(key, f"training needs at least 2 images (BatchNorm), got {len(train)}")
    if recipe.augment == "imagenet":  # train kept at its own size; an image folder's test was decoded so
        if recipe.dataset != "imagefolder":
            test = ImageSet(torch.stack([center_resize(x, size) for x in test.images]), test.labels, test.classes)
    elif recipe.image_size is not None:
        train = _resize_set(train, recipe.image_size)
        test = _resize_set(test, recipe.image_size)
    index = stats_index(train.labels, len(train.classes))
    mean, std = channel_stats(train.images if index is None else train.images[index])
    return DataSplits(recipe.dataset, train, test, mean, std, flip=recipe.dataset != "digits", input_size=size)


def _resize_set(data: ImageSet, size: int) -> ImageSet:
    return ImageSet(resize(data.images, size), data.labels, data.classes)


# --------------------------------------------------------------------------------------------------
# digits (scikit-learn, embedded)


def _load_digits(image_size: int | None) -> tuple[ImageSet, ImageSet]:
    """scikit-learn's 1,797 8×8 handwritten digits (values 0..16), the embedded default.

    Split: a fixed stratified 20 % test split — per-class quotas by largest remainder, members drawn
    with numpy's legacy ``RandomState(0)`` (its stream is frozen across numpy versions) and kept in
    original order — so it does not depend on scikit-learn's splitter implementation.
    Pixels: 0..16 scaled to 0..255, then bilinear upsampling of the float values straight to 32×32
    (or ``image_size``), rounded once: smooth strokes rather than 4×4 blocks with hard edges; the grey
    channel is repeated to RGB like any grey image of an imagefolder.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = np.asarray(bunch.images, dtype=np.float32)  # [1797, 8, 8]
    labels = np.asarray(bunch.target, dtype=np.int64)
    counts = np.bincount(labels, minlength=10).tolist()
    quotas = largest_remainder(counts, round(DIGITS_TEST_FRACTION * len(labels)))
    rng = np.random.RandomState(DIGITS_SPLIT_SEED)
    is_test = np.zeros(len(labels), dtype=bool)
    for cls, quota in enumerate(quotas):
        is_test[rng.choice(np.flatnonzero(labels == cls), quota, replace=False)] = True
    pixels = torch.from_numpy(raw * (255.0 / 16.0)).unsqueeze(1)  # [N, 1, 8, 8] float on 0..255
    images = resize(pixels, image_size or NATIVE_SIZE["digits"]).expand(-1, 3, -1, -1)
    classes = tuple(str(int(c)) for c in bunch.target_names)
    y = torch.from_numpy(labels)
    train_idx = torch.from_numpy(np.flatnonzero(~is_test))
    test_idx = torch.from_numpy(np.flatnonzero(is_test))
    return (ImageSet(images[train_idx].contiguous(), y[train_idx], classes),
            ImageSet(images[test_idx].contiguous(), y[test_idx], classes))


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 through torchvision


def _present_only(base: type) -> type:
    """A torchvision CIFAR class whose integrity check asks for presence instead of the release md5s.

    Why: torchvision's ``_check_integrity`` and ``_load_meta`` compare every batch file with the md5 of
    the official release, so a user's own copy in the same pickle format (or a test's small files)
    cannot load. Here the per-file md5s are ``None``, for which torchvision's own ``check_integrity``
    checks that the file exists. What stays verified: a download by this code still goes through
    ``download_and_extract_archive(md5=tgz_md5)``, the md5 of the whole release archive, so downloaded
    data are exactly the release; files found on disk are checked for structure instead (shapes, label
    range, counts) by :func:`_load_cifar`, and a truncated file fails there with a clear error.
    """
    name = f"PresentOnly{base.__name__}"
    attrs: dict[str, Any] = {
        "train_list": [[file, None] for file, _md5 in base.train_list],
        "test_list": [[file, None] for file, _md5 in base.test_list],
        "meta": {**base.meta, "md5": None},
        "__doc__": _present_only.__doc__,
    }
    return type(name, (base,), attrs)


def _cifar_class(dataset: str) -> type:
    from torchvision.datasets import CIFAR10, CIFAR100

    return _present_only(CIFAR10 if dataset == "cifar10" else CIFAR100)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound a stalled download (torchvision opens its URL with no timeout) unless the user set one."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        if previous is None:
            socket.setdefaulttimeout(None)


def _load_cifar(recipe: RecipeSpec) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10/100 from ``data_root`` (files already there, or downloaded by torchvision)."""
    cls = _cifar_class(recipe.dataset)
    pretty = "CIFAR-10" if recipe.dataset == "cifar10" else "CIFAR-100"
    root = Path(recipe.data_root or DEFAULT_DATA_ROOT).expanduser()
    if root.name == cls.base_folder:  # pointed at the extracted folder itself: accept it
        root = root.parent
    folder = root / cls.base_folder
    needed = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]

    def present() -> bool:
        return all((folder / f).is_file() for f in needed)

    def split(train: bool) -> ImageSet:
        made = [p for p in (folder, *folder.parents) if not p.exists()]  # what a failed download must not leave
        try:
            with _socket_timeout(60.0):
                ds = cls(str(root), train=train, download=not present())
        except Exception as exc:
            if not present():
                for p in made:  # the folders (and partial archive) the download created: a refusal creates nothing
                    shutil.rmtree(p, ignore_errors=True)
                missing = ", ".join(f for f in needed if not (folder / f).is_file())
                raise SpecError("recipe.data_root", (
                    f"no {pretty} files under {folder} (missing: {missing}) and the download failed "
                    f"({type(exc).__name__}: {exc}); download {cls.url} and extract it into {root}, "
                    f"or set recipe.data_root to the folder that holds {cls.base_folder}/")) from exc
            raise SpecError("recipe.data_root", (
                f"cannot read the {pretty} files under {folder} ({type(exc).__name__}: {exc}); "
                "delete that folder to download them again")) from exc
        data = np.asarray(ds.data)
        labels = np.asarray(ds.targets, dtype=np.int64)
        classes = tuple(str(c) for c in ds.classes)
        which = "train" if train else "test"
        if data.dtype != np.uint8 or data.shape[1:] != (32, 32, 3) or len(labels) != len(data):
            raise SpecError("recipe.data_root", f"the {pretty} {which} files under {folder} are malformed: "
                                                f"{data.shape} {data.dtype} images, {len(labels)} labels")
        if len(classes) != NUM_CLASSES[recipe.dataset] or (
                len(labels) and (labels.min() < 0 or labels.max() >= len(classes))):
            raise SpecError("recipe.data_root", f"the {pretty} {which} files under {folder} have "
                                                f"{len(classes)} class names or labels out of range")
        images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
        return ImageSet(images, torch.from_numpy(labels), classes)

    return split(True), split(False)


# --------------------------------------------------------------------------------------------------
# fake: a small generated set for tests and smoke runs


def _fake_split(n: int, seed: int, classes: int = 10, size: int = 32) -> ImageSet:
    """Deterministic, learnable in an epoch or two: each class is a coloured grating with its own
    orientation and frequency; random phase, contrast and pixel noise keep it from being trivial."""
    g = torch.Generator().manual_seed(1_000_003 + seed)
    labels = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    angle = labels.double() * math.pi / classes
    freq = 2 * math.pi / (5.0 + 3.0 * (labels % 3).double())
    phase = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    contrast = 50 + 40 * torch.rand(n, generator=g, dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64),
                            torch.arange(size, dtype=torch.float64), indexing="ij")
    proj = xx * torch.cos(angle)[:, None, None] + yy * torch.sin(angle)[:, None, None]
    wave = torch.sin(freq[:, None, None] * proj + phase[:, None, None])  # [n, H, W]
    hue = torch.arange(classes, dtype=torch.float64) * 2 * math.pi / classes
    palette = 0.6 + 0.4 * torch.stack([torch.cos(hue), torch.cos(hue - 2.094), torch.cos(hue + 2.094)], 1)
    colour = palette[labels]  # [n, 3]
    noise = 20 * torch.randn(n, 3, size, size, generator=g).double()
    x = 128 + contrast[:, None, None, None] * colour[:, :, None, None] * wave[:, None] + noise
    images = x.round().clamp(0, 255).to(torch.uint8).contiguous()
    return ImageSet(images, labels.to(torch.int64), tuple(f"class{k}" for k in range(classes)))
