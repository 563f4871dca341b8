"""MLflow tracking (sesweep.tracking): one experiment per sweep, one MLflow run per run, failures are harmless."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import optuna
import pytest

from sesweep import sweep as sw
from sesweep.plan import load_plan
from sesweep.tracking import Tracker, code_version, default_tracking_uri

ROOT = Path(__file__).resolve().parents[1]
FAST = {"heartbeat_interval": 1, "grace_period": 4, "progress": False, "threads": 1}


# one torch thread: runs of a few images are fastest so, and parallel workers do not oversubscribe
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_search_runs_returns_one_run_per_run_with_params_metrics_and_tags(make_sweep, tmp_path: Path,
                                                                          tracking_store):
    import mlflow

    results = tmp_path / "results"
    plan = load_plan(make_sweep("tracked", seeds=(0, 1), recipe={"epochs": 2},
                                variants={"resnet": {"model.attention.kind": "none"}}))
    uri = tracking_store(results, "tracked")
    assert uri == default_tracking_uri("tracked", results)
    status = sw.run_sweep(plan, results_dir=results, **FAST)
    assert status.done == 4

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["tracked"])
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    assert Counter(runs["tags.run_key"]) == Counter(plan.keys)
    for _, row in runs.iterrows():
        run = plan.run_for(row["tags.run_key"])
        assert (row["tags.sweep"], row["tags.variant"], row["tags.seed"]) == ("tracked", run.variant, str(run.seed))
        assert row["tags.status"] == "finished" and row["tags.code_version"] == code_version()
        assert row["params.model.attention.kind"] == run.spec.model.attention.kind
        assert row["params.recipe.epochs"] == "2" and row["params.seed"] == str(run.seed)
        assert row["params.model.attention.stages"] == "all" and row["params.recipe.data_root"] == "null"
        record = json.loads((results / "tracked" / "runs" / f"{run.key}.json").read_text())["record"]
        for metric in ("top1_err", "test_loss", "params", "macs", "infer_ms", "epochs_done"):
            assert row[f"metrics.{metric}"] == pytest.approx(record[metric]), metric
    client = mlflow.MlflowClient(uri)
    history = client.get_metric_history(runs["run_id"][0], "top1_err")
    assert sorted(m.step for m in history) == [1, 2]  # one point per epoch, step = epoch
    assert client.list_artifacts(runs["run_id"][0])[0].path == "run.json"

    # resuming the finished sweep logs nothing new
    sw.run_sweep(plan, results_dir=results, **FAST)
    assert len(mlflow.search_runs(experiment_names=["tracked"])) == 4


def test_a_tracking_failure_does_not_lose_the_run(make_sweep, tmp_path: Path):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("untracked"))
    broken = "sqlite:////proc/sesweep-cannot-write-here/mlflow.db"
    with pytest.warns(RuntimeWarning, match="sesweep tracking"):
        status = sw.run_sweep(plan, results_dir=results, tracking_uri=broken, **FAST)
    assert status.done == 1
    assert (results / "untracked" / "runs" / f"{plan.keys[0]}.json").is_file()
    trial = optuna.load_study(study_name="untracked",
                              storage=sw.open_storage(sw.default_storage(plan, results))).get_trials()[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert "MLflow" in trial.user_attrs["tracking_error"]


def test_a_lost_attempt_is_marked_killed_when_the_run_starts_again(make_sweep, tmp_path: Path, tracking_store):
    import mlflow

    plan = load_plan(make_sweep("retry"))
    uri = tracking_store(tmp_path, "retry")
    tracker = Tracker(uri, "retry")
    first = tracker.start(plan.runs[0], trial=0)
    first.on_epoch({"epoch": 1, "train_loss": 2.0, "top1_err": 50.0})
    second = tracker.start(plan.runs[0], trial=1)  # the worker of the first attempt died
    assert first.run_id and second.run_id and not first.errors and not second.errors
    client = mlflow.MlflowClient(uri)
    old = client.get_run(first.run_id)
    assert old.info.status == "KILLED" and old.data.tags["status"] == "lost"
    assert client.get_run(second.run_id).info.status == "RUNNING"
    second.fail("failed", "RuntimeError: boom")
    new = client.get_run(second.run_id)
    assert new.info.status == "FAILED" and new.data.tags["reason"] == "RuntimeError: boom"


def test_code_version_is_package_version_commit_and_dirty_flag_in_a_checkout():
    from sesweep import __version__

    out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.strip()
    code_version.cache_clear()
    assert code_version() == f"{__version__}+g{out.stdout.strip()}{'.dirty' if dirty else ''}"
