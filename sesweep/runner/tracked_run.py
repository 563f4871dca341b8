"""One training attempt's MLflow run (nested under the sweep's run, see :mod:`sesweep.runner.tracking`): its
per-epoch curves, an adaptive SE's learned widths, final metrics, artifacts and end state."""

from __future__ import annotations

import math
import re
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sesweep.results import METRICS

if TYPE_CHECKING:
    from sesweep.plan import Run
    from sesweep.runner.tracking import Tracker

#: MLflow's limit of metrics per log_batch call
_MAX_METRICS = 1000


class TrackedRun:
    """One MLflow run; every method is safe to call after a tracking failure (it then does nothing)."""

    def __init__(self, tracker: Tracker, run: Run, sweep: str) -> None:
        self.tracker = tracker
        self.run = run
        self.sweep = sweep
        self.run_id: str | None = None
        self.errors: list[str] = []
        self._curve_last: dict[str, tuple[int, float]] = {}
        #: checkpoints copied to the server so far (:func:`sesweep.runner.remote_checkpoints.upload`'s slot)
        self.checkpoint_uploads = 0

    def error(self, message: str) -> None:
        self.errors.append(message)
        warn(f"tracking run {self.run.key} ({self.run.variant} seed {self.run.seed}): {message}")
        from sesweep.runner.outage import unreachable

        if len(self.errors) > 3 or unreachable(self.tracker.uri) is not None:  # a dead server: stop trying
            self.run_id = None  # (the worker marks the run tracking_pending; it is logged when the server is back)

    def set_tag(self, key: str, value: str) -> None:
        if self.run_id is None:
            return
        try:
            self.tracker.client.set_tag(self.run_id, key, value)
        except Exception as exc:
            self.error(f"set_tag failed: {exc}")

    def on_epoch(self, row: dict[str, Any]) -> None:
        """Log one epoch's curve row (``epoch`` is the step); the ``on_epoch`` hook of ``train``."""
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        step = int(row.get("epoch", 0))
        now = int(time.time() * 1000)
        metrics = []
        for k, v in row.items():
            if k == "epoch" or not _is_number(v):
                continue
            metrics.append(Metric(k, float(v), now, step))
            self._curve_last[k] = (step, float(v))
        try:
            self.tracker.client.log_batch(self.run_id, metrics=metrics)
        except Exception as exc:
            self.error(f"log_batch failed: {exc}")

    def finish(self, payload: dict[str, Any]) -> None:
        """Final metrics, status tag, the run JSON as an artifact, and FINISHED."""
        if self.run_id is None:
            return
        from mlflow.entities import Metric, RunTag

        record = payload["record"]
        step = int(record.get("epochs_done") or 0)
        now = int(time.time() * 1000)
        metrics = []
        for k in METRICS:
            v = record.get(k)
            if not _is_number(v):
                continue
            last = self._curve_last.get(k)
            if (last is not None and last[1] == float(v)) or math.isnan(float(v)):
                continue  # already the last point of its curve
            metrics.append(Metric(k, float(v), now, step))
        metrics += adaptive_metrics(payload.get("adaptive") or [], now)
        client = self.tracker.client
        try:
            for i in range(0, max(1, len(metrics)), _MAX_METRICS):
                client.log_batch(self.run_id, metrics=metrics[i : i + _MAX_METRICS],
                                 tags=[RunTag("status", str(record.get("status", "finished"))),
                                       RunTag("reason", str(record.get("reason", "")))])
        except Exception as exc:
            self.error(f"logging the final metrics failed: {exc}")
        try:
            client.log_dict(self.run_id, payload, "run.json")
            if payload.get("excitation"):
                client.log_dict(self.run_id, {"probe": payload.get("excitation_probe") or {},
                                              "excitation": payload["excitation"]}, "excitation.json")
        except Exception as exc:
            self.error(f"logging the run's artifacts failed: {exc}")
        if self.run_id is None:
            return
        try:
            client.set_terminated(self.run_id, "FINISHED")
        except Exception as exc:
            self.error(f"finishing the MLflow run failed: {exc}")

    def fail(self, status: str, reason: str) -> None:
        if self.run_id is None:
            return
        try:
            client = self.tracker.client
            client.set_tag(self.run_id, "status", status)
            client.set_tag(self.run_id, "reason", reason[:5000])
            client.set_terminated(self.run_id, "KILLED" if status == "interrupted" else "FAILED")
        except Exception as exc:
            self.error(f"marking the MLflow run {status} failed: {exc}")


_BLOCK = re.compile(r"^layer(\d+)\.(\d+)(\.|$)")


def _block_name(block: str) -> tuple[str, str | None]:
    """``layer1.0.attn_branch`` → (``stage2.block0``, ``stage2``): SENet's stage naming (stage k =
    ``layer{k-1}``); a name of another form is kept as it is, without a stage."""
    m = _BLOCK.match(block)
    if m is None:
        return block, None
    stage = f"stage{int(m.group(1)) + 1}"
    return f"{stage}.block{m.group(2)}", stage


def adaptive_metrics(log_rows: Sequence[dict[str, Any]], timestamp: int) -> list[Any]:
    """An adaptive SE's learned widths as MLflow metrics, step = epoch, from its adaptive log: per block the
    effective width ``width/stage2.block0`` and ratio ``learned_r/stage2.block0``, and per stage the mean ratio
    of its blocks ``learned_r/stage2``."""
    from mlflow.entities import Metric

    out = []
    stages: dict[tuple[str, int], list[float]] = defaultdict(list)
    for row in log_rows:
        step, block = int(row.get("epoch", 0)), str(row.get("block", ""))
        name, stage = _block_name(block)
        width, ratio = row.get("effective_width"), row.get("effective_ratio")
        if _is_number(width) and math.isfinite(width):
            out.append(Metric(f"width/{name}", float(width), timestamp, step))
        if _is_number(ratio) and math.isfinite(ratio):
            out.append(Metric(f"learned_r/{name}", float(ratio), timestamp, step))
            if stage is not None:
                stages[stage, step].append(float(ratio))
    out += [Metric(f"learned_r/{stage}", sum(v) / len(v), timestamp, step) for (stage, step), v in stages.items()]
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value is not None


def warn(message: str) -> None:
    warnings.warn(f"sesweep tracking: {message}", RuntimeWarning, stacklevel=3)
