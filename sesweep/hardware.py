"""Where a run executes and in what precision: ``auto`` resolved once, recorded with the result."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from sesweep.spec import SpecError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA device when there is one, else the CPU; a missing CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError("recipe.device", f"{name!r} asked for, but this machine has no CUDA device; "
                                             "allowed here: auto, cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpecError("recipe.device", f"{name!r}: this machine has {torch.cuda.device_count()} CUDA "
                                             f"device(s); allowed: cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` → bf16 on GPUs that have it (else fp16), fp32 on the CPU.

    Why fp32 on the CPU even with AVX-512 BF16: measured with ``sesweep bench`` on a 2-core AVX-512 BF16
    machine, bf16 autocast made ResNet-20 training steps 1.15-1.22× slower (batch 128) and ResNet-18 at 64²
    1.6× slower: the casts cost more than the narrow convolutions gain. Ask for ``bf16`` explicitly to try.
    """
    if name == "fp16" and device.type == "cpu":
        raise SpecError("recipe.precision", "fp16 autocast is for CUDA devices; allowed on CPU: fp32, bf16, auto")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed precision for the forward pass; fp32 runs without autocast."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
        yield


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings measure the work and not its queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
