"""MLflow tracking (runner/tracking.py): one experiment per sweep, one MLflow run per run, failures are harmless."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import optuna
import pytest

from sesweep.plan import load_plan
from sesweep.results import code_version
from sesweep.runner import sweep as sw
from sesweep.runner.queue import default_storage, open_storage
from sesweep.runner.tracking import Tracker, default_tracking_uri

ROOT = Path(__file__).resolve().parents[1]
FAST = {"heartbeat_interval": 1, "grace_period": 4, "progress": False, "threads": 1}
#: a few digits images at 16x16, two epochs: three runs in seconds
DIGITS = {"dataset": "digits", "train_subset": 64, "test_subset": 40, "image_size": 16, "epochs": 2,
          "batch_size": 32, "eval_batch_size": 64}


def training_runs(uri: str, sweep: str):
    """The sweep's training runs (every MLflow run of its experiment but the sweep's own)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[sweep])
    if "tags.sesweep.role" in runs:
        runs = runs[runs["tags.sesweep.role"] != "sweep"].reset_index(drop=True)
    return runs


def parent_runs(uri: str, sweep: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    eid = client.get_experiment_by_name(sweep).experiment_id
    return list(client.search_runs([eid], filter_string="tags.`sesweep.role` = 'sweep'"))


def artifact_files(client, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact file of a run, recursively."""
    out = []
    for a in client.list_artifacts(run_id, path):
        out += artifact_files(client, run_id, a.path) if a.is_dir else [a.path]
    return sorted(out)


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
    runs = training_runs(uri, "tracked")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    assert Counter(runs["tags.run_key"]) == Counter(plan.keys)
    for _, row in runs.iterrows():
        run = plan.run_for(row["tags.run_key"])
        assert (row["tags.sweep"], row["tags.variant"], row["tags.seed"]) == ("tracked", run.variant, str(run.seed))
        assert row["tags.status"] == "finished" and row["tags.code_version"] == code_version()
        assert row["params.model.attention.kind"] == run.spec.model.attention.kind
        assert row["params.recipe.epochs"] == "2" and row["params.seed"] == str(run.seed)
        assert row["params.recipe.data_root"] == "null"
        if run.variant == "resnet":  # a plain ResNet logs no SE knob it does not use
            assert row.isna()["params.model.attention.stages"]
        else:
            assert row["params.model.attention.stages"] == "all"
        record = json.loads((results / "tracked" / "runs" / f"{run.key}.json").read_text())["record"]
        for metric in ("top1_err", "test_loss", "params", "macs", "infer_ms", "epochs_done"):
            assert row[f"metrics.{metric}"] == pytest.approx(record[metric]), metric
    client = mlflow.MlflowClient(uri)
    history = client.get_metric_history(runs["run_id"][0], "top1_err")
    assert sorted(m.step for m in history) == [1, 2]  # one point per epoch, step = epoch
    assert "run.json" in [a.path for a in client.list_artifacts(runs["run_id"][0])]

    # resuming the finished sweep logs nothing new
    sw.run_sweep(plan, results_dir=results, **FAST)
    assert len(training_runs(uri, "tracked")) == 4 and len(parent_runs(uri, "tracked")) == 1


def test_a_tracking_failure_does_not_lose_the_run(make_sweep, tmp_path: Path):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("untracked"))
    broken = "sqlite:////proc/sesweep-cannot-write-here/mlflow.db"
    with pytest.warns(RuntimeWarning, match="sesweep tracking"):
        status = sw.run_sweep(plan, results_dir=results, tracking_uri=broken, **FAST)
    assert status.done == 1
    assert (results / "untracked" / "runs" / f"{plan.keys[0]}.json").is_file()
    trial = optuna.load_study(study_name="untracked",
                              storage=open_storage(default_storage(plan, results))).get_trials()[0]
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


# --------------------------------------------------------------------------------------------------
# the sweep as one parent run (issue 10)


@pytest.mark.slow  # > 5 s: out of the fast tier
def test_a_sweep_is_one_parent_run_holding_its_training_runs_spec_tables_and_report(make_sweep, tmp_path: Path,
                                                                                    tracking_store):
    from mlflow import MlflowClient

    from sesweep.publish import run_aggregate, run_report
    from sesweep.run_identity import RESULTS_VERSION

    results = tmp_path / "results"
    spec_path = make_sweep("nested", recipe=DIGITS,
                           variants={"resnet": {"model.attention.kind": "none"},
                                     "learned": {"model.attention.adaptive": "learnable",
                                                 "model.attention.reduction": 4, "model.attention.cost_weight": 1}})
    plan = load_plan(spec_path)
    uri = tracking_store(results, "nested")
    assert sw.run_sweep(plan, results_dir=results, **FAST).done == 3
    client = MlflowClient(uri)
    # MLflow 3's UI opens the experiment on its training runs (without the kind: on an empty GenAI overview)
    assert client.get_experiment_by_name("nested").tags.get("mlflow.experimentKind") == "custom_model_development"

    # one parent run per sweep, every training run nested under it
    parents = parent_runs(uri, "nested")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "nested" and parent.info.status == "FINISHED"
    ended = parent.info.end_time  # the sweep's run lasts as long as its sweep trained (checked at the end)
    assert parent.data.tags["sweep"] == "nested" and parent.data.tags["results_version"] == str(RESULTS_VERSION)
    assert parent.data.tags["code_version"] == code_version()
    runs = training_runs(uri, "nested")
    assert Counter(runs["tags.run_key"]) == Counter(plan.keys)
    assert set(runs["tags.mlflow.parentRunId"]) == {parent.info.run_id}
    assert {"sweep.yaml", "manifest.json"} <= set(artifact_files(client, parent.info.run_id))

    by_variant = {row["tags.variant"]: row for _, row in runs.iterrows()}
    # params: only the knobs a run uses
    baseline, se, learned = by_variant["resnet"], by_variant["base"], by_variant["learned"]
    assert baseline["params.model.attention.kind"] == "none"
    for key in ("reduction", "pool", "gate", "placement", "stages", "adaptive", "cost_weight"):
        assert baseline.isna()[f"params.model.attention.{key}"], key
    assert se["params.model.attention.reduction"] == "16" and se.isna()["params.model.attention.cost_weight"]
    assert learned["params.model.attention.cost_weight"] == "1"
    assert baseline["params.recipe.epochs"] == "2"

    # curves: test error and train loss per epoch, step = epoch
    for metric in ("top1_err", "train_loss"):
        assert sorted(m.step for m in client.get_metric_history(se["run_id"], metric)) == [1, 2], metric
    # learned widths per epoch, from the run's adaptive log
    payload = json.loads((results / "nested" / "runs" / f"{learned['tags.run_key']}.json").read_text())
    first = payload["adaptive"][0]
    assert first["block"].startswith("layer1.0")
    history = client.get_metric_history(learned["run_id"], "width/stage2.block0")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
    assert sorted(history, key=lambda m: m.step)[0].value == pytest.approx(first["effective_width"])
    stage = client.get_metric_history(learned["run_id"], "learned_r/stage2")
    assert sorted(m.step for m in stage) == [1, 2]
    epoch1 = [r["effective_ratio"] for r in payload["adaptive"] if r["epoch"] == 1 and r["block"].startswith("layer1")]
    assert min(stage, key=lambda m: m.step).value == pytest.approx(sum(epoch1) / len(epoch1))
    assert not client.get_metric_history(se["run_id"], "learned_r/stage2")

    # the excitation profile (SENet Fig. 6) of SE runs as excitation.json
    for row in (se, learned):
        assert "excitation.json" in artifact_files(client, row["run_id"])
        local = client.download_artifacts(row["run_id"], "excitation.json", str(tmp_path / row["run_id"]))
        doc = json.loads(Path(local).read_text())
        rows = json.loads((results / "nested" / "runs" / f"{row['tags.run_key']}.json").read_text())["excitation"]
        assert doc["excitation"] == rows and rows and doc["probe"]["images"] > 0
    assert "excitation.json" not in artifact_files(client, baseline["run_id"])

    # aggregate and report log their outputs on the parent run; a second report replaces the first
    tables = run_aggregate(spec_path, results_root=results)
    files = run_report(spec_path, results_root=results, out=tmp_path / "reports" / "nested")
    logged = artifact_files(client, parent.info.run_id)
    assert {"report/report.html", "report/report.md"} <= set(logged)
    assert {f"tables/{p.name}" for p in tables} <= set(logged)
    figures = {f"report/{p.parent.name}/{p.name}" for f in files.figures for p in (f.png, f.pdf)}
    assert figures and figures <= set(logged)
    run_report(spec_path, results_root=results, out=tmp_path / "reports" / "nested")
    assert artifact_files(client, parent.info.run_id) == logged
    run_report(spec_path, results_root=results, out=tmp_path / "reports" / "nested", figures=False)
    again = artifact_files(client, parent.info.run_id)
    assert "report/report.html" in again and not [p for p in again if p.startswith("report/figures/")]
    assert len(parent_runs(uri, "nested")) == 1 and len(training_runs(uri, "nested")) == 3

    # neither the uploads above nor a later `sesweep run` that trains nothing moves the sweep run's end: its
    # duration in MLflow is the sweep's, not the time until the last report
    assert sw.run_sweep(plan, results_dir=results, **FAST).done == 3
    info = client.get_run(parent.info.run_id).info
    assert (info.status, info.end_time) == ("FINISHED", ended)


def test_workers_starting_at_once_create_one_parent_run(tmp_path: Path, tracking_store):
    import threading

    from mlflow import MlflowClient

    uri = tracking_store(tmp_path, "race")
    assert Tracker(uri, "race").setup() is not None
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    optuna.create_study(storage=storage, study_name="race")
    n = 4
    barrier = threading.Barrier(n)
    found: list[str | None] = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            tracker = Tracker(uri, "race")
            study = optuna.load_study(study_name="race", storage=storage) if i % 2 else None
            barrier.wait()
            found[i] = tracker.sweep_run(study)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(found)) == 1 and found[0] is not None
    assert [p.info.run_id for p in parent_runs(uri, "race")] == [found[0]]
    # the study remembers it: a later worker reads it from there, and a training run nests under it
    study = optuna.load_study(study_name="race", storage=storage)
    late = Tracker(uri, "race")
    assert late.sweep_run(study) == found[0]
    assert found[0] in [v.get("run_id") for v in study.user_attrs.values() if isinstance(v, dict)]
    plan = load_plan_of_one(tmp_path)
    tracked = late.start(plan.runs[0])
    assert MlflowClient(uri).get_run(tracked.run_id).data.tags["mlflow.parentRunId"] == found[0]


def load_plan_of_one(tmp_path: Path):
    import yaml

    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump({"name": "race", "recipe": {"dataset": "fake", "epochs": 1}, "seeds": [0]}))
    return load_plan(path)


def test_logged_params_leave_out_the_knobs_a_run_does_not_use():
    from sesweep.runner.tracking import logged_params
    from sesweep.spec import flatten, run_spec

    plain = logged_params(run_spec({"model.attention.kind": "none"}))
    assert plain["model.attention.kind"] == "none" and not [k for k in plain if k.startswith("model.attention.")
                                                            and k != "model.attention.kind"]
    assert plain["model.arch"] == "resnet20" and "seed" in plain and "recipe.data_root" in plain
    fixed = logged_params(run_spec({"model.attention.reduction": 8}))
    assert fixed["model.attention.reduction"] == 8 and fixed["model.attention.stages"] == "all"
    assert "model.attention.cost_weight" not in fixed and "model.attention.cost_unit" not in fixed
    learned = run_spec({"model.attention.adaptive": "learnable", "model.attention.cost_weight": 1})
    # the torch init's std, an unscaled lr's reference batch, the budget of a data set that is never streamed,
    # the knobs of the operators it does not use (ECA's kernel, the DCT squeeze's frequencies)
    unused = {"model.attention.init_std", "recipe.lr_reference_batch", "recipe.memory_budget_gb",
              "model.attention.eca_kernel", "model.attention.dct_frequencies"}
    assert logged_params(learned) == {k: v for k, v in flatten(learned).items() if k not in unused}
    scaled = run_spec({"model.attention.init": "normal", "recipe.lr_scaling": "linear",
                       "recipe.dataset": "imagefolder"})
    assert unused - {"model.attention.eca_kernel", "model.attention.dct_frequencies"} <= set(logged_params(scaled))


def test_sweep_outputs_are_not_logged_without_a_tracking_store(tmp_path: Path):
    from sesweep.runner.tracking import log_sweep_outputs

    results = tmp_path / "results" / "untracked"
    (results / "tables").mkdir(parents=True)
    table = results / "tables" / "overall.csv"
    table.write_text("a\n1\n")
    assert log_sweep_outputs(results, "tables", [table]) is None
    assert not (results / "mlflow.db").exists()


def test_report_of_a_store_without_a_sweep_run_creates_it_finished_and_nests_the_older_runs(tmp_path: Path,
                                                                                           tracking_store):
    from mlflow import MlflowClient

    from sesweep.runner.tracking import log_sweep_outputs

    results = tmp_path / "results"
    uri = tracking_store(results, "race")
    plan = load_plan_of_one(tmp_path)
    older = Tracker(uri, "race").start(plan.runs[0])  # logged before sweeps had their own run: no parent
    older.fail("failed", "an old attempt")
    folder = results / "race"
    (folder / "tables").mkdir()
    (folder / "tables" / "overall.md").write_text("| a |\n")
    (folder / "sweep.yaml").write_text(plan.spec_text)

    run_id = log_sweep_outputs(folder, "tables", [folder / "tables" / "overall.md"])
    client = MlflowClient(uri)
    assert [p.info.run_id for p in parent_runs(uri, "race")] == [run_id]
    assert client.get_run(run_id).info.status == "FINISHED"  # no sweep is running it
    assert client.get_run(older.run_id).data.tags["mlflow.parentRunId"] == run_id
    assert artifact_files(client, run_id) == ["sweep.yaml", "tables/overall.md"]
    assert log_sweep_outputs(folder, "tables", [folder / "tables" / "overall.md"]) == run_id
    assert len(parent_runs(uri, "race")) == 1
