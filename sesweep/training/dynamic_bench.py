"""Does the dynamic SE save time when it really truncates? Accuracy and latency of its inference paths.

``python -m sesweep.training.dynamic_bench [--epochs 15] [--cost-weight 1] [--batch 128] [--repeats 30] [--threads N]``

Trains a dynamic ResNet-20 (max r=2) on the embedded digits data so its router spreads the widths, then
evaluates the soft path (every allocated unit computed, the mask multiplied in) and the truncated path
(:func:`sesweep.training.models.adaptive.truncated`: each image's FCs computed only up to its own hard width) on the
whole test set, and times one eval forward of a batch for: no SE, the fixed SE at the allocated width (r=2),
dynamic soft, dynamic truncated — interleaved round-robin, medians reported. The SE is a small part of
ResNet-20's compute, so compare the rows of one run, not figures across runs.

Measured results: ``docs/adaptive.md`` (section "Does truncation save time?").
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
from torch import nn

from sesweep.spec import run_spec
from sesweep.training.data import TrainBatches, eval_batches, load_data
from sesweep.training.measure import model_cost
from sesweep.training.models import build_model
from sesweep.training.models.adaptive import DynamicSE, adaptive_modules, record_dynamic_widths, truncated
from sesweep.training.models.operators.mlp import SqueezeExcite
from sesweep.training.train import evaluate, lr_factor, make_optimizer, make_penalty, make_step


def train_dynamic(epochs: int, cost_weight: float, seed: int = 0) -> tuple[Any, nn.Module]:
    """A dynamic ResNet-20 (max r=2) trained on digits (fp32, CPU); returns (spec, model)."""
    spec = run_spec({"recipe.dataset": "digits", "recipe.epochs": epochs, "recipe.device": "cpu",
                     "recipe.precision": "fp32", "model.attention.adaptive": "dynamic",
                     "model.attention.reduction": 2, "model.attention.cost_weight": cost_weight, "seed": seed})
    splits = load_data(spec.recipe)
    torch.manual_seed(seed)
    model = build_model(spec.model, splits.num_classes, splits.channels, seed)
    cost = model_cost(model, splits.image_size, splits.channels)
    model = model.to(memory_format=torch.channels_last)
    recipe = spec.recipe
    batches = TrainBatches(splits.train, batch_size=recipe.batch_size, mean=splits.mean, std=splits.std,
                           augment="standard", flip=splits.flip, seed=seed, device=torch.device("cpu"),
                           channels_last=True)
    optimizer = make_optimizer(model, recipe)
    total = epochs * len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, recipe, len(batches)))
    step = make_step(model, optimizer, scheduler, nn.CrossEntropyLoss(), torch.device("cpu"), "fp32",
                     make_penalty(model, spec, cost))
    for epoch in range(epochs):
        model.train()
        for x, y in batches.epoch(epoch):
            step(x, y)
    return spec, model.eval()


def accuracy_paths(spec: Any, model: nn.Module) -> dict[str, Any]:
    """Top-1 error of the soft and truncated paths on the whole test set, and the widths they use."""
    splits = load_data(spec.recipe)
    device = torch.device("cpu")
    with record_dynamic_widths(model) as rec:
        soft = evaluate(model, splits.test, splits, spec.recipe, device, "fp32")
    with truncated(model):
        hard = evaluate(model, splits.test, splits, spec.recipe, device, "fp32")
    blocks = [m for _, m in adaptive_modules(model) if isinstance(m, DynamicSE)]
    soft_w = sum(float(torch.cat(rec[m.width.block]).mean()) for m in blocks)
    hard_w = sum(float(m.hard_widths(torch.cat(rec[m.width.block])).float().mean()) for m in blocks)
    allocated = sum(m.max_hidden for m in blocks)
    return {"soft_top1_err": soft["top1_err"], "truncated_top1_err": hard["top1_err"],
            "soft_width_share": soft_w / allocated, "hard_width_share": hard_w / allocated,
            "test_images": len(splits.test)}


def time_paths(spec: Any, model: nn.Module, batch: int, repeats: int, warmup: int = 5) -> dict[str, float]:
    """Median ms of one eval forward of a ``batch``-image test batch per configuration, interleaved."""
    splits = load_data(spec.recipe)
    x = next(eval_batches(splits.test, batch_size=batch, mean=splits.mean, std=splits.std,
                          device=torch.device("cpu"), channels_last=True))[0]

    def plain(kind: str) -> nn.Module:
        """The same net with a fixed SE at the allocated width (or none), carrying the trained weights it
        shares with the dynamic one (the router aside), so every configuration multiplies the same numbers."""
        other = run_spec({"model.attention.kind": kind, "model.attention.reduction": 2})
        net = build_model(other.model, splits.num_classes, splits.channels, 0)
        missing = net.load_state_dict(model.state_dict(), strict=False).missing_keys
        assert not missing, missing
        return net.to(memory_format=torch.channels_last).eval()

    def forward(m: nn.Module, cut: bool) -> float:
        with torch.no_grad():
            if cut:
                with truncated(m):
                    start = time.perf_counter()
                    m(x)
                    return time.perf_counter() - start
            start = time.perf_counter()
            m(x)
            return time.perf_counter() - start

    configs = {"no SE (ResNet-20)": (plain("none"), False), "fixed SE r=2 (allocated width)": (plain("se"), False),
               "dynamic soft": (model, False), "dynamic truncated": (model, True)}
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(warmup):
        for m, cut in configs.values():
            forward(m, cut)
    for _ in range(repeats):
        for name, (m, cut) in configs.items():
            times[name].append(forward(m, cut))
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def time_excitations(spec: Any, model: nn.Module, batch: int, repeats: int, warmup: int = 5) -> dict[str, float]:
    """Median ms of the SE blocks' excitations alone, on the inputs they get in one forward of the batch:
    the fixed SE at the allocated width (the same fc weights), dynamic soft and dynamic truncated."""
    splits = load_data(spec.recipe)
    x = next(eval_batches(splits.test, batch_size=batch, mean=splits.mean, std=splits.std,
                          device=torch.device("cpu"), channels_last=True))[0]
    blocks = [m for _, m in adaptive_modules(model) if isinstance(m, DynamicSE)]
    inputs: list[torch.Tensor] = []
    handles = [m.register_forward_pre_hook(lambda _m, a: inputs.append(a[0])) for m in blocks]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    fixed = []
    for m in blocks:
        se = SqueezeExcite(m.channels, m.channels / m.max_hidden, 1, 1, m.pool_kind, m.gate_kind, m.has_bias)
        se.load_state_dict(m.state_dict(), strict=False)
        fixed.append(se.eval())

    def run(mods: list[nn.Module], cut: bool) -> float:
        with torch.no_grad():
            for m in mods:
                m.truncate = cut if isinstance(m, DynamicSE) else False
            start = time.perf_counter()
            for m, inp in zip(mods, inputs, strict=True):
                m.excitation(inp)
            elapsed = time.perf_counter() - start
            for m in mods:
                if isinstance(m, DynamicSE):
                    m.truncate = False
            return elapsed

    configs = {"fixed SE r=2 (allocated width)": (fixed, False), "dynamic soft": (blocks, False),
               "dynamic truncated": (blocks, True)}
    times: dict[str, list[float]] = {k: [] for k in configs}
    for _ in range(warmup):
        for mods, cut in configs.values():
            run(mods, cut)
    for _ in range(repeats):
        for name, (mods, cut) in configs.items():
            times[name].append(run(mods, cut))
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--cost-weight", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    spec, model = train_dynamic(args.epochs, args.cost_weight)
    acc = accuracy_paths(spec, model)
    ms = time_paths(spec, model, args.batch, args.repeats)
    se_ms = time_excitations(spec, model, args.batch, args.repeats * 10)
    print(f"dynamic ResNet-20 (max r=2), digits {spec.recipe.epochs} epochs, cost weight {args.cost_weight:g}, "
          f"{acc['test_images']} test images")
    print(f"  top-1 err: soft {acc['soft_top1_err']:.2f}%, truncated {acc['truncated_top1_err']:.2f}%")
    print(f"  hidden units in use: soft mean width {100 * acc['soft_width_share']:.1f}% of allocated, "
          f"truncated computes {100 * acc['hard_width_share']:.1f}%")
    for title, timing in (("whole net, one forward", ms), ("the 9 SE excitations alone", se_ms)):
        base = timing["fixed SE r=2 (allocated width)"]
        print(f"  latency, {title}:")
        for name, value in timing.items():
            print(f"    {name:<32}{value:8.3f} ms  ({value / base:.3f}× fixed SE)")
    print(f"batch {args.batch}, {torch.get_num_threads()} threads, fp32 CPU, medians of {args.repeats} (whole "
          f"net) and {args.repeats * 10} (SE alone) interleaved repeats after 5 warm-up rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
