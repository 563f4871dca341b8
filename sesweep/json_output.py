"""The commands' ``--json`` output: one document on the real stdout, strict JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any


def print_json(args: argparse.Namespace, doc: Any) -> None:
    """A command's result as JSON on the real stdout (``cli.main`` sends everything else a --json command or a
    library prints to stderr meanwhile). NaN and infinities are null: standard JSON has neither."""
    print(json.dumps(_finite(doc), indent=2, default=str, allow_nan=False),
          file=getattr(args, "json_stdout", None) or sys.stdout)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
