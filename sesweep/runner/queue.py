"""The durable queue of a sweep's runs: an Optuna study, the sweep lock, heartbeats, claim and finish.

Shared state
    One Optuna study per sweep (study name = sweep name) on an RDB storage: by default
    ``sqlite:///results/<name>/optuna.db``, or any SQLAlchemy URL (PostgreSQL for several machines). Each
    attempt at a run is one trial whose user attributes carry ``run_key``, ``variant``, ``seed`` and
    ``status``; a finished run's trial also carries its whole result (record, curves, hidden widths), so
    any machine can rebuild the tables from the study alone.

Exactly once
    Workers take runs under a *sweep lock* (an OS file lock beside a SQLite database; a PostgreSQL
    advisory lock keyed by the study name): inside it a worker fails stale trials, reconciles the manifest
    against the study (the run keys that have no finished trial, no live trial and retries left are the ones
    to take), takes the first of them in queue order (a new WAITING trial, or one already waiting), records
    its heartbeat and moves it to RUNNING. Since nothing else
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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import math
import os
import random
import socket
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sesweep.plan import Plan, Run
from sesweep.results import DEFAULT_RESULTS, DONE_STATUSES, sweep_dir
from sesweep.runner.outage import OutageError, first_line, is_outage, patiently
from sesweep.runner.storage_url import check_storage_url
from sesweep.runner.trials import TrialRow, trial_rows, trial_values
from sesweep.spec import SpecError

if TYPE_CHECKING:
    from sesweep.runner.config import SweepConfig

log = logging.getLogger("sesweep.runner.queue")

#: statuses of a failed attempt that count against ``max_retries`` (``running``/``queued`` on a FAIL
#: trial = its worker stopped its heartbeat: lost)
COUNTED_FAILURES = ("failed", "running", "queued")


#: how long a worker waits for the sweep lock before it gives up with an error
LOCK_TIMEOUT = 600.0


def default_storage(plan: Plan, results_dir: str | Path = DEFAULT_RESULTS) -> str:
    """``sqlite:///<abs results>/<name>/optuna.db`` (absolute, so spawned workers agree)."""
    return f"sqlite:///{(sweep_dir(plan, results_dir) / 'optuna.db').resolve()}"


# --------------------------------------------------------------------------------------------------
# storage, study and the sweep lock


def open_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 patience: float = 0.0) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage with heartbeats; SQLite gets a long busy timeout and its folder created. A server
    that does not answer is tried again for ``patience`` seconds (:func:`~sesweep.runner.outage.patiently`)."""
    from sqlalchemy.engine import make_url

    check_storage_url(url)  # its form, its driver, a SQLite file that can be: the one check of a storage URL
    parsed = make_url(url)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 120}
        folder = Path(str(parsed.database)).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError("--storage", f"cannot create {parsed.database}: {folder}: {exc.strerror or exc}; "
                                         "allowed: a SQLite file in a folder this user can create") from None
    else:
        engine_kwargs["pool_pre_ping"] = True
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shown = parsed.render_as_string(hide_password=True)

    def connect() -> optuna.storages.RDBStorage:
        last: Exception | None = None
        for attempt in range(5):  # several processes creating the tables at once may collide: try again
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                      heartbeat_interval=heartbeat_interval,
                                                      grace_period=grace_period)
            except Exception as exc:  # sqlalchemy / optuna errors while tables are being created
                if is_outage(exc) and parsed.get_backend_name() != "sqlite":
                    raise  # a server that does not answer: waited out by patiently (SQLite's tables collide)
                last = exc
                time.sleep(0.2 + random.random() * (attempt + 1))
        raise OutageError(f"cannot open the sweep storage {shown}: {first_line(last) if last else '?'}")

    return patiently(f"opening the storage {shown}", patience, connect)


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
        failing_since: float | None = None
        while not self._stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as exc:  # a busy or absent database must not kill the run; the next beat tries again
                if failing_since is None:  # one line per outage, not one per beat
                    failing_since = time.monotonic()
                    log.warning("heartbeat of trial %s failed (%s); the run goes on and beats again when the "
                                "storage answers", self.trial_id, first_line(exc))
                continue
            if failing_since is not None:
                log.warning("heartbeat of trial %s recorded again after %.0f s", self.trial_id,
                            time.monotonic() - failing_since)
                failing_since = None

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
    done: FrozenTrial | TrialRow | None = None
    running: list[FrozenTrial | TrialRow] = field(default_factory=list)
    waiting: list[FrozenTrial | TrialRow] = field(default_factory=list)
    failures: list[FrozenTrial | TrialRow] = field(default_factory=list)   # attempts that count against max_retries
    last_failure: FrozenTrial | TrialRow | None = None                      # the latest failed or interrupted attempt

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


def trial_status(t: FrozenTrial | TrialRow) -> str:
    return str(t.user_attrs.get("status", ""))


def classify(plan: Plan, trials: Sequence[FrozenTrial | TrialRow], retry_from: int = 0) -> dict[str, KeyState]:
    """Manifest run keys → their state in the study (trials of keys outside the manifest are ignored)."""
    states = {r.key: KeyState(r) for r in plan.runs}
    for t in sorted(trials, key=lambda t: t._trial_id):
        state = states.get(t.user_attrs.get("run_key"))
        if state is None:
            continue
        if t.state == TrialState.COMPLETE and trial_status(t) in DONE_STATUSES:
            if state.done is None:
                state.done = t
        elif t.state == TrialState.RUNNING:
            state.running.append(t)
        elif t.state == TrialState.WAITING:
            state.waiting.append(t)
        elif t.state == TrialState.FAIL:
            state.last_failure = t
            if trial_status(t) in COUNTED_FAILURES and t._trial_id >= retry_from:
                state.failures.append(t)
    return states


def failure_reason(t: FrozenTrial, grace_period: int | None = None) -> str:
    status = trial_status(t)
    if status in ("running", "queued"):
        after = f" for more than {grace_period} s" if grace_period else ""
        return (f"worker {t.user_attrs.get('worker', '?')} lost: no heartbeat{after} "
                "(killed, out of memory, or its machine went down)")
    return str(t.user_attrs.get("reason", status))


def retry_from(study: optuna.Study) -> int:
    return int(study.user_attrs.get("sesweep_retry_from", 0))


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(plan: Plan, study: optuna.Study, lock: SweepLock, cfg: SweepConfig) -> tuple[str, Run | None, int | None]:
    """Under the sweep lock: reconcile, queue what is missing, take the next run.

    Returns ``("done", None, None)`` when every run has finished or failed for good, ``("wait", None, None)``
    when the rest is held by other workers, or ``("run", run, trial_id)``.
    """
    storage = study._storage
    with lock():
        _fail_stale(study)
        states = classify(plan, trial_rows(study), retry_from(study))
        todo = [r for r in plan.queue_order()
                if states[r.key].done is None and not states[r.key].given_up(cfg.max_retries)]
        if plan.seed_policy is not None:  # only the seeds the policy allocates now (runner/seed_queue.py)
            todo = _wanted(plan, study, states, cfg.max_retries, todo)
            if not todo:  # nothing allocated is open: done, unless a run in flight may make the policy add seeds
                return ("wait" if any(s.running for s in states.values()) else "done"), None, None
        if not todo:
            return "done", None, None
        for run in todo:
            state = states[run.key]
            if state.running:
                continue
            # queued when it is taken (one insert per claim, not one per pending run: 500 at the first claim of
            # a 500-run sweep held the lock for ~17 s); a WAITING trial an older version queued is used first
            trial_id = state.waiting[0]._trial_id if state.waiting else storage.create_new_trial(
                study._study_id, template_trial=optuna.trial.create_trial(
                    state=TrialState.WAITING, system_attrs={"fixed_params": {}},
                    user_attrs={"run_key": run.key, "sweep": plan.name, "variant": run.variant, "seed": run.seed,
                                "status": "queued"}))
            storage.record_heartbeat(trial_id)   # a heartbeat before RUNNING: never a RUNNING trial without one
            try:
                claimed = storage.set_trial_state_values(trial_id, TrialState.RUNNING)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if not claimed:
                continue
            storage.set_trial_user_attr(trial_id, "status", "running")
            storage.set_trial_user_attr(trial_id, "worker", worker_id())
            return "run", run, trial_id
        return "wait", None, None


def _wanted(plan: Plan, study: optuna.Study, states: dict[str, KeyState], max_retries: int,
            todo: list[Run]) -> list[Run]:
    """The runs of ``todo`` a seed policy allocates now (a pure function of the recorded results, computed under
    the sweep lock, so every worker on every machine agrees)."""
    from sesweep.runner.seed_queue import plan_allocation, recorded_outcomes

    values = trial_values(study)
    alloc = plan_allocation(plan, recorded_outcomes(states.values(), max_retries,
                                                    lambda trial: values.get(trial._trial_id)))
    return [r for r in todo if alloc.wants(r.variant, r.seed)]


def finish(plan: Plan, study: optuna.Study, lock: SweepLock, trial_id: int, run: Run,
            payload: dict[str, Any], extra: dict[str, Any]) -> str:
    """Under the sweep lock: record a finished run once. Returns ``recorded`` or ``duplicate``."""
    storage = study._storage
    status = payload["record"]["status"]
    top1 = payload["record"].get("top1_err")
    value = float(top1) if isinstance(top1, int | float) and math.isfinite(top1) else math.inf
    attrs = {"status": status, "result": payload, **extra}
    with lock():
        done = [t for t in trial_rows(study, states=(TrialState.COMPLETE,))
                if t.user_attrs.get("run_key") == run.key and trial_status(t) in DONE_STATUSES
                and t._trial_id != trial_id]
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
            if _recorded(storage, trial_id):  # an earlier try committed, but its answer was lost with the connection
                return "recorded"
            # this worker was taken for dead (its heartbeat stalled) but did finish: keep the result once
            user_attrs = {"run_key": run.key, "sweep": plan.name, "variant": run.variant, "seed": run.seed,
                          "worker": worker_id(), "recovered_from_trial": trial_id, **attrs}
            study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=value, user_attrs=user_attrs))
    return "recorded"


def _recorded(storage: optuna.storages.BaseStorage, trial_id: int) -> bool:
    t = storage.get_trial(trial_id)
    return t.state == TrialState.COMPLETE and trial_status(t) in DONE_STATUSES


def fail(study: optuna.Study, trial_id: int, status: str, reason: str, tb: str = "") -> None:
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial_id, "status", status)
        storage.set_trial_user_attr(trial_id, "reason", reason[:2000])
        if tb:
            storage.set_trial_user_attr(trial_id, "traceback", tb[-8000:])
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass
