"""Issue 21.7: a worker taken for dead that still finishes must not overwrite the winner's ``runs/KEY.json``.

Its heartbeat stalled, the run was claimed again and recorded by another worker; when the first one finishes,
the study calls its result a duplicate, and the file on disk must stay the recorded one (the study and the
folder would otherwise disagree wherever the two attempts' numbers differ)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from sesweep.plan import load_plan
from sesweep.results import run_json_path
from sesweep.runner import sweep as sw
from sesweep.runner import worker
from sesweep.runner.config import SweepConfig
from sesweep.runner.queue import SweepLock, open_storage, open_study
from sesweep.training import train as training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_late_duplicate_leaves_the_recorded_result_on_disk(make_sweep, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    results = tmp_path / "results"
    plan = load_plan(make_sweep("late"))
    sw.run_sweep(plan, results_dir=results, tracking=False, progress=False, threads=1)
    (run,) = plan.runs
    path = run_json_path(plan, results, run.key)
    recorded = json.loads(path.read_text())

    # the stale worker: it claimed the run before the winner did, and finishes now with other numbers
    cfg = SweepConfig.create(plan.name, results_dir=results, tracking=False, progress=False)
    storage = open_storage(cfg.storage)
    study = open_study(plan, storage)
    stale = storage.create_new_trial(study._study_id, template_trial=optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, user_attrs={"run_key": run.key, "sweep": plan.name,
                                                            "variant": run.variant, "seed": run.seed,
                                                            "status": "running"}))
    real = training.train

    def other_numbers(*args, **kwargs):
        result = real(*args, **kwargs)
        result.metrics["top1_err"] = recorded["record"]["top1_err"] + 7.0
        return result

    monkeypatch.setattr(training, "train", other_numbers)
    monkeypatch.setattr(worker, "find_result", lambda *a: None)  # it started before the winner finished
    outcome = worker._execute(plan, cfg, study, SweepLock(storage, plan.name), stale, run, None, {})

    assert outcome == "duplicates"
    assert json.loads(path.read_text())["record"]["top1_err"] == recorded["record"]["top1_err"]
    assert not list(path.parent.glob(".pending/*"))  # the duplicate's file is gone
    done = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") == "finished"]
    assert [t.user_attrs["result"]["record"]["top1_err"] for t in done] == [recorded["record"]["top1_err"]]


def test_a_result_whose_worker_died_before_the_study_answered_is_adopted(make_sweep, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    """The pending file is the result's safe copy: the next worker that claims the run adopts it."""
    results = tmp_path / "results"
    plan = load_plan(make_sweep("pending"))
    (run,) = plan.runs
    monkeypatch.setattr(worker, "finish", lambda *a: (_ for _ in ()).throw(SystemExit("the worker dies")))
    with pytest.raises(SystemExit):
        sw.run_sweep(plan, results_dir=results, tracking=False, progress=False, threads=1)
    (pending,) = (results / "pending" / "runs" / ".pending").glob(f"{run.key}.*.json")
    assert not run_json_path(plan, results, run.key).exists()
    monkeypatch.undo()
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained again"))
    sw.run_sweep(plan, results_dir=results, tracking=False, progress=False, threads=1, grace_period=2,
                 heartbeat_interval=1)
    assert json.loads(run_json_path(plan, results, run.key).read_text())["record"]["run_key"] == run.key
    assert not pending.exists()
