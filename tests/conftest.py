"""Shared fixtures of the sweep tests: tiny sweep files on the `fake` data, a pre-migrated MLflow store."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
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


# --------------------------------------------------------------------------------------------------
# PostgreSQL: the several-machine storage (a throwaway cluster per test)


def _pg_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free local port, as the ``postgres`` user when running as root."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian/Ubuntu: apt-get install -y postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("no PostgreSQL driver for SQLAlchemy: pip install 'psycopg[binary]'")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="sesweep-pg-"))
    if os.getuid() == 0:
        import pwd

        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(root, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else ["su", "postgres", "-c"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def as_pg(*args: str) -> None:
        cmd = [*prefix, shlex.join(args)] if prefix[:1] == ["su"] else [*prefix, *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    data = root / "data"
    try:
        as_pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        as_pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60", "-o",
              f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr}") from None
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(Exception):
            as_pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
