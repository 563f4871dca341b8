"""The data sets as a plan sees them, without loading them and without torch: which files an image folder or
downsampled ImageNet's npz release holds, a data set's classes, channels and image side, the data identity that
is part of every run key (:func:`data_identity`) and the loader a recipe resolves to. The plan, its keys and
``sesweep status`` need no more (so they start without torch); loading and decoding the data is
:mod:`sesweep.training.data`'s, which re-exports these.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from sesweep.cache import cache_dir
from sesweep.file_hashes import content_digests
from sesweep.spec import RecipeSpec, SpecError

GB = 1024**3
#: the side of each downsampled ImageNet set's images (:mod:`sesweep.training.data.downsampled`)
DOWNSAMPLED_SIDES = {"imagenet32": 32, "imagenet64": 64}
#: the native side of each built-in data set (``image_size`` null); imagefolder reads it from the files
NATIVE_SIZE = {"digits": 32, "cifar10": 32, "cifar100": 32, "fake": 32, **DOWNSAMPLED_SIDES}
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "fake": 10, "imagenet32": 1000, "imagenet64": 1000}
#: the digits split: this fraction of each class goes to the test split, chosen with this seed
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0
#: downsampled ImageNet's release: its npz files and where to get them
TRAIN_FILES = tuple(f"train_data_batch_{b}.npz" for b in range(1, 11))
VAL_FILE = "val_data.npz"
DOWNLOAD_PAGE = "https://image-net.org/download-images.php"
#: bump when what :func:`folder_fingerprint` reads changes (every image folder's identity, so its run keys, change);
#: 2: the files' content, not only their names and sizes (issue 21.5)
_FOLDER_IDENTITY_VERSION = 2
#: bump when what :func:`npz_fingerprint` reads changes (every downsampled set's run keys then change)
_NPZ_IDENTITY_VERSION = 1


# --------------------------------------------------------------------------------------------------
# image folders: data_root/{train,test}/<class>/*, listed (no decoding) and fingerprinted


def folder_root(recipe: RecipeSpec) -> Path:
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


def folder_classes(root: Path) -> tuple[str, ...]:
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


def folder_files(split_dir: Path, classes: Sequence[str]) -> tuple[list[str], list[int]]:
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


def folder_fingerprint(root: Path) -> str:
    """``imagefolder:3classes:train=9:test=3:<16 hex>``: the class count and the file count per split, and a
    hash of the class names (in label order) and of every image file's path relative to ``root``, size and
    content (its sha256: two folders of equal names and sizes and other pixels are other data).

    Each file's bytes are read once: their digests are cached beside the stat they were read under
    (:mod:`sesweep.file_hashes`, ``cache_dir()/file-hashes.sqlite``), so a warm call is a directory walk and
    one ``stat`` per file, and only files whose size, mtime or inode changed are read again.
    """
    classes = folder_classes(root)
    h = hashlib.sha256(f"sesweep imagefolder identity v{_FOLDER_IDENTITY_VERSION}\0{len(classes)}\0".encode())
    h.update("".join(f"{c}\0" for c in classes).encode())
    counts = []
    prefix = os.path.join(str(root), "")
    for split in ("train", "test"):
        files, _labels = folder_files(root / split, classes)  # labels follow from the paths and class order
        counts.append(f"{split}={len(files)}")
        h.update(f"{split}\0{len(files)}\0".encode())
        digests = content_digests(files, str(root), cache_dir() / "file-hashes.sqlite")
        for f, (size, digest) in zip(files, digests, strict=True):
            # paths are joined onto root: slicing is relpath without its cost (0.5 s per 60k files)
            rel = f[len(prefix):] if f.startswith(prefix) else os.path.relpath(f, root)
            h.update(f"{rel.replace(os.sep, '/')}\0{size}\0{digest}\0".encode())
    return f"imagefolder:{len(classes)}classes:{':'.join(counts)}:{h.hexdigest()[:16]}"


# --------------------------------------------------------------------------------------------------
# downsampled ImageNet: the npz files of the release, found and fingerprinted (none is read)


def release_folders(dataset: str) -> tuple[str, ...]:
    """The folders the release's zips unpack to."""
    side = DOWNSAMPLED_SIDES[dataset]
    if side == 64:  # two zips: batches 1-5 and 6-10
        train: tuple[str, ...] = ("Imagenet64_train_part1_npz", "Imagenet64_train_part2_npz")
    else:
        train = (f"Imagenet{side}_train_npz",)
    return (*train, f"Imagenet{side}_val_npz")


def _folders_text(dataset: str) -> str:
    names = [f"{f}/" for f in release_folders(dataset)]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _expected(dataset: str) -> str:
    return (f"{TRAIN_FILES[0]} … {TRAIN_FILES[-1]} and {VAL_FILE} there or in its {_folders_text(dataset)}, "
            f"from {DOWNLOAD_PAGE}")


def npz_root(recipe: RecipeSpec) -> Path:
    """The folder ``recipe.data_root`` names (a release folder itself stands for its parent)."""
    ds = recipe.dataset
    if recipe.data_root is None:
        raise SpecError("recipe.data_root", f"{ds} needs recipe.data_root: the folder holding {_folders_text(ds)} "
                                            f"(or their 11 npz files), from {DOWNLOAD_PAGE}")
    root = Path(recipe.data_root).expanduser().resolve()
    if root.name in release_folders(ds):
        root = root.parent
    if not root.is_dir():
        raise SpecError("recipe.data_root", f"no folder {root} ({ds} expects {_expected(ds)})")
    return root


def npz_files(recipe: RecipeSpec) -> tuple[list[Path], Path]:
    """The 10 train files (in batch order) and the val file; a missing or doubled file is a :class:`SpecError`."""
    ds, root = recipe.dataset, npz_root(recipe)
    dirs = [root, *(root / f for f in release_folders(ds) if (root / f).is_dir())]
    found: dict[str, Path] = {}
    for name in (*TRAIN_FILES, VAL_FILE):
        hits = [d / name for d in dirs if (d / name).is_file()]
        if len(hits) > 1:
            raise SpecError("recipe.data_root", f"{name} is both in {hits[0].parent} and in {hits[1].parent}: keep one")
        if hits:
            found[name] = hits[0]
    missing = [n for n in (*TRAIN_FILES, VAL_FILE) if n not in found]
    if missing:
        raise SpecError("recipe.data_root", f"{ds} under {root} lacks {', '.join(missing)} (expected {_expected(ds)})")
    return [found[n] for n in TRAIN_FILES], found[VAL_FILE]


def npz_fingerprint(recipe: RecipeSpec) -> str:
    """``imagenet32:<16 hex>``: a hash of the 11 file names and sizes (a ``stat`` each, nothing read), so another
    copy of other files gets other run keys and the same files moved (or flattened into one folder) keep theirs.
    Blind spot, as for image folders: a file rewritten in place with the same size."""
    train, val = npz_files(recipe)
    h = hashlib.sha256(f"sesweep {recipe.dataset} identity v{_NPZ_IDENTITY_VERSION}\0".encode())
    for path in (*train, val):
        h.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    return f"{recipe.dataset}:{h.hexdigest()[:16]}"

# --------------------------------------------------------------------------------------------------
# cheap facts about a recipe's data set, its identity and its loader


def dataset_num_classes(recipe: RecipeSpec) -> int:
    """Number of classes, without loading images (imagefolder: the class folders under ``train/``)."""
    if recipe.dataset == "imagefolder":
        return len(folder_classes(folder_root(recipe)))
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
    root = folder_root(recipe)
    files, _ = folder_files(root / "train", folder_classes(root))
    if not files:
        raise SpecError("recipe.data_root", f"no images under {root / 'train'}")
    from PIL import Image

    with Image.open(files[0]) as img:  # reads the header only
        w, h = img.size
    if w != h:
        raise SpecError("recipe.image_size", f"images under {root} are {w}x{h}, not square; "
                                             "set recipe.image_size=N to resize them to NxN")
    return h


def data_identity(recipe: RecipeSpec) -> str:
    """Which data a run reads, as a short string that is part of its run key; where they live is not.

    Built-in sets: their name. Their content is fixed by this code (digits: scikit-learn's embedded set and
    the split constants, which are spelled out; fake: generated) or by the official release (CIFAR: a
    download is checked against the archive's md5) — a change there is a ``RESULTS_VERSION`` bump.
    ``imagefolder``: a fingerprint of exactly the files the loader reads (:func:`folder_fingerprint`), so two
    folders with other files get other keys and the same files copied or moved elsewhere keep theirs.
    Raises :class:`SpecError` naming ``recipe.data_root`` when an image folder is not there.
    """
    if recipe.dataset == "imagefolder":
        return folder_fingerprint(folder_root(recipe))
    if recipe.dataset in DOWNSAMPLED_SIDES:  # the npz files' names and sizes (:func:`npz_fingerprint`)
        return npz_fingerprint(recipe)
    if recipe.dataset == "digits":
        return f"digits:test_fraction={DIGITS_TEST_FRACTION}:split_seed={DIGITS_SPLIT_SEED}"
    return recipe.dataset


@functools.lru_cache(maxsize=256)
def resolved_loader(recipe: RecipeSpec) -> str:
    """``memory`` or ``stream``: the loader :func:`load_data` will use (the run key holds it, ``spec.key_loader``);
    cached, since a plan asks once per run and an image folder's listing is read to answer."""
    return resolve_loader(recipe, dataset_image_size(recipe))


def decoded_bytes(recipe: RecipeSpec, size: int) -> int:
    """What the memory loader would hold for an image folder: every kept image as uint8 3 × size²."""
    root = folder_root(recipe)
    classes = folder_classes(root)
    counts = [len(folder_files(root / split, classes)[0]) for split in ("train", "test")]
    kept = [min(n, limit) if limit is not None else n
            for n, limit in zip(counts, (recipe.train_subset, recipe.test_subset), strict=True)]
    return sum(kept) * 3 * size * size


def check_loader(recipe: RecipeSpec) -> None:
    """Only image folders stream: the other data sets are loaded whole (a plan checks this before any run)."""
    if recipe.dataset != "imagefolder" and recipe.loader == "stream":
        raise SpecError("recipe.loader", f"stream reads image folders, and {recipe.dataset} is loaded into "
                                         "memory whole; allowed here: auto, memory")


def resolve_loader(recipe: RecipeSpec, size: int) -> str:
    """``memory`` or ``stream`` for this recipe (``size``: the model's input side); a deterministic function
    of the recipe and the data's listing, both in the run key, so one run key never means two loaders."""
    check_loader(recipe)
    if recipe.dataset != "imagefolder":
        return "memory"
    if recipe.loader != "auto":
        return recipe.loader
    if recipe.augment == "imagenet":
        return "stream"
    return "memory" if decoded_bytes(recipe, size) <= recipe.memory_budget_gb * GB else "stream"
