"""Mid-run checkpoints of one run: atomic, verified before they are read, never unpickled, pruned to two.

A run's checkpoints live in the folder :func:`sesweep.results.checkpoint_dir` names (inside the sweep's results
folder, which every worker of the sweep reads), one pair of files per checkpoint::

    epoch-0007.pt     torch.save of plain containers of tensors and numbers: loaded with ``weights_only=True``
    epoch-0007.json   its sidecar, written after it: {"format", "run_key", "epoch", "file", "bytes", "sha256"}

A checkpoint counts only when its sidecar is there and the file's size and sha256 match it, so a file cut short
by a killed writer, or damaged since, is skipped with a warning for the one before (the last two are kept), and
with none good the run starts from epoch 0. Checkpoints are taken at epoch ends only: a run's data order and
augmentation depend on (seed, epoch) alone (:func:`sesweep.training.data.batches.epoch_generator`), so a run
resumed at an epoch end computes exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sesweep.results import checkpoint_sidecars

log = logging.getLogger("sesweep.training.checkpoint")

#: the layout of a checkpoint's content; a checkpoint of another format is not used (the run starts over)
FORMAT = 1
#: checkpoints kept per run: the newest, and the one before in case the newest turns out damaged
KEEP_LAST = 2


@dataclass(frozen=True)
class CheckpointPolicy:
    """Where a run keeps its checkpoints and how often it writes them (a runner setting: it changes nothing
    a run computes, so it is not part of the run key).

    ``every_epochs`` > 0: after every that many epochs; else ``every_seconds`` > 0: at the first epoch end at
    least that long after the last checkpoint (or the run's start); both 0: never. ``keep``: the worker leaves
    the checkpoints of a finished run in place (:meth:`discard` does nothing)."""

    directory: Path
    every_epochs: int = 0
    every_seconds: float = 0.0
    keep: bool = False
    #: the run's key when the caller knows it (the worker does); else the run computes it, which for an image
    #: folder walks the whole folder once more
    run_key: str | None = None
    #: called with each checkpoint's path once it and its sidecar are written (the worker copies it to the
    #: tracking server, for machines that do not share the results folder); a failure costs a warning
    on_saved: Callable[[Path], None] | None = None

    def due(self, epochs_done: int, seconds_since_last: float) -> bool:
        if self.every_epochs > 0:
            return epochs_done % self.every_epochs == 0
        return self.every_seconds > 0 and seconds_since_last >= self.every_seconds

    def discard(self) -> None:
        """Remove this run's checkpoints (its result is recorded), unless asked to keep them."""
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)
            with contextlib.suppress(OSError):  # the sweep's checkpoints/ folder too, once no run has any left
                self.directory.parent.rmdir()


def _name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def _atomic_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written checkpoint left to fill it further
        tmp.unlink(missing_ok=True)
        raise


def save_checkpoint(directory: Path, run_key: str, epoch: int, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings and containers of them) as the checkpoint after ``epoch``
    epochs, then its sidecar, then drop all but the :data:`KEEP_LAST` newest; returns the checkpoint's path."""
    directory.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "run_key": run_key, "epoch": epoch, "state": state}, buf)
    data = buf.getvalue()
    path = directory / f"{_name(epoch)}.pt"
    _atomic_bytes(path, data)
    sidecar = {"format": FORMAT, "run_key": run_key, "epoch": epoch, "file": path.name, "bytes": len(data),
               "sha256": hashlib.sha256(data).hexdigest()}
    # the sidecar last: a checkpoint without one was never finished, and is not read
    _atomic_bytes(directory / f"{_name(epoch)}.json", json.dumps(sidecar).encode())
    for old in checkpoint_sidecars(directory)[KEEP_LAST:]:
        for p in (old, old.with_suffix(".pt")):
            p.unlink(missing_ok=True)
    return path


def read_checkpoints(directory: Path, run_key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """The verified checkpoints of run ``run_key`` as ``(epoch, state)``, newest first, each read only when
    asked for (a resume reads one); each one skipped is logged as a warning. The bytes are checked against the
    sidecar's sha256 before ``torch.load`` sees them, and ``torch.load`` reads them with ``weights_only=True``
    (no arbitrary object is ever unpickled)."""
    for sidecar in checkpoint_sidecars(directory):
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            data = (directory / str(meta["file"])).read_bytes()
            if len(data) != meta["bytes"] or hashlib.sha256(data).hexdigest() != meta["sha256"]:
                raise ValueError("its size or sha256 differs from its sidecar's (truncated or damaged)")
            content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            if content.get("format") != FORMAT or content.get("run_key") != run_key:
                raise ValueError(f"format {content.get('format')} of run {content.get('run_key')}, "
                                 f"not format {FORMAT} of run {run_key}")
            epoch, state = int(content["epoch"]), content["state"]
        except Exception as exc:  # any damage at all: the checkpoint is not used
            log.warning("checkpoint %s is not usable (%s: %s); trying the one before",
                        sidecar.with_suffix(".pt"), exc.__class__.__name__, str(exc).splitlines()[0][:300])
            continue
        yield epoch, state


class RunCheckpoints:
    """The checkpoints of one training run: what to save at an epoch end, and the state to resume from.

    Saved: the model's, optimizer's, LR scheduler's and GradScaler's state, the RNG states (torch CPU, and
    CUDA when present) and ``progress``, a dict of whatever the training loop has accumulated so far (curves,
    logs, counters: the caller's, plain values)."""

    def __init__(self, policy: CheckpointPolicy, run_key: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler) -> None:
        self.policy, self.run_key = policy, run_key
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.last_save = time.monotonic()

    def _state(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def _apply(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # a disabled scaler saves {} (and must not be given it back)
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])

    def resume(self, epochs: int) -> tuple[int, dict[str, Any]] | None:
        """Restore the newest good checkpoint of a run of ``epochs`` epochs: ``(epochs done, progress)``, or
        None (nothing restored: start from epoch 0). Call it before the first epoch."""
        fresh: dict[str, Any] = {}
        for epoch, state in read_checkpoints(self.policy.directory, self.run_key):
            fresh = fresh or copy.deepcopy(self._state())  # to undo a restore that fails half-way
            try:
                if not 0 < epoch < epochs:
                    raise ValueError(f"epoch {epoch} is outside 1..{epochs - 1}")
                self._apply(state)
                progress = state["progress"]
            except Exception as exc:  # a checkpoint of other code (another model): not ours to resume from
                log.warning("checkpoint after epoch %d of run %s does not fit this run (%s: %s); trying the one "
                            "before", epoch, self.run_key, exc.__class__.__name__, str(exc).splitlines()[0][:300])
                self._apply(fresh)
                continue
            log.info("run %s resumes after epoch %d of %d", self.run_key, epoch, epochs)
            self.last_save = time.monotonic()
            return epoch, progress
        if checkpoint_sidecars(self.policy.directory):
            log.warning("no usable checkpoint of run %s: it starts from epoch 0", self.run_key)
        return None

    def epoch_end(self, epochs_done: int, progress: dict[str, Any]) -> bool:
        """Save a checkpoint after ``epochs_done`` epochs when the policy says it is due; True when saved."""
        if not self.policy.due(epochs_done, time.monotonic() - self.last_save):
            return False
        try:
            path = save_checkpoint(self.policy.directory, self.run_key, epochs_done,
                                   {**self._state(), "progress": progress})
        except OSError as exc:  # a full or lost disk costs the run its resume point, not its result
            log.warning("run %s: no checkpoint after epoch %d (%s)", self.run_key, epochs_done, exc)
            return False
        finally:
            self.last_save = time.monotonic()
        if self.policy.on_saved is not None:
            try:
                self.policy.on_saved(path)
            except Exception as exc:  # a copy elsewhere is a convenience; the local checkpoint is written
                log.warning("run %s: checkpoint after epoch %d not copied (%s)", self.run_key, epochs_done,
                            str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__)
        return True
