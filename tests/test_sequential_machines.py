"""A sequential sweep (issue 24) on several machines, one SIGKILLed mid-run: three ``sesweep run`` processes with
results folders of their own on one throwaway PostgreSQL storage and an ``mlflow server`` on loopback, as
tests/test_many_machines.py does for a fixed list, at toy cost (digits at 8x8, tiny subsets, 2 epochs, a policy
of 2 to 6 seeds).

What must hold: the runs finished are exactly those the seed policy allocates on the outcomes recorded (none
skipped, none of a decided contrast's seeds beyond its decision), each once in the study and once FINISHED in
MLflow; the killed attempt is the one failed trial, and its run finished later on another machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from killing import kill_one_running
from optuna.trial import TrialState

from sesweep import publish
from sesweep.analysis.seed_allocation import allocate
from sesweep.plan import load_plan
from sesweep.runner.seed_queue import outcome_of, plan_contrasts
from sesweep.runner.status import sweep_status

ROOT = Path(__file__).resolve().parents[1]
#: about a second of training per run on one thread (the rest of a run is its bookkeeping and MLflow)
DIGITS = {"dataset": "digits", "image_size": 8, "train_subset": 256, "test_subset": 128, "batch_size": 64,
          "eval_batch_size": 128, "epochs": 2}
#: margin 100 points: the contrast is equivalent once its sequence is bounded (4 pairs, mostly), so the queue
#: likely stops short of max; at 2 pairs it never is, so at least one round of seeds is always added
POLICY = {"start": 2, "max": 6, "step": 2, "margin": 100, "alpha": 0.05}
#: the workers' grace: generous against their 1 s heartbeat, so a loaded machine never takes a live one for dead
GRACE = "10"


@pytest.mark.slow
def test_a_sequential_sweep_on_three_machines_survives_a_sigkill_and_trains_what_the_policy_allocates(
        make_sweep, tmp_path: Path, postgres_url: str, mlflow_server: str):
    path = make_sweep("seqmachines", recipe=DIGITS, variants={"resnet": {"model.attention.kind": "none"}})
    doc = yaml.safe_load(path.read_text())
    doc["seeds"] = POLICY
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    plan = load_plan(path)
    assert plan.seed_policy is not None and len(plan.runs) == 2 * 6 and plan_contrasts(plan)

    def machine(i: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "sesweep", "run", str(path), "--storage", postgres_url, "--tracking-uri",
               mlflow_server, "--results", str(tmp_path / f"machine{i}"), "--heartbeat", "1", "--grace", GRACE,
               "--threads", "1", "--quiet"]
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    procs = [machine(i) for i in range(3)]
    victim = kill_one_running(procs, plan.name, postgres_url)
    survivors = [i for i, p in enumerate(procs) if p is not victim]

    # the policy replayed on the outcomes the study recorded: what the sweep had to train
    trials = optuna.load_study(study_name=plan.name, storage=postgres_url).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    outcomes: dict[str, dict[int, float | None]] = {}
    for t in complete:
        outcomes.setdefault(t.user_attrs["variant"], {})[int(t.user_attrs["seed"])] = outcome_of(t.value)
    alloc = allocate(plan.seed_policy, [v.name for v in plan.variants], plan_contrasts(plan), outcomes)
    wanted = Counter(r.key for r in plan.runs if alloc.wants(r.variant, r.seed))
    assert all(c.decision != "undecided" for c in alloc.contrasts)           # the sweep ran to its end
    assert min(alloc.seeds.values()) > POLICY["start"]                       # seeds were added beyond start
    # every allocated seed finished exactly once, none skipped and none beyond the allocation
    assert Counter(t.user_attrs["run_key"] for t in complete) == wanted
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    lost = [t for t in trials if t.state == TrialState.FAIL]                 # the killed attempt, and only it
    assert len(lost) == 1 and lost[0].user_attrs["worker"].endswith(f":{victim.pid}")
    killed = lost[0].user_attrs["run_key"]
    resumed = next(t for t in complete if t.user_attrs["run_key"] == killed)
    assert resumed.number > lost[0].number and not resumed.user_attrs["worker"].endswith(f":{victim.pid}")
    assert len(trials) == sum(wanted.values()) + 1                          # no other attempt of any seed

    status = sweep_status(plan, postgres_url)
    assert status.complete and status.succeeded and status.summary().endswith("; pending: 0 more runs")

    # MLflow: one FINISHED training run per allocated run key; the killed attempt is the only other one
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(plan.name)
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
            if r.data.tags.get("sesweep.role") != "sweep"]
    assert Counter(r.data.tags.get("run_key") for r in runs if r.info.status == "FINISHED") == wanted
    others = [(r.data.tags.get("run_key"), r.info.status) for r in runs if r.info.status != "FINISHED"]
    assert len(others) <= 1 and all(k == killed and s != "RUNNING" for k, s in others), others

    # a survivor's results folder (rebuilt from the storage) reports the sweep complete at what was allocated
    n = sum(wanted.values())
    report = publish.run_report(tmp_path / f"machine{survivors[0]}" / plan.name, out=tmp_path / "report",
                                figures=False)
    text = report.markdown.read_text(encoding="utf-8")
    assert f"{n} of {n} runs finished, as the seed policy allocated them on the recorded results (complete" in text
    assert f"; {len(plan.runs)} at max)" in text
