"""The claim protocol alone, as a worker process runs it without training: claim, beat, log the claim, record a
synthetic result; shared by the racing-claims tests (a fixed-list sweep and a sequential one).

Timing margins hold on a loaded machine: a live worker beats every second (as the real worker does) and is
taken for dead only after :data:`GRACE` seconds without a beat, far beyond any stall of a claim or a finish
waiting for the lock; a dead worker is not waited for but declared dead (:func:`declare_dead`), so no test
needs a short grace."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sesweep.plan import Plan
from sesweep.runner.config import SweepConfig
from sesweep.runner.queue import Heartbeat, SweepLock, claim, finish, open_storage, open_study

#: seconds without a heartbeat before a trial counts as lost: generous against the 1 s beat
GRACE = 60


def claim_loop(plan: Plan, storage: str, log_path: str, grace_period: int = GRACE,
               top1_err: Callable[[str, int], float] = lambda variant, seed: 1.0, die_after_claim: bool = False,
               pause: float = 0.0, stall: float = 0.0) -> None:
    """Claim and finish runs until the sweep is done, logging every claimed key to ``log_path``; with
    ``die_after_claim`` the process exits holding its first RUNNING trial (no heartbeat, as SIGKILL); ``stall``
    seconds between the first claim and its finish (as a loaded machine), ``pause`` between the others."""
    cfg = SweepConfig(storage=storage, results_dir=str(Path(log_path).parent), tracking_uri=None,
                      heartbeat_interval=1, grace_period=grace_period)
    st = open_storage(storage, 1, grace_period)
    study = open_study(plan, st)
    lock = SweepLock(st, plan.name)
    with open(log_path, "a") as log:
        while True:
            action, run, trial_id = claim(plan, study, lock, cfg)
            if action == "done":
                return
            if action == "wait":
                time.sleep(0.05)
                continue
            assert run is not None and trial_id is not None
            log.write(f"{run.key}\n")
            log.flush()
            if die_after_claim:
                os._exit(9)
            beat = Heartbeat(st, trial_id, 1).start()
            try:
                time.sleep(stall or pause)
                stall = 0.0
                payload = {"record": {"run_key": run.key, "status": "finished",
                                      "top1_err": top1_err(run.variant, run.seed)}, "curves": [], "hidden_widths": []}
                assert finish(plan, study, lock, trial_id, run, payload, {}) == "recorded"
            finally:
                beat.stop()


def declare_dead(storage: str, study_name: str) -> str:
    """The study's one RUNNING trial, left by a worker that died holding it, made stale now: its heartbeat moved
    to long ago, so the next claim fails it and queues its run again whatever the grace (what the grace period
    would do once it ran out, without waiting for it). Returns its run key."""
    from sqlalchemy import text

    st = optuna.storages.RDBStorage(storage)
    running = optuna.load_study(study_name=study_name, storage=st).get_trials(deepcopy=False,
                                                                             states=(TrialState.RUNNING,))
    assert len(running) == 1, f"{len(running)} RUNNING trials, expected the dead worker's one"
    with st.engine.begin() as conn:  # optuna's heartbeat table: one row per trial, its last beat
        moved = conn.execute(text("UPDATE trial_heartbeats SET heartbeat = :at WHERE trial_id = :id"),
                             {"at": dt.datetime(2000, 1, 1), "id": running[0]._trial_id}).rowcount
    assert moved == 1
    st.engine.dispose()
    return str(running[0].user_attrs["run_key"])
