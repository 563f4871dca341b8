"""A sweep's runner settings, in one typed object: built from ``sesweep run``'s arguments or from keywords."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from sesweep.results import DEFAULT_RESULTS
from sesweep.runner.outage import DEFAULT_STORAGE_PATIENCE
from sesweep.spec import SpecError

#: seconds between heartbeats of a running trial (Optuna takes whole seconds)
DEFAULT_HEARTBEAT = 10
#: a running trial whose last heartbeat is older than this many heartbeat intervals is failed and retried
GRACE_INTERVALS = 3
#: a run checkpoints at the first epoch end this long after its last checkpoint: one save of a ResNet-110
#: (well under a second) per 5 minutes of training is far below 1 % of it
DEFAULT_CHECKPOINT_EVERY = "5m"
_CHECKPOINT_FORMS = "0 (off), N (every N epochs) or a duration such as 90s, 5m, 1h (at the first epoch end after it)"
_SECONDS = {"s": 1, "m": 60, "h": 3600}


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
    checkpoint_every: str = DEFAULT_CHECKPOINT_EVERY  # see checkpoint_interval
    keep_checkpoints: bool = False       # leave a finished run's checkpoints in results/NAME/checkpoints/
    storage_patience: float = DEFAULT_STORAGE_PATIENCE  # seconds a worker waits out a storage that does not answer

    @property
    def poll_interval(self) -> float:
        return max(0.5, min(float(self.heartbeat_interval), 5.0))

    @property
    def checkpoint_interval(self) -> tuple[int, float]:
        """``--checkpoint-every`` as ``(epochs, seconds)``: at most one of them non-zero; both 0: off."""
        return parse_checkpoint_every(self.checkpoint_every)

    @property
    def results_root(self) -> str:
        """The results folder as the user gave it (relative paths stay relative in what is printed)."""
        return self.results if self.results is not None else self.results_dir

    @classmethod
    def create(cls, name: str, *, storage: str | None = None, workers: int = 1,
               results_dir: str | Path = DEFAULT_RESULTS, tracking_uri: str | None = None, tracking: bool = True,
               progress: bool | None = None, max_retries: int = 1, heartbeat_interval: int = DEFAULT_HEARTBEAT,
               grace_period: int | None = None, retry_failed: bool = False, wait: bool = True,
               threads: int | None = None, checkpoint_every: str | int = DEFAULT_CHECKPOINT_EVERY,
               keep_checkpoints: bool = False,
               storage_patience: str | float = DEFAULT_STORAGE_PATIENCE) -> SweepConfig:
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
        parse_checkpoint_every(str(checkpoint_every))  # a bad value fails here, before anything runs
        patience = parse_duration(str(storage_patience), "--storage-patience")
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
                   results=str(results_dir), checkpoint_every=str(checkpoint_every),
                   keep_checkpoints=keep_checkpoints, storage_patience=patience)

    @classmethod
    def from_args(cls, args: argparse.Namespace, name: str) -> SweepConfig:
        """The settings ``sesweep run`` was given (see :func:`sesweep.runner.commands.add_run_arguments`)."""
        return cls.create(name, storage=args.storage, workers=args.workers, results_dir=args.results,
                          tracking_uri=args.tracking_uri, tracking=not args.no_tracking,
                          progress=False if args.quiet else None, max_retries=args.max_retries,
                          heartbeat_interval=args.heartbeat, grace_period=args.grace,
                          retry_failed=args.retry_failed, wait=not args.no_wait, threads=args.threads,
                          checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                          storage_patience=args.storage_patience)


def parse_checkpoint_every(text: str) -> tuple[int, float]:
    """``--checkpoint-every``: ``"0"`` → off ``(0, 0)``, ``"3"`` → every 3 epochs ``(3, 0)``, ``"5m"`` → at the
    first epoch end 5 minutes after the last checkpoint ``(0, 300)``; anything else is a :class:`SpecError`."""
    value = text.strip().lower()
    try:
        if value[-1:] in _SECONDS:
            seconds = float(value[:-1]) * _SECONDS[value[-1]]
            if seconds > 0 and seconds != float("inf"):
                return 0, seconds
        elif int(value) >= 0:
            return int(value), 0.0
    except ValueError:
        pass
    raise SpecError("--checkpoint-every", f"{text!r} is not allowed; allowed: {_CHECKPOINT_FORMS}")


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``"600"``, ``"90s"``, ``"10m"`` or ``"1h"`` (0 and more); anything else is a :class:`SpecError`."""
    value = text.strip().lower()
    try:
        seconds = float(value[:-1]) * _SECONDS[value[-1]] if value[-1:] in _SECONDS else float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise SpecError(option, f"{text!r} is not allowed; allowed: seconds >= 0, or a duration such as 90s, 10m, 1h")
    return seconds


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
