"""A sequential sweep through the real claim protocol (issue 24): racing processes, one of them dying mid-run
(os._exit: no heartbeat, as SIGKILL; declared dead rather than waited for, tests/claiming.py), claim exactly the
runs the policy allocates -- each once, no seed of a decided contrast, every seed an undecided one needs -- with
synthetic results, no training."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import numpy as np
import optuna
import pytest
import yaml
from claiming import claim_loop, declare_dead  # tests/ is on sys.path
from optuna.trial import FrozenTrial, TrialState, create_trial

from sesweep.analysis.seed_allocation import allocate
from sesweep.plan import Plan, load_plan
from sesweep.runner.commands import status_json
from sesweep.runner.queue import default_storage
from sesweep.runner.seed_queue import plan_contrasts
from sesweep.runner.status import duration, status_from_trials, sweep_status

#: top-1 error per variant: "clear" is 5 points worse (decided at the first bounded look), "null" is not
MEANS = {"resnet": 10.0, "base": 10.0, "clear": 15.0, "null": 10.0}


def synthetic_error(variant: str, seed: int) -> float:
    return MEANS[variant] + 0.3 * float(np.random.default_rng([seed, *map(ord, variant)]).standard_normal())


def sequential_sweep(make_sweep, policy: dict) -> Plan:
    path = make_sweep("seq", variants={"resnet": {"model.attention.kind": "none"},
                                      "clear": {"model.attention.reduction": 4},
                                      "null": {"model.attention.reduction": 8}})
    doc = yaml.safe_load(path.read_text())
    doc["seeds"] = policy
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_plan(path)


def _worker(plan: Plan, storage: str, log_path: str, die_after_claim: bool, stall: float = 0.0) -> None:
    claim_loop(plan, storage, log_path, top1_err=synthetic_error, die_after_claim=die_after_claim, pause=0.01,
               stall=stall)


@pytest.mark.slow  # > 5 s: out of the fast tier
def test_racing_workers_claim_exactly_the_allocated_seeds_once_and_a_dead_one_is_resumed(make_sweep, tmp_path):
    plan = sequential_sweep(make_sweep, {"start": 4, "max": 12, "step": 2, "margin": 0.05, "alpha": 0.05})
    assert plan.seed_policy is not None and len(plan.runs) == 4 * 12  # the plan (and the budget) at max
    storage = default_storage(plan, tmp_path / "results")
    ctx = multiprocessing.get_context("spawn")
    logs = [tmp_path / f"claims-{i}.log" for i in range(4)]
    victim = ctx.Process(target=_worker, args=(plan, storage, str(logs[0]), True))
    victim.start()
    victim.join(timeout=120)
    assert victim.exitcode == 9
    dead = declare_dead(storage, plan.name)  # its heartbeat stopped long ago: the next claim takes it for lost
    # the first survivor stalls 3 s between its first claim and its finish (a loaded machine): alive, beating,
    # it must not be taken for dead (a 2 s grace without beats did, under load)
    procs = [ctx.Process(target=_worker, args=(plan, storage, str(log), False, 3.0 if i == 0 else 0.0))
             for i, log in enumerate(logs[1:])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
        assert p.exitcode == 0
    claims = Counter(line for log in logs for line in log.read_text().split())

    # what the policy needs, replayed on the full synthetic table: every run of it finished exactly once
    outcomes = {v.name: {s: synthetic_error(v.name, s) for s in range(12)} for v in plan.variants}
    expected = allocate(plan.seed_policy, [v.name for v in plan.variants], plan_contrasts(plan), outcomes)
    assert expected.seeds["clear"] < expected.seeds["null"] == expected.seeds["resnet"]
    wanted = {r.key for r in plan.runs if expected.wants(r.variant, r.seed)}
    study = optuna.load_study(study_name=plan.name, storage=storage)
    done = Counter(t.user_attrs["run_key"] for t in study.get_trials(deepcopy=False)
                   if t.state == TrialState.COMPLETE)
    assert done == Counter(wanted)                        # no seed trained twice, none skipped, none extra
    killed = [k for k, n in claims.items() if n == 2]
    assert killed == [dead] and sum(claims.values()) == len(wanted) + 1  # the dead worker's run, resumed once
    lost = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.COMPLETE]
    assert [(t.state, t.user_attrs["run_key"]) for t in lost] == [(TrialState.FAIL, dead)]  # no live one lost
    assert set(claims) == wanted                          # no claim of a seed a decided contrast did not need

    text = sweep_status(plan, storage).table()
    assert "seed policy: 3 contrasts:" in text and "; pending: 0 more runs" in text
    assert "clear vs resnet: worse at" in text and "confidence sequence [" in text


def trial(run, top1: float | None = None, running: bool = False) -> FrozenTrial:
    """A trial as the study holds it: finished with ``top1`` in 60 s, or running on a worker."""
    if running:
        return create_trial(state=TrialState.RUNNING, user_attrs={"run_key": run.key, "worker": "w1"})
    return create_trial(state=TrialState.COMPLETE, value=top1, user_attrs={
        "run_key": run.key, "status": "finished", "wall_seconds": 60.0, "result": {"record": {"top1_err": top1}}})


def test_status_of_a_sequential_sweep_gives_the_runs_still_possible_as_a_range_with_an_eta_each(make_sweep):
    plan = sequential_sweep(make_sweep, {"start": 4, "max": 12, "step": 2, "margin": 0.05, "alpha": 0.05})
    runs = {(r.variant, r.seed): r for r in plan.runs}
    # seeds 0-5 recorded everywhere: "clear" (5 points worse) is decided, "base" and "null" (no effect) and
    # their baseline go on; null's seed 6 is running
    trials = [trial(runs[v, s], synthetic_error(v, s)) for v in ("resnet", "base", "clear", "null") for s in range(6)]
    status = status_from_trials(plan, [*trials, trial(runs["null", 6], running=True)])
    assert status.pending == 4 * 12 - 24 - 1       # the plan's runs not started, up to max (key unchanged)
    # allocated now: seeds 6, 7 of resnet, base, null (null's 6 running); could still run: all three up to 11;
    # clear's seeds 6-11 never
    assert (status.pending_at_least, status.pending_at_most) == (5, 17)
    assert status.eta_seconds_at_least == pytest.approx(60.0 * (5 + 1))   # one worker at 60 s a run
    assert status.eta_seconds_at_most == status.eta_seconds == pytest.approx(60.0 * (17 + 1))
    summary = status.summary()
    assert "24 done of 48 at max" in summary and "1 running" in summary
    assert "pending: at least 5, at most 17 more runs (eta 6m00s – 18m00s)" in summary
    assert f"{status.pending} pending" not in summary
    assert "clear vs resnet: worse at 6 seeds" in "\n".join(status.notes()) and not status.complete
    doc = status_json(status)
    assert {"pending", "eta_seconds", "complete", "pending_at_least", "pending_at_most", "eta_seconds_at_least",
            "eta_seconds_at_most"} <= set(doc) and doc["pending_at_most"] == 17 and doc["complete"] is False

    # every run the policy wants recorded: complete, though the plan's seeds of decided contrasts never ran
    full = {v.name: {s: synthetic_error(v.name, s) for s in range(12)} for v in plan.variants}
    wanted = allocate(plan.seed_policy, [v.name for v in plan.variants], plan_contrasts(plan), full)
    done = status_from_trials(plan, [trial(r, full[r.variant][r.seed]) for r in plan.runs
                                     if wanted.wants(r.variant, r.seed)])
    assert done.pending > 0 and (done.pending_at_least, done.pending_at_most) == (0, 0)
    assert done.complete and done.succeeded and done.eta_seconds is None
    assert done.summary().endswith("; pending: 0 more runs")


def test_the_status_of_a_fixed_list_sweep_keeps_its_plain_pending_count(make_sweep):
    plan = load_plan(make_sweep("fixed", seeds=(0, 1), variants={"resnet": {"model.attention.kind": "none"}}))
    status = status_from_trials(plan, [trial(plan.runs[0], 10.0)])
    assert status.pending_at_least is None and status.pending_at_most is None and status.sequential == []
    assert status.summary().endswith(f"{status.pending} pending, eta {duration(status.eta_seconds or 0)}")


def test_the_progress_bar_of_a_sequential_sweep_counts_to_the_allocated_runs_and_grows_with_them(make_sweep):
    from sesweep.runner.sweep import bar_state

    plan = sequential_sweep(make_sweep, {"start": 4, "max": 12, "step": 2, "margin": 0.05, "alpha": 0.05})
    runs = {(r.variant, r.seed): r for r in plan.runs}
    variants = ("resnet", "base", "clear", "null")
    # seeds 0-3 recorded everywhere: every contrast undecided (unbounded below 5 pairs), so all get seeds 4, 5
    start = status_from_trials(plan, [trial(runs[v, s], synthetic_error(v, s)) for v in variants for s in range(4)])
    assert bar_state(start)[:2] == (16, 16 + 4 * 2)
    # seeds 0-5: "clear" decided; resnet, base, null get 6, 7 (null's 6 running): the total grows, never to max
    trials = [trial(runs[v, s], synthetic_error(v, s)) for v in variants for s in range(6)]
    n, total, postfix = bar_state(status_from_trials(plan, [*trials, trial(runs["null", 6], running=True)]))
    assert (n, total) == (24, 24 + 1 + 5) and total < len(plan.runs)
    assert postfix.startswith("1 running, 0 failed, at most 42 runs")   # 24 done, 1 running, 17 still possible

    fixed = load_plan(make_sweep("fixed", seeds=(0, 1), variants={"resnet": {"model.attention.kind": "none"}}))
    n, total, postfix = bar_state(status_from_trials(fixed, [trial(fixed.runs[0], 10.0)]))
    assert (n, total) == (1, len(fixed.runs)) and "at most" not in postfix
