"""The device's matmul peak: GFLOP/s of one large square matrix product per precision, the yardstick that
``sesweep bench`` divides achieved training FLOP/s by."""

from __future__ import annotations

import statistics
import time

import torch

from sesweep.training.hardware import synchronize

#: tensor dtype of each precision name; the peak of ``bf16``/``fp16`` is a product of tensors of that dtype
#: (what autocast hands to the matmul and convolution kernels), accumulated as the backend does
PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _time_mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> float:
    synchronize(a.device)
    start = time.perf_counter()
    torch.mm(a, b, out=out)
    synchronize(a.device)
    return time.perf_counter() - start


def matmul_gflops(device: torch.device, precision: str, size: int = 2048, repeats: int = 5,
                  warmup: int = 1, budget_s: float = 2.0) -> tuple[float, int]:
    """Median GFLOP/s of ``A @ B`` for two ``n × n`` matrices of the precision's dtype (2·n³ FLOPs), and n.

    n is ``size``, or smaller where one product would take over ``budget_s`` seconds (timed first at
    n = 512): bf16 on a CPU without bf16 hardware runs a scalar fallback at well under 1 GFLOP/s, and a
    2048² product would take minutes."""
    dtype = PEAK_DTYPES[precision]
    g = torch.Generator().manual_seed(0)

    def operands(n: int) -> tuple[torch.Tensor, ...]:
        a = torch.randn(n, n, generator=g).to(device, dtype)
        b = torch.randn(n, n, generator=g).to(device, dtype)
        return a, b, torch.empty(n, n, device=device, dtype=dtype)

    probe = min(size, 512)
    small = operands(probe)
    _time_mm(*small)
    guess = _time_mm(*small) * (size / probe) ** 3
    if guess > budget_s:
        size = max(probe, int(probe * (budget_s / guess) ** (1 / 3) * size / probe) // 64 * 64)
    a, b, out = operands(size)
    times = [_time_mm(a, b, out) for _ in range(warmup + repeats)][warmup:]
    return 2.0 * size**3 / statistics.median(times) / 1e9, size


def matmul_peaks(device: torch.device, precisions: list[str], size: int = 2048,
                 repeats: int = 5) -> dict[str, dict[str, float | int]]:
    """``{precision: {"gflops": …, "size": n}}`` from :func:`matmul_gflops`, each precision measured once."""
    peaks: dict[str, dict[str, float | int]] = {}
    for p in dict.fromkeys(precisions):
        gflops, n = matmul_gflops(device, p, size, repeats)
        peaks[p] = {"gflops": gflops, "size": n}
    return peaks
