"""``sesweep bench``: one run on the current device that puts every speed claim next to its yardstick.

Sections: ``peak`` (:mod:`.peak`: matmul GFLOP/s per precision), ``cifar`` and ``imagenet``
(:func:`.bench.shape_section`: ResNet vs SE-ResNet per precision, SE overhead, achieved FLOP/s as a fraction
of the peak, inference latency), ``reference`` (sesweep's SE-ResNet training steps vs the textbook DataLoader
loop of :mod:`.reference_bench`, interleaved), ``epoch`` (one epoch over the same JPEG folder each way, wall
clock including data loading) and ``loader`` (the input pipelines alone, no model: :mod:`.loader_bench`). The
table and the goals: :mod:`.bench_report`.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sesweep.spec import RunSpec, SpecError, build, flatten, nest
from sesweep.training.bench import BenchConfig, shape_section
from sesweep.training.data import load_data
from sesweep.training.hardware import resolve_device, resolve_precision
from sesweep.training.measure import latency_ms

# --------------------------------------------------------------------------------------------------
# the sections of `sesweep bench`

SECTIONS = ("peak", "cifar", "imagenet", "reference", "epoch", "loader")
KINDS = ("none", "se")
#: the sections that read the JPEG folder (and need at least one batch of it)
JPEG_SECTIONS = frozenset({"reference", "epoch", "loader"})
PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclass(frozen=True)
class BenchOptions:
    """What ``sesweep bench`` measures (the command line's options, checked by :func:`check_options`)."""

    sections: tuple[str, ...] = SECTIONS
    kinds: tuple[str, ...] = KINDS
    precisions: tuple[str, ...] | None = None  # None: :func:`default_precisions`
    steps: int = 10
    repeats: int = 3
    imagenet_arch: str = "resnet50"
    imagenet_size: int = 224
    imagenet_batch: int = 16
    imagenet_steps: int = 2
    imagenet_repeats: int = 2
    jpeg_root: str | None = None
    images: int = 2560
    workers: int = 2
    loader_size: int = 64
    peak_size: int = 2048
    peak_repeats: int = 5


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise SpecError(key, f"{value} is out of range; allowed: >= {low}")


def _names(key: str, values: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        shown = ", ".join(repr(v) for v in bad) or "nothing"
        raise SpecError(key, f"{shown} given; allowed: a comma-separated list of {', '.join(allowed)}")


def check_options(options: BenchOptions, spec: RunSpec) -> list[str]:
    """Every option checked before any work (a :class:`SpecError` naming the option); returns the training
    precisions, resolved on the spec's device and without repeats."""
    _names("--sections", options.sections, SECTIONS)
    _names("--kinds", options.kinds, KINDS)
    if options.precisions is not None:
        _names("--precisions", options.precisions, PRECISIONS)
    for key, value, low in (("--steps", options.steps, 1), ("--repeats", options.repeats, 1),
                            ("--imagenet-size", options.imagenet_size, 32),
                            ("--imagenet-batch", options.imagenet_batch, 2),
                            ("--imagenet-steps", options.imagenet_steps, 1),
                            ("--imagenet-repeats", options.imagenet_repeats, 1),
                            ("--images", options.images,
                             max(2, spec.recipe.batch_size) if JPEG_SECTIONS & set(options.sections) else 1),
                            ("--workers", options.workers, 0), ("--loader-size", options.loader_size, 8),
                            ("--peak-size", options.peak_size, 64),
                            ("--peak-repeats", options.peak_repeats, 1)):
        _at_least(key, value, low)
    from sesweep.training.models import ARCHS

    if options.imagenet_arch not in ARCHS:
        raise SpecError("--imagenet-arch", f"{options.imagenet_arch!r} is not an architecture; allowed: "
                                           f"{', '.join(ARCHS)}")
    if options.jpeg_root is not None:
        root = Path(options.jpeg_root).expanduser()
        if not ((root / "train").is_dir() and (root / "test").is_dir()):
            raise SpecError("--jpeg-root", f"{root} has no train/ and test/ folders; allowed: an ImageFolder "
                                           "layout, train/<class>/*.jpg and test/<class>/*.jpg")
    device = resolve_device(spec.recipe.device)
    names = list(options.precisions or default_precisions(device))
    try:
        return list(dict.fromkeys(resolve_precision(p, device) for p in names))
    except SpecError as exc:
        raise SpecError("--precisions", exc.message) from None


def default_precisions(device: torch.device) -> list[str]:
    """fp32, bf16 where the device computes it in hardware, and what ``auto`` resolves to."""
    from sesweep.training.hardware import native_bf16

    return list(dict.fromkeys(["fp32", *(["bf16"] if native_bf16(device) else []),
                               resolve_precision("auto", device)]))


def _variant(spec: RunSpec, **keys: Any) -> RunSpec:
    flat = flatten(spec)
    flat.update(keys)
    return build(RunSpec, nest(flat))


def imagenet_spec(spec: RunSpec, options: BenchOptions) -> RunSpec:
    """ImageNet shape: the generated ``fake`` images resized to ``--imagenet-size``, 1000 classes."""
    batch = options.imagenet_batch
    return _variant(spec, **{"model.arch": options.imagenet_arch, "model.num_classes": 1000,
                             "recipe.dataset": "fake", "recipe.data_root": None, "recipe.image_size":
                             options.imagenet_size, "recipe.batch_size": batch, "recipe.train_subset": 2 * batch,
                             "recipe.test_subset": batch})


@contextlib.contextmanager
def jpeg_folder(options: BenchOptions) -> Iterator[tuple[Path, str]]:
    """A temporary ImageFolder of ``--images`` training JPEGs (and a tenth as many test ones): links to a
    class-stratified subset of ``--jpeg-root``, or the embedded digits written as 32² JPEGs."""
    from sesweep.training.reference_bench import link_subset, write_digits_jpegs

    test = max(10, options.images // 10)
    with tempfile.TemporaryDirectory(prefix="sesweep-bench-") as tmp:
        root = Path(tmp) / "jpegs"
        if options.jpeg_root is not None:
            source = Path(options.jpeg_root).expanduser().resolve()
            yield link_subset(source, root, options.images, test), str(source)
        else:
            yield write_digits_jpegs(root, options.images, test), "digits (embedded), written as 32x32 JPEGs"


def _on_folder(spec: RunSpec, root: Path) -> RunSpec:
    return _variant(spec, **{"recipe.dataset": "imagefolder", "recipe.data_root": str(root),
                             "recipe.train_subset": None, "recipe.test_subset": None, "recipe.image_size": None})


def reference_section(spec: RunSpec, root: Path, precision: str, options: BenchOptions, device: torch.device,
                      log: Callable[[str], None]) -> dict[str, Any]:
    """sesweep's SE-ResNet steps (at ``precision``) and the reference loop's on the same JPEGs, interleaved."""
    from sesweep.training.reference_bench import ReferenceLoop

    batch = spec.recipe.batch_size
    ref = ReferenceLoop(spec, root, batch_size=batch, workers=options.workers, device=device)
    if len(ref.dataset) < batch:
        raise SpecError("--images", f"{len(ref.dataset)} training images is less than one batch of {batch}")
    with _fresh_cache():
        splits = load_data(_on_folder(spec, root).recipe)
    ours = BenchConfig(spec, spec.model.attention.kind, precision, splits, device)
    ref.run(2)
    ours.run(3)
    ref_rates, our_rates = [], []
    for r in range(options.repeats):
        log(f"repeat {r + 1}/{options.repeats}: reference and sesweep, {options.steps} steps each")
        seconds, images = ref.run(options.steps)
        ref_rates.append(images / seconds)
        our_rates.append(options.steps * ours.batches.batch_size / ours.run(options.steps))
    x = torch.randn(batch, 3, splits.image_size, splits.image_size, device=device)
    ref_img_s, our_img_s = statistics.median(ref_rates), statistics.median(our_rates)
    return {"arch": spec.model.arch, "attention": spec.model.attention.kind, "batch_size": batch,
            "image_size": splits.image_size, "workers": options.workers, "steps": options.steps,
            "repeats": options.repeats, "reference_img_per_s": ref_img_s,
            "reference_ms_per_step": batch / ref_img_s * 1e3, "reference_infer_ms": latency_ms(ref.model, x, "fp32"),
            "sesweep_precision": precision, "sesweep_img_per_s": our_img_s,
            "sesweep_ms_per_step": batch / our_img_s * 1e3, "sesweep_infer_ms": ours.latency(),
            "speedup": our_img_s / ref_img_s}


def sesweep_epoch(spec: RunSpec, root: Path, precision: str, device: torch.device) -> dict[str, Any]:
    """Wall clock of one sesweep epoch from the JPEG folder: load_data (decode or cache), model, training."""
    start = time.perf_counter()
    variant = _on_folder(spec, root)
    splits = load_data(variant.recipe)
    loaded = time.perf_counter() - start
    config = BenchConfig(variant, variant.model.attention.kind, precision, splits, device)
    config.run(len(config.batches))
    seconds = time.perf_counter() - start
    images = config.batches.samples_per_epoch
    return {"seconds": seconds, "load_seconds": loaded, "images": images, "img_per_s": images / seconds}


@contextlib.contextmanager
def _fresh_cache() -> Iterator[None]:
    """``$SESWEEP_CACHE`` pointed at an empty temporary folder, so the first load decodes every JPEG."""
    before = os.environ.get("SESWEEP_CACHE")
    with tempfile.TemporaryDirectory(prefix="sesweep-bench-cache-") as tmp:
        os.environ["SESWEEP_CACHE"] = tmp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("SESWEEP_CACHE", None)
            else:
                os.environ["SESWEEP_CACHE"] = before


def epoch_section(spec: RunSpec, root: Path, precision: str, options: BenchOptions, device: torch.device,
                  log: Callable[[str], None]) -> dict[str, Any]:
    """One epoch each way over the same JPEGs: the reference, then sesweep cold (decode) and warm (cache)."""
    from sesweep.training.reference_bench import reference_epoch

    log("reference epoch (DataLoader)")
    ref = reference_epoch(spec, root, batch_size=spec.recipe.batch_size, workers=options.workers, device=device)
    with _fresh_cache():
        log("sesweep epoch, cold cache (decodes the JPEGs)")
        cold = sesweep_epoch(spec, root, precision, device)
        log("sesweep epoch, warm cache")
        warm = sesweep_epoch(spec, root, precision, device)
    return {"arch": spec.model.arch, "attention": spec.model.attention.kind, "batch_size": spec.recipe.batch_size,
            "workers": options.workers, "sesweep_precision": precision, "reference": ref, "sesweep_cold": cold,
            "sesweep_warm": warm, "speedup_cold": cold["img_per_s"] / ref["img_per_s"],
            "speedup_warm": warm["img_per_s"] / ref["img_per_s"]}


def _stderr(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_suite(spec: RunSpec, options: BenchOptions,
                log: Callable[[str], None] = _stderr) -> dict[str, Any]:
    """Every asked-for section on the spec's device; a section not asked for is ``None``. The goals:
    :func:`sesweep.training.bench_report.goals`."""
    from sesweep.training.bench_report import goals
    from sesweep.training.hardware import device_name, native_bf16
    from sesweep.training.peak import matmul_peaks

    precisions = check_options(options, spec)
    device = resolve_device(spec.recipe.device)
    auto = resolve_precision("auto", device)
    kinds, want = list(options.kinds), set(options.sections)
    doc: dict[str, Any] = {
        "device": {"device": str(device), "name": device_name(device), "torch": torch.__version__,
                   "threads": torch.get_num_threads(), "bf16_native": native_bf16(device),
                   "auto_precision": auto, "precisions": precisions},
        "flops_convention": "training FLOP/s = 3 x 2 x forward MACs per image x images/s (2 FLOPs per MAC; "
                            "forward + backward counted as 3 x the forward, the usual convention)",
        **dict.fromkeys(SECTIONS)}
    if "peak" in want:
        log(f"matmul peak: {', '.join(precisions)} at {options.peak_size}x{options.peak_size}")
        doc["peak"] = {"repeats": options.peak_repeats,
                       "gflops": matmul_peaks(device, precisions, options.peak_size, options.peak_repeats)}
    peaks = doc["peak"]["gflops"] if doc["peak"] else None
    if "cifar" in want:
        log(f"CIFAR shape: {spec.model.arch}, batch {spec.recipe.batch_size}")
        doc["cifar"] = shape_section(spec, kinds, precisions, options.steps, options.repeats, 3, peaks, log)
    if "imagenet" in want:
        big = imagenet_spec(spec, options)
        log(f"ImageNet shape: {big.model.arch} at {options.imagenet_size}x{options.imagenet_size}, "
            f"batch {options.imagenet_batch}")
        doc["imagenet"] = shape_section(big, kinds, precisions, options.imagenet_steps, options.imagenet_repeats,
                                        1, peaks, log)
    if want & JPEG_SECTIONS:
        se = _variant(spec, **{"model.attention.kind": "se"})
        with jpeg_folder(options) as (root, source):
            doc["jpegs"] = {"source": source, "train_images": options.images}
            if "reference" in want:
                log(f"reference loop vs sesweep ({se.model.arch} SE, {options.workers} DataLoader workers)")
                doc["reference"] = reference_section(se, root, auto, options, device, log)
            if "epoch" in want:
                doc["epoch"] = epoch_section(se, root, auto, options, device, log)
            if "loader" in want:
                from sesweep.training.loader_bench import loader_section

                log(f"input pipelines alone ({options.workers} workers, batch {spec.recipe.batch_size})")
                with _fresh_cache():  # the memory loader's decoding is measured cold
                    doc["loader"] = loader_section(spec, root, workers=options.workers,
                                                   loader_size=options.loader_size, repeats=options.repeats,
                                                   device=device, log=log)
    doc.setdefault("jpegs", None)
    doc["goals"] = goals(doc)
    return doc
