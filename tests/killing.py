"""SIGKILL one of several `sesweep run` processes while it trains, then wait for the others to finish the sweep:
the shared middle of the several-machine tests (fixed list and seed policy)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import optuna
from optuna.trial import TrialState


def kill_one_running(procs: list[subprocess.Popen], study_name: str, storage: str,
                     timeout: float = 300) -> subprocess.Popen:
    """SIGKILL the first of ``procs`` seen holding a RUNNING trial, wait for every process, and check that the
    victim died of the signal and every survivor exited 0; returns the victim."""
    victim = None
    try:
        deadline = time.monotonic() + timeout
        while victim is None and time.monotonic() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.2)
            try:
                trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)
            except Exception:  # the study is still being created
                continue
            for t in trials:
                pid = int(str(t.user_attrs.get("worker", ":0")).rpartition(":")[2])
                if t.state == TrialState.RUNNING and any(p.pid == pid for p in procs):
                    victim = next(p for p in procs if p.pid == pid)
                    os.kill(pid, signal.SIGKILL)
                    break
        assert victim is not None, "no worker was caught running a trial"
        for p in procs:
            p.wait(timeout=600)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert victim.returncode == -signal.SIGKILL
    for p in procs:
        if p is not victim:
            assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    return victim
