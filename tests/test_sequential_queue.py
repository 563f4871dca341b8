"""A sequential sweep through the real claim protocol (issue 24): racing processes, one of them dying mid-run
(os._exit: no heartbeat, as SIGKILL), claim exactly the runs the policy allocates -- each once, no seed of a
decided contrast, every seed an undecided one needs -- with synthetic results, no training."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import numpy as np
import optuna
import yaml
from claiming import claim_loop  # tests/ is on sys.path
from optuna.trial import TrialState

from sesweep.analysis.seed_allocation import allocate
from sesweep.plan import Plan, load_plan
from sesweep.runner.queue import default_storage
from sesweep.runner.seed_queue import plan_contrasts

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


def _worker(plan: Plan, storage: str, log_path: str, die_after_claim: bool) -> None:
    claim_loop(plan, storage, log_path, grace_period=2, top1_err=synthetic_error, die_after_claim=die_after_claim,
               pause=0.01)


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
    procs = [ctx.Process(target=_worker, args=(plan, storage, str(log), False)) for log in logs[1:]]
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
    assert len(killed) == 1 and sum(claims.values()) == len(wanted) + 1  # the dead worker's run, resumed once
    assert set(claims) == wanted                          # no claim of a seed a decided contrast did not need

    from sesweep.runner.status import sweep_status

    text = sweep_status(plan, storage).table()
    assert "seed policy: 3 contrasts:" in text and "runs still possible: at least 0" in text
    assert "clear vs resnet: worse at" in text and "confidence sequence [" in text
