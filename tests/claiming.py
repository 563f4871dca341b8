"""The claim protocol alone, as a worker process runs it without training: claim, log the claim, record a
synthetic result; shared by the racing-claims tests (a fixed-list sweep and a sequential one)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from sesweep.plan import Plan
from sesweep.runner.config import SweepConfig
from sesweep.runner.queue import SweepLock, claim, finish, open_storage, open_study


def claim_loop(plan: Plan, storage: str, log_path: str, grace_period: int,
               top1_err: Callable[[str, int], float] = lambda variant, seed: 1.0, die_after_claim: bool = False,
               pause: float = 0.0) -> None:
    """Claim and finish runs until the sweep is done, logging every claimed key to ``log_path``; with
    ``die_after_claim`` the process exits holding its first RUNNING trial (no heartbeat, as SIGKILL)."""
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
            log.write(f"{run.key}\n")
            log.flush()
            if die_after_claim:
                os._exit(9)
            time.sleep(pause)
            payload = {"record": {"run_key": run.key, "status": "finished", "top1_err": top1_err(run.variant,
                                                                                                   run.seed)},
                       "curves": [], "hidden_widths": []}
            assert finish(plan, study, lock, trial_id, run, payload, {}) == "recorded"
