"""One worker: take runs from the sweep's queue and train (or adopt) them until none is left; and the
spawned processes that run several workers on one machine."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from sesweep.plan import Plan, Run
from sesweep.results import checkpoint_dir, pending_results, run_json_path, sweep_dir, write_run_json
from sesweep.runner import remote_checkpoints
from sesweep.runner.config import SweepConfig
from sesweep.runner.outage import OutageError, patiently, results_write_failed, unreachable, warn_clock_skew
from sesweep.runner.outputs import find_result, provenance, result_payload, with_identity, write_tables
from sesweep.runner.queue import Heartbeat, SweepLock, claim, fail, finish, open_storage, open_study
from sesweep.runner.tracking_outage import PENDING, catch_up, pending_attrs

if TYPE_CHECKING:
    from sesweep.training.checkpoint import CheckpointPolicy

log = logging.getLogger("sesweep.runner.worker")


class Interrupted(BaseException):
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

    storage = open_storage(cfg.storage, cfg.heartbeat_interval, cfg.grace_period, cfg.storage_patience)
    study = patiently("opening the study", cfg.storage_patience, open_study, plan, storage)
    warn_clock_skew(storage.engine)
    lock = SweepLock(storage, plan.name)
    tracker = Tracker(cfg.tracking_uri, plan.name, artifact_dir=sweep_dir(plan, cfg.results_dir) / "mlartifacts") \
        if cfg.tracking_uri else None
    if tracker is not None and unreachable(tracker.uri) is None:
        tracker.sweep_run(study)  # the sweep's own run (from the study, where run_sweep put it): the runs' parent
    data_cache: dict[tuple[Any, ...], Any] = {}
    report = WorkerReport()
    tables_written = time.monotonic()
    while True:
        action, run, trial_id = patiently("taking the next run", cfg.storage_patience, claim, plan, study, lock, cfg)
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
        except (KeyboardInterrupt, Interrupted):  # anywhere in the run, its first imports included: queued again
            patiently("recording the interruption", min(cfg.storage_patience, 30), fail, study, trial_id,
                      "interrupted", "worker interrupted (Ctrl-C or SIGTERM)")
            raise
        finally:
            heartbeat.stop()
        setattr(report, outcome, getattr(report, outcome) + 1)
        if time.monotonic() - tables_written >= TABLES_EVERY:
            refresh_tables(plan, cfg, study)
            tables_written = time.monotonic()
        if tracker is not None and tracker.missed:  # runs finished while the tracking server was away
            tracker.missed = not catch_up(plan, study, lock, tracker)
        if on_run_done is not None:
            on_run_done()
    return report


#: seconds between two rewrites of runs.csv and curves.csv by one worker while it runs (the sweep rewrites them
#: once more when its workers are done). Why not after every run: a rewrite reads every finished result, so
#: its cost grows with the sweep; after every run it was most of the bookkeeping of a 500-run sweep.
TABLES_EVERY = 30.0


def refresh_tables(plan: Plan, cfg: SweepConfig, study: optuna.Study) -> None:
    """Rewrite runs.csv and curves.csv from the study; a folder that cannot be written costs a warning, not the
    sweep (the study holds every result: the next ``sesweep run`` of the sweep rebuilds the folder from it)."""
    try:
        patiently("rewriting the tables", cfg.storage_patience, write_tables, plan, cfg.results_dir, study)
    except OSError as exc:
        log.warning("%s", results_write_failed(exc, f"the tables in {sweep_dir(plan, cfg.results_root)}"))


def _record(plan: Plan, cfg: SweepConfig, study: optuna.Study, lock: SweepLock, trial_id: int, run: Run,
            payload: dict[str, Any], extra: dict[str, Any], doing: str) -> str:
    """Record a run's result once: ``recorded`` or ``duplicate`` (:func:`finish`).

    The JSON is written first, as a pending file (a storage that stays away past the patience cannot lose the
    result; the next worker to claim the run adopts it), and becomes ``runs/KEY.json`` only once the study
    says it is the run's result: a worker taken for dead that still finishes must not overwrite the winner's
    file (the study and the folder would then disagree wherever the numbers differ). A full or read-only
    results folder is warned about, and the run still recorded."""
    key = payload["record"]["run_key"]
    try:
        pending: Path | None = write_run_json(plan, cfg.results_dir, payload, trial=trial_id)
    except OSError as exc:
        pending = None
        log.warning("%s", results_write_failed(exc, f"the result of run {key}"))
    outcome = patiently(doing, cfg.storage_patience, finish, plan, study, lock, trial_id, run, payload, extra)
    if pending is not None:
        try:
            if outcome == "recorded":
                os.replace(pending, run_json_path(plan, cfg.results_dir, key))
                for left in pending_results(plan, cfg.results_dir, key):  # of attempts that died (adopted now)
                    left.unlink(missing_ok=True)
            else:  # another worker's result is the run's: keep its file
                pending.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s", results_write_failed(exc, f"the result of run {key}"))
    return outcome


def _execute(plan: Plan, cfg: SweepConfig, study: optuna.Study, lock: SweepLock, trial_id: int, run: Run,
             tracker: Any, data_cache: dict[tuple[Any, ...], Any]) -> str:
    """Train (or adopt) one claimed run and record it; returns the WorkerReport field to count."""
    found = find_result(run.key, plan, cfg.results_dir)
    if found is not None:
        path, payload = found
        payload = with_identity(payload, plan, run)
        extra: dict[str, Any] = {"adopted_from": str(path)}
        if tracker is not None:
            tracking = tracker.log_completed(run, payload) if unreachable(tracker.uri) is None else {}
            extra.update(pending_attrs(tracker, bool(tracking.get("run_id")), [tracking.get("error") or ""]))
            tracker.missed = tracker.missed or PENDING in extra
        outcome = _record(plan, cfg, study, lock, trial_id, run, payload, extra, "recording an adopted run")
        _checkpoint_policy(plan, cfg, run).discard()  # of an attempt that died after its result was written
        log.info("%s seed %s: adopted the result in %s", run.variant, run.seed, path)
        return "adopted" if outcome == "recorded" else "duplicates"

    from sesweep.training.train import train

    checkpoints = _checkpoint_policy(plan, cfg, run)
    started = time.perf_counter()
    tracked = None
    if tracker is not None and unreachable(tracker.uri) is None:
        trial = patiently("reading the trial", cfg.storage_patience, study._storage.get_trial, trial_id)
        tracked = tracker.start(run, trial=trial.number)
        if tracked.run_id is not None and remote_checkpoints.remote(tracker):  # machines sharing no folder
            remote_checkpoints.fetch(tracker, run.key, checkpoints.directory, exclude=tracked.run_id)
            checkpoints = dataclasses.replace(checkpoints, on_saved=functools.partial(remote_checkpoints.upload,
                                                                                      tracked))
    clock = _Stopwatch(time.perf_counter() - started)  # tracking time, for the bookkeeping breakdown
    try:
        data_start = time.perf_counter()
        data = _data_for(run, data_cache)
        data_seconds = time.perf_counter() - data_start
        result = train(run.spec, data=data, progress=False, checkpoints=checkpoints,
                       on_epoch=clock.timed(tracked.on_epoch) if tracked else None)
    except (KeyboardInterrupt, Interrupted):  # the study's trial is marked by run_worker
        if tracked is not None:
            tracked.fail("interrupted", "worker interrupted")
        raise
    except Exception as exc:
        reason = f"{exc.__class__.__name__}: {exc}".splitlines()[0]
        log.warning("%s seed %s failed: %s", run.variant, run.seed, reason)
        if tracked is not None:
            tracked.fail("failed", reason)
        patiently("recording a failed run", cfg.storage_patience, fail, study, trial_id, "failed", reason,
                  traceback.format_exc())
        return "failed"
    payload = with_identity(result_payload(result), plan, run)
    payload["record"].update(provenance(run))
    if payload["record"]["run_key"] != run.key:  # its data identity changed after the sweep was loaded
        reason = (f"recipe.data_root: the data changed while the sweep ran (run key {payload['record']['run_key']} "
                  f"now, {run.key} when the sweep was loaded); run the sweep again")
        if tracked is not None:
            tracked.fail("failed", reason)
        patiently("recording a failed run", cfg.storage_patience, fail, study, trial_id, "failed", reason)
        return "failed"
    extra: dict[str, Any] = {"data_seconds": data_seconds}
    if tracked is not None:
        clock.timed(tracked.finish)(payload)
    extra.update(pending_attrs(tracker, tracked is not None, tracked.errors if tracked is not None else []))
    if tracker is not None:
        tracker.missed = tracker.missed or PENDING in extra
    extra.update(wall_seconds=time.perf_counter() - started, tracking_seconds=clock.seconds)
    outcome = _record(plan, cfg, study, lock, trial_id, run, payload, extra, "recording a finished run")
    checkpoints.discard()  # the result is recorded: its checkpoints have served (a failed run keeps them)
    rec = payload["record"]
    log.info("%s seed %s: %s, top1_err %.2f%% in %.1f s", run.variant, run.seed, rec["status"],
             rec.get("top1_err", float("nan")), extra["wall_seconds"])
    return "trained" if outcome == "recorded" else "duplicates"


class _Stopwatch:
    """Seconds spent in the calls it wraps (:meth:`timed`), added up."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    def timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - start
        return call


def _checkpoint_policy(plan: Plan, cfg: SweepConfig, run: Run) -> CheckpointPolicy:
    """The run's checkpoint folder and interval under the sweep's settings. With ``--checkpoint-every 0`` it
    writes none, yet a run still resumes from the checkpoints an earlier invocation left."""
    from sesweep.training.checkpoint import CheckpointPolicy

    epochs, seconds = cfg.checkpoint_interval
    return CheckpointPolicy(checkpoint_dir(plan, cfg.results_dir, run.key), every_epochs=epochs,
                            every_seconds=seconds, keep=cfg.keep_checkpoints, run_key=run.key)


#: recipe keys that decide which images a run sees (load_data reads nothing else)
DATA_KEYS = ("dataset", "data_root", "train_subset", "test_subset", "image_size", "augment", "loader",
             "memory_budget_gb", "loader_workers")


def _data_for(run: Run, cache: dict[tuple[Any, ...], Any]) -> Any:
    from sesweep.training.data import load_data

    key = tuple(getattr(run.spec.recipe, k) for k in DATA_KEYS)
    if key not in cache:
        cache[key] = load_data(run.spec.recipe)
    return cache[key]


# --------------------------------------------------------------------------------------------------
# processes


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
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


def _worker_process(plan: Plan, cfg: SweepConfig, index: int, log_level: int) -> None:
    """Entry point of a spawned worker process."""
    def on_term(signum: int, frame: Any) -> None:
        raise Interrupted()

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
    except (KeyboardInterrupt, Interrupted):
        sys.exit(130)
    except OutageError as exc:  # one line, not a spawned process's traceback
        log.error("%s", exc)
        sys.exit(3)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_processes(plan: Plan, cfg: SweepConfig, workers: int, on_tick: Callable[[], None],
                   quiet: bool = False) -> None:
    """``workers`` spawned processes running :func:`run_worker`; ``on_tick`` about once a second."""
    ctx = multiprocessing.get_context("spawn")
    # with a progress bar here, workers print only warnings (their lines would tear the bar)
    level = logging.WARNING if quiet else logging.getLogger("sesweep").getEffectiveLevel()
    procs = [ctx.Process(target=_worker_process, args=(plan, cfg, i, level), name=f"sesweep-worker-{i}", daemon=False)
             for i in range(workers)]
    for p in procs:
        p.start()
    # `kill PID` of the sweep stops its workers too (each marks its run interrupted), as Ctrl-C does: spawned
    # processes are not told of their parent's SIGTERM and would go on training, unseen
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
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
    finally:
        signal.signal(signal.SIGTERM, old_term)
    bad = [p for p in procs if p.exitcode not in (0, None)]
    for p in bad:
        log.warning("%s exited with code %s", p.name, p.exitcode)
