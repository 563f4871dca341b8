"""The sweep runner (sesweep.runner.sweep) on real storage, real processes and real (tiny) training.

Exactly-once is checked three ways: the claim protocol alone under four racing processes (no training),
two spawned training workers counted through MLflow (one MLflow run per training attempt), and a worker
killed with SIGKILL mid-run whose run another worker takes over after the heartbeat grace period.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from claiming import claim_loop  # tests/ is on sys.path
from optuna.trial import TrialState

from sesweep.plan import Plan, load_plan
from sesweep.runner import sweep as sw
from sesweep.runner.queue import (
    default_storage,
    failure_reason,
    open_storage,
    trial_rows,
)
from sesweep.runner.status import sweep_status

ROOT = Path(__file__).resolve().parents[1]
FAST = {"heartbeat_interval": 1, "grace_period": 4, "progress": False, "threads": 1}


# one torch thread: runs of a few images are fastest so, and parallel workers do not oversubscribe
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trials_of(plan: Plan, storage: str | None = None, results: Path | None = None) -> list[optuna.trial.FrozenTrial]:
    url = storage or default_storage(plan, results)
    return optuna.load_study(study_name=plan.name, storage=open_storage(url)).get_trials(deepcopy=False)


def assert_exactly_once(plan: Plan, trials: list[optuna.trial.FrozenTrial]) -> None:
    complete = Counter(t.user_attrs["run_key"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == Counter(plan.keys), "every run key must have exactly one finished trial"
    assert not [t for t in trials if t.state == TrialState.PRUNED], "no duplicate claims"
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------------------------------
# single worker: outputs, resume, extension, adoption


def test_sweep_writes_run_json_and_tables_then_resume_trains_nothing_and_a_new_seed_trains_only_its_runs(
        make_sweep, tmp_path: Path, count_trainings: Counter[str]):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("grow", seeds=(0,), axes={"model.attention.reduction": [4, 16]}))
    status = sw.run_sweep(plan, results_dir=results, tracking=False, **FAST)
    assert status.done == status.total == 2 and status.complete
    assert sum(count_trainings.values()) == 2

    out = results / "grow"
    for run in plan.runs:
        payload = json.loads((out / "runs" / f"{run.key}.json").read_text())
        assert set(payload) >= {"record", "curves", "hidden_widths"}
        rec = payload["record"]
        assert (rec["run_key"], rec["sweep"], rec["variant"], rec["seed"]) == (run.key, "grow", run.variant, run.seed)
        assert rec["status"] == "finished" and rec["model.attention.reduction"] == run.spec.model.attention.reduction
        assert len(payload["curves"]) == 1 and payload["hidden_widths"]
    rows = read_csv(out / "runs.csv")
    assert [r["run_key"] for r in rows] == plan.keys
    assert list(rows[0])[:6] == ["run_key", "sweep", "variant", "seed", "status", "reason"]
    for col in ("model.attention.reduction", "recipe.epochs", "top1_err", "top5_err", "test_loss", "train_loss",
                "params", "macs", "train_seconds", "train_img_per_s", "infer_ms", "epochs_done"):
        assert col in rows[0], col
    curves = read_csv(out / "curves.csv")
    assert [c["run_key"] for c in curves] == plan.keys and {c["epoch"] for c in curves} == {"1"}
    assert json.loads((out / "manifest.json").read_text())["runs"][0]["run_key"] == plan.keys[0]
    assert (out / "sweep.yaml").read_text() == plan.spec_text
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*.json")}

    start = time.perf_counter()
    again = sw.run_sweep(plan, results_dir=results, tracking=False, **FAST)
    assert again.done == 2 and sum(count_trainings.values()) == 2  # trained nothing
    assert time.perf_counter() - start < 30
    assert len(trials_of(plan, results=results)) == 2

    grown = load_plan(make_sweep("grow", seeds=(0, 1), axes={"model.attention.reduction": [4, 16]}))
    before = sweep_status(grown, results_dir=results)
    assert (before.done, before.pending, before.running) == (2, 2, 0)
    mean = sum(r["seconds"] for r in before.rows if r["state"] == "finished") / 2
    assert before.eta_seconds == pytest.approx(2 * mean)  # the mean time of a trained run x runs left
    assert "eta" in before.summary() and "pending" in before.table()
    status = sw.run_sweep(grown, results_dir=results, tracking=False, **FAST)
    assert status.done == 4
    new = set(grown.keys) - set(plan.keys)
    assert set(count_trainings) == set(grown.keys) and all(count_trainings[k] == 1 for k in grown.keys)
    assert len(new) == 2
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # the old results were not rewritten
    assert len(read_csv(out / "runs.csv")) == 4
    assert_exactly_once(grown, trials_of(grown, results=results))


def test_finished_runs_are_adopted_across_sweeps_and_missing_json_is_rebuilt_from_the_study(
        make_sweep, tmp_path: Path, count_trainings: Counter[str]):
    results = tmp_path / "results"
    first = load_plan(make_sweep("first", axes={"model.attention.reduction": [4, 8]}))
    sw.run_sweep(first, results_dir=results, tracking=False, **FAST)
    assert sum(count_trainings.values()) == 2

    # another sweep sharing one run (r=8) with the first: that run is adopted, not trained again
    second = load_plan(make_sweep("second", axes={"model.attention.reduction": [8, 16]}))
    shared = next(r.key for r in second.runs if r.variant == "r=8")
    assert shared in first.keys
    status = sw.run_sweep(second, results_dir=results, tracking=False, **FAST)
    assert status.done == 2 and count_trainings[shared] == 1 and sum(count_trainings.values()) == 3
    adopted = [t for t in trials_of(second, results=results) if t.user_attrs["run_key"] == shared]
    assert adopted[0].user_attrs["adopted_from"].endswith(f"first/runs/{shared}.json")
    record = json.loads((results / "second" / "runs" / f"{shared}.json").read_text())["record"]
    assert record["sweep"] == "second" and record["variant"] == "r=8"

    # a lost JSON (another machine's result, or deleted) comes back from the study without training
    (results / "second" / "runs" / f"{shared}.json").unlink()
    sw.run_sweep(second, results_dir=results, tracking=False, **FAST)
    assert (results / "second" / "runs" / f"{shared}.json").is_file()
    assert sum(count_trainings.values()) == 3


# --------------------------------------------------------------------------------------------------
# diverged and failed runs


def test_a_diverged_run_is_a_result_not_retried(make_sweep, tmp_path: Path, count_trainings: Counter[str]):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("div", variants={"boom": {"recipe.lr": 1.0e30}}))
    status = sw.run_sweep(plan, results_dir=results, tracking=False, max_retries=3, **FAST)
    assert status.done == 2 and status.diverged == 1 and status.failed == 0
    assert sum(count_trainings.values()) == 2
    boom = next(r for r in plan.runs if r.variant == "boom")
    trials = [t for t in trials_of(plan, results=results) if t.user_attrs["run_key"] == boom.key]
    assert len(trials) == 1 and trials[0].state == TrialState.COMPLETE and trials[0].user_attrs["status"] == "diverged"
    row = next(r for r in read_csv(results / "div" / "runs.csv") if r["variant"] == "boom")
    assert row["status"] == "diverged" and "nan" in row["reason"].lower()
    assert math.isnan(float(row["top1_err"]))


def test_a_failing_run_is_retried_max_retries_times_then_left_failed(make_sweep, tmp_path: Path):
    results = tmp_path / "results"
    # the fake train split has 1000 images: asking for more fails inside the worker, at data loading
    plan = load_plan(make_sweep("fail", variants={"toolarge": {"recipe.train_subset": 5000}}))
    bad = next(r for r in plan.runs if r.variant == "toolarge")

    def attempts() -> list[optuna.trial.FrozenTrial]:
        return [t for t in trials_of(plan, results=results) if t.user_attrs["run_key"] == bad.key]

    status = sw.run_sweep(plan, results_dir=results, tracking=False, max_retries=1, **FAST)
    assert (status.done, status.failed, status.pending) == (1, 1, 0) and status.complete
    failed = attempts()
    assert [t.state for t in failed] == [TrialState.FAIL, TrialState.FAIL]  # the first attempt and one retry
    assert "5000 is more than the 1000 images" in failed[0].user_attrs["reason"]
    assert "Traceback" in failed[0].user_attrs["traceback"]
    row = next(r for r in read_csv(results / "fail" / "runs.csv") if r["run_key"] == bad.key)
    assert row["status"] == "failed" and "recipe.train_subset" in row["reason"]
    assert row["recipe.train_subset"] == "5000"
    assert not (results / "fail" / "runs" / f"{bad.key}.json").exists()

    # never retried forever: running the sweep again leaves it failed ...
    sw.run_sweep(plan, results_dir=results, tracking=False, max_retries=1, **FAST)
    assert len(attempts()) == 2
    table = sweep_status(plan, results_dir=results).table()
    assert "failed" in table and "5000 is more than" in table
    # ... until asked to retry failed runs, which gives one fresh budget
    status = sw.run_sweep(plan, results_dir=results, tracking=False, max_retries=0, retry_failed=True, **FAST)
    assert len(attempts()) == 3 and status.failed == 1

    # the queue's light view of the trials (no results loaded) says what get_trials says
    study = optuna.load_study(study_name="fail", storage=open_storage(default_storage(plan, results)))

    def view(trials: list) -> list[tuple]:
        return [(t._trial_id, t.number, t.state, t.user_attrs.get("run_key"), t.user_attrs.get("status"))
                for t in trials]

    assert view(trial_rows(study)) == view(study.get_trials()) and len(view(study.get_trials())) == 4
    assert view(trial_rows(study, states=(TrialState.FAIL,))) == view(study.get_trials(states=(TrialState.FAIL,)))
    assert {t.user_attrs["status"] for t in trial_rows(study)} == {"failed", "finished"}


def test_status_of_a_sweep_that_never_ran_creates_nothing(make_sweep, tmp_path: Path):
    plan = load_plan(make_sweep("never", seeds=(0, 1)))
    status = sweep_status(plan, results_dir=tmp_path / "results")
    assert (status.total, status.pending, status.done, status.eta_seconds) == (2, 2, 0, None)
    assert "0/2 done" in status.table()
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------------------
# concurrency: the claim protocol alone, under racing processes


def _claim_worker(plan: Plan, storage: str, log_path: str) -> None:
    """Claim and finish runs without training, as fast as possible; log every claim."""
    claim_loop(plan, storage, log_path)


def race_claims(plan: Plan, storage: str, tmp_path: Path, processes: int = 3) -> Counter[str]:
    ctx = multiprocessing.get_context("spawn")
    logs = [tmp_path / f"claims-{i}.log" for i in range(processes)]
    procs = [ctx.Process(target=_claim_worker, args=(plan, storage, str(log))) for log in logs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    return Counter(line for log in logs if log.exists() for line in log.read_text().split())


def test_racing_processes_claim_every_run_exactly_once_on_sqlite(make_sweep, tmp_path: Path):
    plan = load_plan(make_sweep("race", seeds=tuple(range(24))))
    storage = default_storage(plan, tmp_path / "results")
    claims = race_claims(plan, storage, tmp_path)
    assert claims == Counter(plan.keys)
    assert_exactly_once(plan, trials_of(plan, storage))
    assert len(trials_of(plan, storage)) == len(plan.keys)


# --------------------------------------------------------------------------------------------------
# concurrency: real training workers


@pytest.mark.slow
def test_two_worker_processes_train_every_run_exactly_once(make_sweep, tmp_path: Path, tracking_store):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("pair", seeds=(0, 1), axes={"model.attention.reduction": [4, 16]}))
    uri = tracking_store(results, "pair")
    status = sw.run_sweep(plan, workers=2, results_dir=results, heartbeat_interval=1, grace_period=10,
                          progress=False)
    assert status.done == status.total == 4

    trials = trials_of(plan, results=results)
    assert_exactly_once(plan, trials)
    assert len(trials) == 4
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["pair"])
    parents = runs[runs["tags.sesweep.role"] == "sweep"]
    runs = runs[runs["tags.sesweep.role"] != "sweep"]
    assert len(parents) == 1, "one MLflow run for the sweep, though two workers started it"
    assert set(runs["tags.mlflow.parentRunId"]) == set(parents["run_id"])
    assert Counter(runs["tags.run_key"]) == Counter(plan.keys), "one MLflow run per training: none trained twice"
    assert set(runs["status"]) == {"FINISHED"}
    assert sorted(p.stem for p in (results / "pair" / "runs").glob("*.json")) == sorted(plan.keys)
    assert sorted(r["run_key"] for r in read_csv(results / "pair" / "runs.csv")) == sorted(plan.keys)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(make_sweep, tmp_path: Path):
    results = tmp_path / "results"
    # the base run comes first and is long enough to be caught running; the second run is quick
    path = make_sweep("kill", recipe={"epochs": 12}, variants={"quick": {"recipe.epochs": 1}})
    plan = load_plan(path)
    storage = default_storage(plan, results)
    cmd = [sys.executable, "-m", "sesweep", "run", str(path), "--results", str(results), "--heartbeat", "1",
           "--grace", "4", "--no-tracking", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            if not (results / "kill" / "optuna.db").is_file():
                continue
            try:
                running = [t for t in trials_of(plan, storage) if t.state == TrialState.RUNNING]
            except Exception:  # the study is still being created
                continue
            if running:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    # what the dead worker left: one RUNNING trial (its heartbeat has stopped), nothing else in flight
    left = [t for t in trials_of(plan, storage) if t.state == TrialState.RUNNING]
    assert len(left) == 1
    victim = left[0].user_attrs["run_key"]

    # a second worker finishes the sweep: the killed run goes stale after the grace period and is run again
    status = sw.run_sweep(plan, results_dir=results, tracking=False, **FAST)
    assert status.done == status.total == 2
    trials = trials_of(plan, storage)
    assert_exactly_once(plan, trials)
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert len(trials) == 3  # the two runs and the lost attempt
    assert [t.user_attrs["run_key"] for t in lost] == [victim]
    assert "lost" in failure_reason(lost[0])
    assert sorted(p.stem for p in (results / "kill" / "runs").glob("*.json")) == sorted(plan.keys)
    rows = read_csv(results / "kill" / "runs.csv")
    assert sorted(r["run_key"] for r in rows) == sorted(plan.keys) and {r["status"] for r in rows} == {"finished"}


# --------------------------------------------------------------------------------------------------
# PostgreSQL: the multi-machine storage


@pytest.mark.slow
def test_postgres_storage_racing_claims_exactly_once(make_sweep, tmp_path: Path, postgres_url: str):
    """The claim protocol under racing processes on PostgreSQL; real training workers on it, killed and not, are
    in tests/test_many_machines.py."""
    race = load_plan(make_sweep("pgrace", seeds=tuple(range(16))))
    assert race_claims(race, postgres_url, tmp_path) == Counter(race.keys)
    assert_exactly_once(race, trials_of(race, postgres_url))


@pytest.mark.slow
def test_sigterm_to_a_sweep_stops_its_worker_processes_and_marks_their_runs_interrupted(make_sweep, tmp_path: Path):
    """`kill PID` of `sesweep run --workers 2` must not leave its spawned workers training on, unseen."""
    results = tmp_path / "results"
    path = make_sweep("term", seeds=(0, 1, 2, 3), recipe={"epochs": 400})  # runs of many seconds: caught running
    plan = load_plan(path)
    storage = default_storage(plan, results)
    cmd = [sys.executable, "-m", "sesweep", "run", str(path), "--results", str(results), "--workers", "2",
           "--no-tracking", "--threads", "1", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
            time.sleep(0.1)
            try:
                running = [t for t in trials_of(plan, storage) if t.state == TrialState.RUNNING]
            except Exception:  # the study is still being created
                continue
            workers = {int(str(t.user_attrs.get("worker", ":0")).rpartition(":")[2]) for t in running}
        assert len(workers) == 2, "both workers were not caught running"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)], "worker processes outlived their sweep"
    trials = trials_of(plan, storage)
    # the two runs in flight were interrupted (queued again for the next `sesweep run`), none went on to finish
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.COMPLETE)], proc.stderr.read()
    assert sorted(t.user_attrs.get("status") for t in trials if t.state == TrialState.FAIL) == ["interrupted"] * 2, \
        [(t.state, t.user_attrs.get("status")) for t in trials]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")  # a zombie is dead
