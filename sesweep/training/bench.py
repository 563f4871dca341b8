"""Training-step and inference speed of variants × precisions, measured side by side, and achieved training
FLOP/s against the device's matmul peak (the ``cifar`` and ``imagenet`` sections of ``sesweep bench``;
all the sections: :mod:`.bench_suite`).

Times on a shared machine are noisy, so configurations are interleaved (round-robin over repeats) and the
median is reported: compare the ratios within one bench run, not figures across runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from sesweep.spec import RunSpec, SpecError, build, flatten, nest
from sesweep.training.data import DataSplits, eval_batches, load_data, train_batches
from sesweep.training.hardware import resolve_device, resolve_precision, synchronize
from sesweep.training.measure import count_macs, count_params, latency_ms
from sesweep.training.models import build_model
from sesweep.training.train import make_optimizer, make_step


def bench(spec: RunSpec, kinds: list[str], precisions: list[str], steps: int = 10, repeats: int = 3,
          warmup: int = 3, data: DataSplits | None = None,
          log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Median ms per training step and images/s for each attention kind × precision (same data, same seed),
    with the forward MACs per image (``macs``) and, with ``none`` among the kinds, ``se_overhead`` of the
    other kinds: their step time over the ``none`` step time at the same precision."""
    device = resolve_device(spec.recipe.device)
    splits = data if data is not None else load_data(spec.recipe)
    configs = []
    for kind in kinds:
        flat = flatten(spec)
        flat["model.attention.kind"] = kind
        variant = build(RunSpec, nest(flat))
        for precision in precisions:
            resolved = resolve_precision(precision, device)
            configs.append(BenchConfig(variant, kind, resolved, splits, device))
    for config in configs:
        config.run(warmup)
    times: dict[int, list[float]] = {i: [] for i in range(len(configs))}
    for r in range(repeats):
        if log is not None:
            log(f"repeat {r + 1}/{repeats}: {len(configs)} configurations x {steps} steps")
        for i, config in enumerate(configs):
            times[i].append(config.run(steps) / steps)
    rows = []
    for i, config in enumerate(configs):
        ms = statistics.median(times[i]) * 1e3
        rows.append({"attention": config.kind, "precision": config.precision, "ms_per_step": ms,
                     "img_per_s": spec.recipe.batch_size / ms * 1e3, "infer_ms": config.latency(),
                     "params": count_params(config.model), "batch_size": spec.recipe.batch_size,
                     "device": str(device), "macs": count_macs(config.model, splits.image_size, splits.channels)})
    base = {r["precision"]: r["ms_per_step"] for r in rows if r["attention"] == kinds[0]}
    plain = {r["precision"]: r["ms_per_step"] for r in rows if r["attention"] == "none"}
    for r in rows:
        r[f"step_vs_{kinds[0]}"] = r["ms_per_step"] / base[r["precision"]]
        if plain and r["attention"] != "none":
            r["se_overhead"] = r["ms_per_step"] / plain[r["precision"]]
    return rows


class BenchConfig:
    """One variant × precision, ready to step on a fixed stream of batches."""

    def __init__(self, spec: RunSpec, kind: str, precision: str, splits: DataSplits, device: torch.device) -> None:
        recipe = spec.recipe
        if len(splits.train) < recipe.batch_size:
            raise SpecError("recipe.batch_size", f"{recipe.batch_size} is larger than the {len(splits.train)} "
                                                 "training images; allowed: a smaller batch")
        self.kind, self.precision, self.device, self.recipe, self.splits = kind, precision, device, recipe, splits
        memory = torch.channels_last if recipe.channels_last else torch.preserve_format
        self.model = build_model(spec.model, splits.num_classes, splits.channels, spec.seed).to(device,
                                                                                              memory_format=memory)
        optimizer = make_optimizer(self.model, recipe)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
        self.step = make_step(self.model, optimizer, scheduler, nn.CrossEntropyLoss(), device, precision)
        self.batches = train_batches(splits, recipe, spec.seed, device)
        self._stream = self._batches()

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless: epoch after epoch."""
        epoch = 0
        while True:
            yield from self.batches.epoch(epoch)
            epoch += 1

    def run(self, steps: int) -> float:
        """Seconds for ``steps`` training steps (data augmentation included, as in a real run)."""
        self.model.train()
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step(*next(self._stream))
        synchronize(self.device)
        return time.perf_counter() - start

    def latency(self) -> float:
        x = next(eval_batches(self.splits.test, batch_size=self.recipe.batch_size, mean=self.splits.mean,
                              std=self.splits.std, device=self.device, channels_last=self.recipe.channels_last))[0]
        return latency_ms(self.model, x, self.precision)


#: training FLOPs per image = TRAIN_FLOPS_PER_MAC × forward MACs: 2 FLOPs per MAC, and the backward pass
#: counted as twice the forward (gradients of inputs and of weights), the usual convention
TRAIN_FLOPS_PER_MAC = 3 * 2


def shape_section(spec: RunSpec, kinds: list[str], precisions: list[str], steps: int, repeats: int, warmup: int,
                  peaks: dict[str, Any] | None, log: Callable[[str], None]) -> dict[str, Any]:
    """:func:`bench` at one input shape, with achieved training GFLOP/s and its fraction of the matmul peak."""
    splits = load_data(spec.recipe)
    rows = bench(spec, kinds, precisions, steps, repeats, warmup, data=splits, log=log)
    for r in rows:
        r["train_gflops"] = TRAIN_FLOPS_PER_MAC * r["macs"] * r["img_per_s"] / 1e9
        peak = (peaks or {}).get(r["precision"])
        r["peak_fraction"] = r["train_gflops"] / peak["gflops"] if peak else None
    return {"arch": spec.model.arch, "image_size": splits.image_size, "batch_size": spec.recipe.batch_size,
            "data": spec.recipe.dataset, "steps": steps, "repeats": repeats, "rows": rows}
