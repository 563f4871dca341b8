"""A sweep's runner settings, in one typed object: built from ``sesweep run``'s arguments or from keywords."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from sesweep.results import DEFAULT_RESULTS
from sesweep.spec import SpecError

#: seconds between heartbeats of a running trial (Optuna takes whole seconds)
DEFAULT_HEARTBEAT = 10
#: a running trial whose last heartbeat is older than this many heartbeat intervals is failed and retried
GRACE_INTERVALS = 3


@dataclass(frozen=True)
class SweepConfig:
    """How a sweep runs; what every worker needs besides the plan (picklable for spawned processes).

    Build it with :meth:`create` (keywords, validated, defaults resolved) or :meth:`from_args` (``sesweep run``).
    """

    storage: str
    results_dir: str                     # absolute, so spawned workers agree
    tracking_uri: str | None             # None: no MLflow tracking
    max_retries: int = 1
    heartbeat_interval: int = DEFAULT_HEARTBEAT
    grace_period: int = GRACE_INTERVALS * DEFAULT_HEARTBEAT
    threads: int | None = None           # torch threads per worker; None: leave torch's default
    wait: bool = True                    # wait for runs other workers hold, to retry them if their worker dies
    workers: int = 1                     # local worker processes (1: this process)
    retry_failed: bool = False           # give runs that failed for good a fresh max_retries budget
    progress: bool | None = None         # a progress bar; None: when stderr is a terminal
    results: str | None = None           # the results folder as given (paths in messages); None: results_dir

    @property
    def poll_interval(self) -> float:
        return max(0.5, min(float(self.heartbeat_interval), 5.0))

    @property
    def results_root(self) -> str:
        """The results folder as the user gave it (relative paths stay relative in what is printed)."""
        return self.results if self.results is not None else self.results_dir

    @classmethod
    def create(cls, name: str, *, storage: str | None = None, workers: int = 1,
               results_dir: str | Path = DEFAULT_RESULTS, tracking_uri: str | None = None, tracking: bool = True,
               progress: bool | None = None, max_retries: int = 1, heartbeat_interval: int = DEFAULT_HEARTBEAT,
               grace_period: int | None = None, retry_failed: bool = False, wait: bool = True,
               threads: int | None = None) -> SweepConfig:
        """The settings of sweep ``name``, checked (a bad value is a :class:`SpecError` naming its option).

        ``storage`` defaults to SQLite under ``results_dir/<name>/``, ``tracking_uri`` (with ``tracking``) to
        MLflow's SQLite store there, ``threads`` to ``cores // workers`` for spawned workers (torch's own
        default in-process), ``grace_period`` to :data:`GRACE_INTERVALS` heartbeats."""
        if workers < 1:
            raise SpecError("--workers", f"{workers} is out of range; allowed: >= 1")
        if threads is not None and threads < 1:
            raise SpecError("--threads", f"{threads} is out of range; allowed: >= 1")
        if threads is None and workers > 1:
            threads = max(1, cores() // workers)
        if max_retries < 0:
            raise SpecError("--max-retries", f"{max_retries} is out of range; allowed: >= 0")
        if int(heartbeat_interval) != heartbeat_interval or heartbeat_interval < 1:
            raise SpecError("--heartbeat",
                            f"{heartbeat_interval!r} is not allowed; allowed: an integer >= 1 (seconds)")
        grace = GRACE_INTERVALS * int(heartbeat_interval) if grace_period is None else int(grace_period)
        if grace <= heartbeat_interval:
            raise SpecError("--grace",
                            f"{grace} is not allowed; allowed: more than the heartbeat ({heartbeat_interval} s)")
        from sesweep.runner.queue import default_storage
        from sesweep.runner.tracking import default_tracking_uri

        uri = (tracking_uri or default_tracking_uri(name, results_dir)) if tracking else None
        return cls(storage or default_storage(name, results_dir), str(Path(results_dir).resolve()), uri,
                   max_retries=max_retries, heartbeat_interval=int(heartbeat_interval), grace_period=grace,
                   threads=threads, wait=wait, workers=workers, retry_failed=retry_failed, progress=progress,
                   results=str(results_dir))

    @classmethod
    def from_args(cls, args: argparse.Namespace, name: str) -> SweepConfig:
        """The settings ``sesweep run`` was given (see :func:`sesweep.runner.commands.add_run_arguments`)."""
        return cls.create(name, storage=args.storage, workers=args.workers, results_dir=args.results,
                          tracking_uri=args.tracking_uri, tracking=not args.no_tracking,
                          progress=False if args.quiet else None, max_retries=args.max_retries,
                          heartbeat_interval=args.heartbeat, grace_period=args.grace,
                          retry_failed=args.retry_failed, wait=not args.no_wait, threads=args.threads)


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
