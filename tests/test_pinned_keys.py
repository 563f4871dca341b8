"""The run keys of every shipped sweep are pinned: a schema change (a new knob, a renamed default, a key that
stops or starts being inert) that silently changes them would retrain everything or mis-adopt old results.

The keys are computed with a fixed stand-in data identity, so the pins hold the schema's part of the key and
do not depend on which data sets this machine has. A change that is *meant* to change keys updates the pins
(``SESWEEP_UPDATE_PINS=1 pytest tests/test_pinned_keys.py``) in the same commit, and says why."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sesweep.plan import load_plan
from sesweep.run_identity import run_key
from sesweep.spec import RunSpec

ROOT = Path(__file__).resolve().parent.parent
PINS = Path(__file__).with_name("pinned_run_keys.json")
SWEEPS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "experiments").rglob("*.yaml")
                if p.name != "dvc.yaml")
DATA_ID = "pinned-data-identity"
#: the loader an image folder's ``loader: auto`` picks is read from the folder: a stand-in here too
LOADER = "pinned-loader"


def sweep_keys(path: str) -> dict[str, str]:
    """``{variant@seed: key}`` for every run of a sweep, with the stand-in data identity."""
    plan = load_plan(ROOT / path)
    return {f"{run.variant}@{run.spec.seed}": run_key(run.spec, DATA_ID, pinned_loader(run.spec)) for run in plan.runs}


def pinned_loader(spec: RunSpec) -> str | None:
    """The stand-in for a loader that only the folder's listing decides; None (computed) everywhere else."""
    r = spec.recipe
    return LOADER if r.dataset == "imagefolder" and r.loader == "auto" else None


def digest(keys: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def test_every_shipped_sweep_is_pinned():
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    if os.environ.get("SESWEEP_UPDATE_PINS"):
        PINS.write_text(json.dumps({p: {"runs": len(k), "digest": digest(k), "first": dict(sorted(k.items())[:3])}
                                    for p in SWEEPS for k in [sweep_keys(p)]}, indent=1, sort_keys=True) + "\n")
        pytest.skip("pins rewritten")
    assert sorted(pins) == SWEEPS, "a sweep was added or removed: update the pins (see the module doc)"


@pytest.mark.parametrize("path", SWEEPS)
def test_run_keys_of_a_shipped_sweep_do_not_move(path: str):
    pin = json.loads(PINS.read_text())[path]
    keys = sweep_keys(path)
    assert dict(sorted(keys.items())[:3]) == pin["first"]
    assert (len(keys), digest(keys)) == (pin["runs"], pin["digest"]), f"run keys of {path} changed"
