"""``sesweep bench --sections loader``: the input pipeline alone, sesweep's loaders against torchvision's.

Why a section of its own: the reference and epoch sections time loading together with training, and on a CPU
the convolutions set the pace there and hide the loader. Here there is no model: each pipeline yields one
epoch's batches, moved to the device (synchronised at the end), so images/s is what the loader can feed.

Five pipelines on the same JPEG folder, with the same batch size and worker count: sesweep's stream loader and
the textbook ``ImageFolder`` + ``transforms`` + ``DataLoader`` for each augmentation (``standard``: pad-4 crop
and flip at the folder's native size; ``imagenet``: random-resized crop to ``--loader-size`` and flip), and
sesweep's memory loader for scale (its decoding, done once per data set, reported apart from its epochs).
Every pipeline is built first; then one warm-up epoch each (reported: it includes worker start-up), then
``repeats`` rounds of one epoch per pipeline, interleaved so that load changes on a shared machine hit every
pipeline alike. Medians are shown with min and max, so the noise is visible.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sesweep.spec import RunSpec, build, flatten, nest
from sesweep.training.data import CROP_PAD, dataset_image_size, folder_classes, folder_files, load_data, train_batches

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
#: the pipelines, in the order they are built, timed and shown: (loader, augment)
PIPELINES = (("stream", "standard"), ("reference", "standard"), ("stream", "imagenet"), ("reference", "imagenet"),
             ("memory", "standard"))


@dataclass
class Pipeline:
    """One way of producing a training epoch's batches on the device, and what building it cost."""

    loader: str  # stream, reference or memory
    augment: str  # standard or imagenet
    image_size: int
    epoch: Callable[[int], Batches]  # epoch number → its batches, on the device
    setup_seconds: float  # listing, statistics (stream), decoding and caching (memory): before the first batch
    decode_seconds: float | None = None  # memory loader: decoding the JPEGs and writing the cache


def _recipe_spec(spec: RunSpec, root: Path, **keys: Any) -> RunSpec:
    """The spec reading ``root`` as an image folder, whole, with the recipe keys given."""
    flat = flatten(spec)
    flat.update({"recipe.dataset": "imagefolder", "recipe.data_root": str(root), "recipe.train_subset": None,
                 "recipe.test_subset": None, **{f"recipe.{k}": v for k, v in keys.items()}})
    return build(RunSpec, nest(flat))


def sesweep_pipeline(spec: RunSpec, root: Path, loader: str, augment: str, size: int | None, workers: int,
                     device: torch.device) -> Pipeline:
    """sesweep's own batches (:func:`.data.train_batches`), ``size`` None: the folder's native size. Setup is
    ``load_data``: for the stream loader a listing and the mean/std pass, for memory the decoding as well."""
    start = time.perf_counter()
    variant = _recipe_spec(spec, root, image_size=size, augment=augment, loader=loader, loader_workers=workers)
    splits = load_data(variant.recipe)
    loaded = time.perf_counter() - start
    batches = train_batches(splits, variant.recipe, variant.seed, device)
    return Pipeline(loader, augment, splits.image_size, batches.epoch, time.perf_counter() - start,
                    loaded if loader == "memory" else None)


def reference_pipeline(root: Path, augment: str, size: int, batch_size: int, workers: int,
                       device: torch.device) -> Pipeline:
    """The textbook loader doing the same work: per-image PIL decoding and ``transforms`` in worker processes."""
    from torchvision import datasets, transforms

    from sesweep.training.reference_bench import CIFAR_MEAN, CIFAR_STD

    start = time.perf_counter()
    crop = (transforms.RandomCrop(size, padding=CROP_PAD) if augment == "standard"
            else transforms.RandomResizedCrop(size))
    dataset = datasets.ImageFolder(str(root / "train"), transform=transforms.Compose([
        crop, transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)

    def epoch(_: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    return Pipeline("reference", augment, size, epoch, time.perf_counter() - start)


def time_epoch(pipeline: Pipeline, epoch: int, device: torch.device) -> dict[str, float]:
    """Wall clock of one whole epoch, from asking for the first batch to the device holding the last."""
    start, images, batches = time.perf_counter(), 0, 0
    for _x, y in pipeline.epoch(epoch):
        images, batches = images + len(y), batches + 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": images, "batches": batches, "img_per_s": images / seconds,
            "ms_per_batch": seconds / max(1, batches) * 1e3}


def _row(p: Pipeline, first: dict[str, float], epochs: list[dict[str, float]], batch: int) -> dict[str, Any]:
    rates = [e["img_per_s"] for e in epochs]
    median = statistics.median(rates)
    return {"loader": p.loader, "augment": p.augment, "image_size": p.image_size, "batches": int(first["batches"]),
            "images": int(first["images"]), "setup_seconds": p.setup_seconds, "decode_seconds": p.decode_seconds,
            "first": first, "epochs": epochs, "img_per_s": median, "img_per_s_min": min(rates),
            "img_per_s_max": max(rates), "ms_per_batch": batch / median * 1e3}


def loader_section(spec: RunSpec, root: Path, *, workers: int, loader_size: int, repeats: int,
                   device: torch.device, log: Callable[[str], None]) -> dict[str, Any]:
    """The five pipelines of the module docstring on ``root``; ``ratios``: stream / reference img/s (medians)
    per augmentation. The memory loader's decoding writes to ``$SESWEEP_CACHE`` (the caller points it at an
    empty folder, so it is a cold decode)."""
    batch = spec.recipe.batch_size
    native = dataset_image_size(_recipe_spec(spec, root, image_size=None).recipe)
    pipelines: list[Pipeline] = []
    for loader, augment in PIPELINES:
        size = loader_size if augment == "imagenet" else native
        log(f"loader: building {loader} ({augment}, {size}x{size})")
        if loader == "reference":
            pipelines.append(reference_pipeline(root, augment, size, batch, workers, device))
        else:
            pipelines.append(sesweep_pipeline(spec, root, loader, augment, size if augment == "imagenet" else None,
                                              workers, device))
    try:
        log("loader: warm-up epoch of each pipeline (worker start-up included)")
        firsts = [time_epoch(p, 0, device) for p in pipelines]
        timed: list[list[dict[str, float]]] = [[] for _ in pipelines]
        for r in range(repeats):
            log(f"loader: repeat {r + 1}/{repeats}, one epoch of each pipeline")
            for p, epochs in zip(pipelines, timed, strict=True):
                epochs.append(time_epoch(p, r + 1, device))
        rows = [_row(p, first, epochs, batch) for p, first, epochs in zip(pipelines, firsts, timed, strict=True)]
    finally:
        pipelines.clear()  # the loaders, and with them their persistent workers, end here
    by = {(r["loader"], r["augment"]): r for r in rows}
    for r in rows:
        ref = by[("reference", r["augment"])]["img_per_s"]
        r["vs_reference"] = None if r["loader"] == "reference" else r["img_per_s"] / ref
    return {"train_images": len(folder_files(root / "train", folder_classes(root))[0]), "batch_size": batch,
            "workers": workers, "main_threads": torch.get_num_threads(), "native_size": native,
            "loader_size": loader_size, "repeats": repeats, "rows": rows,
            "ratios": {a: by[("stream", a)]["img_per_s"] / by[("reference", a)]["img_per_s"]
                       for a in ("standard", "imagenet")}}
