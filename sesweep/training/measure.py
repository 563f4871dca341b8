"""What a model costs: parameters, multiply-accumulates, hidden widths (and, for runs, time and memory).

MAC convention: multiply-accumulates of convolutions and linear layers (matmuls) for one image, counted by
``torch.utils.flop_counter.FlopCounterMode`` on the real forward graph and halved (it counts a MAC as two
FLOPs). Batch norm, activations, pooling, the residual sums and the SE channel scaling are not counted —
the convention of the SENet paper's GFLOPs (3.86 → 3.87 for ResNet-50 → SE-ResNet-50) and of torchvision's
published "GFLOPS" figures.
"""

from __future__ import annotations

import copy
import hashlib
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sesweep.training.models.attention import Attention, ChannelAttention


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def attention_params(model: nn.Module) -> int:
    """Parameters inside attention modules (the SE overhead)."""
    return sum(count_params(m) for m in model.modules() if isinstance(m, Attention))


def count_macs(model: nn.Module, input_size: int, in_channels: int = 3) -> int:
    """MACs of one forward pass on a single ``in_channels × input_size × input_size`` image.

    Runs on the meta device (no memory, no arithmetic), so it is cheap even for ResNet-152 at 224².
    """
    meta = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(1, in_channels, input_size, input_size, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x)
    return counter.get_total_flops() // 2


def hidden_widths(model: nn.Module) -> list[dict[str, Any]]:
    """Per attention block: channels, requested and effective ratio, hidden width, rounding flags."""
    rows = []
    for module in model.modules():
        if isinstance(module, Attention):
            for w in module.hidden_widths():
                rows.append({**asdict(w), "effective_reduction": round(w.effective_reduction, 4)})
    return rows


def attention_blocks(model: nn.Module) -> list[dict[str, Any]]:
    """Per attention block, as its operator declares it: excitation, pool, channels, width (hidden units or
    ECA's kernel k), parameters and MACs."""
    return [asdict(m.cost()) for m in model.modules() if isinstance(m, ChannelAttention)]


def model_cost(model: nn.Module, input_size: int, in_channels: int = 3) -> dict[str, Any]:
    """The cost summary that ``sesweep info`` prints and every run records."""
    return {
        "params": count_params(model),
        "se_params": attention_params(model),
        "macs": count_macs(model, input_size, in_channels),
        "input_size": input_size,
        "hidden_widths": hidden_widths(model),
        "attention_blocks": attention_blocks(model),
    }


@torch.no_grad()
def latency_ms(model: nn.Module, x: torch.Tensor, precision: str, repeats: int = 10, warmup: int = 3) -> float:
    """Median wall-clock milliseconds of one eval-mode forward pass on the batch ``x``."""
    from sesweep.training.hardware import autocast, synchronize

    was_training = model.training
    model.eval()
    times = []
    for i in range(warmup + repeats):
        synchronize(x.device)
        start = time.perf_counter()
        with autocast(x.device, precision):
            model(x)
        synchronize(x.device)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    model.train(was_training)
    return statistics.median(times)


def reset_peak_memory(device: torch.device) -> bool:
    """Start a run's memory measurement: reset the CUDA allocator's peak (on a CUDA device) and the process's
    resident-set high-water mark (:func:`reset_peak_rss`). Returns whether the latter could be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return reset_peak_rss()


def peak_memory_mb(device: torch.device) -> float | None:
    """``peak_mem_mb``: the most CUDA memory allocated by tensors since :func:`reset_peak_memory` (MiB); ``None``
    on the CPU, where no per-run allocator figure exists (the process's lifetime max RSS would include data
    decoding and earlier runs of the same worker) — see :func:`peak_rss_mb` for what can be measured there."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def reset_peak_rss() -> bool:
    """Reset this process's resident-set high-water mark (Linux: write ``5`` to ``/proc/self/clear_refs``).

    ``False`` where that is impossible (not Linux, kernel older than 4.0, no permission)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """``VmHWM`` of ``/proc/self/status`` in MiB: the most resident memory of this whole process since the last
    :func:`reset_peak_rss`. It includes whatever was already resident when it was reset — interpreter, torch
    and its libraries, the decoded data set, earlier runs' memory the allocator kept — not just what the run
    allocated. ``None`` where ``/proc`` is not there."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


#: seed of the excitation probe's draw: a constant, so every variant and every run seed probes the same images
PROBE_SEED = 0


def balanced_quotas(counts: Sequence[int], n: int) -> list[int]:
    """Per-class quotas as equal as ``counts`` allow, summing to ``min(n, sum(counts))``: a class with fewer
    images than its share gives them all and the others share the rest (water filling); what does not divide
    evenly goes one image each to the lowest class indices."""
    quotas = [0] * len(counts)
    left = min(n, sum(counts))
    open_ = [k for k, c in enumerate(counts) if c > 0]
    while left and open_:
        share = left // len(open_)
        if share == 0:  # fewer images left than classes: one each to the lowest indices
            for k in open_[:left]:
                quotas[k] += 1
            break
        for k in open_:
            take = min(share, counts[k] - quotas[k])
            quotas[k] += take
            left -= take
        open_ = [k for k in open_ if quotas[k] < counts[k]]
    return quotas


def excitation_probe(labels: torch.Tensor, images: int, max_classes: int = 10,
                     seed: int = PROBE_SEED) -> tuple[torch.Tensor, dict[str, Any]]:
    """The test images the excitation profile (SENet Fig. 6) is measured on, and a description of them.

    Class-stratified over the classes the profile keeps (the first ``max_classes``): up to ``images`` images,
    as equal per class as the test set allows (:func:`balanced_quotas`); within a class, the images come first
    in one permutation of the test set drawn from ``seed`` — a constant (:data:`PROBE_SEED`), so every variant
    and every run seed of a recipe probes the same images. Returned in ascending index order. The description
    (``seed``, ``images``, ``per_class`` counts, ``indices``) goes into the run's detail, for the caption.
    """
    labels = labels.cpu()
    classes = min(max_classes, int(labels.max()) + 1) if len(labels) else 0
    counts = torch.bincount(labels, minlength=classes)[:classes].tolist()
    quotas = balanced_quotas(counts, images)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    ranked = labels[order]
    chosen = [order[ranked == k][:q] for k, q in enumerate(quotas) if q]
    index = torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.long)
    indices = index.tolist()
    info = {"seed": seed, "images": len(indices), "per_class": quotas,
            "selection": f"class-stratified: up to {images} test images, as equal per class as the test set "
                         f"allows, over its first {classes} classes, drawn with the fixed seed {seed} (the same "
                         f"images for every variant and run seed)",
            "indices": indices,
            "indices_sha256": hashlib.sha256(",".join(map(str, indices)).encode()).hexdigest()[:16]}
    return index, info


@torch.no_grad()
def excitation_profile(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], precision: str,
                       max_classes: int = 10) -> list[dict[str, Any]]:
    """Mean excitation per channel, per attention block and class (SENet TPAMI Fig. 6), first classes only.

    Reads the gate's output through forward hooks, so it sees exactly what scales the features.
    """
    from sesweep.training.hardware import autocast

    blocks = {name: m for name, m in model.named_modules() if isinstance(m, Attention) and hasattr(m, "gate")}
    if not blocks:
        return []
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(max_classes, dtype=torch.float64)
    current: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable[..., None]:
        def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            current[name] = output.flatten(1).double().cpu()
        return record

    handles = [m.gate.register_forward_hook(hook(name)) for name, m in blocks.items()]
    was_training = model.training
    model.eval()
    try:
        for x, y in batches:
            with autocast(x.device, precision):
                model(x)
            y = y.cpu()
            keep = y < max_classes
            onehot = torch.nn.functional.one_hot(y[keep], max_classes).double()  # [n, K]
            counts += onehot.sum(0)
            for name, s in current.items():
                sums[name] = sums.get(name, 0) + onehot.T @ s[keep]  # [K, C]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    rows = []
    for name, total in sums.items():
        stage = int(name.split(".")[0].removeprefix("layer")) + 1
        for k in range(max_classes):
            if counts[k] > 0:
                rows.append({"block": name, "stage": stage, "class": k,
                             "mean": [round(v, 6) for v in (total[k] / counts[k]).tolist()]})
    return rows
