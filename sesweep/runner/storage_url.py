"""``--storage`` checked up front, before anything is read, written or started: the URL's form, its database
driver, and for SQLite that the path is (or can be created as) a database file. Nothing is connected to: a
server that is down is an outage, handled where the storage is opened, not a typo."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sesweep.spec import SpecError

#: what ``--storage`` takes, for messages
ALLOWED = ("allowed: sqlite:///PATH (a database file; its folder is created) or a SQLAlchemy database URL such as "
           "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB")
#: the first bytes of every SQLite database file
SQLITE_HEADER = b"SQLite format 3\x00"


def check_storage_url(url: str) -> None:
    """Raise a one-line :class:`SpecError` naming ``--storage`` when ``url`` cannot be a sweep's storage."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise SpecError("--storage", f"{url!r} is not a database URL; {ALLOWED}") from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise SpecError("--storage", f"{shown!r} is not a database URL ({parsed.drivername!r} is no database "
                                     f"SQLAlchemy knows); {ALLOWED}") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise SpecError("--storage", f"no database driver for {parsed.drivername} ({exc}); for PostgreSQL install "
                                     "psycopg (pip install 'psycopg[binary]') and use postgresql+psycopg://…; "
                                     f"{ALLOWED}") from None
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_path(shown, parsed.database)


def _check_sqlite_path(shown: str, database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        raise SpecError("--storage", f"{shown!r} names no database file (an in-memory database dies with its "
                                     f"process and no other worker can see it); {ALLOWED}")
    path = Path(database).expanduser()
    if path.is_dir():
        raise SpecError("--storage", f"{path} is a folder, not a database file; {ALLOWED}")
    if path.exists():
        try:
            with path.open("rb") as f:
                head = f.read(len(SQLITE_HEADER))
        except OSError as exc:
            raise SpecError("--storage", f"cannot read {path}: {exc.strerror or exc}") from None
        if head and head != SQLITE_HEADER:
            raise SpecError("--storage", f"{path} is a file but not a SQLite database; {ALLOWED}")
        if not os.access(path, os.W_OK):
            raise SpecError("--storage", f"cannot write {path}: permission denied")
        return
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SpecError("--storage", f"cannot create {path}: {parent} is a file, not a folder; {ALLOWED}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SpecError("--storage", f"cannot create {path}: {parent} is not writable")
    if parent != path.absolute().parent:  # a folder must be made: try it (and take it back), as access() can say
        first = next(p for p in path.absolute().parents if p.parent == parent)  # yes where mkdir fails (/proc)
        try:
            first.mkdir()
        except FileExistsError:  # another worker made it meanwhile: it can be made
            return
        except OSError as exc:
            raise SpecError("--storage", f"cannot create {path}: {first}: {exc.strerror or exc}; {ALLOWED}") from None
        with contextlib.suppress(OSError):  # not empty: another worker is filling it
            first.rmdir()
