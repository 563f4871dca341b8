"""What a model costs: parameters, multiply-accumulates, hidden widths (and, for runs, time and memory).

MAC convention: multiply-accumulates of convolutions and linear layers (matmuls) for one image, counted by
``torch.utils.flop_counter.FlopCounterMode`` on the real forward graph and halved (it counts a MAC as two
FLOPs). Batch norm, activations, pooling, the residual sums and the SE channel scaling are not counted —
the convention of the SENet paper's GFLOPs (3.86 → 3.87 for ResNet-50 → SE-ResNet-50) and of torchvision's
published "GFLOPS" figures.
"""

from __future__ import annotations

import copy
import resource
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sesweep.models.attention import Attention


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


def model_cost(model: nn.Module, input_size: int, in_channels: int = 3) -> dict[str, Any]:
    """The cost summary that ``sesweep info`` prints and every run records."""
    return {
        "params": count_params(model),
        "se_params": attention_params(model),
        "macs": count_macs(model, input_size, in_channels),
        "input_size": input_size,
        "hidden_widths": hidden_widths(model),
    }


@torch.no_grad()
def latency_ms(model: nn.Module, x: torch.Tensor, precision: str, repeats: int = 10, warmup: int = 3) -> float:
    """Median wall-clock milliseconds of one eval-mode forward pass on the batch ``x``."""
    from sesweep.hardware import autocast, synchronize

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


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: CUDA bytes allocated since the last reset, or the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux reports KiB


@torch.no_grad()
def excitation_profile(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], precision: str,
                       max_classes: int = 10) -> list[dict[str, Any]]:
    """Mean excitation per channel, per attention block and class (SENet TPAMI Fig. 6), first classes only.

    Reads the gate's output through forward hooks, so it sees exactly what scales the features.
    """
    from sesweep.hardware import autocast

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
