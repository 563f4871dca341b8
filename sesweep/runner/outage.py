"""Outages of what a sweep leans on: a storage that went away is waited out, a results folder that cannot be
written is named, a worker's clock off the server's is told, a tracking server that does not answer is found
out in seconds (what is logged to it later: :mod:`sesweep.runner.tracking_outage`), each in one line.

Why wait: on several machines the storage is a server (PostgreSQL) that restarts, fails over or drops off the
network for a minute; a worker that gave up at the first refused connection would lose the run it just
trained. So every storage call of a worker is retried with back-off for ``--storage-patience`` seconds, one
warning line per wait; only then does it stop with :class:`StorageDown`. Nothing is lost even then: the finished
run's JSON is in the results folder, and the next worker to claim that run adopts it instead of training it
again (see docs/many-machines.md).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sesweep.spec import SpecError

log = logging.getLogger("sesweep.runner.outage")

T = TypeVar("T")

#: seconds a worker keeps trying a storage that does not answer, by default (``--storage-patience``)
DEFAULT_STORAGE_PATIENCE = 600.0
#: the longest single wait between two tries: a returning server is noticed within this many seconds
MAX_BACKOFF = 30.0


class OutageError(RuntimeError):
    """A service or folder the sweep needs is not there; its message is one line for the user."""


class StorageDown(OutageError):
    """The storage did not answer for longer than the patience."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database could not be reached or written, rather than that
    a query was wrong: a refused or dropped connection, a server shutting down, a locked or full SQLite file."""
    from sqlalchemy import exc as sa

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.OperationalError | sa.InterfaceError | sa.TimeoutError):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, ConnectionError):
            return True
        current = current.__cause__ or current.__context__
    return False


def first_line(exc: BaseException) -> str:
    """The root cause of ``exc`` in one short line (SQLAlchemy's messages run to several, with a URL)."""
    root = exc
    while root.__cause__ is not None or (root.__context__ is not None and not root.__suppress_context__):
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    text = str(root).strip().splitlines()
    return (text[0] if text else root.__class__.__name__)[:300]


def patiently(what: str, patience: float, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, tried again with doubling waits (1 s up to :data:`MAX_BACKOFF`) while it fails
    with an outage (:func:`is_outage`), for ``patience`` seconds in all; then :class:`StorageDown`. Any other
    error is raised at once. ``fn`` must be safe to call again after a failure part-way through."""
    started = time.monotonic()
    delay = 1.0
    warned = False
    while True:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            if not is_outage(exc):
                raise
            waited = time.monotonic() - started
            if waited + delay > patience:
                raise StorageDown(f"the sweep storage did not answer for {waited:.0f} s while {what} "
                                  f"({first_line(exc)}); finished runs are kept in the results folder and "
                                  "recorded by the next `sesweep run` of this sweep (--storage-patience "
                                  "waits longer)") from None
            log.warning("storage unreachable while %s (%s); trying again in %.0f s (%.0f s of %.0f waited)",
                        what, first_line(exc), delay, waited, patience)
            warned = True
            time.sleep(delay * (0.8 + 0.4 * random.random()))  # workers do not all return at the same instant
            delay = min(delay * 2, MAX_BACKOFF)
            continue
        if warned:
            log.warning("storage back after %.0f s; %s done", time.monotonic() - started, what)
        return result


def check_writable(folder: Path, shown: str | Path) -> list[Path]:
    """Refuse a results folder this process cannot create or write, before any work: one line naming it.
    Returns the folders it created, deepest first, for :func:`remove_created` when a later check refuses."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    probe = folder / f".sesweep-write-test.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x")
    except OSError as exc:
        raise SpecError("--results", f"{shown} cannot be written ({_os_reason(exc)}); allowed: a folder this "
                                     "user can create and write, with free space") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return created


def remove_created(folders: list[Path]) -> None:
    """Remove the folders :func:`check_writable` created, where still empty: a refused command creates nothing."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _os_reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{exc.strerror or exc}" + (f", {name}" if name else "")


def results_write_failed(exc: OSError, what: str) -> str:
    """The one-line warning when a result could not be written to the results folder mid-sweep."""
    return (f"cannot write {what} ({_os_reason(exc)}); the result is recorded in the sweep storage: free the "
            "space (or fix the folder) and run the same `sesweep run` again: it trains nothing and rebuilds the "
            "folder from the storage")


#: a worker's clock this many seconds off the storage server's is warned about
CLOCK_SKEW_WARNING = 60.0


def clock_skew(engine: Any) -> float | None:
    """Seconds this machine's clock is ahead of the storage server's (negative: behind); None for SQLite (same
    machine) or a server whose time has no zone."""
    from sqlalchemy import text

    if engine.dialect.name == "sqlite":
        return None
    with engine.connect() as conn:
        before = time.time()
        server = conn.execute(text("SELECT CURRENT_TIMESTAMP")).scalar()
        after = time.time()
    if server is None or getattr(server, "tzinfo", None) is None:
        return None
    return (before + after) / 2 - server.timestamp()


def warn_clock_skew(engine: Any) -> None:
    """One warning line when this machine's clock is off the storage server's by more than
    :data:`CLOCK_SKEW_WARNING`. Nothing is at risk: Optuna records heartbeats and finds lost runs by the server's
    clock alone; only the start and end times shown for this machine's runs are off."""
    try:
        skew = clock_skew(engine)
    except Exception:  # an outage is noticed, and waited out, by the next storage call
        return
    if skew is not None and abs(skew) > CLOCK_SKEW_WARNING:
        log.warning("this machine's clock is %.0f s %s the storage server's: lost runs are found by the server's "
                    "clock, so none is lost to it, but the times shown for this machine's runs are off by as "
                    "much (set up NTP)", abs(skew), "ahead of" if skew > 0 else "behind")


# --------------------------------------------------------------------------------------------------
# the tracking server (what waits for it: sesweep.runner.tracking_outage)

#: MLflow's own HTTP retries, shortened: its defaults (7 retries, factor 2, 120 s timeout) hold a worker about
#: two minutes per call against a server that is down; what fails is logged later (tracking_outage.catch_up).
#: Set in the environment only where the user did not set them.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
#: seconds the reachability probe waits for an answer
PROBE_TIMEOUT = 5.0


def shorten_http_retries() -> None:
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def unreachable(uri: str) -> str | None:
    """Why the tracking server at ``uri`` does not answer; None when it does. A local store (SQLite, files)
    always answers here (its own errors are tracking errors, warned about where they happen). Any HTTP answer
    below 500 counts as an answer (a proxy's 502 while the server restarts does not)."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT):
            return None
    except urllib.error.HTTPError as exc:
        return None if exc.code < 500 else f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason).splitlines()[0][:200] or exc.__class__.__name__
