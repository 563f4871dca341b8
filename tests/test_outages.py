"""Outages, for real: a PostgreSQL storage stopped and started again mid-sweep, an MLflow server away at the start
and killed mid-run, a results folder that is read-only or fills up (a small tmpfs), a worker whose clock is an
hour off. What must hold in each: one clear line about it, the sweep waits where waiting helps, and no finished
run is lost or recorded twice."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sesweep import cli
from sesweep.plan import load_plan
from sesweep.runner import sweep as sw
from sesweep.runner.tracking_outage import is_pending

ROOT = Path(__file__).resolve().parents[1]
FAST = {"heartbeat_interval": 1, "grace_period": 4, "progress": False, "threads": 1}


def sesweep_run(path: Path, *args: str, env: dict[str, str] | None = None,
                prefix: tuple[str, ...] = ("-m", "sesweep")) -> subprocess.Popen[str]:
    cmd = [sys.executable, *prefix, "run", str(path), "--heartbeat", "1", "--grace", "4", "--threads", "1",
           "--quiet", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def trials_of(name: str, url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def wait_for_running(name: str, url: str, procs: list[subprocess.Popen[str]], timeout: float = 300) -> None:
    """Until a trial of sweep ``name`` is RUNNING and claimed by its worker (the study may not exist yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        with contextlib.suppress(Exception):
            if any(t.state == TrialState.RUNNING and "worker" in t.user_attrs for t in trials_of(name, url)):
                return
        time.sleep(0.1)
    raise AssertionError("no trial was caught running: " + "".join(p.stderr.read() for p in procs if p.stderr))


def wait_for_mlflow_run(url: str, experiment: str, proc: subprocess.Popen[str], timeout: float = 300) -> None:
    """Until the tracking server holds a RUNNING training run of ``experiment``."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(Exception):
            exp = client.get_experiment_by_name(experiment)
            runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'", max_results=100)
            if any(r.data.tags.get("sesweep.role") != "sweep" for r in runs):
                return
        time.sleep(0.1)
    raise AssertionError("no MLflow run was caught running")


def stderr_after(proc: subprocess.Popen[str], disrupt: Callable[[], None]) -> str:
    """Run ``disrupt`` (wait for a moment, then take a server away) while ``proc`` works, then wait for ``proc``
    and return its stderr; ``proc`` is killed if anything on the way fails."""
    try:
        disrupt()
        return proc.communicate(timeout=300)[1]
    finally:
        if proc.poll() is None:
            proc.kill()


def completed_once(trials: list[optuna.trial.FrozenTrial]) -> Counter[str]:
    return Counter(t.user_attrs["run_key"] for t in trials if t.state == TrialState.COMPLETE)


def csv_keys(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        return sorted(row["run_key"] for row in csv.DictReader(fh))


# --------------------------------------------------------------------------------------------------
# the storage


@pytest.mark.slow
def test_the_storage_going_away_mid_sweep_is_waited_out_and_nothing_is_lost(make_sweep, tmp_path: Path,
                                                                           postgres_server):
    path = make_sweep("storage_outage", seeds=(0, 1), recipe={"epochs": 6})
    plan = load_plan(path)
    url = postgres_server.url
    proc = sesweep_run(path, "--storage", url, "--no-tracking", "--results", str(tmp_path / "results"),
                       "--storage-patience", "180", "--checkpoint-every", "0")
    def outage() -> None:  # mid-run: the heartbeat, and then the finish, meet a storage that is not there
        wait_for_running(plan.name, url, [proc])
        postgres_server.stop()
        time.sleep(8)  # twice the grace period
        postgres_server.start()

    err = stderr_after(proc, outage)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "storage back after" in err or "recorded again after" in err, err  # it met the outage and rode it out
    trials = trials_of(plan.name, url)
    assert completed_once(trials) == Counter(plan.keys)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert csv_keys(tmp_path / "results" / plan.name / "runs.csv") == sorted(plan.keys)


@pytest.mark.slow
def test_a_storage_away_past_the_patience_stops_with_one_line_and_the_run_is_recorded_later(
        make_sweep, tmp_path: Path, postgres_server, count_trainings: Counter[str]):
    path = make_sweep("storage_gone", seeds=(0,), recipe={"epochs": 6})
    plan = load_plan(path)
    url = postgres_server.url
    results = tmp_path / "results"
    proc = sesweep_run(path, "--storage", url, "--no-tracking", "--results", str(results), "--storage-patience",
                       "3", "--checkpoint-every", "0")
    try:
        err = stderr_after(proc, lambda: (wait_for_running(plan.name, url, [proc]), postgres_server.stop()))
    finally:
        postgres_server.start()
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("sesweep run: error: the sweep storage did not answer") and "--storage-patience" in last
    assert "Traceback" not in err
    # the result was written (pending: not yet the run's) before the storage was asked to record it: the next
    # run adopts it, training nothing, and puts it in place
    runs = results / plan.name / "runs"
    assert list((runs / ".pending").glob(f"{plan.keys[0]}.*.json")) and not (runs / f"{plan.keys[0]}.json").exists()
    status = sw.run_sweep(plan, storage=url, results_dir=results, tracking=False, **FAST)
    assert status.done == status.total == 1 and not count_trainings
    assert (runs / f"{plan.keys[0]}.json").is_file() and not list(runs.glob(".pending/*"))
    trials = trials_of(plan.name, url)
    assert completed_once(trials) == Counter(plan.keys)
    assert next(t.user_attrs.get("adopted_from") for t in trials if t.state == TrialState.COMPLETE)


# --------------------------------------------------------------------------------------------------
# the MLflow server


@pytest.mark.slow
def test_an_mlflow_server_away_at_the_start_or_killed_mid_run_gets_every_run_once(
        make_sweep, tmp_path: Path, mlflow_server_process, caplog: pytest.LogCaptureFixture):
    from mlflow import MlflowClient

    server = mlflow_server_process  # not started: nothing answers at its URL
    results = tmp_path / "results"
    path = make_sweep("mlflow_outage", seeds=(0, 1), recipe={"epochs": 3})
    plan = load_plan(path)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="sesweep"):
        status = sw.run_sweep(plan, results_dir=results, tracking_uri=server.url, **FAST)
    assert status.done == status.total == 2
    assert time.monotonic() - started < 60  # not MLflow's two minutes of retries per call
    assert "does not answer" in caplog.text
    storage = f"sqlite:///{results / plan.name / 'optuna.db'}"
    study = optuna.load_study(study_name=plan.name, storage=storage)
    assert all(is_pending(t, study.user_attrs) for t in study.get_trials())

    # the server comes up; more seeds are run, and the server is killed while one of them trains
    server.start()
    path = make_sweep("mlflow_outage", seeds=(0, 1, 2, 3), recipe={"epochs": 3})
    plan = load_plan(path)
    proc = sesweep_run(path, "--results", str(results), "--tracking-uri", server.url)
    err = stderr_after(proc, lambda: (wait_for_mlflow_run(server.url, plan.name, proc), server.kill()))
    assert proc.returncode == 0, err
    assert "Traceback" not in err

    # back again: the same command trains nothing and logs what the server missed
    server.start()
    status = sw.run_sweep(plan, results_dir=results, tracking_uri=server.url, **FAST)
    assert status.done == status.total == 4
    study = optuna.load_study(study_name=plan.name, storage=storage)
    assert not [t for t in study.get_trials() if is_pending(t, study.user_attrs)]
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name(plan.name)
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
            if r.data.tags.get("sesweep.role") != "sweep"]
    finished = Counter(r.data.tags["run_key"] for r in runs if r.info.status == "FINISHED")
    assert finished == Counter(plan.keys)  # exactly one FINISHED run per key
    assert not [r for r in runs if r.info.status == "RUNNING"]  # the attempt cut off by the kill is closed
    assert any(r.data.tags.get("logged_late") == "true" for r in runs)


# --------------------------------------------------------------------------------------------------
# the results folder


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``small_disk(size, read_only=False)`` → a tmpfs of ``size`` mounted in ``tmp_path``: a real full or
    read-only file system. Skipped with the reason where this process may not mount (not root)."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}): needs root")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(args)
    return code, capsys.readouterr().err


def test_a_results_folder_that_cannot_be_written_is_refused_before_anything_starts(
        make_sweep, tmp_path: Path, capsys: pytest.CaptureFixture[str], small_disk):
    path = make_sweep("unwritable")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = run_cli(["run", str(path), "--results", str(blocker / "results"), "--no-tracking"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("sesweep run: error: --results:") and "cannot be written" in err

    read_only = small_disk("1m", read_only=True)
    code, err = run_cli(["run", str(path), "--results", str(read_only / "results"), "--no-tracking"], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "--results:" in err and "Read-only file system" in err
    assert not list(read_only.iterdir())


def test_a_results_folder_that_fills_up_mid_sweep_keeps_every_result_in_the_storage(
        make_sweep, tmp_path: Path, small_disk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    from sesweep.training import train as train_module

    disk = small_disk("2m")
    results = disk / "results"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"  # the storage elsewhere, as on several machines
    plan = load_plan(make_sweep("full_disk", seeds=(0, 1)))
    real_train = train_module.train

    def train_then_fill(*args, **kwargs):  # the disk fills up while the first run trains
        result = real_train(*args, **kwargs)
        if not (disk / "filler").exists():
            with contextlib.suppress(OSError), (disk / "filler").open("wb") as fh:
                while True:
                    fh.write(b"\0" * 65536)
        return result

    monkeypatch.setattr(train_module, "train", train_then_fill)
    with caplog.at_level(logging.WARNING, logger="sesweep"):
        status = sw.run_sweep(plan, storage=storage, results_dir=results, tracking=False, **FAST)
    assert status.done == status.total == 2  # both recorded in the storage
    assert "No space left on device" in caplog.text and "rebuilds the folder" in caplog.text
    assert not list((results / plan.name).rglob(".*.tmp"))  # no half-written files left behind

    (disk / "filler").unlink()
    monkeypatch.setattr(train_module, "train", real_train)
    again = sw.run_sweep(plan, storage=storage, results_dir=results, tracking=False, **FAST)
    assert again.done == 2
    assert csv_keys(results / plan.name / "runs.csv") == sorted(plan.keys)


# --------------------------------------------------------------------------------------------------
# a worker's clock


@pytest.mark.slow
def test_a_worker_whose_clock_is_an_hour_behind_loses_no_run_and_says_so(make_sweep, tmp_path: Path,
                                                                         postgres_server):
    path = make_sweep("clock_skew", seeds=(0, 1, 2, 3), recipe={"epochs": 2})
    plan = load_plan(path)
    url = postgres_server.url
    common = ("--storage", url, "--no-tracking")
    skewed = sesweep_run(path, *common, "--results", str(tmp_path / "skewed"),
                         prefix=(str(ROOT / "tests" / "skewed_clock.py"), "-3600"))
    normal = sesweep_run(path, *common, "--results", str(tmp_path / "normal"))
    errs = [p.communicate(timeout=300)[1] for p in (skewed, normal)]
    assert skewed.returncode == normal.returncode == 0, errs
    assert "clock is 3600 s behind the storage server's" in errs[0]
    trials = trials_of(plan.name, url)
    assert completed_once(trials) == Counter(plan.keys)
    # heartbeats an hour old by the skewed clock: had they been read by it, runs would have been taken for lost
    assert not [t for t in trials if t.state == TrialState.FAIL]
    workers = {t.user_attrs["worker"].rpartition(":")[2] for t in trials if t.state == TrialState.COMPLETE}
    assert workers <= {str(skewed.pid), str(normal.pid)}
