"""What ``sesweep bench`` prints: the goals of issue 12 checked against one run's figures, and the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: (name, what is measured, target as printed, test of the value)
GOALS: tuple[tuple[str, str, str, Callable[[float], bool]], ...] = (
    ("se_overhead_cifar", "SE overhead, CIFAR shape (SE step / ResNet step)", "<= 1.05x", lambda v: v <= 1.05),
    ("se_overhead_imagenet", "SE overhead, ImageNet shape", "<= 1.05x", lambda v: v <= 1.05),
    ("vs_reference", "SE-ResNet training img/s, sesweep / reference loop", ">= 2x", lambda v: v >= 2.0),
    ("peak_fraction", "SE-ResNet training FLOP/s / matmul peak (CIFAR shape)", ">= 70%", lambda v: v >= 0.70),
    ("epoch_vs_reference", "end-to-end epoch on JPEGs, sesweep (cold cache) / reference", ">= 3x",
     lambda v: v >= 3.0),
)


def _se_row(section: dict[str, Any] | None, precision: str) -> dict[str, Any] | None:
    if not section:
        return None
    return next((r for r in section["rows"] if r["attention"] == "se" and r["precision"] == precision), None)


def goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal at the precision ``auto`` resolves to: its measured value (``None`` when the section or
    precision was not measured) and ``met`` (``None`` then too)."""
    auto = doc["device"]["auto_precision"]
    cifar, imagenet = _se_row(doc.get("cifar"), auto), _se_row(doc.get("imagenet"), auto)
    values = {
        "se_overhead_cifar": (cifar or {}).get("se_overhead"),
        "se_overhead_imagenet": (imagenet or {}).get("se_overhead"),
        "vs_reference": (doc.get("reference") or {}).get("speedup"),
        "peak_fraction": (cifar or {}).get("peak_fraction"),
        "epoch_vs_reference": (doc.get("epoch") or {}).get("speedup_cold"),
    }
    rows = []
    for name, what, target, test in GOALS:
        value = values[name]
        rows.append({"goal": name, "what": what, "target": target, "precision": auto, "value": value,
                     "met": None if value is None else bool(test(value))})
    return rows


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _shape_lines(title: str, section: dict[str, Any]) -> list[str]:
    lines = [f"{title}: {section['arch']} at {section['image_size']}x{section['image_size']}, batch "
             f"{section['batch_size']}, data {section['data']} ({section['steps']} steps x {section['repeats']} "
             "repeats, interleaved, medians)",
             f"  {'attention':<10}{'precision':<10}{'ms/step':>9}{'img/s':>9}{'infer ms':>10}{'GMACs/img':>11}"
             f"{'GFLOP/s':>9}{'of peak':>9}{'SE overhead':>13}{'params':>12}"]
    for r in section["rows"]:
        peak = None if r["peak_fraction"] is None else 100 * r["peak_fraction"]
        lines.append(f"  {r['attention']:<10}{r['precision']:<10}{r['ms_per_step']:>9.1f}{r['img_per_s']:>9.1f}"
                     f"{r['infer_ms']:>10.1f}{r['macs'] / 1e9:>11.4f}{r['train_gflops']:>9.1f}"
                     f"{_fmt(peak, '.0f', '%'):>9}{_fmt(r.get('se_overhead'), '.3f', 'x'):>13}{r['params']:>12,}")
    return lines


#: the loader section's pipelines as shown: (loader, augment) → label
LOADER_LABELS = {("stream", "standard"): "sesweep stream, standard", ("memory", "standard"): "sesweep memory, standard",
                 ("reference", "standard"): "torchvision, RandomCrop(pad 4)+flip",
                 ("stream", "imagenet"): "sesweep stream, imagenet",
                 ("reference", "imagenet"): "torchvision, RandomResizedCrop+flip"}


def _loader_lines(sec: dict[str, Any]) -> list[str]:
    """The input pipelines alone: a row per pipeline, then stream / reference per augmentation (no goal)."""
    lines = [f"input pipeline alone (no model): {sec['train_images']} JPEGs, batch {sec['batch_size']}, "
             f"{sec['workers']} workers each, {sec.get('main_threads', '?')} torch threads in the main process; "
             f"epoch 1 = warm-up (worker start-up), then {sec['repeats']} epochs each, interleaved (median, min-max)",
             f"  {'pipeline':<38}{'size':>5}{'setup s':>9}{'epoch 1 img/s':>14}{'img/s':>9}{'min-max':>15}"
             f"{'ms/batch':>10}{'vs ref':>8}"]
    for r in sec["rows"]:
        label = LOADER_LABELS.get((r["loader"], r["augment"]), f"{r['loader']}, {r['augment']}")
        spread = f"{r['img_per_s_min']:.0f}-{r['img_per_s_max']:.0f}"
        lines.append(f"  {label:<38}{r['image_size']:>5}{r['setup_seconds']:>9.2f}{r['first']['img_per_s']:>14.0f}"
                     f"{r['img_per_s']:>9.0f}{spread:>15}{r['ms_per_batch']:>10.1f}"
                     f"{_fmt(r.get('vs_reference'), '.2f', 'x'):>8}")
    memory = [r for r in sec["rows"] if r.get("decode_seconds") is not None]
    if memory:
        decode = memory[0]["decode_seconds"]
        lines.append(f"  (memory setup: decoding every JPEG and writing the cache, {decode:.2f} s of it; stream "
                     "setup: listing and the mean/std pass over the train images)")
    ratios = "   ".join(f"{a} {v:.2f}x" for a, v in sec["ratios"].items())
    lines.append(f"  stream / reference (median img/s): {ratios}")
    return lines


def format_suite(doc: dict[str, Any]) -> str:
    """The bench as a table: device and peaks, both shapes, reference, epoch, loader, then the goals."""
    d = doc["device"]
    lines = [f"device      {d['device']}: {d['name']}   torch {d['torch']}   {d['threads']} threads   bf16 in "
             f"hardware: {'yes' if d['bf16_native'] else 'no'}   precision auto -> {d['auto_precision']}",
             f"convention  {doc['flops_convention']}"]
    if doc["peak"]:
        lines += ["", f"matmul peak (square matrices, median of {doc['peak']['repeats']})",
                  f"  {'precision':<10}{'size':>7}{'GFLOP/s':>10}"]
        for p, v in doc["peak"]["gflops"].items():
            lines.append(f"  {p:<10}{v['size']:>7}{v['gflops']:>10.1f}")
    for key, title in (("cifar", "CIFAR shape"), ("imagenet", "ImageNet shape")):
        if doc[key]:
            lines += ["", *_shape_lines(title, doc[key])]
    if doc.get("jpegs"):
        lines += ["", f"JPEG folder: {doc['jpegs']['train_images']} training images from {doc['jpegs']['source']}"]
    ref = doc["reference"]
    if ref:
        lines += [f"reference: {ref['arch']} {ref['attention']}, batch {ref['batch_size']}: torchvision ImageFolder + "
                  f"transforms + DataLoader ({ref['workers']} workers), eager fp32, NCHW "
                  f"({ref['steps']} steps x {ref['repeats']} repeats, interleaved with sesweep, medians)",
                  f"  {'loop':<44}{'ms/step':>9}{'img/s':>9}{'infer ms':>10}",
                  f"  {'reference (DataLoader, fp32)':<44}{ref['reference_ms_per_step']:>9.1f}"
                  f"{ref['reference_img_per_s']:>9.1f}{ref['reference_infer_ms']:>10.1f}",
                  f"  {'sesweep (' + ref['sesweep_precision'] + ', the precision auto picks)':<44}"
                  f"{ref['sesweep_ms_per_step']:>9.1f}{ref['sesweep_img_per_s']:>9.1f}{ref['sesweep_infer_ms']:>10.1f}",
                  f"  sesweep / reference: {ref['speedup']:.2f}x"]
    ep = doc["epoch"]
    if ep:
        lines += ["", f"end-to-end epoch on the JPEG folder: {ep['arch']} {ep['attention']}, batch {ep['batch_size']}, "
                      "wall clock from nothing (listing/decoding, model, training; no evaluation)",
                  f"  {'path':<40}{'wall s':>8}{'load s':>8}{'images':>8}{'img/s':>9}{'vs ref':>8}"]
        for label, r, ratio in (
                (f"reference (DataLoader, {ep['workers']} workers, fp32)", ep["reference"], 1.0),
                (f"sesweep {ep['sesweep_precision']}, cold cache (decodes)", ep["sesweep_cold"], ep["speedup_cold"]),
                (f"sesweep {ep['sesweep_precision']}, warm cache", ep["sesweep_warm"], ep["speedup_warm"])):
            lines.append(f"  {label:<40}{r['seconds']:>8.2f}{_fmt(r.get('load_seconds'), '.2f'):>8}"
                         f"{r['images']:>8}{r['img_per_s']:>9.1f}{ratio:>7.2f}x")
    if doc.get("loader"):
        lines += ["", *_loader_lines(doc["loader"])]
    lines += ["", f"goals (at the precision auto picks: {d['auto_precision']})",
              f"  {'goal':<62}{'target':>9}{'measured':>10}  result"]
    for g in doc["goals"]:
        value = g["value"]
        shown = "-" if value is None else (f"{100 * value:.0f}%" if g["goal"] == "peak_fraction" else f"{value:.2f}x")
        result = "not measured" if g["met"] is None else ("met" if g["met"] else "missed")
        lines.append(f"  {g['what']:<62}{g['target']:>9}{shown:>10}  {result}")
    return "\n".join(lines)
