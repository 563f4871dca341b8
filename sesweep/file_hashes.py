"""The content hash of every file of a data set, read once: a cache keyed by path, size, mtime and inode.

An image folder's identity (part of every run key) must change when any pixel does, and names and sizes do
not tell (BMP, PPM, raw TIFF and ``.npy`` files of one shape always have one size; so can re-encodings). So
each file's bytes are hashed, and, as DVC does, the digest is kept in a cache beside the stat it was read
under (``size``, ``mtime_ns``, ``inode``, ``device``): a warm run stats every file and reads only those whose
stat changed. The cache is a SQLite file (several workers may fill it at once); where it cannot be opened or
written, every file is hashed afresh — slower, never wrong. The one blind spot, shared with DVC and make: a
file rewritten in place within one mtime tick at the same size, which no stat-based cache can see.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

#: bump when what a digest is computed from changes (every cached digest is then read again)
_FORMAT = 1
#: files read per task: hashlib releases the GIL on large buffers, so a few threads overlap reads and hashing
_CHUNK = 512
#: show a progress bar when at least this many files must be read (a cold CIFAR-10 is 60,000)
_BAR_FILES = 5000
_SCHEMA = ("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
           "inode INTEGER, device INTEGER, format INTEGER, sha256 TEXT)")


def _stat_key(path: str) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def hash_file(path: str) -> str:
    """The sha256 of one file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _open_cache(cache: Path | None) -> sqlite3.Connection | None:
    if cache is None:
        return None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(cache, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(_SCHEMA)
        return con
    except (OSError, sqlite3.Error) as exc:
        log.warning("the file-hash cache %s cannot be used (%s): every file is read", cache, exc)
        return None


def content_digests(paths: Sequence[str], under: str, cache: Path | None) -> list[tuple[int, str]]:
    """``(size, sha256)`` of each file in ``paths`` (absolute, all under the folder ``under``), in order; a
    file is read only where ``cache`` (the SQLite file; None: no cache) holds no digest taken under its
    current stat."""
    stats = [_stat_key(p) for p in paths]
    con = _open_cache(cache)
    known: dict[str, tuple[tuple[int, int, int, int], str]] = {}
    if con is not None and paths:
        # the rows under this folder only (a range over the primary key), not every folder's
        low = os.path.join(under, "")
        try:
            for path, size, mtime, inode, device, digest in con.execute(
                    "SELECT path, size, mtime_ns, inode, device, sha256 FROM digests "
                    "WHERE path >= ? AND path < ? AND format = ?", (low, low + "\U0010ffff", _FORMAT)):
                known[path] = ((size, mtime, inode, device), digest)
        except sqlite3.Error as exc:
            log.warning("the file-hash cache %s cannot be read (%s): every file is read", cache, exc)
            known = {}
    digests: list[str | None] = []
    for path, stat in zip(paths, stats, strict=True):
        hit = known.get(path)
        digests.append(hit[1] if hit is not None and hit[0] == stat else None)
    todo = [i for i, d in enumerate(digests) if d is None]
    if todo:
        chunks = [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]
        bar = tqdm(total=len(todo), unit="file", desc="hashing image files", file=sys.stderr, leave=False,
                   disable=len(todo) < _BAR_FILES or not sys.stderr.isatty())
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for chunk, got in zip(chunks, pool.map(lambda c: [hash_file(paths[i]) for i in c], chunks),
                                  strict=True):
                for i, digest in zip(chunk, got, strict=True):
                    digests[i] = digest
                bar.update(len(chunk))
        bar.close()
        # a file changed while it was read is caught next time: the stat stored is the one taken before reading
        if con is not None:
            try:
                with con:
                    con.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)",
                                    [(paths[i], *stats[i], _FORMAT, digests[i]) for i in todo])
            except sqlite3.Error as exc:
                log.warning("the file-hash cache %s cannot be written (%s)", cache, exc)
    if con is not None:
        con.close()
    return [(stat[0], d) for stat, d in zip(stats, digests, strict=True) if d is not None]
