"""Data sets as in-memory uint8 tensors, and batched augmentation on the training device.

Every data set is loaded once into ``uint8 [N, C, H, W]`` CPU tensors (:class:`ImageSet`); training moves
the whole train tensor to the device once and builds each batch there with a few tensor ops — no
per-image Python, no DataLoader workers (the airbench recipe). Matched runs: the epoch's data order and
every augmentation draw come from a CPU ``torch.Generator`` seeded from ``(seed, epoch)`` only, so every
variant of a sweep sees the same images in the same order with the same crops and flips, on any device.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sesweep.spec import RecipeSpec, SpecError

#: where CIFAR files live (or are downloaded to) when ``recipe.data_root`` is null
DEFAULT_DATA_ROOT = "~/.cache/sesweep/data"
#: pixels of zero padding for the standard random crop (He et al. 2016: pad 4, crop back to 32)
CROP_PAD = 4
#: the digits split: this fraction of each class goes to the test split, chosen with this seed
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
#: the native side of each built-in data set (``image_size`` null); imagefolder reads it from the files
NATIVE_SIZE = {"digits": 32, "cifar10": 32, "cifar100": 32, "fake": 32}
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "fake": 10}
#: bump when the imagefolder cache format or decoding changes, so old caches are not reused
_CACHE_VERSION = 1
#: decode in a thread pool only when one image takes longer than this (see :func:`_decode_all`)
_POOL_MIN_SECONDS = 1e-3
#: files per decoding task (and per progress-bar update)
_DECODE_CHUNK = 256


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
# cheap facts about a recipe's data set (no decoding)


def dataset_num_classes(recipe: RecipeSpec) -> int:
    """Number of classes, without loading images (imagefolder: the class folders under ``train/``)."""
    if recipe.dataset == "imagefolder":
        return len(_folder_classes(_folder_root(recipe)))
    return NUM_CLASSES[recipe.dataset]


def dataset_channels(recipe: RecipeSpec) -> int:
    """Input channels: every data set is (converted to) RGB, so a backbone's parameter count never
    depends on the data set (ResNet-20 is 0.27M, ResNet-50 25.557M, as published)."""
    del recipe
    return 3


def dataset_image_size(recipe: RecipeSpec) -> int:
    """Side of the model's input images; for imagefolder without ``image_size``, read from one header."""
    if recipe.image_size is not None:
        return recipe.image_size
    if recipe.dataset != "imagefolder":
        return NATIVE_SIZE[recipe.dataset]
    root = _folder_root(recipe)
    files, _ = _folder_files(root / "train", _folder_classes(root))
    if not files:
        raise SpecError("recipe.data_root", f"no images under {root / 'train'}")
    from PIL import Image

    with Image.open(files[0]) as img:  # reads the header only
        w, h = img.size
    if w != h:
        raise SpecError("recipe.image_size", f"images under {root} are {w}x{h}, not square; "
                                             "set recipe.image_size=N to resize them to NxN")
    return h


#: bump when what :func:`data_identity` reads changes (every image folder's identity, so its run keys, change)
_IDENTITY_VERSION = 1


def data_identity(recipe: RecipeSpec) -> str:
    """Which data a run reads, as a short string that is part of its run key; where they live is not.

    Built-in sets: their name. Their content is fixed by this code (digits: scikit-learn's embedded set and
    the split constants, which are spelled out; fake: generated) or by the official release (CIFAR: a
    download is checked against the archive's md5) — a change there is a ``RESULTS_VERSION`` bump.
    ``imagefolder``: a fingerprint of exactly the files the loader reads (:func:`_folder_fingerprint`), so two
    folders with other files get other keys and the same files copied or moved elsewhere keep theirs.
    Raises :class:`SpecError` naming ``recipe.data_root`` when an image folder is not there.
    """
    if recipe.dataset == "imagefolder":
        return _folder_fingerprint(_folder_root(recipe))
    if recipe.dataset == "digits":
        return f"digits:test_fraction={DIGITS_TEST_FRACTION}:split_seed={DIGITS_SPLIT_SEED}"
    return recipe.dataset


def _folder_fingerprint(root: Path) -> str:
    """``imagefolder:3classes:train=9:test=3:<16 hex>``: the class count and the file count per split, and a
    hash of the class names (in label order) and of every image file's path relative to ``root`` and size.

    Cheap: a directory walk and one ``stat`` per file, no reading or decoding (0.6 s for 60k files, warm),
    so it is computed afresh on every call (each plan load and record) and never cached: a cache could be
    trusted only after checking every file's size and mtime, which is the same walk and ``stat`` — and a
    stale fingerprint is the very bug it prevents. Blind spot: a file rewritten in place with the same size
    and name.
    """
    classes = _folder_classes(root)
    h = hashlib.sha256(f"sesweep imagefolder identity v{_IDENTITY_VERSION}\0{len(classes)}\0".encode())
    h.update("".join(f"{c}\0" for c in classes).encode())
    counts = []
    prefix = os.path.join(str(root), "")
    for split in ("train", "test"):
        files, _labels = _folder_files(root / split, classes)  # labels follow from the paths and class order
        counts.append(f"{split}={len(files)}")
        h.update(f"{split}\0{len(files)}\0".encode())
        for f in files:  # paths are joined onto root: slicing is relpath without its cost (0.5 s per 60k files)
            rel = f[len(prefix):] if f.startswith(prefix) else os.path.relpath(f, root)
            h.update(f"{rel.replace(os.sep, '/')}\0{os.stat(f).st_size}\0".encode())
    return f"imagefolder:{len(classes)}classes:{':'.join(counts)}:{h.hexdigest()[:16]}"


# --------------------------------------------------------------------------------------------------
# loading


def load_data(recipe: RecipeSpec) -> DataSplits:
    """Load, subset, resize and measure the recipe's data set.

    Order of work: native splits → stratified subsets (so resizing touches only the images kept) →
    resize to ``image_size`` → per-channel mean/std of the train split that is actually trained on.
    """
    if recipe.dataset == "digits":
        train, test = _load_digits(recipe.image_size)
    elif recipe.dataset in ("cifar10", "cifar100"):
        train, test = _load_cifar(recipe)
    elif recipe.dataset == "imagefolder":
        train, test = _load_imagefolder(recipe)
    elif recipe.dataset == "fake":
        train, test = _fake_split(1000, seed=0), _fake_split(200, seed=1)
    else:  # the spec's Literal makes this unreachable; kept so a new name fails loudly
        raise SpecError("recipe.dataset", f"unknown data set {recipe.dataset!r}")
    train = subset(train, recipe.train_subset, "recipe.train_subset", "train")
    test = subset(test, recipe.test_subset, "recipe.test_subset", "test")
    if len(train) < 2:
        key = "recipe.train_subset" if recipe.train_subset is not None else "recipe.data_root"
        raise SpecError(key, f"training needs at least 2 images (BatchNorm), got {len(train)}")
    if recipe.image_size is not None:
        train = _resize_set(train, recipe.image_size)
        test = _resize_set(test, recipe.image_size)
    mean, std = channel_stats(train.images)
    return DataSplits(recipe.dataset, train, test, mean, std, flip=recipe.dataset != "digits")


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
        try:
            with _socket_timeout(60.0):
                ds = cls(str(root), train=train, download=not present())
        except Exception as exc:
            if not present():
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
# imagefolder: data_root/{train,test}/<class>/*, decoded once and cached as a tensor file


def _folder_root(recipe: RecipeSpec) -> Path:
    if recipe.data_root is None:
        raise SpecError("recipe.data_root", "imagefolder needs recipe.data_root: a folder with "
                                            "train/<class>/* and test/<class>/*")
    root = Path(recipe.data_root).expanduser().resolve()
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise SpecError("recipe.data_root", f"no {split}/ folder under {root} "
                                                "(expected train/<class>/* and test/<class>/*)")
    return root


def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(split_dir) if e.is_dir() and not e.name.startswith("."))


def _folder_classes(root: Path) -> tuple[str, ...]:
    """Class names: the sub-folders of ``train/``, sorted (torchvision's ImageFolder order)."""
    classes = tuple(_class_dirs(root / "train"))
    if not classes:
        raise SpecError("recipe.data_root", f"no class folders under {root / 'train'}")
    extra = sorted(set(_class_dirs(root / "test")) - set(classes))
    if extra:
        raise SpecError("recipe.data_root", f"test/ has classes that train/ lacks: {', '.join(extra)}")
    return classes


def _image_extensions() -> frozenset[str]:
    from PIL import Image

    return frozenset(ext.lower() for ext in Image.registered_extensions())


def _folder_files(split_dir: Path, classes: Sequence[str]) -> tuple[list[str], list[int]]:
    """Image files of one split (recursive under each class folder, sorted) and their labels."""
    exts = _image_extensions()
    files: list[str] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        class_dir = split_dir / cls
        if not class_dir.is_dir():
            continue
        found = []
        for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [os.path.join(dirpath, f) for f in filenames
                      if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts]
        found.sort()
        files += found
        labels += [label] * len(found)
    return files, labels


def cache_dir() -> Path:
    """Where decoded data sets are cached: ``$SESWEEP_CACHE`` or ``~/.cache/sesweep``."""
    return Path(os.environ.get("SESWEEP_CACHE") or "~/.cache/sesweep").expanduser()


def _decode_image(path: str, image_size: int | None) -> torch.Tensor:
    """One file → uint8 [3, H, W] RGB (PIL's ``convert("RGB")``), resized with :func:`resize` if asked.

    PIL only: ``torchvision.io`` decodes small JPEGs ~2× faster, but it is deprecated since
    torchvision 0.29, and decoding happens once per folder (then the cache is read).
    """
    from PIL import Image

    with Image.open(path) as img:
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    if image_size is not None and tuple(x.shape[1:]) != (image_size, image_size):
        x = resize(x.unsqueeze(0), image_size)[0]
    return x.contiguous()


def _decode_all(files: list[str], image_size: int | None, desc: str) -> list[torch.Tensor]:
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
                out.append(_decode_image(p, image_size))
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


def _folder_key(root: Path, files: Sequence[str], image_size: int | None) -> str:
    """Hash of what the decoded tensors depend on: path, file list, sizes, mtimes, image_size, format."""
    h = hashlib.sha256(f"v{_CACHE_VERSION}\0{root}\0{image_size}\n".encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _stack(images: list[torch.Tensor], root: Path, what: str) -> torch.Tensor:
    sizes = sorted({tuple(x.shape[1:]) for x in images})
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for h, w in sizes[:4]) + (" …" if len(sizes) > 4 else "")
        raise SpecError("recipe.image_size", f"images under {root} have different sizes ({shown}); "
                                             "set recipe.image_size=N to resize them all to NxN")
    if sizes and sizes[0][0] != sizes[0][1]:
        h, w = sizes[0]
        raise SpecError("recipe.image_size", f"images under {root} are {w}x{h}, not square; "
                                             "set recipe.image_size=N to resize them to NxN")
    if not images:
        raise SpecError("recipe.data_root", f"no images in {what} under {root}")
    return torch.stack(images)


def _load_imagefolder(recipe: RecipeSpec) -> tuple[ImageSet, ImageSet]:
    """Decode ``train/`` and ``test/`` once; later runs read the cached tensors (keyed by content)."""
    root = _folder_root(recipe)
    classes = _folder_classes(root)
    train_files, train_labels = _folder_files(root / "train", classes)
    test_files, test_labels = _folder_files(root / "test", classes)
    key = _folder_key(root, train_files + test_files, recipe.image_size)
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
    train = _stack(_decode_all(train_files, recipe.image_size, "decoding train"), root, "train/")
    test = _stack(_decode_all(test_files, recipe.image_size, "decoding test"), root, "test/")
    if train.shape[1:] != test.shape[1:]:
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

    Hashing (rather than ``seed * K + epoch``) keeps every (seed, epoch) pair on its own stream, and
    the ``sesweep.training.data`` salt keeps it apart from the model-initialisation stream of the same seed.
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
