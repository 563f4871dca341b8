"""MLflow tracking: one experiment per sweep, one parent run per sweep, one nested MLflow run per run attempt.

The sweep's run (name = sweep name, tags ``sesweep.role=sweep``, ``sweep``, ``results_version``,
``code_version``) is created once per tracking store and results version (:meth:`Tracker.sweep_run`): found
by its tags, else created and then reconciled with any run another worker created at the same moment (the
oldest wins, the others delete their own), and remembered in the Optuna study's user attributes, which every
later worker reads first. It holds the sweep's spec (``sweep.yaml``, ``manifest.json``) from
:func:`start_sweep`, its tables (``tables/``) from ``sesweep aggregate`` and its report (``report/``,
``report/figures/``) from ``sesweep report`` (:func:`log_sweep_outputs`, replacing the older copies).

Every training run (:mod:`sesweep.runner.tracked_run`) is nested under it (tag ``mlflow.parentRunId``). Its
params are the spec keys that apply to it (:func:`logged_params`: a plain ResNet logs no SE knob); metrics are
the per-epoch curves (step = epoch, logged from :func:`sesweep.training.train.train`'s ``on_epoch`` hook, one
batch per epoch), an adaptive SE's learned widths per epoch (``width/stage2.block0``,
``learned_r/stage2.block0``, the stage mean ``learned_r/stage2``; from the run's adaptive log) and the final
metrics; artifacts are ``run.json`` and, for an SE run, ``excitation.json`` (SENet Fig. 6: mean excitation per
channel and class, and its probe); tags say ``run_key``, ``sweep``, ``variant``, ``seed``, ``status``,
``code_version``, ``results_version`` and ``data_id`` (of the code and data that computed the result, also for
an adopted one). The default store is ``sqlite:///results/<name>/mlflow.db``; a server's URI works the same way
(``results/<name>/tracking.json`` then names it, for ``aggregate`` and ``report``).

Tracking is a side channel: every MLflow call is guarded, a failure is warned about and recorded
(``TrackedRun.errors``), and the run itself — its JSON and its trial — is never lost to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sesweep.results import code_version
from sesweep.run_identity import inert_keys
from sesweep.runner import mlflow_store
from sesweep.runner.outage import shorten_http_retries, unreachable
from sesweep.runner.tracked_run import TrackedRun, warn
from sesweep.spec import RunSpec, flatten

if TYPE_CHECKING:  # the plan only as a type: aggregate and report log through this module without it
    from sesweep.plan import Run

log = logging.getLogger(__name__)

#: MLflow's limits per log_batch call
_MAX_PARAMS = 100
#: the tag that marks a sweep's own (parent) run
ROLE_TAG = "sesweep.role"
#: MLflow 3's UI opens an experiment on what its kind says: without it, on the GenAI traces overview (empty
#: here); "custom_model_development" opens it on the training runs
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
#: seconds a worker that has just created the sweep's run waits before it looks for others created at the same
#: moment (longer than a creation takes to become visible, and than the clock skew between its workers)
SETTLE_SECONDS = 1.0
#: a non-default tracking URI of a sweep, for ``aggregate`` and ``report``: ``results/<name>/<this>``
POINTER_FILE = "tracking.json"


def default_tracking_uri(name: str, results_dir: str | Path = "results") -> str:
    """``sqlite:///<abs results>/<name>/mlflow.db`` (MLflow's own default store kind, kept inside results/)."""
    path = (Path(results_dir) / name / "mlflow.db").resolve()
    return f"sqlite:///{path}"


def logged_params(spec: RunSpec) -> dict[str, Any]:
    """The spec keys that apply to a run, logged as its MLflow params: every resolved key except the knobs the
    variant does not use (:func:`sesweep.run_identity.inert_keys`, the same rule that keeps them out of its run key: a
    plain ResNet's SE settings, a fixed SE's cost-term settings)."""
    unused = inert_keys(spec)
    return {k: v for k, v in flatten(spec).items() if k not in unused}


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class Tracker:
    """The MLflow side of one sweep (one experiment); creates a :class:`TrackedRun` per attempt."""

    def __init__(self, uri: str, experiment: str, artifact_dir: str | Path | None = None) -> None:
        self.uri = uri
        self.experiment = experiment
        self.artifact_dir = Path(artifact_dir).resolve() if artifact_dir is not None else None
        # MLflow prints "View run … at: URL" to the process's stdout when a run ends against a server; stdout is
        # the commands' results (``--json``), and worker processes do not share the parent's redirection
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        shorten_http_retries()
        #: a run of this worker was not (fully) logged: it is ``tracking_pending`` (see tracking_outage.catch_up)
        self.missed = False
        #: the sweep's own run, parent of every training run (:meth:`sweep_run`); None: not nested
        self.parent_run_id: str | None = None
        self._client: Any = None
        self._experiment_id: str | None = None

    # -- setup ------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
            logging.getLogger("alembic").setLevel(logging.WARNING)
            mlflow_store.prepare(self.uri)  # a new SQLite store: a copy of a migrated empty one (seconds saved)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def setup(self) -> str | None:
        """Create the store and the experiment if needed; returns the experiment id (None when it failed)."""
        try:
            return self.experiment_id()
        except Exception as exc:
            warn(f"cannot set up MLflow tracking at {self.uri}: {exc}")
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
        if exp is None or exp.tags.get(KIND_TAG) != MODEL_TRAINING:
            client.set_experiment_tag(self._experiment_id, KIND_TAG, MODEL_TRAINING)
        return self._experiment_id

    def _local_store(self) -> bool:
        return self.uri.startswith(("sqlite:", "file:")) or "://" not in self.uri

    # -- the sweep's own run ----------------------------------------------------------------------

    def sweep_run(self, study: Any = None, *, create: bool = True, ended: bool = False) -> str | None:
        """The id of the sweep's own MLflow run, the parent of its training runs: found, or created once.

        Looked up in ``study``'s user attributes (the Optuna study of the sweep: every worker shares it), else
        by its tags in this store; created only when neither has it. Workers that create it at the same moment
        each wait :data:`SETTLE_SECONDS`, look again and agree on the oldest (by start time, then id); each
        deletes its own if it is not that one. The id is then written to the study. None when tracking fails
        (warned) or, with ``create=False``, when there is none. ``ended``: a run created here is FINISHED at
        once (created by ``aggregate`` or ``report``, not by a running sweep).
        """
        if self.parent_run_id is not None:
            return self.parent_run_id
        try:
            run_id = self._study_parent(study)
            if run_id is None:
                run_id = self._converge_parent(create, ended)
                if run_id is not None and study is not None:
                    study.set_user_attr(self._study_attr(), {"run_id": run_id, "experiment_id": self.experiment_id()})
        except Exception as exc:
            warn(f"cannot find or create the MLflow run of sweep {self.experiment}: {exc}")
            return None
        self.parent_run_id = run_id
        return run_id

    def _study_attr(self) -> str:
        """The study user attribute naming the sweep's run in this store (one per store and results version;
        the URI is hashed: it may hold a password)."""
        from sesweep.run_identity import RESULTS_VERSION

        return f"mlflow_sweep_run:v{RESULTS_VERSION}:{hashlib.sha256(self.uri.encode()).hexdigest()[:12]}"

    def _study_parent(self, study: Any) -> str | None:
        if study is None:
            return None
        entry = study.user_attrs.get(self._study_attr())
        run_id = entry.get("run_id") if isinstance(entry, dict) else None
        if not run_id:
            return None
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:  # not in this store (another machine's store at the same path)
            return None
        if run.info.experiment_id != self.experiment_id() or run.data.tags.get(ROLE_TAG) != "sweep":
            return None
        if run.info.lifecycle_stage == "deleted":
            self.client.restore_run(run_id)
        return run_id

    def _parents(self) -> list[Any]:
        from sesweep.run_identity import RESULTS_VERSION

        query = (f"tags.`{ROLE_TAG}` = 'sweep' and tags.sweep = '{_quote(self.experiment)}' and "
                 f"tags.results_version = '{RESULTS_VERSION}'")
        return list(self.client.search_runs([self.experiment_id()], filter_string=query, max_results=100))

    def _converge_parent(self, create: bool, ended: bool = False) -> str | None:
        from sesweep.run_identity import RESULTS_VERSION

        found = self._parents()
        created = None
        if not found:
            if not create:
                return None
            tags = {ROLE_TAG: "sweep", "sweep": self.experiment, "results_version": str(RESULTS_VERSION),
                    "code_version": code_version()}
            created = self.client.create_run(self.experiment_id(), tags=tags, run_name=self.experiment).info.run_id
            time.sleep(SETTLE_SECONDS)  # let a run another worker created at the same moment become visible
            found = self._parents()
            if created not in {r.info.run_id for r in found}:
                found.append(self.client.get_run(created))
        winner = min(found, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id
        if created is not None and created != winner:
            self.client.delete_run(created)  # another worker's came first
        elif created is not None and ended:
            self.client.set_terminated(created, "FINISHED")
        self._nest_orphans(winner)
        return winner

    def _nest_orphans(self, parent: str) -> None:
        """Nest this sweep's training runs of this results version that have no parent (logged before sweeps
        had their own run) under ``parent``."""
        from sesweep.run_identity import RESULTS_VERSION

        query = f"tags.sweep = '{_quote(self.experiment)}' and tags.results_version = '{RESULTS_VERSION}'"
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id()], filter_string=query, max_results=1000,
                                           page_token=token)
            for run in page:
                tags = run.data.tags
                if tags.get(ROLE_TAG) != "sweep" and "mlflow.parentRunId" not in tags and "run_key" in tags:
                    self.client.set_tag(run.info.run_id, "mlflow.parentRunId", parent)
            token = page.token
            if not token:
                break

    def log_files(self, run_id: str, artifact_path: str, paths: Sequence[Any]) -> None:
        """Replace the run's ``artifact_path`` folder by ``paths`` (files, or objects with ``png``/``pdf``
        files): each goes under ``artifact_path``, at its place relative to the first file's folder (so
        ``report/figures/x.png`` keeps its subfolder), or by name when it lies elsewhere."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        files = [Path(f) for p in paths for f in ((p.png, p.pdf) if hasattr(p, "png") else (p,))]
        files = [f for f in files if f.is_file()]
        if not files:
            return
        base = files[0].resolve().parent
        repo = get_artifact_repository(self.client.get_run(run_id).info.artifact_uri, tracking_uri=self.uri)
        with contextlib.suppress(Exception):  # nothing there yet (or a store that cannot delete: overwritten)
            repo.delete_artifacts(artifact_path)
        for f in files:
            try:
                rel = f.resolve().relative_to(base).parent.as_posix()
            except ValueError:
                rel = "."
            self.client.log_artifact(run_id, str(f), artifact_path if rel == "." else f"{artifact_path}/{rel}")

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
            if self.parent_run_id is not None:
                tags["mlflow.parentRunId"] = self.parent_run_id
            mlrun = client.create_run(eid, tags=tags, run_name=f"{run.variant} seed {run.seed}")
            tracked.run_id = mlrun.info.run_id
            params = [Param(k, _param_value(v)) for k, v in logged_params(run.spec).items()]
            for i in range(0, len(params), _MAX_PARAMS):
                client.log_batch(tracked.run_id, params=params[i : i + _MAX_PARAMS])
        except Exception as exc:
            tracked.error(f"cannot start the MLflow run: {exc}")
        return tracked

    def log_completed(self, run: Run, payload: dict[str, Any], sweep: str | None = None,
                      late: bool = False) -> dict[str, Any]:
        """Log a result that was not trained in this MLflow run, unless this experiment has it already: adopted
        from disk, or (``late``) trained while the tracking server was away (tag ``logged_late``)."""
        try:
            eid = self.experiment_id()
            existing = self._find(eid, run.key, "FINISHED")
            if existing:
                if self.parent_run_id is not None and "mlflow.parentRunId" not in existing[0].data.tags:
                    self.client.set_tag(existing[0].info.run_id, "mlflow.parentRunId", self.parent_run_id)
                return {"run_id": existing[0].info.run_id}
        except Exception as exc:
            warn(f"MLflow lookup of run {run.key} failed: {exc}")
            return {"error": str(exc)}
        tracked = self.start(run, sweep=sweep)
        if tracked.run_id is not None:
            tracked.set_tag("logged_late" if late else "adopted", "true")
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
        from sesweep.run_identity import RESULTS_VERSION

        return {"run_key": run.key, "sweep": sweep, "variant": run.variant, "seed": str(run.seed),
                "status": status, "code_version": code_version(), "results_version": str(RESULTS_VERSION),
                "data_id": run.data_id or ""}


# --------------------------------------------------------------------------------------------------
# the sweep's own run: at the start of a sweep, and the outputs of aggregate and report


def start_sweep(plan: Any, study: Any, uri: str, results_dir: str | Path, training: bool = True) -> Tracker:
    """At the start of a sweep (before its workers): the store, the experiment and the sweep's own run (with
    ``sweep.yaml`` and ``manifest.json`` from ``results_dir/<name>/``, and the spec's description as its note);
    a non-default ``uri`` is written to ``results/<name>/tracking.json`` for ``aggregate`` and ``report``.
    ``training``: runs are left to train, so the sweep's run is RUNNING again; a ``sesweep run`` with nothing to
    train leaves an ended run as it is (its end time, and so its duration, stay the sweep's).
    Returns the tracker (its ``parent_run_id`` is None when tracking failed: warned, never raised)."""
    folder = Path(results_dir) / plan.name
    tracker = Tracker(uri, plan.name, artifact_dir=folder / "mlartifacts")
    _write_pointer(folder, uri, plan.name)
    down = unreachable(uri)
    if down is not None:
        log.warning("the MLflow server at %s does not answer (%s): runs go on untracked and are logged to it when "
                    "it answers again", uri, down)
        return tracker
    if tracker.setup() is None:
        return tracker
    run_id = tracker.sweep_run(study)
    if run_id is None:
        return tracker
    try:
        client = tracker.client
        if getattr(plan, "description", ""):
            client.set_tag(run_id, "mlflow.note.content", plan.description)
        if training and client.get_run(run_id).info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        _log_spec(tracker, run_id, folder)
    except Exception as exc:
        warn(f"cannot log the spec of sweep {plan.name} to MLflow: {exc}")
    return tracker


def _log_spec(tracker: Tracker, run_id: str, folder: Path) -> None:
    """The sweep's ``sweep.yaml`` and ``manifest.json`` (written by the runner) at the top of its run."""
    for name in ("sweep.yaml", "manifest.json"):
        if (folder / name).is_file():
            tracker.client.log_artifact(run_id, str(folder / name))


def end_sweep(tracker: Tracker, status: Any) -> None:
    """The sweep's run ends FINISHED when every run is done, FAILED when the rest failed for good; it stays
    RUNNING while runs are left (another worker may still hold them; a seed policy may still allocate some). A
    run already ended so is left alone: ending it again would move its end time to now (a re-run that trained
    nothing, a late worker)."""
    if tracker.parent_run_id is None or not status.complete:
        return
    try:
        ended = "FINISHED" if status.succeeded else "FAILED"
        if tracker.client.get_run(tracker.parent_run_id).info.status != ended:
            tracker.client.set_terminated(tracker.parent_run_id, ended)
    except Exception as exc:
        warn(f"cannot end the MLflow run of sweep {tracker.experiment}: {exc}")


def _write_pointer(folder: Path, uri: str, name: str) -> None:
    pointer = folder / POINTER_FILE
    try:
        if uri == default_tracking_uri(name, folder.parent):
            pointer.unlink(missing_ok=True)
            return
        shown = re.sub(r"(://[^:/@]+):[^@/]*@", r"\1@", uri)  # never a password on disk
        folder.mkdir(parents=True, exist_ok=True)
        pointer.write_text(json.dumps({"tracking_uri": shown, "experiment": name}, indent=1) + "\n")
    except OSError as exc:
        warn(f"cannot write {pointer}: {exc}")


def sweep_tracking(results_dir: str | Path) -> tuple[str, str] | None:
    """(tracking URI, experiment) of the sweep whose results are in ``results_dir`` (``results/<name>``): the
    one ``tracking.json`` names, else its default store when that exists; None: the sweep is not tracked."""
    folder = Path(results_dir)
    pointer = folder / POINTER_FILE
    if pointer.is_file():
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
            doc = json.loads(pointer.read_text())
            return str(doc["tracking_uri"]), str(doc.get("experiment") or folder.name)
    if (folder / "mlflow.db").is_file():
        return default_tracking_uri(folder.name, folder.parent), folder.name
    return None


def log_sweep_outputs(results_dir: str | Path, artifact_path: str, paths: Sequence[Any]) -> str | None:
    """Log ``paths`` (files, or figures with ``png``/``pdf`` files) under ``artifact_path`` of the sweep's own
    MLflow run, replacing what an earlier call put there: ``sesweep aggregate`` logs ``tables/``, ``sesweep
    report`` ``report/`` (with ``report/figures/``). Returns the run id; None, doing nothing, when the sweep is
    not tracked (:func:`sweep_tracking`) or its experiment is not in the store; a tracking failure is warned
    about, never raised."""
    where = sweep_tracking(results_dir)
    if where is None:
        return None
    uri, experiment = where
    tracker = Tracker(uri, experiment)
    try:
        if tracker.client.get_experiment_by_name(experiment) is None:
            return None
        run_id = tracker.sweep_run(ended=True)
        if run_id is not None:
            tracker.log_files(run_id, artifact_path, paths)
            _log_spec(tracker, run_id, Path(results_dir))
        return run_id
    except Exception as exc:
        warn(f"cannot log {artifact_path}/ of sweep {experiment} to MLflow: {exc}")
        return None


def _quote(value: str) -> str:
    return value.replace("'", "\\'")
