"""``imagefolder``: ``data_root/{train,test}/<class>/*`` (listed and fingerprinted by :mod:`sesweep.datasets`),
decoded once and cached as a tensor file (keyed by content) under :func:`~sesweep.cache.cache_dir`."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sesweep.cache import cache_dir
from sesweep.datasets import folder_classes, folder_files, folder_root
from sesweep.spec import RecipeSpec, SpecError
from sesweep.training.data.augment import center_resize
from sesweep.training.data.images import ImageSet, resize

#: bump when the imagefolder cache format or decoding changes, so old caches are not reused
_CACHE_VERSION = 1
#: decode in a thread pool only when one image takes longer than this (see :func:`_decode_all`)
_POOL_MIN_SECONDS = 1e-3
#: files per decoding task (and per progress-bar update)
_DECODE_CHUNK = 256


# --------------------------------------------------------------------------------------------------
# decoding and the cache


@dataclass(frozen=True)
class Decode:
    """How a file becomes the uint8 [3, H, W] image a loader keeps, the same in both loaders.

    ``resize``: to ``resize``² (standard augmentation, and none); ``center``: the ImageNet test transform to
    ``center``² (:func:`.augment.center_resize`); neither: the image at its own size (ImageNet training, which
    crops later)."""

    resize: int | None = None
    center: int | None = None

    def __call__(self, path: str) -> torch.Tensor:
        x = _decode_image(path, self.resize)
        return center_resize(x, self.center) if self.center is not None else x


def decode_rules(recipe: RecipeSpec, size: int | None) -> tuple[Decode, Decode]:
    """``(train, test)`` decoding of an image folder under the recipe's augmentation; ``size``: the model input."""
    if recipe.augment == "imagenet":
        return Decode(), Decode(center=size)
    return Decode(resize=recipe.image_size), Decode(resize=recipe.image_size)


def _decode_image(path: str, image_size: int | None) -> torch.Tensor:
    """One file → uint8 [3, H, W] RGB (PIL's ``convert("RGB")``), resized with :func:`resize` if asked.

    PIL only: ``torchvision.io`` decodes small JPEGs ~2× faster, but it is deprecated since
    torchvision 0.29.
    """
    from PIL import Image

    with Image.open(path) as img:
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    if image_size is not None and tuple(x.shape[1:]) != (image_size, image_size):
        x = resize(x.unsqueeze(0), image_size)[0]
    return x.contiguous()


def _decode_all(files: list[str], decode: Decode, desc: str) -> list[torch.Tensor]:
    """Decode every file, with a progress bar on a terminal; large images in a small thread pool.

    Threads, not processes: PIL releases the GIL while it decodes, so large images decode in parallel,
    and threads need no pickling or start-up (a process pool re-imports torch under ``spawn``). Tiny
    images (CIFAR's 32×32, ~130 µs each) are all Python overhead, where threads only fight over the
    GIL (measured 20–35 % slower on 2 cores), so the first chunk is decoded serially and timed, and
    the pool is used only when an image takes over :data:`_POOL_MIN_SECONDS`.
    """
    from PIL import UnidentifiedImageError
    from tqdm import tqdm

    def chunk(paths: list[str]) -> list[torch.Tensor]:
        out = []
        for p in paths:
            try:
                out.append(decode(p))
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise SpecError("recipe.data_root", f"cannot read image {p}: {exc}") from exc
        return out

    step = _DECODE_CHUNK
    parts = [files[i : i + step] for i in range(0, len(files), step)]
    images: list[torch.Tensor] = []
    workers = max(1, min(8, os.cpu_count() or 1))
    with tqdm(total=len(files), desc=desc, unit="img", disable=None, leave=False, file=sys.stderr) as bar:
        if not parts:
            return images
        start = time.perf_counter()
        images += chunk(parts[0])
        bar.update(len(parts[0]))
        per_image = (time.perf_counter() - start) / len(parts[0])
        if workers == 1 or per_image < _POOL_MIN_SECONDS:
            for part in parts[1:]:
                images += chunk(part)
                bar.update(len(part))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for done in pool.map(chunk, parts[1:]):
                    images += done
                    bar.update(len(done))
    return images


def _folder_key(root: Path, files: Sequence[str], rules: tuple[Decode, Decode]) -> str:
    """Hash of what the decoded tensors depend on: path, file list, sizes, mtimes, decoding, format."""
    h = hashlib.sha256(f"v{_CACHE_VERSION}\0{root}\0{rules}\n".encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def check_sizes(sizes: Iterable[tuple[int, int]], where: str) -> None:
    """Images that nothing resizes must share one square size: else a one-line error naming ``image_size``.
    Both loaders check with this (the memory loader as it stacks a split, the stream loader up front and per
    batch); ``sizes`` are (height, width)."""
    sizes = sorted(set(sizes))
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sizes[:4]) + (" …" if len(sizes) > 4 else "")
        raise SpecError("recipe.image_size", f"images under {where} have different sizes ({shown}); "
                                             "set recipe.image_size=N to resize them all to NxN")
    if sizes and sizes[0][0] != sizes[0][1]:
        h, w = sizes[0]
        raise SpecError("recipe.image_size", f"images under {where} are {w}x{h}, not square; "
                                             "set recipe.image_size=N to resize them to NxN")


def _stack(images: list[torch.Tensor], root: Path, what: str, crops: bool = False) -> torch.Tensor:
    """One uint8 tensor of a split's images; ``crops``: ImageNet training images, which keep their own size
    (any aspect) because the crops are cut from them later — so they must all share one."""
    sizes = sorted({tuple(x.shape[1:]) for x in images})
    if crops and len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sizes[:4]) + (" …" if len(sizes) > 4 else "")
        raise SpecError("recipe.loader", f"images under {root / what} have different sizes ({shown}); the memory "
                                         "loader keeps one tensor of one size, and ImageNet augmentation crops from "
                                         "the originals: set recipe.loader=stream (or auto)")
    if not crops:
        check_sizes(sizes, str(root))
    if not images:
        raise SpecError("recipe.data_root", f"no images in {what} under {root}")
    return torch.stack(images)


def load_imagefolder(recipe: RecipeSpec, size: int | None) -> tuple[ImageSet, ImageSet]:
    """Decode ``train/`` and ``test/`` once (:func:`decode_rules`; ``size``: the model input); later runs read
    the cached tensors (keyed by content)."""
    root = folder_root(recipe)
    classes = folder_classes(root)
    train_files, train_labels = folder_files(root / "train", classes)
    test_files, test_labels = folder_files(root / "test", classes)
    train_rule, test_rule = decode_rules(recipe, size)
    key = _folder_key(root, train_files + test_files, (train_rule, test_rule))
    prefix = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    folder = cache_dir() / "imagefolder"
    path = folder / f"{prefix}-{key}.pt"
    if path.is_file():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob["version"] == _CACHE_VERSION and tuple(blob["classes"]) == classes:
                return (ImageSet(blob["train_images"], blob["train_labels"], classes),
                        ImageSet(blob["test_images"], blob["test_labels"], classes))
        except Exception as exc:  # a damaged cache is only a lost speed-up: decode again
            warnings.warn(f"ignoring unreadable data cache {path}: {exc}", stacklevel=2)
    train = _stack(_decode_all(train_files, train_rule, "decoding train"), root, "train/",
                   crops=recipe.augment == "imagenet")
    test = _stack(_decode_all(test_files, test_rule, "decoding test"), root, "test/")
    if recipe.augment != "imagenet" and train.shape[1:] != test.shape[1:]:
        raise SpecError("recipe.image_size", f"train images are {tuple(train.shape[1:])} but test images are "
                                             f"{tuple(test.shape[1:])}; set recipe.image_size=N")
    blob = {"version": _CACHE_VERSION, "classes": list(classes),
            "train_images": train, "train_labels": torch.tensor(train_labels, dtype=torch.int64),
            "test_images": test, "test_labels": torch.tensor(test_labels, dtype=torch.int64)}
    _write_cache(path, blob)
    return (ImageSet(train, blob["train_labels"], classes), ImageSet(test, blob["test_labels"], classes))


def _write_cache(path: Path, blob: dict[str, Any]) -> None:
    """Atomic write (temp file + ``os.replace``); then drop older caches of the same folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(blob, fh)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        prefix = path.name.split("-")[0]
        for old in path.parent.glob(f"{prefix}-*.pt"):
            if old != path:
                with contextlib.suppress(OSError):
                    old.unlink()
    except OSError as exc:  # a read-only or full cache disk must not stop training
        warnings.warn(f"could not write data cache {path}: {exc}", stacklevel=2)
