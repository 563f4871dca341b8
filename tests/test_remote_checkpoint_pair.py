"""Issue 21.7: a checkpoint and its sidecar reach the tracking server as one unit: a machine that fetches between
the two uploads must get a checkpoint that passes its sha256 (before, it got the old sidecar with the new
bytes, and the run restarted from epoch 0). Real ``mlflow server`` on loopback (the session's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sesweep.plan import load_plan
from sesweep.runner import remote_checkpoints
from sesweep.runner.tracking import Tracker
from sesweep.training.checkpoint import read_checkpoints, save_checkpoint


@pytest.mark.slow
def test_a_fetch_between_the_two_uploads_gets_a_whole_checkpoint(make_sweep, tmp_path: Path, mlflow_server: str,
                                                                  monkeypatch: pytest.MonkeyPatch):
    plan = load_plan(make_sweep("pair"))
    (run,) = plan.runs
    tracker = Tracker(mlflow_server, "pair")
    tracked = tracker.start(run, trial=0)
    assert tracked.run_id is not None
    local = tmp_path / "writer"
    for epoch in (1, 2):
        remote_checkpoints.upload(tracked, save_checkpoint(local, run.key, epoch, {"w": torch.full((4,), epoch)}))

    fetched: list[int | None] = []
    real = tracker.client.log_artifact

    def upload_then_fetch(run_id: str, path: str, where: str | None = None) -> None:
        real(run_id, path, where)
        if not fetched:  # right after the first of the two uploads of epoch 3
            reader = tmp_path / "reader"
            fetched.append(remote_checkpoints.fetch(Tracker(mlflow_server, "pair"), run.key, reader))
            fetched.append(next((e for e, _ in read_checkpoints(reader, run.key)), None))

    monkeypatch.setattr(tracker.client, "log_artifact", upload_then_fetch)
    remote_checkpoints.upload(tracked, save_checkpoint(local, run.key, 3, {"w": torch.full((4,), 3.0)}))
    monkeypatch.undo()
    assert fetched == [2, 2]  # the pair the pointer named: whole, verified

    after = tmp_path / "after"
    assert remote_checkpoints.fetch(Tracker(mlflow_server, "pair"), run.key, after) == 3
    (epoch, state), *_ = read_checkpoints(after, run.key)
    assert epoch == 3 and torch.equal(state["w"], torch.full((4,), 3.0))
