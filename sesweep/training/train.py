"""One run: seed → data → model → fit → evaluate → measure → result. The only training loop there is.

Every sweep run goes through :func:`train`. It is deterministic for a given seed on the CPU, matched
across variants (data order and augmentation depend on the seed alone, initial weights on the seed and
the parameter name), and it never raises on a diverging run: a NaN/inf loss ends the run with status
``diverged`` and the epoch where it happened.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from sesweep.run_identity import run_key
from sesweep.spec import RecipeSpec, RunSpec, flatten
from sesweep.training.checkpoint import CheckpointPolicy, RunCheckpoints
from sesweep.training.data import DataSplits, eval_batches, load_data, train_batches
from sesweep.training.hardware import (
    DeviceSlot,
    autocast,
    device_name,
    device_slot,
    host_name,
    resolve_device,
    resolve_precision,
    synchronize,
)
from sesweep.training.measure import (
    excitation_probe,
    excitation_profile,
    latency_ms,
    model_cost,
    peak_memory_mb,
    peak_rss_mb,
    reset_peak_memory,
)
from sesweep.training.models import build_model
from sesweep.training.models.adaptive import (
    DynamicSE,
    LearnableSE,
    active_width_fraction,
    adaptive_modules,
    adaptive_parameters,
    adaptive_state,
    budget_fraction,
    cost_term,
    dynamic_width_stats,
    harden_model,
    record_dynamic_widths,
    truncated,
)

EXCITATION_IMAGES, EXCITATION_BATCH = 1024, 256

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What a run produced: status, final metrics, per-epoch curves and the per-block hidden widths."""

    spec: RunSpec
    status: str                      # finished | diverged
    metrics: dict[str, float | int | None]
    curves: list[dict[str, float]] = field(default_factory=list)
    hidden_widths: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    excitation: list[dict[str, Any]] = field(default_factory=list)
    #: adaptive SE only: per epoch and block, the effective width and ratio (and per-sample stats if dynamic)
    adaptive: list[dict[str, Any]] = field(default_factory=list)
    #: which test images the excitation profile saw: seed, images, per-class counts, indices (for the caption)
    excitation_probe: dict[str, Any] = field(default_factory=dict)
    #: the same profile of the same net at initialisation (same probe): the reference that tells what training
    #: changed from the pattern the untrained net already has
    excitation_init: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_key(self) -> str:
        return run_key(self.spec)

    def record(self) -> dict[str, Any]:
        """One flat row: run_key, status, every resolved spec key (dotted), every metric."""
        return {"run_key": self.run_key, "status": self.status, "reason": self.reason,
                **flatten(self.spec), **self.environment, **self.metrics}


def lr_factor(step: int, total_steps: int, recipe: RecipeSpec, steps_per_epoch: int) -> float:
    """The schedule as a pure function of the step: linear warmup, then cosine to 0 or step decay."""
    warmup = round(recipe.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    if recipe.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return recipe.step_gamma ** sum(progress >= m for m in recipe.step_milestones)


def evaluated(epoch: int, recipe: RecipeSpec) -> bool:
    """Whether epoch ``epoch`` (0-based) ends with a test evaluation: every ``eval_every``-th, and the last."""
    return (epoch + 1) % recipe.eval_every == 0 or epoch + 1 == recipe.epochs


def learning_rate(recipe: RecipeSpec) -> float:
    """The peak learning rate: ``lr``, or under ``lr_scaling: linear`` ``lr × batch_size / lr_reference_batch``
    (Goyal et al. 2017: the rate grows with the batch; ``lr`` is the rate at the reference batch)."""
    if recipe.lr_scaling == "linear":
        return recipe.lr * recipe.batch_size / recipe.lr_reference_batch
    return recipe.lr


def make_optimizer(model: nn.Module, recipe: RecipeSpec) -> torch.optim.SGD:
    """SGD over every parameter; adaptive-SE width parameters get no weight decay (only the cost term may
    pull them: decay would be a hidden cost pressure of its own)."""
    special = {id(p) for p in adaptive_parameters(model)}
    groups = [{"params": [p for p in model.parameters() if id(p) not in special]}]
    if special:
        groups.append({"params": adaptive_parameters(model), "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=learning_rate(recipe), momentum=recipe.momentum,
                           nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay)


def make_penalty(model: nn.Module, spec: RunSpec, cost: dict[str, Any]) -> Callable[[], torch.Tensor] | None:
    """The adaptive-SE cost term ``cost_weight × (SE cost / model cost)``, or ``None`` when there is none.

    The model's total (``cost``, measured once) is passed in, so no step recounts the parameters."""
    att = spec.model.attention
    if not adaptive_modules(model) or att.cost_weight == 0:
        return None
    total = cost[att.cost_unit] / 1e6
    return lambda: att.cost_weight * cost_term(model, att.cost_unit, total)


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
              criterion: nn.Module, device: torch.device, precision: str,
              penalty: Callable[[], torch.Tensor] | None = None,
              scaler: torch.amp.GradScaler | None = None) -> Callable[..., torch.Tensor]:
    """One optimisation step ``step(x, y) -> task loss`` (detached, not synchronised): the only one there is.

    ``penalty`` (the adaptive cost term, read after the forward) is added to what is minimised, not to the
    loss returned, so train losses compare across variants. ``scaler``: the caller's (to checkpoint it);
    default: a new :func:`grad_scaler`."""
    scaler = scaler if scaler is not None else grad_scaler(device, precision)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            loss = criterion(model(x), y)
        objective = loss if penalty is None else loss + penalty().to(loss.dtype)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(objective).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        return loss.detach()

    return step


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """The loss scaler of a run: active for fp16 only (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


@torch.no_grad()
def evaluate(model: nn.Module, data: Any, splits: DataSplits, recipe: RecipeSpec, device: torch.device,
             precision: str) -> dict[str, float]:
    """Test loss (plain cross-entropy) and top-1/top-5 error in percent; ``data``: a split of ``splits``
    (in memory or streamed)."""
    model.eval()
    k = min(5, splits.num_classes)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    wrong1 = torch.zeros((), device=device, dtype=torch.int64)
    wrong5 = torch.zeros((), device=device, dtype=torch.int64)
    for x, y in eval_batches(data, batch_size=recipe.eval_batch_size, mean=splits.mean, std=splits.std,
                             device=device, channels_last=recipe.channels_last):
        with autocast(device, precision):
            logits = model(x)
        logits = logits.float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum")
        topk = logits.topk(k, dim=1).indices
        wrong1 += (topk[:, 0] != y).sum()
        wrong5 += (~(topk == y[:, None]).any(dim=1)).sum()
    n = len(data.labels)
    return {"test_loss": loss_sum.item() / n, "top1_err": 100.0 * wrong1.item() / n,
            "top5_err": 100.0 * wrong5.item() / n}


def train(spec: RunSpec, *, data: DataSplits | None = None, progress: bool | None = None,
          on_epoch: Callable[[dict[str, float]], None] | None = None,
          checkpoints: CheckpointPolicy | None = None) -> RunResult:
    """Train and evaluate one run; returns its result (status ``finished`` or ``diverged``).

    A learnable adaptive SE is hardened at the end: the metrics describe that plain-SE net (``soft_top1_err``
    is the error before). ``data`` lets a worker load the data set once for many runs; ``on_epoch``
    receives each epoch's curve row (for tracking); ``progress`` shows a bar per epoch (default: only on a
    terminal).

    ``checkpoints``: where and how often to checkpoint the run at epoch ends (:mod:`sesweep.training.checkpoint`);
    a run that finds a good checkpoint there resumes from it (``on_epoch`` then receives the restored rows
    first) and ends with exactly the metrics and curves of an uninterrupted run on the CPU; its record's
    ``resumed_from_epoch`` says where it resumed (0: from the start).

    The run holds a slot in this host's registry of live trainers of its device (:func:`device_slot`) from
    start to end, so its record says whether its timings were shared (``timed_shared``).
    """
    with device_slot(resolve_device(spec.recipe.device)) as slot, _torch_threads_kept():
        return _train(spec, slot, data=data, progress=progress, on_epoch=on_epoch, checkpoints=checkpoints)


@contextlib.contextmanager
def _torch_threads_kept() -> Iterator[None]:
    """A resumed run takes the thread count its first attempt ran with (:func:`_train`); put it back after."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _train(spec: RunSpec, slot: DeviceSlot, *, data: DataSplits | None, progress: bool | None,
           on_epoch: Callable[[dict[str, float]], None] | None,
           checkpoints: CheckpointPolicy | None = None) -> RunResult:
    """The body of :func:`train`, run while this process holds its slot in the device registry."""
    began = time.perf_counter()
    recipe = spec.recipe
    device = resolve_device(recipe.device)
    precision = resolve_precision(recipe.precision, device)
    splits = data if data is not None else load_data(recipe)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, splits.num_classes, splits.channels, spec.seed, dropout=recipe.dropout)
    cost = model_cost(model, splits.image_size, splits.channels)
    model = model.to(device, memory_format=torch.channels_last if recipe.channels_last else torch.preserve_format)

    batches = train_batches(splits, recipe, spec.seed, device)
    optimizer = make_optimizer(model, recipe)
    total_steps = recipe.epochs * len(batches)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, recipe, len(batches)))
    scaler = grad_scaler(device, precision)
    step = make_step(model, optimizer, scheduler, nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing),
                     device, precision, make_penalty(model, spec, cost), scaler)
    adaptive = bool(adaptive_modules(model))
    unit = spec.model.attention.cost_unit
    show = sys.stderr.isatty() if progress is None else progress
    rss_reset = reset_peak_memory(device)  # per run: CUDA allocator peak and the process's RSS high-water mark

    curves: list[dict[str, float]] = []
    adaptive_log: list[dict[str, Any]] = []
    status, reason = "finished", ""
    train_seconds, images_seen, train_loss = 0.0, 0, float("nan")
    diverged_epoch: int | None = None
    test_widths: dict[str, list[torch.Tensor]] = {}  # dynamic SE: per-sample widths of the last evaluation
    saver = RunCheckpoints(checkpoints, checkpoints.run_key or run_key(spec), model, optimizer, scheduler,
                           scaler) if checkpoints else None
    resumed = saver.resume(recipe.epochs) if saver is not None else None
    start_epoch, shared_before, earlier_setup, eval_seconds = 0, (False, 0), 0.0, 0.0
    if resumed is not None:
        start_epoch, done = resumed
        curves, adaptive_log, shared_before = done["curves"], done["adaptive_log"], tuple(done["shared"])
        train_seconds, images_seen, train_loss = done["train_seconds"], done["images_seen"], done["train_loss"]
        earlier_setup, eval_seconds = done.get("setup_seconds", 0.0), done.get("eval_seconds", 0.0)
        # CPU kernels split their sums by thread, so the count is part of the arithmetic: a resumed run goes
        # on with its first attempt's count (whatever --threads this worker has), so it ends as it would have
        threads = done.get("threads", torch.get_num_threads())
        if threads != torch.get_num_threads():
            log.info("the run resumes with the %d torch threads it started with", threads)
            torch.set_num_threads(threads)
        for row in curves if on_epoch is not None else []:  # this attempt's tracking gets the whole curve
            on_epoch(row)
    # where a run's time goes besides training, over all its attempts
    setup_seconds = earlier_setup + time.perf_counter() - began
    for epoch in range(start_epoch, recipe.epochs):
        if saver is not None and epoch > start_epoch:
            # the end of the previous epoch, saved here so that no `continue` in the body can skip it, and never
            # after the last epoch (the result follows at once); everything the loop has accumulated so far
            saver.epoch_end(epoch, {"curves": curves, "adaptive_log": adaptive_log, "train_seconds": train_seconds,
                                    "images_seen": images_seen, "train_loss": train_loss,
                                    "shared": _merge_shared(slot.shared(), shared_before),
                                    "setup_seconds": setup_seconds, "eval_seconds": eval_seconds,
                                    "threads": torch.get_num_threads()})
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        seen = 0
        synchronize(device)
        start = time.perf_counter()
        bar = tqdm(batches.epoch(epoch), total=len(batches), disable=not show, leave=False,
                   desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch", file=sys.stderr)
        for x, y in bar:
            loss_sum += step(x, y).double() * len(y)
            seen += len(y)
        synchronize(device)
        train_seconds += time.perf_counter() - start
        images_seen += seen
        train_loss = loss_sum.item() / seen
        if not math.isfinite(train_loss):
            status, diverged_epoch = "diverged", epoch + 1
            reason = f"training loss became {train_loss} in epoch {epoch + 1}"
            curves.append({"epoch": epoch + 1, "train_loss": train_loss, "lr": scheduler.get_last_lr()[0]})
            break
        row: dict[str, float] = {"epoch": epoch + 1, "train_loss": train_loss, "lr": scheduler.get_last_lr()[0]}
        if evaluated(epoch, recipe):  # every eval_every epochs and the last: the rows between have no test scores
            evaluating = time.perf_counter()
            with record_dynamic_widths(model) as widths:
                row.update(evaluate(model, splits.test, splits, recipe, device, precision))
            eval_seconds += time.perf_counter() - evaluating
            test_widths = widths
            if adaptive:
                # over every test image (not the last batch); the cost unit's share, and the hidden units' share
                row["se_budget"] = budget_fraction(model, unit, widths)
                row["se_active_width"] = active_width_fraction(model, widths)
                adaptive_log += _adaptive_rows(model, epoch + 1, widths)
        row["epoch_seconds"] = time.perf_counter() - start
        curves.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if show:
            scores = (f"  test_loss {row['test_loss']:.4f}  top1_err {row['top1_err']:.2f}%"
                      if "top1_err" in row else "")
            tqdm.write(f"epoch {epoch + 1}/{recipe.epochs}  train_loss {train_loss:.4f}{scores}", file=sys.stderr)

    probing = time.perf_counter()
    final = curves[-1] if status == "finished" else {"test_loss": float("nan"), "top1_err": float("nan"),
                                                      "top5_err": float("nan")}
    soft_top1_err, se_budget, se_active_width, truncated_top1_err = None, None, None, None
    if adaptive:
        se_budget = budget_fraction(model, unit, test_widths)
        se_active_width = active_width_fraction(model, test_widths)
        if status == "finished" and any(isinstance(m, DynamicSE) for _, m in adaptive_modules(model)):
            # top1_err is the soft mask's (the function trained, every unit computed); this is the per-sample
            # truncated net's, which skips the dropped units
            with truncated(model):
                truncated_top1_err = evaluate(model, splits.test, splits, recipe, device, precision)["top1_err"]
        if status == "finished" and any(isinstance(m, LearnableSE) for _, m in adaptive_modules(model)):
            # the record describes the deployable net: the hardened plain SE, re-evaluated and re-measured
            soft_top1_err = final["top1_err"]
            harden_model(model)
            final = evaluate(model, splits.test, splits, recipe, device, precision)
            cost = model_cost(model, splits.image_size, splits.channels)

    def test_batches(batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return eval_batches(splits.test, batch_size=batch_size, mean=splits.mean, std=splits.std, device=device,
                            channels_last=recipe.channels_last)

    x_probe = next(iter(test_batches(recipe.batch_size)))[0]
    finished = status == "finished"
    metrics = {
        "top1_err": final["top1_err"], "top5_err": final["top5_err"], "test_loss": final["test_loss"],
        "train_loss": train_loss, "params": cost["params"], "se_params": cost["se_params"], "macs": cost["macs"],
        "train_seconds": train_seconds, "train_img_per_s": images_seen / train_seconds if train_seconds else 0.0,
        "infer_ms": latency_ms(model, x_probe, precision) if finished else float("nan"),
        "peak_mem_mb": peak_memory_mb(device), "peak_rss_mb": peak_rss_mb() if rss_reset else None,
        "epochs_done": len(curves) if finished else len(curves) - 1,
        "diverged_epoch": diverged_epoch,
        "se_budget": se_budget, "soft_top1_err": soft_top1_err,
        "se_active_width": se_active_width, "truncated_top1_err": truncated_top1_err,
    }
    # after the last timing (training, latency); a resumed run was also shared where an earlier attempt was
    timed_shared, concurrent_workers = _merge_shared(slot.shared(), shared_before)
    # SENet Fig. 6: mean excitation per channel and class, on a fixed class-stratified probe of the test set
    # (the same images for every variant and seed: a constant probe seed, not the run's)
    probe_index, probe_info = excitation_probe(splits.test.labels, EXCITATION_IMAGES)
    probe_set = splits.test.take(probe_index)  # a streamed split decodes just these

    def probe() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:  # one pass per profile: trained, then initial
        return eval_batches(probe_set, batch_size=EXCITATION_BATCH, mean=splits.mean, std=splits.std, device=device,
                            channels_last=recipe.channels_last)

    excitation = excitation_profile(model, probe(), precision) if finished else []
    excitation_init = _initial_excitation(spec, splits, device, precision, probe()) if excitation else []
    metrics.update(setup_seconds=setup_seconds, eval_seconds=eval_seconds,
                   probe_seconds=time.perf_counter() - probing)  # final measurements: latency, excitation, hardening
    environment = {"resolved_device": str(device), "resolved_precision": precision,
                   "torch_version": torch.__version__, "infer_batch": int(x_probe.shape[0]),
                   "host": host_name(), "device_name": device_name(device), "timed_shared": timed_shared,
                   "concurrent_workers": concurrent_workers, "resumed_from_epoch": start_epoch,
                   "resolved_loader": splits.loader, "threads": torch.get_num_threads()}
    return RunResult(spec, status, metrics, curves, cost["hidden_widths"], reason, environment, excitation,
                     adaptive_log, excitation_probe=probe_info, excitation_init=excitation_init)


def _initial_excitation(spec: RunSpec, splits: DataSplits, device: torch.device, precision: str,
                        probe: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> list[dict[str, Any]]:
    """The excitation profile of this run's net as it was before training: rebuilt from the seed (every weight
    comes from its own named generator, so it is the net the run started from, a resumed run's too), probed
    on the same images. Global RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        init = build_model(spec.model, splits.num_classes, splits.channels, spec.seed, dropout=spec.recipe.dropout)
    init = init.to(device, memory_format=torch.channels_last if spec.recipe.channels_last else torch.preserve_format)
    return excitation_profile(init, probe, precision)


def _merge_shared(now: tuple[bool | None, int | None], before: tuple[Any, ...]) -> tuple[bool | None, int | None]:
    """``slot.shared()`` of this attempt merged with the earlier attempts' of a resumed run (unknown stays
    unknown; the count adds up the attempts' distinct other trainers)."""
    if now[0] is None or before[0] is None:
        return None, None
    return bool(now[0] or before[0]), int(now[1] or 0) + int(before[1] or 0)


def _adaptive_rows(model: nn.Module, epoch: int, widths: dict[str, list[torch.Tensor]]) -> list[dict[str, Any]]:
    """Per adaptive block at the end of an epoch: widths and ratios; dynamic blocks add per-sample ratio
    statistics over the whole test set."""
    per_sample = {row["block"]: row for row in dynamic_width_stats(model, widths)} if widths else {}
    rows = []
    for state in adaptive_state(model):
        state = {k: v for k, v in state.items() if not k.startswith(("width_", "ratio_"))}  # last batch only
        sample = per_sample.get(state["block"], {})
        rows.append({"epoch": epoch, **state, **{f"sample_ratio_{k}": v for k, v in sample.items() if k != "block"}})
    return rows
