"""MLflow tracking: one experiment per sweep, one MLflow run per run attempt.

Params are the resolved spec keys under their dotted names; metrics are the per-epoch curves (step = epoch,
logged from :func:`sesweep.train.train`'s ``on_epoch`` hook, one batch per epoch) and the final metrics;
tags say ``run_key``, ``sweep``, ``variant``, ``seed``, ``status``, ``code_version``, ``results_version`` and
``data_id`` (of the code and data that computed the result, also for an adopted one). The default store
is ``sqlite:///results/<name>/mlflow.db``; a server's URI works the same way.

Tracking is a side channel: every MLflow call is guarded, a failure is warned about and recorded
(``TrackedRun.errors``), and the run itself — its JSON and its trial — is never lost to it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from sesweep.plan import Run
from sesweep.spec import flatten

log = logging.getLogger(__name__)

#: MLflow's limits per log_batch call
_MAX_PARAMS, _MAX_METRICS = 100, 1000


def default_tracking_uri(name: str, results_dir: str | Path = "results") -> str:
    """``sqlite:///<abs results>/<name>/mlflow.db`` (MLflow's own default store kind, kept inside results/)."""
    path = (Path(results_dir) / name / "mlflow.db").resolve()
    return f"sqlite:///{path}"


@functools.cache
def code_version() -> str:
    """The code that computed a run: ``<package version>[+g<commit>[.dirty]]``, e.g. ``0.1.0+g895d768a1b2c.dirty``.

    The one source of truth for every record's ``code_version`` and every MLflow run's tag. The commit (12 hex
    digits) and the ``.dirty`` flag (tracked files differ from the commit) come from git when the package runs
    from its own checkout; installed without git, or from a wheel, it is the package version alone.
    """
    from sesweep import __version__

    package = __version__
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        package = version("sesweep")
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "--no-optional-locks", *args], cwd=here, capture_output=True, text=True,
                                 timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    commit = git("rev-parse", "--short=12", "HEAD") if top else None
    if not top or not commit or Path(top).resolve() != here.parent:  # not sesweep's own checkout
        return package
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{package}+g{commit}{'.dirty' if dirty else ''}"


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value is not None


class Tracker:
    """The MLflow side of one sweep (one experiment); creates a :class:`TrackedRun` per attempt."""

    def __init__(self, uri: str, experiment: str, artifact_dir: str | Path | None = None) -> None:
        self.uri = uri
        self.experiment = experiment
        self.artifact_dir = Path(artifact_dir).resolve() if artifact_dir is not None else None
        self._client: Any = None
        self._experiment_id: str | None = None

    # -- setup ------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def setup(self) -> str | None:
        """Create the store and the experiment if needed; returns the experiment id (None when it failed)."""
        try:
            return self.experiment_id()
        except Exception as exc:
            _warn(f"cannot set up MLflow tracking at {self.uri}: {exc}")
            return None

    def experiment_id(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        client = self.client
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            location = self.artifact_dir.as_uri() if self.artifact_dir is not None and self._local_store() else None
            try:
                self._experiment_id = client.create_experiment(self.experiment, artifact_location=location)
            except Exception:  # another worker created it first
                exp = client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            self._experiment_id = exp.experiment_id
        assert self._experiment_id is not None
        return self._experiment_id

    def _local_store(self) -> bool:
        return self.uri.startswith(("sqlite:", "file:")) or "://" not in self.uri

    # -- runs -------------------------------------------------------------------------------------

    def start(self, run: Run, trial: int | None = None, sweep: str | None = None) -> TrackedRun:
        """An MLflow run for one training attempt (status RUNNING); older RUNNING attempts are marked KILLED."""
        tracked = TrackedRun(self, run, sweep or self.experiment)
        try:
            from mlflow.entities import Param

            client = self.client
            eid = self.experiment_id()
            for old in self._find(eid, run.key, "RUNNING"):
                client.set_tag(old.info.run_id, "status", "lost")
                client.set_terminated(old.info.run_id, "KILLED")
            tags = {**self._tags(run, tracked.sweep, "running"), "trial": str(trial) if trial is not None else ""}
            mlrun = client.create_run(eid, tags=tags, run_name=f"{run.variant} seed {run.seed}")
            tracked.run_id = mlrun.info.run_id
            params = [Param(k, _param_value(v)) for k, v in flatten(run.spec).items()]
            for i in range(0, len(params), _MAX_PARAMS):
                client.log_batch(tracked.run_id, params=params[i : i + _MAX_PARAMS])
        except Exception as exc:
            tracked.error(f"cannot start the MLflow run: {exc}")
        return tracked

    def log_completed(self, run: Run, payload: dict[str, Any], sweep: str | None = None) -> dict[str, Any]:
        """Log a result that was not trained here (adopted from disk), unless this experiment has it already."""
        try:
            eid = self.experiment_id()
            existing = self._find(eid, run.key, "FINISHED")
            if existing:
                return {"run_id": existing[0].info.run_id}
        except Exception as exc:
            _warn(f"MLflow lookup of run {run.key} failed: {exc}")
            return {"error": str(exc)}
        tracked = self.start(run, sweep=sweep)
        if tracked.run_id is not None:
            tracked.set_tag("adopted", "true")
            for tag in ("code_version", "results_version", "data_id"):  # what computed it, not this worker
                if payload["record"].get(tag) is not None:
                    tracked.set_tag(tag, str(payload["record"][tag]))
            for row in payload.get("curves", []):
                tracked.on_epoch(row)
            tracked.finish(payload)
        return {"run_id": tracked.run_id, "error": "; ".join(tracked.errors)}

    def _find(self, eid: str, key: str, status: str) -> list[Any]:
        return list(self.client.search_runs([eid], filter_string=f"tags.run_key = '{key}' and "
                                                                 f"attributes.status = '{status}'", max_results=10))

    def _tags(self, run: Run, sweep: str, status: str) -> dict[str, str]:
        from sesweep.spec import RESULTS_VERSION

        return {"run_key": run.key, "sweep": sweep, "variant": run.variant, "seed": str(run.seed),
                "status": status, "code_version": code_version(), "results_version": str(RESULTS_VERSION),
                "data_id": run.data_id or ""}


class TrackedRun:
    """One MLflow run; every method is safe to call after a tracking failure (it then does nothing)."""

    def __init__(self, tracker: Tracker, run: Run, sweep: str) -> None:
        self.tracker = tracker
        self.run = run
        self.sweep = sweep
        self.run_id: str | None = None
        self.errors: list[str] = []
        self._curve_last: dict[str, tuple[int, float]] = {}

    def error(self, message: str) -> None:
        self.errors.append(message)
        _warn(f"tracking run {self.run.key} ({self.run.variant} seed {self.run.seed}): {message}")
        if len(self.errors) > 3:  # a dead tracking server: stop trying for this run
            self.run_id = None

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
        from sesweep.train import METRICS

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
        client = self.tracker.client
        try:
            for i in range(0, len(metrics), _MAX_METRICS):
                client.log_batch(self.run_id, metrics=metrics[i : i + _MAX_METRICS],
                                 tags=[RunTag("status", str(record.get("status", "finished"))),
                                       RunTag("reason", str(record.get("reason", "")))])
            if self.tracker._local_store():
                client.log_dict(self.run_id, payload, "run.json")
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


def _warn(message: str) -> None:
    warnings.warn(f"sesweep tracking: {message}", RuntimeWarning, stacklevel=3)
