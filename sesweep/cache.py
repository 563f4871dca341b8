"""The user's sesweep cache: decoded data sets, file digests, stream statistics, the MLflow store template.

Everything in it can be rebuilt from its source (deleting the folder costs time, never results), so it lives
outside ``results/``: ``$SESWEEP_CACHE`` or ``~/.cache/sesweep``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where sesweep caches what it can rebuild: ``$SESWEEP_CACHE`` or ``~/.cache/sesweep``."""
    return Path(os.environ.get("SESWEEP_CACHE") or "~/.cache/sesweep").expanduser()
