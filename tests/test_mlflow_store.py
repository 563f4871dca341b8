"""A new sweep's SQLite MLflow store is a copy of a migrated empty store cached per MLflow version
(runner/mlflow_store.py): migrating a fresh SQLite store takes seconds per sweep, copying it none."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mlflow
import pytest

from sesweep.runner import mlflow_store
from sesweep.runner.tracking import Tracker


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SESWEEP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_new_store_is_copied_from_the_cached_template_and_works(cache: Path, tmp_path: Path):
    first = tmp_path / "a" / "mlflow.db"
    tracker = Tracker(f"sqlite:///{first}", "sweep-a", artifact_dir=tmp_path / "a" / "mlartifacts")
    run_id = tracker.sweep_run()
    assert run_id is not None and tracker.client.get_run(run_id).data.tags["sesweep.role"] == "sweep"
    templates = list(cache.glob("mlflow-store/*.db"))
    assert len(templates) == 1 and mlflow.__version__ in templates[0].name  # one per MLflow version
    # the second store is a copy of the template: it has no run of the first, and its Default experiment's
    # artifacts live beside it, not wherever the template was made
    second = tmp_path / "b" / "mlflow.db"
    other = Tracker(f"sqlite:///{second}", "sweep-b", artifact_dir=tmp_path / "b" / "mlartifacts")
    assert other.client.get_experiment_by_name("sweep-a") is None
    assert other.setup() is not None and other.sweep_run() is not None
    with sqlite3.connect(second) as db:
        (location,) = db.execute("select artifact_location from experiments where experiment_id = 0").fetchone()
    assert location == str((second.parent / "mlruns" / "0").resolve())


def test_an_existing_store_is_never_replaced(cache: Path, tmp_path: Path):
    path = tmp_path / "mlflow.db"
    Tracker(f"sqlite:///{path}", "kept").sweep_run()
    mlflow_store.prepare(f"sqlite:///{path}")
    assert Tracker(f"sqlite:///{path}", "kept").client.get_experiment_by_name("kept") is not None


def test_a_cache_that_cannot_be_written_costs_only_the_speed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SESWEEP_CACHE", str(blocker / "cache"))
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "uncached")
    assert tracker.sweep_run() is not None


def test_other_stores_are_left_to_mlflow(cache: Path):
    mlflow_store.prepare("http://127.0.0.1:1/")
    mlflow_store.prepare("postgresql://u@127.0.0.1/db")
    assert not cache.exists()
