"""The sweep runner: a durable queue on an Optuna study, local or remote workers, resumable outputs.

Shared state
    One Optuna study per sweep (study name = sweep name) on an RDB storage: by default
    ``sqlite:///results/<name>/optuna.db``, or any SQLAlchemy URL (PostgreSQL for several machines). Each
    attempt at a run is one trial whose user attributes carry ``run_key``, ``variant``, ``seed`` and
    ``status``; a finished run's trial also carries its whole result (record, curves, hidden widths), so
    any machine can rebuild the tables from the study alone.

Exactly once
    Workers take runs under a *sweep lock* (an OS file lock beside a SQLite database; a PostgreSQL
    advisory lock keyed by the study name): inside it a worker fails stale trials, reconciles the manifest
    against the study (every run key that has no finished trial, no live trial and retries left gets one
    WAITING trial), moves the first WAITING trial to RUNNING and records its heartbeat. Since nothing else
    creates or claims trials, a run key never has two live trials, so two workers never train the same run
    at the same time; finishing is also decided under the lock (a second finished result for a key is
    recorded as a duplicate, never as a second finished run). GridSampler is not used: Optuna does not
    promise exactly-once grid coverage, the reconciliation here does.

Failures
    ``diverged`` is a result (COMPLETE, never retried). An exception is recorded ``failed`` with its reason
    and retried at most ``max_retries`` times. A worker that dies (SIGKILL, out of memory, machine down)
    stops its heartbeat; after the grace period any worker fails the trial and the run is queued again
    (this counts as an attempt too, so a run that kills its worker every time is not retried forever).
    Ctrl-C / SIGTERM marks the trial ``interrupted``; it is queued again without counting as an attempt.

Outputs
    ``results/<name>/runs/<run_key>.json`` per finished run (atomic), and ``runs.csv`` / ``curves.csv``
    rebuilt from the JSONs of the current manifest after every run (atomic). A run key already finished
    in another sweep under the same results directory is adopted, not trained again.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sesweep.plan import UNRESOLVED, Plan, Run, check_data, load_plan
from sesweep.spec import RESULTS_VERSION, SpecError, flatten, schema_keys

log = logging.getLogger("sesweep.runner.sweep")

DEFAULT_RESULTS = "results"
#: seconds between heartbeats of a running trial (Optuna takes whole seconds)
DEFAULT_HEARTBEAT = 10
#: a running trial whose last heartbeat is older than this many heartbeat intervals is failed and retried
GRACE_INTERVALS = 3
#: statuses of a finished run (a COMPLETE trial)
DONE_STATUSES = ("finished", "diverged")
#: statuses of a failed attempt that count against ``max_retries`` (``running``/``queued`` on a FAIL
#: trial = its worker stopped its heartbeat: lost)
COUNTED_FAILURES = ("failed", "running", "queued")
#: how long a worker waits for the sweep lock before it gives up with an error
LOCK_TIMEOUT = 600.0


# --------------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class SweepConfig:
    """What every worker needs besides the plan; picklable for spawned processes."""

    storage: str
    results_dir: str
    tracking_uri: str | None            # None: no MLflow tracking
    max_retries: int = 1
    heartbeat_interval: int = DEFAULT_HEARTBEAT
    grace_period: int = GRACE_INTERVALS * DEFAULT_HEARTBEAT
    threads: int | None = None           # torch threads per worker; None: leave torch's default
    wait: bool = True                    # wait for runs other workers hold, to retry them if their worker dies

    @property
    def poll_interval(self) -> float:
        return max(0.5, min(float(self.heartbeat_interval), 5.0))


def sweep_dir(plan: Plan, results_dir: str | Path = DEFAULT_RESULTS) -> Path:
    return Path(results_dir) / plan.name


def default_storage(plan: Plan, results_dir: str | Path = DEFAULT_RESULTS) -> str:
    """``sqlite:///<abs results>/<name>/optuna.db`` (absolute, so spawned workers agree)."""
    return f"sqlite:///{(sweep_dir(plan, results_dir) / 'optuna.db').resolve()}"


def _config(plan: Plan, storage: str | None, results_dir: str | Path, tracking_uri: str | None, tracking: bool,
            max_retries: int, heartbeat_interval: int, grace_period: int | None, threads: int | None,
            wait: bool = True) -> SweepConfig:
    if max_retries < 0:
        raise SpecError("--max-retries", f"{max_retries} is out of range; allowed: >= 0")
    if int(heartbeat_interval) != heartbeat_interval or heartbeat_interval < 1:
        raise SpecError("--heartbeat", f"{heartbeat_interval!r} is not allowed; allowed: an integer >= 1 (seconds)")
    grace = GRACE_INTERVALS * int(heartbeat_interval) if grace_period is None else int(grace_period)
    if grace <= heartbeat_interval:
        raise SpecError("--grace", f"{grace} is not allowed; allowed: more than the heartbeat ({heartbeat_interval} s)")
    from sesweep.runner.tracking import default_tracking_uri

    uri = (tracking_uri or default_tracking_uri(plan.name, results_dir)) if tracking else None
    return SweepConfig(storage or default_storage(plan, results_dir), str(Path(results_dir).resolve()), uri,
                       max_retries, int(heartbeat_interval), grace, threads, wait)


# --------------------------------------------------------------------------------------------------
# storage, study and the sweep lock


def open_storage(url: str, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats; SQLite gets a long busy timeout and its folder created."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SpecError("--storage", f"{url!r} is not a database URL; allowed: sqlite:///PATH, "
                                     "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB, …") from None
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 120}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        engine_kwargs["pool_pre_ping"] = True
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    last: Exception | None = None
    for attempt in range(5):  # several processes creating the tables at once may collide: try again
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except ImportError as exc:
            raise SpecError("--storage", f"no database driver for {parsed.drivername}: {exc}; for PostgreSQL "
                                         "install psycopg (pip install 'psycopg[binary]') and use "
                                         "postgresql+psycopg://…") from None
        except Exception as exc:  # sqlalchemy / optuna errors while tables are being created
            last = exc
            time.sleep(0.2 + random.random() * (attempt + 1))
    raise RuntimeError(f"cannot open the sweep storage {parsed.render_as_string(hide_password=True)}: {last}")


def open_study(plan: Plan, storage: optuna.storages.BaseStorage) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name=plan.name, direction="minimize", load_if_exists=True)


class SweepLock:
    """A mutual-exclusion lock shared by every worker of one sweep, on every machine that shares its storage.

    SQLite: ``flock`` on ``<database>.lock`` (the database is on this machine's file system). PostgreSQL:
    a session-level advisory lock keyed by the study name, released by the server if the worker dies.
    Re-entrant within a thread.
    """

    def __init__(self, storage: optuna.storages.RDBStorage, study_name: str, timeout: float = LOCK_TIMEOUT) -> None:
        self.engine = storage.engine
        self.backend = self.engine.dialect.name
        self.study_name = study_name
        self.timeout = timeout
        self._local = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._conn: Any = None
        self._path: str | None = None
        if self.backend == "sqlite":
            db = self.engine.url.database
            self._path = f"{db}.lock" if db and db != ":memory:" else None
        elif self.backend not in ("postgresql", "mysql"):
            raise SpecError("--storage", f"{self.backend} is not supported; allowed: sqlite, postgresql, mysql")
        digest = hashlib.sha256(f"sesweep:{study_name}".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big", signed=True)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._local:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        if self.backend == "sqlite":
            if self._path is None:
                return
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    self._wait(deadline, delay)
                    delay = min(delay * 2, 0.2)
        from sqlalchemy import text

        self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        query = ("SELECT pg_try_advisory_lock(:key)" if self.backend == "postgresql"
                 else "SELECT GET_LOCK(:name, 0)")
        while not self._conn.execute(text(query), {"key": self._key, "name": f"sesweep:{self.study_name}"}).scalar():
            self._wait(deadline, delay)
            delay = min(delay * 2, 0.2)

    def _wait(self, deadline: float, delay: float) -> None:
        if time.monotonic() > deadline:
            self._release()
            raise TimeoutError(f"waited {self.timeout:.0f} s for the lock of sweep {self.study_name}")
        time.sleep(delay * (0.5 + random.random()))

    def _release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            from sqlalchemy import text

            with contextlib.suppress(Exception):
                query = ("SELECT pg_advisory_unlock(:key)" if self.backend == "postgresql"
                         else "SELECT RELEASE_LOCK(:name)")
                self._conn.execute(text(query), {"key": self._key, "name": f"sesweep:{self.study_name}"})
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class Heartbeat:
    """Records a trial's heartbeat every ``interval`` seconds in a daemon thread."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, interval: float) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{trial_id}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # a busy database must not kill the run; the next beat tries again
                log.warning("heartbeat of trial %s failed: %s", self.trial_id, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)


# --------------------------------------------------------------------------------------------------
# reconciling the manifest with the study


@dataclass
class KeyState:
    """What the study says about one run key."""

    run: Run
    done: FrozenTrial | None = None
    running: list[FrozenTrial] = field(default_factory=list)
    waiting: list[FrozenTrial] = field(default_factory=list)
    failures: list[FrozenTrial] = field(default_factory=list)   # attempts that count against max_retries
    last_failure: FrozenTrial | None = None                      # the latest failed or interrupted attempt

    @property
    def live(self) -> bool:
        return bool(self.running or self.waiting)

    def given_up(self, max_retries: int) -> bool:
        return self.done is None and not self.running and len(self.failures) > max_retries

    def state(self, max_retries: int) -> str:
        if self.done is not None:
            return str(self.done.user_attrs.get("status", "finished"))
        if self.running:
            return "running"
        if self.given_up(max_retries):
            return "failed"
        return "pending"


def _status(t: FrozenTrial) -> str:
    return str(t.user_attrs.get("status", ""))


def classify(plan: Plan, trials: Sequence[FrozenTrial], retry_from: int = 0) -> dict[str, KeyState]:
    """Manifest run keys → their state in the study (trials of keys outside the manifest are ignored)."""
    states = {r.key: KeyState(r) for r in plan.runs}
    for t in sorted(trials, key=lambda t: t._trial_id):
        state = states.get(t.user_attrs.get("run_key"))
        if state is None:
            continue
        if t.state == TrialState.COMPLETE and _status(t) in DONE_STATUSES:
            if state.done is None:
                state.done = t
        elif t.state == TrialState.RUNNING:
            state.running.append(t)
        elif t.state == TrialState.WAITING:
            state.waiting.append(t)
        elif t.state == TrialState.FAIL:
            state.last_failure = t
            if _status(t) in COUNTED_FAILURES and t._trial_id >= retry_from:
                state.failures.append(t)
    return states


def failure_reason(t: FrozenTrial, grace_period: int | None = None) -> str:
    status = _status(t)
    if status in ("running", "queued"):
        after = f" for more than {grace_period} s" if grace_period else ""
        return (f"worker {t.user_attrs.get('worker', '?')} lost: no heartbeat{after} "
                "(killed, out of memory, or its machine went down)")
    return str(t.user_attrs.get("reason", status))


def _retry_from(study: optuna.Study) -> int:
    return int(study.user_attrs.get("sesweep_retry_from", 0))


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _claim(plan: Plan, study: optuna.Study, lock: SweepLock, cfg: SweepConfig) -> tuple[str, Run | None, int | None]:
    """Under the sweep lock: reconcile, queue what is missing, take the next run.

    Returns ``("done", None, None)`` when every run has finished or failed for good, ``("wait", None, None)``
    when the rest is held by other workers, or ``("run", run, trial_id)``.
    """
    storage = study._storage
    with lock():
        _fail_stale(study)
        trials = study.get_trials(deepcopy=False)
        states = classify(plan, trials, _retry_from(study))
        todo = [r for r in plan.queue_order()
                if states[r.key].done is None and not states[r.key].given_up(cfg.max_retries)]
        if not todo:
            return "done", None, None
        for run in todo:
            if not states[run.key].live:
                study.enqueue_trial({}, user_attrs={"run_key": run.key, "sweep": plan.name, "variant": run.variant,
                                                    "seed": run.seed, "status": "queued"})
        queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        waiting = {t.user_attrs.get("run_key"): t for t in queued if t.user_attrs.get("run_key") in states}
        for run in todo:
            trial = waiting.get(run.key)
            if trial is None or states[run.key].running:
                continue
            storage.record_heartbeat(trial._trial_id)   # a heartbeat before RUNNING: never a RUNNING trial without one
            try:
                claimed = storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if not claimed:
                continue
            storage.set_trial_user_attr(trial._trial_id, "status", "running")
            storage.set_trial_user_attr(trial._trial_id, "worker", _worker_id())
            return "run", run, trial._trial_id
        return "wait", None, None


def _finish(plan: Plan, study: optuna.Study, lock: SweepLock, trial_id: int, run: Run,
            payload: dict[str, Any], extra: dict[str, Any]) -> str:
    """Under the sweep lock: record a finished run once. Returns ``recorded`` or ``duplicate``."""
    storage = study._storage
    status = payload["record"]["status"]
    top1 = payload["record"].get("top1_err")
    value = float(top1) if isinstance(top1, int | float) and math.isfinite(top1) else math.inf
    attrs = {"status": status, "result": payload, **extra}
    with lock():
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.user_attrs.get("run_key") == run.key and _status(t) in DONE_STATUSES and t._trial_id != trial_id]
        if done:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                storage.set_trial_user_attr(trial_id, "status", "duplicate")
                storage.set_trial_user_attr(trial_id, "reason", f"already finished in trial {done[0].number}")
                storage.set_trial_state_values(trial_id, TrialState.PRUNED)
            return "duplicate"
        try:
            for k, v in attrs.items():
                storage.set_trial_user_attr(trial_id, k, v)
            storage.set_trial_state_values(trial_id, TrialState.COMPLETE, values=[value])
        except optuna.exceptions.UpdateFinishedTrialError:
            # this worker was taken for dead (its heartbeat stalled) but did finish: keep the result once
            user_attrs = {"run_key": run.key, "sweep": plan.name, "variant": run.variant, "seed": run.seed,
                          "worker": _worker_id(), "recovered_from_trial": trial_id, **attrs}
            study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=value, user_attrs=user_attrs))
    return "recorded"


def _fail(study: optuna.Study, trial_id: int, status: str, reason: str, tb: str = "") -> None:
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, "status", status)
        storage.set_trial_user_attr(trial_id, "reason", reason[:2000])
        if tb:
            storage.set_trial_user_attr(trial_id, "traceback", tb[-8000:])
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


# --------------------------------------------------------------------------------------------------
# one worker


class _Interrupted(BaseException):
    """SIGTERM inside a worker: end the current run as ``interrupted`` and stop."""


@dataclass
class WorkerReport:
    trained: int = 0
    adopted: int = 0
    failed: int = 0
    duplicates: int = 0


def run_worker(plan: Plan, cfg: SweepConfig, on_run_done: Callable[[], None] | None = None) -> WorkerReport:
    """Take runs from the sweep's queue until none is left (see the module doc); the body of every worker."""
    from sesweep.runner.tracking import Tracker

    storage = open_storage(cfg.storage, cfg.heartbeat_interval, cfg.grace_period)
    study = open_study(plan, storage)
    lock = SweepLock(storage, plan.name)
    tracker = Tracker(cfg.tracking_uri, plan.name, artifact_dir=sweep_dir(plan, cfg.results_dir) / "mlartifacts") \
        if cfg.tracking_uri else None
    if tracker is not None:
        tracker.sweep_run(study)  # the sweep's own run (from the study, where run_sweep put it): the runs' parent
    data_cache: dict[tuple[Any, ...], Any] = {}
    report = WorkerReport()
    while True:
        action, run, trial_id = _claim(plan, study, lock, cfg)
        if action == "done":
            break
        if action == "wait":
            if not cfg.wait:
                break
            time.sleep(cfg.poll_interval * (0.75 + 0.5 * random.random()))
            continue
        assert run is not None and trial_id is not None
        heartbeat = Heartbeat(storage, trial_id, cfg.heartbeat_interval).start()
        try:
            outcome = _execute(plan, cfg, study, lock, trial_id, run, tracker, data_cache)
        finally:
            heartbeat.stop()
        setattr(report, outcome, getattr(report, outcome) + 1)
        write_tables(plan, cfg.results_dir, study)
        if on_run_done is not None:
            on_run_done()
    return report


def _execute(plan: Plan, cfg: SweepConfig, study: optuna.Study, lock: SweepLock, trial_id: int, run: Run,
             tracker: Any, data_cache: dict[tuple[Any, ...], Any]) -> str:
    """Train (or adopt) one claimed run and record it; returns the WorkerReport field to count."""
    found = find_result(run.key, plan, cfg.results_dir)
    if found is not None:
        path, payload = found
        payload = _with_identity(payload, plan, run)
        write_run_json(plan, cfg.results_dir, payload)
        extra: dict[str, Any] = {"adopted_from": str(path)}
        if tracker is not None:
            tracking = tracker.log_completed(run, payload)
            if tracking.get("error"):
                extra["tracking_error"] = tracking["error"]
        outcome = _finish(plan, study, lock, trial_id, run, payload, extra)
        log.info("%s seed %s: adopted the result in %s", run.variant, run.seed, path)
        return "adopted" if outcome == "recorded" else "duplicates"

    from sesweep.training.train import train

    tracked = tracker.start(run, trial=study._storage.get_trial(trial_id).number) if tracker is not None else None
    started = time.perf_counter()
    try:
        data = _data_for(run, data_cache)
        result = train(run.spec, data=data, progress=False, on_epoch=tracked.on_epoch if tracked else None)
    except (KeyboardInterrupt, _Interrupted):
        if tracked is not None:
            tracked.fail("interrupted", "worker interrupted")
        _fail(study, trial_id, "interrupted", "worker interrupted (Ctrl-C or SIGTERM)")
        raise
    except Exception as exc:
        reason = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        log.warning("%s seed %s failed: %s", run.variant, run.seed, reason)
        if tracked is not None:
            tracked.fail("failed", reason)
        _fail(study, trial_id, "failed", reason, traceback.format_exc())
        return "failed"
    payload = _with_identity(result_payload(result), plan, run)
    payload["record"].update(provenance(run))
    if payload["record"]["run_key"] != run.key:  # its data identity changed after the sweep was loaded
        reason = (f"recipe.data_root: the data changed while the sweep ran (run key {payload['record']['run_key']} "
                  f"now, {run.key} when the sweep was loaded); run the sweep again")
        if tracked is not None:
            tracked.fail("failed", reason)
        _fail(study, trial_id, "failed", reason)
        return "failed"
    write_run_json(plan, cfg.results_dir, payload)
    extra = {"wall_seconds": time.perf_counter() - started}
    if tracked is not None:
        tracked.finish(payload)
        if tracked.errors:
            extra["tracking_error"] = "; ".join(tracked.errors)[:2000]
    outcome = _finish(plan, study, lock, trial_id, run, payload, extra)
    rec = payload["record"]
    log.info("%s seed %s: %s, top1_err %.2f%% in %.1f s", run.variant, run.seed, rec["status"],
             rec.get("top1_err", float("nan")), extra["wall_seconds"])
    return "trained" if outcome == "recorded" else "duplicates"


#: recipe keys that decide which images a run sees (load_data reads nothing else)
DATA_KEYS = ("dataset", "data_root", "train_subset", "test_subset", "image_size")


def _data_for(run: Run, cache: dict[tuple[Any, ...], Any]) -> Any:
    from sesweep.training.data import load_data

    key = tuple(getattr(run.spec.recipe, k) for k in DATA_KEYS)
    if key not in cache:
        cache[key] = load_data(run.spec.recipe)
    return cache[key]


#: RunResult fields that are not per-run detail lists (they are in the record, or are the record)
_NOT_DETAIL = frozenset({"spec", "status", "metrics", "reason", "environment"})


def result_payload(result: Any) -> dict[str, Any]:
    """A run's durable record: ``{"record", "curves", "hidden_widths", …}`` — every detail list of the result
    (``excitation`` too) beside the flat record, so the report step needs nothing else."""
    payload: dict[str, Any] = {"record": result.record()}
    for f in dataclasses.fields(result):
        if f.name not in _NOT_DETAIL:
            payload[f.name] = getattr(result, f.name)
    return payload


def provenance(run: Run) -> dict[str, Any]:
    """What computed a run, recorded beside its result: ``results_version`` (part of its key), ``code_version``
    (:func:`sesweep.runner.tracking.code_version`) and ``data_id`` (:func:`sesweep.training.data.data_identity`)."""
    from sesweep.runner.tracking import code_version

    return {"results_version": RESULTS_VERSION, "code_version": code_version(), "data_id": run.data_id}


def _with_identity(payload: dict[str, Any], plan: Plan, run: Run) -> dict[str, Any]:
    record = {**payload["record"], "sweep": plan.name, "variant": run.variant, "seed": run.seed}
    return {**payload, "record": record, "curves": payload.get("curves", []),
            "hidden_widths": payload.get("hidden_widths", [])}


# --------------------------------------------------------------------------------------------------
# outputs


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_json_path(plan: Plan, results_dir: str | Path, key: str) -> Path:
    return sweep_dir(plan, results_dir) / "runs" / f"{key}.json"


def write_run_json(plan: Plan, results_dir: str | Path, payload: dict[str, Any]) -> Path:
    path = run_json_path(plan, results_dir, payload["record"]["run_key"])
    _atomic_write(path, json.dumps(payload, indent=1, default=str))
    return path


def read_run_json(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("record"), dict):
        return None
    return payload


def find_result(key: str, plan: Plan, results_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """A finished result for ``key`` already on disk: this sweep's runs/ first, then any other sweep's.

    Only a record of this results version and of the same data is taken (the key covers both; this is a
    second check, for records written by older code or by hand); none for a key that is not resolved."""
    run = next((r for r in plan.runs if r.key == key), None)
    if run is None or run.data_id is None or key.startswith(UNRESOLVED):
        return None
    root = Path(results_dir)
    candidates = [run_json_path(plan, results_dir, key)]
    if root.is_dir():
        candidates += sorted(p for p in root.glob(f"*/runs/{key}.json") if p != candidates[0])
    for path in candidates:
        payload = read_run_json(path) if path.is_file() else None
        record = payload["record"] if payload else {}
        if (record.get("run_key") == key and record.get("status") in DONE_STATUSES
                and record.get("results_version") == RESULTS_VERSION and record.get("data_id") == run.data_id):
            return path, payload  # type: ignore[return-value]
    return None


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return ""
    return value


def _csv_text(rows: list[dict[str, Any]], first: Sequence[str]) -> str:
    columns = list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


RUN_COLUMNS = ("run_key", "sweep", "variant", "seed", "status", "reason")
#: what computed each run (:func:`provenance`): runs.csv's columns after RUN_COLUMNS
PROVENANCE_COLUMNS = ("results_version", "data_id", "code_version")
CURVE_COLUMNS = ("run_key", "sweep", "variant", "seed", "epoch")


def write_tables(plan: Plan, results_dir: str | Path, study: optuna.Study | None = None) -> tuple[Path, Path]:
    """Rebuild ``runs.csv`` and ``curves.csv`` from the current manifest's run JSONs (atomically).

    With ``study``: results the study holds but this machine lacks (finished on another machine) are
    written as run JSONs first, and runs that failed for good get a ``failed`` row with their reason.
    """
    from sesweep.training.train import METRICS

    out = sweep_dir(plan, results_dir)
    failed: dict[str, str] = {}
    if study is not None:
        states = classify(plan, study.get_trials(deepcopy=False), _retry_from(study))
        for key, state in states.items():
            if state.done is not None and not run_json_path(plan, results_dir, key).is_file():
                result = state.done.user_attrs.get("result")
                if isinstance(result, dict) and isinstance(result.get("record"), dict):
                    write_run_json(plan, results_dir, _with_identity(result, plan, state.run))
            elif (state.done is None and not state.live and state.last_failure is not None
                  and _status(state.last_failure) in COUNTED_FAILURES):  # not a run that was only interrupted
                failed[key] = failure_reason(state.last_failure)
    spec_keys = schema_keys()
    runs_rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    for run in plan.runs:
        payload = read_run_json(run_json_path(plan, results_dir, run.key))
        ident = {"run_key": run.key, "sweep": plan.name, "variant": run.variant, "seed": run.seed}
        if payload is None or payload["record"].get("status") not in DONE_STATUSES:
            if run.key in failed:
                runs_rows.append({**ident, "status": "failed", "reason": failed[run.key],
                                  "results_version": RESULTS_VERSION, "data_id": run.data_id, **flatten(run.spec)})
            continue
        record = payload["record"]
        row = {**ident, "status": record.get("status"), "reason": record.get("reason", "")}
        row.update({k: record.get(k) for k in spec_keys})
        row.update({k: record.get(k) for k in METRICS})
        row.update({k: v for k, v in record.items() if k not in row})
        runs_rows.append(row)
        for curve in payload.get("curves", []):
            curve_rows.append({**ident, **curve})
    # `seed` is both identity and spec key
    first = list(dict.fromkeys([*RUN_COLUMNS, *PROVENANCE_COLUMNS, *spec_keys, *METRICS]))
    with _local_lock(out / ".tables.lock"):
        runs_path, curves_path = out / "runs.csv", out / "curves.csv"
        _atomic_write(runs_path, _csv_text(runs_rows, first))
        _atomic_write(curves_path, _csv_text(curve_rows, CURVE_COLUMNS))
    return runs_path, curves_path


@contextlib.contextmanager
def _local_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_manifest(plan: Plan, results_dir: str | Path) -> None:
    """``manifest.json`` (the expanded runs, merges and notes) and ``sweep.yaml`` (the file as run)."""
    out = sweep_dir(plan, results_dir)
    _atomic_write(out / "manifest.json", json.dumps(plan.manifest(), indent=1, default=str))
    _atomic_write(out / "sweep.yaml", plan.spec_text)


# --------------------------------------------------------------------------------------------------
# status


@dataclass
class SweepStatus:
    """Counts of a sweep's runs and a per-run table; ``eta_seconds`` from the mean time of trained runs."""

    name: str
    total: int
    done: int
    finished: int
    diverged: int
    running: int
    failed: int
    pending: int
    eta_seconds: float | None
    rows: list[dict[str, Any]]
    #: run JSONs under results/NAME/runs/ recorded by another results version: [{results_version, runs}]
    older_results: list[dict[str, int]] = field(default_factory=list)
    #: why the run keys cannot be resolved (the plan's data are not on this machine), else None
    unresolved: str | None = None

    @property
    def complete(self) -> bool:
        return self.done + self.failed == self.total

    def summary(self) -> str:
        eta = "" if self.eta_seconds is None or self.complete else f", eta {_duration(self.eta_seconds)}"
        return (f"sweep {self.name}: {self.done}/{self.total} done ({self.finished} finished, {self.diverged} "
                f"diverged), {self.running} running, {self.failed} failed, {self.pending} pending{eta}")

    def notes(self) -> list[str]:
        """Lines about results that are not counted above: unresolved keys, records of other results versions."""
        lines = []
        if self.unresolved:
            lines.append(f"run keys cannot be resolved ({self.unresolved}): results on disk or in the study "
                         "cannot be matched, so every run shows as pending")
        for old in self.older_results:
            v, n = old["results_version"], old["runs"]
            runs = f"{n} run{'s' if n != 1 else ''}"
            if v < RESULTS_VERSION:
                lines.append(f"{runs} recorded by results version {v} (older than {RESULTS_VERSION}): not reused, "
                             "will be trained again")
            else:
                lines.append(f"{runs} recorded by results version {v} (newer than this code's {RESULTS_VERSION}): "
                             "not reused")
        return lines

    def table(self) -> str:
        lines = [self.summary(), *self.notes()]
        if not self.rows:
            return "\n".join(lines)
        cols = ("variant", "seed", "run_key", "state", "attempts", "seconds", "top1_err", "note")
        cells = [[_show(r.get(c)) for c in cols] for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _trial_seconds(t: FrozenTrial) -> float | None:
    if t.datetime_start is None or t.datetime_complete is None:
        return None
    return (t.datetime_complete - t.datetime_start).total_seconds()


def status_from_trials(plan: Plan, trials: Sequence[FrozenTrial], max_retries: int = 1, retry_from: int = 0,
                       grace_period: int | None = None) -> SweepStatus:
    states = classify(plan, trials, retry_from)
    counts = dict.fromkeys(("finished", "diverged", "running", "failed", "pending"), 0)
    rows = []
    trained_seconds = []
    for run in plan.queue_order():
        st = states[run.key]
        state = st.state(max_retries)
        counts[state if state in counts else "finished"] += 1
        row: dict[str, Any] = {"variant": run.variant, "seed": run.seed, "run_key": run.key, "state": state,
                               "attempts": len(st.failures) + (1 if st.done or st.running else 0)}
        if st.done is not None:
            row["seconds"] = st.done.user_attrs.get("wall_seconds") or _trial_seconds(st.done)
            record = (st.done.user_attrs.get("result") or {}).get("record", {})
            row["top1_err"] = record.get("top1_err")
            if "adopted_from" in st.done.user_attrs:
                row["note"] = "adopted"
            elif row["seconds"]:
                trained_seconds.append(float(row["seconds"]))
        elif st.running:
            row["note"] = f"on {st.running[0].user_attrs.get('worker', '?')}"
        elif st.last_failure is not None:
            row["note"] = failure_reason(st.last_failure, grace_period)
        rows.append(row)
    done = counts["finished"] + counts["diverged"]
    remaining = counts["pending"] + counts["running"]
    eta = None
    if trained_seconds and remaining:
        eta = sum(trained_seconds) / len(trained_seconds) * remaining / max(1, counts["running"])
    return SweepStatus(plan.name, len(plan.runs), done, counts["finished"], counts["diverged"], counts["running"],
                       counts["failed"], counts["pending"], eta, rows)


def sweep_status(plan: Plan, storage: str | None = None, results_dir: str | Path = DEFAULT_RESULTS,
                 max_retries: int = 1) -> SweepStatus:
    """Where a sweep stands (read-only: a sweep that never ran is all pending, and nothing is created), with
    the run JSONs of other results versions and, for a plan without its data, why keys are unresolved."""
    url = storage or default_storage(plan, results_dir)
    if storage is None and not (sweep_dir(plan, results_dir) / "optuna.db").is_file():
        return _with_notes(status_from_trials(plan, [], max_retries), plan, results_dir)
    st = open_storage(url)
    try:
        study = optuna.load_study(study_name=plan.name, storage=st)
    except KeyError:
        return _with_notes(status_from_trials(plan, [], max_retries), plan, results_dir)
    status = status_from_trials(plan, study.get_trials(deepcopy=False), max_retries, _retry_from(study))
    return _with_notes(status, plan, results_dir)


def older_results(plan: Plan, results_dir: str | Path = DEFAULT_RESULTS) -> list[dict[str, int]]:
    """How many run JSONs under ``results/NAME/runs/`` another results version recorded (no
    ``results_version`` field: version 1), per version: ``[{"results_version": 1, "runs": 3}]``."""
    counts: Counter[int] = Counter()
    folder = sweep_dir(plan, results_dir) / "runs"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        payload = read_run_json(path)
        if payload is None:
            continue
        version = payload["record"].get("results_version", 1)
        if version != RESULTS_VERSION:
            counts[int(version)] += 1
    return [{"results_version": v, "runs": n} for v, n in sorted(counts.items())]


def _with_notes(status: SweepStatus, plan: Plan, results_dir: str | Path) -> SweepStatus:
    return dataclasses.replace(status, older_results=older_results(plan, results_dir), unresolved=plan.unresolved)


# --------------------------------------------------------------------------------------------------
# the sweep


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_sweep(plan: Plan, storage: str | None = None, workers: int = 1, results_dir: str | Path = DEFAULT_RESULTS,
              tracking_uri: str | None = None, progress: bool | None = None, max_retries: int = 1,
              heartbeat_interval: int = DEFAULT_HEARTBEAT, dry_run: bool = False, *, tracking: bool = True,
              grace_period: int | None = None, retry_failed: bool = False, wait: bool = True,
              threads: int | None = None) -> SweepStatus:
    """Run (or resume, or join) a sweep until every run has finished or failed for good.

    ``workers`` local processes (spawned; each with ``cores // workers`` torch threads; 1 = this process)
    take runs from the study at ``storage`` (default: SQLite under ``results_dir/<name>/``); the same call
    on another machine with the same ``storage`` joins the sweep. Finished runs are never trained again:
    re-running a finished sweep trains nothing, adding a seed or an axis value trains only the new runs.
    ``dry_run`` validates and returns the status from the run JSONs on disk; it writes nothing.
    ``retry_failed`` gives runs that failed for good a fresh ``max_retries`` budget. ``threads``: torch
    threads per worker (default ``cores // workers`` for spawned workers, torch's own default in-process).
    """
    if workers < 1:
        raise SpecError("--workers", f"{workers} is out of range; allowed: >= 1")
    if threads is not None and threads < 1:
        raise SpecError("--threads", f"{threads} is out of range; allowed: >= 1")
    if threads is None and workers > 1:
        threads = max(1, _cores() // workers)
    cfg = _config(plan, storage, results_dir, tracking_uri, tracking, max_retries, heartbeat_interval, grace_period,
                  threads, wait)
    if dry_run:
        return _dry_status(plan, results_dir)
    _require_data(plan)

    write_manifest(plan, results_dir)
    st = open_storage(cfg.storage, cfg.heartbeat_interval, cfg.grace_period)
    study = open_study(plan, st)
    if retry_failed:
        study.set_user_attr("sesweep_retry_from", max((t._trial_id for t in study.get_trials(deepcopy=False)),
                                                      default=-1) + 1)
    status = _study_status(plan, study, cfg)
    tracker = None
    if cfg.tracking_uri:  # the store, the experiment and the sweep's own MLflow run, before workers race to
        from sesweep.runner.tracking import start_sweep

        tracker = start_sweep(plan, study, cfg.tracking_uri, results_dir)
    bar = _progress_bar(status, progress)
    tick = (lambda: _update_bar(bar, _study_status(plan, study, cfg))) if bar is not None else (lambda: None)
    try:
        if not status.complete or status.pending or status.running:
            with _logs_around(bar):
                if workers == 1:
                    with _torch_threads(threads):
                        run_worker(plan, cfg, on_run_done=tick)
                else:
                    _run_processes(plan, cfg, workers, tick, quiet=bar is not None)
        write_tables(plan, results_dir, study)
        status = _study_status(plan, study, cfg)
        _update_bar(bar, status)
        if tracker is not None:
            from sesweep.runner.tracking import end_sweep

            end_sweep(tracker, status)
    finally:
        if bar is not None:
            bar.close()
    return status


def _logs_around(bar: Any) -> contextlib.AbstractContextManager[Any]:
    """Log lines printed above the progress bar instead of through it."""
    if bar is None:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run this process's worker with ``threads`` torch threads, then put the old number back."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _study_status(plan: Plan, study: optuna.Study, cfg: SweepConfig) -> SweepStatus:
    return status_from_trials(plan, study.get_trials(deepcopy=False), cfg.max_retries, _retry_from(study),
                              cfg.grace_period)


def _dry_status(plan: Plan, results_dir: str | Path) -> SweepStatus:
    rows = []
    done = finished = 0
    for run in plan.queue_order():
        found = find_result(run.key, plan, results_dir)
        state = found[1]["record"]["status"] if found else "pending"
        done += found is not None
        finished += state == "finished"
        rows.append({"variant": run.variant, "seed": run.seed, "run_key": run.key, "state": state,
                     "note": "" if found is None else f"result in {found[0]}"})
    status = SweepStatus(plan.name, len(plan.runs), done, finished, done - finished, 0, 0, len(plan.runs) - done,
                         None, rows)
    return _with_notes(status, plan, results_dir)


def _progress_bar(status: SweepStatus, progress: bool | None) -> Any:
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return None
    bar = tqdm(total=status.total, desc=f"sweep {status.name}", unit="run", file=sys.stderr, dynamic_ncols=True)
    _update_bar(bar, status)
    return bar


def _update_bar(bar: Any, status: SweepStatus) -> None:
    if bar is None:
        return
    bar.n = status.done + status.failed
    postfix = f"{status.running} running, {status.failed} failed"
    if status.eta_seconds is not None and not status.complete:
        postfix += f", eta {_duration(status.eta_seconds)}"
    bar.set_postfix_str(postfix, refresh=False)
    bar.refresh()


def _worker_process(plan: Plan, cfg: SweepConfig, index: int, log_level: int) -> None:
    """Entry point of a spawned worker process."""
    def on_term(signum: int, frame: Any) -> None:
        raise _Interrupted()

    signal.signal(signal.SIGTERM, on_term)
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(index % torch.cuda.device_count())  # `device: auto`/`cuda` → this worker's GPU
    logging.basicConfig(level=logging.WARNING, format=f"[worker {index}] %(message)s")
    logging.getLogger("sesweep").setLevel(log_level)
    try:
        run_worker(plan, cfg)
    except (KeyboardInterrupt, _Interrupted):
        sys.exit(130)


def _run_processes(plan: Plan, cfg: SweepConfig, workers: int, on_tick: Callable[[], None],
                   quiet: bool = False) -> None:
    """``workers`` spawned processes running :func:`run_worker`; ``on_tick`` about once a second."""
    ctx = multiprocessing.get_context("spawn")
    # with a progress bar here, workers print only warnings (their lines would tear the bar)
    level = logging.WARNING if quiet else logging.getLogger("sesweep").getEffectiveLevel()
    procs = [ctx.Process(target=_worker_process, args=(plan, cfg, i, level), name=f"sesweep-worker-{i}", daemon=False)
             for i in range(workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=1.0 / workers)
            with contextlib.suppress(Exception):
                on_tick()
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=60)
        raise
    bad = [p for p in procs if p.exitcode not in (0, None)]
    for p in bad:
        log.warning("%s exited with code %s", p.name, p.exitcode)


# --------------------------------------------------------------------------------------------------
# command line (the lead wires these into `sesweep run` / `sesweep status`)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", metavar="FILE", help="sweep spec, e.g. experiments/smoke.yaml")
    _common_arguments(parser)
    parser.add_argument("--workers", type=int, default=1,
                        help="local worker processes (default 1); each gets cores/N torch threads "
                             "and, on a machine with several GPUs, GPU i mod count")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="read the data from DIR instead of the spec's recipe.data_root (run keys identify "
                             "the data's content, not where they live: the same data moved keep their keys)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: sqlite:///RESULTS/NAME/mlflow.db)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    parser.add_argument("--heartbeat", type=int, default=DEFAULT_HEARTBEAT, metavar="SECONDS",
                        help=f"heartbeat interval of a running run (default {DEFAULT_HEARTBEAT}); a run silent "
                             f"for {GRACE_INTERVALS} intervals is taken as lost and run again")
    parser.add_argument("--grace", type=int, default=None, metavar="SECONDS",
                        help=f"seconds without heartbeat before a run is lost (default {GRACE_INTERVALS} x heartbeat)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="give runs that failed for good a fresh --max-retries budget")
    parser.add_argument("--no-wait", action="store_true",
                        help="exit when nothing is left to take, instead of waiting for runs other workers hold")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the runs; write nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-run lines")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON on stdout, and nothing else there (progress and logs go to "
                             "stderr); its keys are stable. With --dry-run the plan: the manifest's keys, its runs "
                             "with their cost, unresolved and on_disk (as `sesweep status --json`); else the final "
                             "status, as `sesweep status --json`, and results")
    parser.epilog = ("exit status: 0 when every run is done (finished or diverged), 1 when runs failed or are left, "
                     "2 on a bad spec or data that are not there (checked before anything is queued)")


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", metavar="FILE", help="sweep spec, e.g. experiments/smoke.yaml")
    _common_arguments(parser)
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="read the data (their identity is part of every run key) from DIR instead of the "
                             "spec's recipe.data_root")
    parser.add_argument("--json", action="store_true",
                        help="print the status as JSON on stdout, and nothing else there; its keys are stable: "
                             "name, total, done, finished, diverged, running, failed, pending, eta_seconds, rows, "
                             "older_results, unresolved, notes, complete")
    parser.epilog = ("exit status: 0 when no run has failed (pending and running runs included; a diverged run is "
                     "a result, not a failure), 1 when a run failed (for good: after --max-retries retries, "
                     "counted with the same --max-retries as the run), 2 on a bad spec")


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL shared by every worker (default: sqlite:///RESULTS/NAME/optuna.db; "
                             "e.g. postgresql+psycopg://user:pass@host/db for several machines)")
    parser.add_argument("--results", default=DEFAULT_RESULTS, metavar="DIR", help="results folder (default results/)")
    parser.add_argument("--max-retries", type=int, default=1,
                        help="times a failed run is run again before it is left failed (default 1)")


def _require_data(plan: Plan) -> None:
    """A plan whose data are not here cannot run: its keys, which identify the data, are unknown."""
    if plan.unresolved:
        raise SpecError("", f"{plan.unresolved}; run keys identify the data, so nothing runs without them "
                            "(--data-root DIR reads them from DIR)")


def cmd_run(args: argparse.Namespace) -> int:
    """Run, resume or join a sweep: exit 0 when every run is done, 1 when some failed or are left, 2 on a bad spec."""
    plan = load_plan(args.sweep).with_data_root(args.data_root)
    if not args.dry_run:
        _require_data(plan)  # before anything is written or started
        check_data(plan)  # an error every run would fail with at data loading: one line now, not N failed runs
    if not args.quiet and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger("sesweep").setLevel(logging.INFO)
    if args.dry_run and not args.json:
        print(plan.describe())
        print(manifest_table(plan))
    try:
        status = run_sweep(plan, storage=args.storage, workers=args.workers, results_dir=args.results,
                           tracking_uri=args.tracking_uri, tracking=not args.no_tracking,
                           progress=False if args.quiet else None, max_retries=args.max_retries,
                           heartbeat_interval=args.heartbeat, grace_period=args.grace, dry_run=args.dry_run,
                           retry_failed=args.retry_failed, wait=not args.no_wait, threads=args.threads)
    except KeyboardInterrupt:
        print(f"sesweep run: interrupted; the same command resumes {plan.name}", file=sys.stderr)
        return 130
    if args.dry_run and args.json:
        from sesweep.cli import print_json

        print_json(args, {**plan.manifest(), "unresolved": plan.unresolved, "runs": manifest_rows(plan),
                          "on_disk": status_json(status)})
        return 0
    if args.dry_run:
        print(status.summary().replace(f"sweep {plan.name}: ", "already on disk: ", 1))
        for line in status.notes():
            print(line)
        return 0
    if args.json:
        from sesweep.cli import print_json

        print_json(args, {**status_json(status), "results": str(sweep_dir(plan, args.results))})
    elif not args.quiet:
        print(status.summary())
        print(f"results: {sweep_dir(plan, args.results)}/runs.csv")
    return 0 if status.done == status.total else 1


def status_json(status: SweepStatus) -> dict[str, Any]:
    """A sweep's status as ``--json`` prints it: the counts, the rows, the notes and whether it is complete."""
    return {**status.to_dict(), "notes": status.notes(), "complete": status.complete}


def manifest_costs(plan: Plan) -> dict[str, tuple[dict[str, Any], str]]:
    """Each variant's model cost (params, SE params, MACs at the recipe's input size) and "*" where estimated.

    Where the data are not on this machine (imagefolder, CIFAR not downloaded) the class count and input
    size cannot be read; the cost is then given at the architecture's design size and 10 classes, marked."""
    from sesweep.training.data import dataset_image_size, dataset_num_classes
    from sesweep.training.measure import model_cost
    from sesweep.training.models import ARCHS, build_model

    costs: dict[str, tuple[dict[str, Any], str]] = {}
    for v in plan.variants:
        note = ""
        try:
            classes, size = dataset_num_classes(v.spec.recipe), dataset_image_size(v.spec.recipe)
        except SpecError:
            classes, size, note = 10, ARCHS[v.spec.model.arch].input_size, "*"
        model = build_model(v.spec.model, classes, 3, 0)
        costs[v.name] = model_cost(model, size, 3), note
    return costs


def manifest_rows(plan: Plan) -> list[dict[str, Any]]:
    """Every run with its key and its model's cost, for ``--dry-run --json`` (``estimated``: see
    :func:`manifest_costs`)."""
    costs = manifest_costs(plan)
    return [{"variant": run.variant, "seed": run.seed, "run_key": run.key,
             **{k: costs[run.variant][0][k] for k in ("params", "se_params", "macs", "input_size")},
             "estimated": bool(costs[run.variant][1])} for run in plan.runs]


def manifest_table(plan: Plan) -> str:
    """Every run with its key and its model's cost (params, SE params, MACs at the recipe's input size)."""
    costs = manifest_costs(plan)
    w = max(14, *(len(v.name) + 1 for v in plan.variants))
    lines = [f"  {'variant':<{w}}{'seed':>5}  {'run_key':<17}{'params':>12}{'se_params':>11}{'MACs':>10}"]
    for run in plan.runs:
        cost, note = costs[run.variant]
        lines.append(f"  {run.variant:<{w}}{run.seed:>5}  {run.key:<17}{cost['params']:>12,}"
                     f"{cost['se_params']:>11,}{cost['macs'] / 1e6:>9.2f}M{note}")
    if any(note for _, note in costs.values()):
        lines.append("  * data not on this machine: cost at the architecture's design input size and 10 classes")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    """Counts of done / running / failed / pending runs, the ETA, and a per-run table; exit 1 when a run failed."""
    plan = load_plan(args.sweep).with_data_root(args.data_root)
    status = sweep_status(plan, storage=args.storage, results_dir=args.results, max_retries=args.max_retries)
    if args.json:
        from sesweep.cli import print_json

        print_json(args, status_json(status))
    else:
        print(status.table())
    return 1 if status.failed else 0  # a diverged run is a result; a failed one is not
