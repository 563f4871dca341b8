"""A new SQLite MLflow store, made by copying a migrated empty one.

Why: MLflow builds a fresh SQLite store by running its ~50 alembic migrations, 3-5 s on a quiet 2-core machine
(19 s under load), paid by every new sweep before its first run, while copying the empty result takes
milliseconds. The empty store is made by MLflow itself, once per MLflow version, in the user's cache
(``cache_dir()/mlflow-store/``); a store that exists is never touched, and any failure here (a cache that cannot
be written) only leaves the store to MLflow as before. Servers and other databases are MLflow's alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
from pathlib import Path

from sesweep.cache import cache_dir

log = logging.getLogger("sesweep.runner.mlflow_store")


def prepare(uri: str) -> None:
    """Before MLflow first opens ``uri``: when it is a SQLite store that does not exist yet, put a copy of the
    cached empty store there (made first if this MLflow version has none)."""
    path = _sqlite_path(uri)
    if path is None or path.exists():
        return
    try:
        template = _template()
        path.parent.mkdir(parents=True, exist_ok=True)
        _place(template, path)
    except (OSError, sqlite3.Error) as exc:  # slower, never wrong: MLflow migrates the store itself
        log.debug("no MLflow store template (%s): MLflow creates %s itself", exc, path)


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///") or "?" in uri:
        return None
    rest = uri.removeprefix("sqlite:///")  # sqlite:////abs/x.db: /abs/x.db; sqlite:///rel/x.db: rel/x.db
    return None if rest in ("", ":memory:") else Path(rest)


def _template() -> Path:
    """The migrated empty store of this MLflow version, made by MLflow in a temporary file and renamed into
    place (two processes making it at once both end with a whole one)."""
    import mlflow
    from mlflow import MlflowClient

    folder = cache_dir() / "mlflow-store"
    template = folder / f"empty-mlflow-{mlflow.__version__}.db"
    if template.is_file():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".making-", suffix=".db", dir=folder)
    os.close(fd)
    os.unlink(tmp)  # MLflow creates the file: an empty one is not a SQLite store it migrates
    try:
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()
        with contextlib.closing(sqlite3.connect(tmp)) as db:
            db.execute("pragma integrity_check")
        os.replace(tmp, template)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return template


def _place(template: Path, path: Path) -> None:
    """Copy ``template`` to ``path`` unless a store appeared there meanwhile (a worker racing this one: its store
    is kept, by a hard link that fails when the name exists), and point its Default experiment's artifacts
    beside it (MLflow puts a fresh store's Default experiment in the current folder's ``mlruns/0``)."""
    fd, tmp = tempfile.mkstemp(prefix=".mlflow-", suffix=".db", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out, template.open("rb") as src:
            out.write(src.read())
        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            db.execute("update experiments set artifact_location = ? where experiment_id = 0",
                       (str((path.parent / "mlruns" / "0").resolve()),))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
