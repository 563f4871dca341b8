"""``python tests/skewed_clock.py SECONDS sesweep-args…``: the sesweep CLI on a machine whose clock is SECONDS
off (negative: behind). Python's clocks are shifted before anything reads them: ``time.time`` and
``datetime.datetime.now`` (what Optuna stamps trials with, what MLflow stamps runs and metrics with). The
database server keeps the true time, as a storage server on another machine would."""

from __future__ import annotations

import datetime as _datetime
import sys
import time

OFFSET = float(sys.argv[1])
_real_time = time.time


def _skewed_time() -> float:
    return _real_time() + OFFSET


class _SkewedDatetime(_datetime.datetime):
    @classmethod
    def now(cls, tz: _datetime.tzinfo | None = None) -> _SkewedDatetime:  # type: ignore[override]
        return super().now(tz) + _datetime.timedelta(seconds=OFFSET)

    @classmethod
    def utcnow(cls) -> _SkewedDatetime:  # type: ignore[override]
        return cls.now(_datetime.UTC).replace(tzinfo=None)


time.time = _skewed_time
time.time_ns = lambda: int(_skewed_time() * 1e9)
_datetime.datetime = _SkewedDatetime  # type: ignore[misc]

if __name__ == "__main__":
    from sesweep.cli import main

    sys.exit(main(sys.argv[2:]))
