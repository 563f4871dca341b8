"""Run (or resume, or join) a sweep: its manifest, its study, its workers, its tables and a progress bar.

The queue protocol is :mod:`sesweep.runner.queue`'s, the worker loop :mod:`sesweep.runner.worker`'s, the outputs
:mod:`sesweep.runner.outputs`' and the status :mod:`sesweep.runner.status`'s.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from sesweep.plan import Plan
from sesweep.results import sweep_dir
from sesweep.runner import precision
from sesweep.runner.config import SweepConfig
from sesweep.runner.outage import check_writable, patiently, remove_created
from sesweep.runner.outputs import write_manifest
from sesweep.runner.queue import SweepLock, open_storage, open_study
from sesweep.runner.status import SweepStatus, dry_status, duration, study_status
from sesweep.runner.worker import refresh_tables, run_processes, run_worker, torch_threads
from sesweep.spec import SpecError


def run_sweep(plan: Plan, config: SweepConfig | None = None, *, dry_run: bool = False,
              **settings: Any) -> SweepStatus:
    """Run (or resume, or join) a sweep until every run has finished or failed for good.

    ``config`` (or the keywords of :meth:`SweepConfig.create`, e.g. ``results_dir=…, workers=2``): ``workers``
    local processes (spawned; each with ``cores // workers`` torch threads; 1 = this process) take runs from
    the study at ``storage`` (default: SQLite under ``results_dir/<name>/``); the same call on another machine
    with the same ``storage`` joins the sweep. Finished runs are never trained again: re-running a finished
    sweep trains nothing, adding a seed or an axis value trains only the new runs. ``dry_run`` validates and
    returns the status from the run JSONs on disk; it writes nothing.
    """
    if config is not None and settings:
        raise TypeError(f"run_sweep: give a SweepConfig or its settings, not both ({', '.join(settings)})")
    cfg = config if config is not None else SweepConfig.create(plan.name, **settings)
    results_dir = cfg.results_root
    if dry_run:
        return dry_status(precision.settle_read_only(plan, results_dir), results_dir)
    require_data(plan)
    created = check_writable(sweep_dir(plan, cfg.results_dir), sweep_dir(plan, results_dir))  # before its storage
    try:
        st = open_storage(cfg.storage, cfg.heartbeat_interval, cfg.grace_period, cfg.storage_patience)
    except SpecError:
        remove_created(created)
        raise
    study = patiently("opening the study", cfg.storage_patience, open_study, plan, st)
    lock = SweepLock(st, plan.name)
    plan = precision.settle(plan, study, lock)
    precision.check_honoured(plan)
    write_manifest(plan, results_dir)
    if cfg.retry_failed:
        study.set_user_attr("sesweep_retry_from", max((t._trial_id for t in study.get_trials(deepcopy=False)),
                                                      default=-1) + 1)
    status = study_status(plan, study, cfg)
    training = not status.complete  # runs left that may still run (of a seed policy: that it may still allocate)
    tracker = None
    if cfg.tracking_uri:  # the store, the experiment and the sweep's own MLflow run, before workers race to
        from sesweep.runner.tracking import start_sweep

        tracker = start_sweep(plan, study, cfg.tracking_uri, results_dir, training)
    bar = _progress_bar(status, cfg.progress)
    tick = (lambda: _update_bar(bar, study_status(plan, study, cfg))) if bar is not None else (lambda: None)
    try:
        if training:
            with _logs_around(bar):
                if cfg.workers == 1:
                    with torch_threads(cfg.threads):
                        run_worker(plan, cfg, on_run_done=tick)
                else:
                    run_processes(plan, cfg, cfg.workers, tick, quiet=bar is not None)
        refresh_tables(plan, cfg, study)
        status = patiently("reading the sweep's status", cfg.storage_patience, study_status, plan, study, cfg)
        _update_bar(bar, status)
        if tracker is not None:
            from sesweep.runner.tracking import end_sweep
            from sesweep.runner.tracking_outage import catch_up

            catch_up(plan, study, lock, tracker)  # what was trained while the tracking server was away
            end_sweep(tracker, status)
    finally:
        if bar is not None:
            bar.close()
    return status


def require_data(plan: Plan) -> None:
    """A plan whose data are not here cannot run: its keys, which identify the data, are unknown."""
    if plan.unresolved:
        raise SpecError("", f"{plan.unresolved}; run keys identify the data, so nothing runs without them "
                            "(--data-root DIR reads them from DIR)")


def _logs_around(bar: Any) -> contextlib.AbstractContextManager[Any]:
    """Log lines printed above the progress bar instead of through it."""
    if bar is None:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def _progress_bar(status: SweepStatus, progress: bool | None) -> Any:
    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return None
    bar = tqdm(total=bar_state(status)[1], desc=f"sweep {status.name}", unit="run", file=sys.stderr,
               dynamic_ncols=True)
    _update_bar(bar, status)
    return bar


def bar_state(status: SweepStatus) -> tuple[int, int, str]:
    """The bar's count, total and postfix. A fixed list counts to its plan. A seed policy's plan holds every
    seed up to max, most of which a settled policy never trains, so its bar counts to the runs done, failed,
    running and allocated now (growing as the policy adds seeds), the at-most end in the postfix."""
    n = status.done + status.failed
    total = status.total
    postfix = f"{status.running} running, {status.failed} failed"
    if status.pending_at_least is not None and status.pending_at_most is not None:
        total = n + status.running + status.pending_at_least
        most = n + status.running + status.pending_at_most
        postfix += f", at most {most} runs" if most > total else ""
    if status.eta_seconds is not None and not status.complete:
        postfix += f", eta {duration(status.eta_seconds)}"
    return n, total, postfix


def _update_bar(bar: Any, status: SweepStatus) -> None:
    if bar is None:
        return
    bar.n, bar.total, postfix = bar_state(status)
    bar.set_postfix_str(postfix, refresh=False)
    bar.refresh()
