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
