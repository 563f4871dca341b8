"""The checks a plan makes before anything runs: every distinct model can be built (SE widths named per block),
every data set can be read (:func:`check_data`), and the data identity of each data config (part of the run
keys). The listings and identities are torch-free (:mod:`sesweep.datasets`); torch, the models and the data
loaders are imported lazily, inside the functions that build or load, so ``import sesweep.plan`` stays light.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sesweep.datasets import (
    NUM_CLASSES,
    check_loader,
    data_identity,
    dataset_channels,
    dataset_image_size,
    folder_classes,
    folder_files,
    folder_root,
)
from sesweep.spec import RunSpec, SpecError
from sesweep.sweepfile import MAX_LAYER_PARAMS

if TYPE_CHECKING:
    from sesweep.plan import Plan
    from sesweep.variants import Variant


#: the data sets whose identity is read from files under ``recipe.data_root`` (an image folder, the npz files)
ROOTED = ("imagefolder", "imagenet32", "imagenet64")


def data_config(recipe: Any) -> tuple[str, str | None]:
    """What :func:`sesweep.datasets.data_identity` reads of a recipe: the data set, and where its files are (an
    image folder, downsampled ImageNet's npz files)."""
    return recipe.dataset, recipe.data_root if recipe.dataset in ROOTED else None


def data_ids(specs: Sequence[RunSpec]) -> tuple[dict[tuple[str, str | None], str | None], str | None]:
    """The data identity of every distinct data config of ``specs`` (each read once), None where the data
    are not on this machine; and the first such error as one line (None when every identity is known)."""
    ids: dict[tuple[str, str | None], str | None] = {}
    unresolved = None
    for spec in specs:
        config = data_config(spec.recipe)
        if config in ids:
            continue
        try:
            _check_readable(spec.recipe)
            ids[config] = data_identity(spec.recipe)
        except SpecError as exc:
            ids[config] = None
            unresolved = unresolved or str(exc)
        except OSError as exc:  # a folder that cannot be listed (permissions, a dead mount)
            ids[config] = None
            unresolved = unresolved or str(_unreadable(exc))
    return ids, unresolved


def _check_readable(recipe: Any) -> None:
    """An image folder that is there but cannot be listed is named as such (not as "no train/ folder")."""
    if recipe.dataset not in ROOTED or recipe.data_root is None:
        return
    root = Path(recipe.data_root).expanduser()
    if root.is_dir() and not os.access(root, os.R_OK | os.X_OK):
        raise SpecError("recipe.data_root", f"cannot read {root.resolve()}: permission denied")


def _unreadable(exc: OSError) -> SpecError:
    where = f" {exc.filename}" if exc.filename else ""
    return SpecError("recipe.data_root", f"cannot read{where}: {exc.strerror or exc}")


def check_data(plan: Plan, download: bool = True) -> None:
    """Raise the :class:`SpecError` the runs of ``plan`` would each fail with at data loading, once, before
    anything is queued: an image folder without images (or with fewer than a subset asks for), a folder
    that cannot be read, CIFAR that is neither there nor downloadable, a subset larger than a built-in set.

    Image folders are only listed (and one image header read), never decoded: that is each run's work, and
    cached. Downsampled ImageNet: its npz files' labels and array headers are read, not the pixels (15.7 GB for
    64×64). Built-in sets are loaded once (CIFAR: downloaded once, here, if it is not there yet; without
    ``download``, as ``--dry-run`` checks, CIFAR that is not there is the error)."""
    from sesweep.training.data import load_data

    if plan.unresolved:
        raise SpecError("", plan.unresolved)
    checked: set[tuple[Any, ...]] = set()
    for v in plan.variants:
        recipe = v.spec.recipe
        config = (recipe.dataset, recipe.data_root, recipe.train_subset, recipe.test_subset, recipe.image_size,
                  recipe.loader, recipe.batch_size)
        if config in checked:
            continue
        checked.add(config)
        try:
            try:
                if recipe.dataset in ("imagenet32", "imagenet64"):
                    _check_batch(recipe, _check_npz(recipe))
                    continue
                if recipe.dataset != "imagefolder":
                    if not download:
                        _check_cifar_present(recipe)
                    _check_batch(recipe, len(load_data(recipe).train))
                    continue
                root = folder_root(recipe)
                classes = folder_classes(root)
                for split, n, key in (("train", recipe.train_subset, "recipe.train_subset"),
                                      ("test", recipe.test_subset, "recipe.test_subset")):
                    files, _ = folder_files(root / split, classes)
                    if not files:
                        raise SpecError("recipe.data_root", f"no images in {split}/ under {root} (its class "
                                                            f"folders {', '.join(classes)} hold no image files)")
                    if n is not None and n > len(files):
                        raise SpecError(key, f"{n} is more than the {len(files)} images of the {split} split "
                                             f"under {root}")
                    if split == "train":
                        _check_batch(recipe, len(files) if n is None else n)
                dataset_image_size(recipe)
            except OSError as exc:
                raise _unreadable(exc) from None
        except SpecError as exc:
            raise in_variant(exc, v) from None


def _check_cifar_present(recipe: Any) -> None:
    """CIFAR files on this machine, or the error naming what is missing and what ``sesweep run`` would fetch."""
    if recipe.dataset not in ("cifar10", "cifar100"):
        return
    from sesweep.training.data.sources import DEFAULT_DATA_ROOT, _cifar_class

    cls = _cifar_class(recipe.dataset)
    root = Path(recipe.data_root or DEFAULT_DATA_ROOT).expanduser()
    root = root.parent if root.name == cls.base_folder else root
    needed = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    missing = [f for f in needed if not (root / cls.base_folder / f).is_file()]
    if missing:
        pretty = "CIFAR-10" if recipe.dataset == "cifar10" else "CIFAR-100"
        raise SpecError("recipe.data_root", f"no {pretty} files under {root / cls.base_folder} (missing: "
                                            f"{', '.join(missing)}); --dry-run downloads nothing: `sesweep run` "
                                            f"would download {cls.url} into {root} (or extract it there yourself)")


def _check_batch(recipe: Any, train_images: int) -> None:
    """A batch larger than the train split is refused here, once, rather than by every run as it starts."""
    if recipe.batch_size > train_images:
        raise SpecError("recipe.batch_size", f"{recipe.batch_size} is more than the {train_images} training images; "
                                             f"allowed: at most {train_images} (or more images: recipe.train_subset)")


def _check_npz(recipe: Any) -> int:
    """Downsampled ImageNet: every npz file there, its labels and array header checked, the pixels not read;
    returns how many train images a run keeps."""
    from sesweep.training.data.downsampled import scan_npz

    splits = scan_npz(recipe)
    for split, scanned, n, key in zip(("train", "test"), splits, (recipe.train_subset, recipe.test_subset),
                                      ("recipe.train_subset", "recipe.test_subset"), strict=True):
        if n is not None and n > len(scanned):
            raise SpecError(key, f"{n} is more than the {len(scanned)} images of the {split} split")
    return len(splits[0]) if recipe.train_subset is None else recipe.train_subset


def check_recipes(variants: list[Variant]) -> None:
    """Recipe rules that need no data: only image folders stream (:func:`sesweep.datasets.check_loader`)."""
    for v in variants:
        try:
            check_loader(v.spec.recipe)
        except SpecError as exc:
            raise in_variant(exc, v) from None


def check_models(variants: list[Variant], layer_limit: int = MAX_LAYER_PARAMS) -> None:
    """Every distinct model must be buildable (SE widths, stages, …); errors name where the value came from."""
    checked: dict[Any, SpecError | None] = {}
    for v in variants:
        probe = (v.spec.model, v.spec.recipe.dataset, v.spec.recipe.dropout)
        if probe not in checked:
            try:
                check_model(v.spec, layer_limit)
                checked[probe] = None
            except SpecError as exc:
                checked[probe] = exc
        exc = checked[probe]
        if exc is None:
            continue
        raise in_variant(exc, v, always=True)


def in_variant(exc: SpecError, v: Variant, always: bool = False) -> SpecError:
    """The error of one variant, keyed where its value came from (``axes.…``, ``variants.NAME.…``) and naming
    the variant; an error of the base's value names no variant unless ``always``."""
    key = exc.key
    if key not in v.overrides:
        return SpecError(key, f"{exc.message} (variant {v.name})") if always else exc
    key = {"axes": f"axes.{key}", "baseline": f"baseline.{key}"}.get(v.origin, f"variants.{v.name}.{key}")
    return SpecError(key, f"{exc.message} (variant {v.name})")


def check_model(spec: RunSpec, layer_limit: int = MAX_LAYER_PARAMS) -> None:
    """Raise the :class:`SpecError` building this run's model would raise, without building big models.

    Every attention block is checked analytically as its operator declares it
    (:func:`sesweep.training.models.build.attention_blocks`: widths, kernels, refused knob pairs), so the message
    names the block; CIFAR-size models (milliseconds to build) are also built, which catches every other check.
    """
    from sesweep.training.models import ARCHS, build_model
    from sesweep.training.models.build import check_dropout

    model = spec.model
    arch = ARCHS[model.arch]
    check_dropout(model.arch, spec.recipe.dropout)
    check_layers(spec, layer_limit)
    if arch.input_size <= 32:
        classes = NUM_CLASSES.get(spec.recipe.dataset)  # imagefolder: not known without reading the folders
        if classes is None and model.num_classes == "auto":
            classes = 2
        import torch

        # a small net is built for real, uninitialised (milliseconds, a few MB); a big one on the meta device
        # (none of its memory, but the first op there imports torch._dynamo: 2-6 s at every sweep load)
        small = _params_bound(spec) <= CPU_CHECK_PARAMS
        with contextlib.nullcontext() if small else torch.device("meta"):
            build_model(model, classes, dataset_channels(spec.recipe), spec.seed, spec.recipe.dropout,
                        initialise=False)


#: a CIFAR-size model with at most this many parameters (bound: :func:`_params_bound`) is check-built on the CPU
CPU_CHECK_PARAMS = 20_000_000


def _params_bound(spec: RunSpec) -> int:
    """An upper bound on a model's parameters from the analytic counts alone: 3x3 convs of every block at its
    stage's widest channel count, every attention block as its operator declares it, and the classifier."""
    from sesweep.training.models import ARCHS
    from sesweep.training.models.build import attention_blocks

    arch = ARCHS[spec.model.arch]
    expansion = arch.block.expansion
    convs = sum(n * 3 * 9 * (w * expansion) ** 2 for n, w in zip(arch.layers, arch.widths, strict=True))
    classes = spec.model.num_classes if isinstance(spec.model.num_classes, int) else 1000
    return convs + sum(b.params for b in attention_blocks(spec.model)) + arch.widths[-1] * expansion * classes


def check_layers(spec: RunSpec, layer_limit: int = MAX_LAYER_PARAMS) -> None:
    """Refuse a model with a layer over ``layer_limit`` parameters, from the analytic counts alone (nothing is
    built or allocated): every attention block as its operator declares it, and the classifier."""
    from sesweep.training.models import ARCHS
    from sesweep.training.models.build import attention_blocks

    arch = ARCHS[spec.model.arch]
    for block in attention_blocks(spec.model):
        width = "" if block.width is None else f" {_n(block.width)}"
        _check_layer(block.largest_layer, block.knob, f"block {block.block}'s {block.label}{width}", layer_limit)
    if isinstance(spec.model.num_classes, int):
        features = arch.widths[-1] * arch.block.expansion
        _check_layer(features * spec.model.num_classes, "model.num_classes", f"{_n(spec.model.num_classes)} classes",
                     layer_limit)


def _check_layer(params: int, key: str, what: str, limit: int) -> None:
    if params > limit:
        raise SpecError(key, f"{what} would make a layer of {_n(params)} parameters ({params * 4 / 1e9:,.3g} GB in "
                             f"fp32), more than the limit of {limit:,} per layer; if you mean it, set "
                             f"max_layer_params: {params} in the sweep file")


def _n(value: int) -> str:
    return f"{value:,}" if value < 10**15 else f"{float(value):.3g}"
