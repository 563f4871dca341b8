"""Shared fixtures of the sweep tests: tiny sweep files on the `fake` data, a pre-migrated MLflow store."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

#: a run of well under a second on one CPU thread: 32 fake 16x16 images, one epoch, two batches
FAKE_RECIPE = {"dataset": "fake", "train_subset": 32, "test_subset": 16, "image_size": 16, "epochs": 1,
               "batch_size": 16, "eval_batch_size": 16, "precision": "fp32", "augment": "none", "device": "cpu"}


@pytest.fixture
def make_sweep(tmp_path: Path) -> Callable[..., Path]:
    """``make_sweep(name, seeds=..., axes=..., variants=..., recipe=...)`` → path of a tiny sweep file."""

    def make(name: str = "tiny", seeds: tuple[int, ...] = (0,), axes: dict[str, Any] | None = None,
             variants: dict[str, Any] | None = None, recipe: dict[str, Any] | None = None) -> Path:
        doc: dict[str, Any] = {"name": name, "model": {"arch": "resnet20"},
                               "recipe": {**FAKE_RECIPE, **(recipe or {})}, "seeds": list(seeds)}
        if axes:
            doc["axes"] = axes
        if variants:
            doc["variants"] = variants
        path = tmp_path / "experiments" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return make


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite store (creating one takes seconds; copying it takes none)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_store(mlflow_template: Path) -> Callable[[Path, str], str]:
    """``tracking_store(results_dir, name)`` puts a fresh store where the sweep's default URI points."""

    def put(results_dir: Path, name: str) -> str:
        target = results_dir / name / "mlflow.db"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(mlflow_template, target)
        return f"sqlite:///{target.resolve()}"

    return put


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run the test with one torch thread (imported lazily: spawned workers import the test modules)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def count_trainings(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts in-process calls of sesweep.training.train.train per run key."""
    import sesweep.training.train

    calls: Counter[str] = Counter()
    real = sesweep.training.train.train

    def counting(spec, **kwargs):
        calls[sesweep.training.train.run_key(spec)] += 1
        return real(spec, **kwargs)

    monkeypatch.setattr(sesweep.training.train, "train", counting)
    return calls
