"""Several machines on one sweep, for real: a throwaway PostgreSQL storage, an ``mlflow server`` on loopback, and
three ``sesweep run`` processes with results folders of their own (machines that share nothing but the two
servers), one of them SIGKILLed mid-run.

What must hold: every run finished exactly once in the study, with the metrics a single worker computes for the
same seeds (CPU runs are deterministic), exactly one FINISHED MLflow run per run key, and every surviving
machine's results folder holding every run's record, rebuilt from the storage.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from killing import kill_one_running
from optuna.trial import TrialState

from sesweep import cli
from sesweep.plan import load_plan
from sesweep.runner import sweep as sw

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("top1_err", "top5_err", "test_loss", "train_loss", "params", "macs", "epochs_done")


def rows_by_key(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as fh:
        return {row["run_key"]: row for row in csv.DictReader(fh)}


@pytest.mark.slow
def test_three_machines_on_postgres_and_an_mlflow_server_survive_a_sigkill(make_sweep, tmp_path: Path,
                                                                          postgres_url: str, mlflow_server: str,
                                                                          count_trainings: Counter[str]):
    # 6 runs; the base variant's are long enough (6 epochs) to be caught running
    path = make_sweep("machines", seeds=(0, 1), recipe={"epochs": 6},
                      variants={"quick": {"recipe.epochs": 2}, "resnet": {"model.attention.kind": "none",
                                                                          "recipe.epochs": 2}})
    plan = load_plan(path)
    study_name = plan.name

    def machine(i: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "sesweep", "run", str(path), "--storage", postgres_url, "--tracking-uri",
               mlflow_server, "--results", str(tmp_path / f"machine{i}"), "--heartbeat", "1", "--grace", "4",
               "--threads", "1", "--quiet"]
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    procs = [machine(i) for i in range(3)]
    victim = kill_one_running(procs, study_name, postgres_url)
    survivors = [i for i, p in enumerate(procs) if p is not victim]

    # the study: every run finished exactly once; the killed attempt is a failed trial of a run that finished later
    trials = optuna.load_study(study_name=study_name, storage=postgres_url).get_trials(deepcopy=False)
    done = Counter(t.user_attrs["run_key"] for t in trials if t.state == TrialState.COMPLETE)
    assert done == Counter(plan.keys)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    lost = [t for t in trials if t.state == TrialState.FAIL]  # the killed attempt, failed once its heartbeat stopped
    assert len(lost) == 1 and lost[0].user_attrs["worker"].endswith(f":{victim.pid}")

    # a fourth machine that ran nothing rebuilds the complete results folder from the storage alone
    late = sw.run_sweep(plan, storage=postgres_url, results_dir=tmp_path / "late", tracking=False,
                        heartbeat_interval=1, grace_period=4, progress=False, threads=1)
    assert late.done == late.total == len(plan.keys) and not count_trainings
    assert sorted(rows_by_key(tmp_path / "late" / "machines" / "runs.csv")) == sorted(plan.keys)
    # ... and so does `sesweep aggregate --storage`, which trains nothing and writes the tables
    assert cli.main(["aggregate", str(path), "--storage", postgres_url, "--results", str(tmp_path / "agg")]) == 0
    assert sorted(rows_by_key(tmp_path / "agg" / "machines" / "runs.csv")) == sorted(plan.keys)
    assert (tmp_path / "agg" / "machines" / "tables").is_dir() and not count_trainings

    # the same metrics as one worker on one machine (SQLite, no tracking) computes for the same seeds
    single = sw.run_sweep(plan, results_dir=tmp_path / "single", tracking=False, heartbeat_interval=1,
                          grace_period=4, progress=False, threads=1)
    assert single.done == single.total == len(plan.keys)
    want = rows_by_key(tmp_path / "single" / "machines" / "runs.csv")
    assert sum(count_trainings.values()) == len(plan.keys)  # (the single worker's own trainings)
    for i in survivors:  # machines that share no folder: each rebuilt every record from the storage
        got = rows_by_key(tmp_path / f"machine{i}" / "machines" / "runs.csv")
        assert sorted(got) == sorted(plan.keys)
        for key in plan.keys:
            assert {m: got[key][m] for m in METRICS} == {m: want[key][m] for m in METRICS}, key

    # MLflow: exactly one FINISHED training run per run key (the killed attempt is never FINISHED)
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(plan.name)
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              max_results=1000)
    finished = Counter(r.data.tags.get("run_key") for r in runs if r.data.tags.get("sesweep.role") != "sweep")
    assert finished == Counter(plan.keys)
    running = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'",
                                 max_results=1000)
    assert not [r for r in running if r.data.tags.get("sesweep.role") != "sweep"]  # the killed attempt is closed


@pytest.mark.slow
def test_a_run_lost_on_a_machine_resumes_on_another_from_the_checkpoint_in_the_tracking_server(
        make_sweep, tmp_path: Path, mlflow_server: str):
    """Machines that share no results folder: the lost run's newest checkpoint reaches the next machine through
    the tracking server, and the resumed run ends exactly as an uninterrupted one (CPU runs are deterministic)."""
    from mlflow import MlflowClient

    path = make_sweep("remote_ckpt", recipe={"epochs": 6})
    plan = load_plan(path)
    storage = f"sqlite:///{tmp_path / 'shared' / 'optuna.db'}"  # the one thing the machines share, with the server
    first = subprocess.Popen([sys.executable, "-m", "sesweep", "run", str(path), "--storage", storage,
                              "--tracking-uri", mlflow_server, "--results", str(tmp_path / "machine0"),
                              "--checkpoint-every", "1", "--heartbeat", "1", "--grace", "3", "--threads", "1",
                              "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(mlflow_server)
    epoch = 0
    try:
        deadline = time.monotonic() + 300
        while epoch < 2 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
            try:
                exp = client.get_experiment_by_name(plan.name)
                for r in client.search_runs([exp.experiment_id], "tags.run_key != ''"):
                    if any(a.path == "checkpoint/latest.json" for a in client.list_artifacts(r.info.run_id,
                                                                                           "checkpoint")):
                        local = client.download_artifacts(r.info.run_id, "checkpoint/latest.json",
                                                          str(tmp_path / "peek"))
                        epoch = json.loads(Path(local).read_text())["epoch"]
            except Exception:  # the experiment or the artifact is not there yet
                continue
        assert epoch >= 2, "no checkpoint reached the tracking server: " + (first.stderr.read() if first.poll() else "")
        first.kill()  # the machine dies (its results folder with it, as far as the next machine can tell)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    resumed = sw.run_sweep(plan, storage=storage, results_dir=tmp_path / "machine1", tracking_uri=mlflow_server,
                           checkpoint_every="1", heartbeat_interval=1, grace_period=3, progress=False, threads=1)
    assert resumed.done == 1
    got = rows_by_key(tmp_path / "machine1" / "remote_ckpt" / "runs.csv")[plan.keys[0]]
    assert int(got["resumed_from_epoch"]) >= epoch  # from the server: machine1 never saw machine0's folder

    single = sw.run_sweep(plan, results_dir=tmp_path / "single", tracking=False, heartbeat_interval=1,
                          grace_period=3, progress=False, threads=1)
    assert single.done == 1
    want = rows_by_key(tmp_path / "single" / "remote_ckpt" / "runs.csv")[plan.keys[0]]
    assert {m: got[m] for m in METRICS} == {m: want[m] for m in METRICS}
