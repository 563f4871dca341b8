"""Shared fixtures of the sweep tests: tiny sweep files on the `fake` data, a pre-migrated MLflow store."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
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


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free local port (as the ``postgres`` user when running as root) that
    a test can stop and start again, as an outage would."""

    def __init__(self, bindir: Path, root: Path, prefix: list[str], port: int) -> None:
        self.bindir, self.root, self.prefix, self.port = bindir, root, prefix, port
        self.data = root / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _as_pg(self, *args: str) -> None:
        cmd = [*self.prefix, shlex.join(args)] if self.prefix[:1] == ["su"] else [*self.prefix, *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._as_pg(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E",
                    "UTF8", "--no-sync")

    def start(self) -> None:
        self._as_pg(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t",
                    "60", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._as_pg(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster (:class:`PostgresServer`), started; skipped with the reason where there
    is none to start."""
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
    server = PostgresServer(bindir, root, prefix, port)
    try:
        server.init()
        server.start()
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr}") from None
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The SQLAlchemy URL of a throwaway PostgreSQL cluster (:func:`postgres_server`)."""
    return postgres_server.url


# --------------------------------------------------------------------------------------------------
# MLflow: a tracking server on loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with its own SQLite store and artifacts, at a fixed port so that a test
    can kill it and start it again where its clients expect it."""

    def __init__(self, store: Path, template: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, store / "mlflow.db")
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        log = (self.store / "server.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers",
             "1", "--backend-store-uri", f"sqlite:///{self.store / 'mlflow.db'}", "--artifacts-destination",
             str(self.store / "artifacts")], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {(self.store / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)

    def kill(self) -> None:
        """Killed, not shut down politely (that takes seconds; an outage does not ask)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def mlflow_server_process(tmp_path: Path, mlflow_template: Path) -> Iterator[MlflowServer]:
    """An :class:`MlflowServer`, not yet started."""
    server = MlflowServer(tmp_path / "mlflow-server", mlflow_template)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[str]:
    """The URL of a running ``mlflow server`` on loopback (:class:`MlflowServer`), shared by the tests that do not
    stop it (each uses experiments of its own sweep names): starting one takes 10-20 s."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), mlflow_template)
    try:
        server.start()
        yield server.url
    finally:
        server.kill()
