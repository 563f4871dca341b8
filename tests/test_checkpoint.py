"""Mid-run checkpoints and exact resume (sesweep.training.checkpoint): the files, a run stopped and resumed in
process, and a `sesweep run` killed with SIGKILL mid-epoch whose run the next `sesweep run` resumes.

The claim checked everywhere: a resumed run ends with exactly the metrics and curves of an uninterrupted run
(timings excepted), and its record says where it resumed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from sesweep.cli import main
from sesweep.results import METRICS, checkpoint_dir
from sesweep.run_identity import run_key
from sesweep.runner.config import SweepConfig, parse_checkpoint_every
from sesweep.spec import SpecError, run_spec
from sesweep.training.checkpoint import CheckpointPolicy, read_checkpoints, save_checkpoint
from sesweep.training.train import RunResult, train

ROOT = Path(__file__).resolve().parents[1]
#: what may differ between a resumed run and an uninterrupted one: timings and memory of the process
TIMING_METRICS = {"train_seconds", "train_img_per_s", "infer_ms", "peak_mem_mb", "peak_rss_mb", "setup_seconds",
                  "eval_seconds", "probe_seconds"}
#: about 2 s per run on one thread: the embedded digits data at 8x8, small subsets, 4 epochs
DIGITS = {"recipe.dataset": "digits", "recipe.image_size": 8, "recipe.train_subset": 256,
          "recipe.test_subset": 128, "recipe.batch_size": 64, "recipe.epochs": 4, "recipe.precision": "fp32",
          "recipe.device": "cpu"}
LEARNED = {"model.attention.adaptive": "learnable", "model.attention.reduction": 4, "model.attention.cost_weight": 1}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def comparable(result: RunResult) -> dict[str, Any]:
    """Everything a run computed, without its timings."""
    return {"metrics": {k: v for k, v in result.metrics.items() if k not in TIMING_METRICS},
            "curves": [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in result.curves],
            "adaptive": result.adaptive, "excitation": result.excitation, "hidden_widths": result.hidden_widths}


# --------------------------------------------------------------------------------------------------
# the files


def _state(value: float) -> dict[str, Any]:
    return {"w": torch.full((3, 4), value), "rows": [{"epoch": 1, "loss": value}], "n": 7, "none": None}


def test_save_then_load_round_trips_with_weights_only_and_keeps_the_last_two(tmp_path: Path):
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, "k1", epoch, _state(float(epoch)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0002.json", "epoch-0002.pt", "epoch-0003.json",
                                                          "epoch-0003.pt"]
    found = list(read_checkpoints(tmp_path, "k1"))
    assert [epoch for epoch, _ in found] == [3, 2]
    state = found[0][1]
    assert torch.equal(state["w"], torch.full((3, 4), 3.0))
    assert state["rows"] == [{"epoch": 1, "loss": 3.0}] and state["n"] == 7 and state["none"] is None
    # the file itself loads with weights_only (what read_checkpoints does after checking its sha256)
    assert torch.load(tmp_path / "epoch-0003.pt", weights_only=True)["epoch"] == 3
    assert list(read_checkpoints(tmp_path, "another-run")) == []  # a checkpoint of another run is never used


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_truncated_or_flipped_checkpoint_is_detected_and_the_one_before_is_used(tmp_path: Path, damage: str,
                                                                                 caplog: pytest.LogCaptureFixture):
    save_checkpoint(tmp_path, "k1", 1, _state(1.0))
    newest = save_checkpoint(tmp_path, "k1", 2, _state(2.0))
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="sesweep.training.checkpoint"):
        found = list(read_checkpoints(tmp_path, "k1"))
    assert [epoch for epoch, _ in found] == [1]
    assert "epoch-0002.pt is not usable" in caplog.text and "sha256" in caplog.text
    (tmp_path / "epoch-0001.pt").write_bytes(b"")  # none good: the run starts from epoch 0
    assert list(read_checkpoints(tmp_path, "k1")) == []


def test_a_checkpoint_holding_an_arbitrary_pickled_object_is_refused_unexecuted(tmp_path: Path):
    marker = tmp_path / "unpickled"

    class Payload:  # unpickling it would create `marker`
        def __reduce__(self) -> tuple[Any, ...]:
            return Path.touch, (marker,)

    folder = tmp_path / "ckpt"
    save_checkpoint(folder, "k1", 1, _state(1.0))
    save_checkpoint(folder, "k1", 2, {**_state(2.0), "evil": Payload()})  # a correct sidecar: its sha256 matches
    assert [epoch for epoch, _ in read_checkpoints(folder, "k1")] == [1]
    assert not marker.exists()


def test_the_policy_checkpoints_every_n_epochs_or_after_a_duration_or_never(tmp_path: Path):
    every2 = CheckpointPolicy(tmp_path, every_epochs=2)
    assert [every2.due(e, 0.0) for e in (1, 2, 3, 4)] == [False, True, False, True]
    timed = CheckpointPolicy(tmp_path, every_seconds=300)
    assert not timed.due(1, 299.0) and timed.due(2, 300.0)
    assert not CheckpointPolicy(tmp_path).due(1, 1e9)


def test_checkpoint_every_parses_its_forms_and_a_bad_one_is_one_line_and_exit_2(tmp_path: Path,
                                                                                  capsys: pytest.CaptureFixture):
    assert parse_checkpoint_every("0") == (0, 0.0)
    assert parse_checkpoint_every("3") == (3, 0.0)
    assert parse_checkpoint_every("5m") == (0, 300.0)
    assert parse_checkpoint_every("90s") == (0, 90.0) and parse_checkpoint_every("1h") == (0, 3600.0)
    for bad in ("", "-1", "1.5", "5x", "0m", "m"):
        with pytest.raises(SpecError, match="--checkpoint-every"):
            parse_checkpoint_every(bad)
    assert SweepConfig.create("x", results_dir=tmp_path).checkpoint_interval == (0, 300.0)  # the default: 5m
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nmodel: {arch: resnet20}\nrecipe: {dataset: digits, epochs: 1}\nseeds: [0]\n")
    assert main(["run", str(spec), "--results", str(tmp_path / "r"), "--no-tracking", "--quiet",
                 "--checkpoint-every", "5x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--checkpoint-every" in err[0] and "5m" in err[0], err


# --------------------------------------------------------------------------------------------------
# a run stopped and resumed in this process


class Stop(Exception):
    """Stands for the worker dying at the end of an epoch."""


@pytest.fixture(scope="module")
def uninterrupted() -> dict[str, RunResult]:
    """The uninterrupted runs the resumed ones are compared with, trained once."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: train(run_spec({**DIGITS, **extra}), progress=False)
                for name, extra in (("se", {}), ("learned", LEARNED))}
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("variant", "damage", "resumed"), [
    ("se", None, 2), ("learned", None, 2),
    ("se", "newest", 1),  # the newest checkpoint is damaged: the run resumes from the one before
    ("se", "all", 0),     # none is good: the run starts over, and still ends the same
])
def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_exactly_as_an_uninterrupted_one(
        tmp_path: Path, uninterrupted: dict[str, RunResult], variant: str, damage: str | None, resumed: int,
        caplog: pytest.LogCaptureFixture):
    spec = run_spec({**DIGITS, **(LEARNED if variant == "learned" else {})})
    policy = CheckpointPolicy(tmp_path / "ckpt", every_epochs=1)

    def stop_in_epoch_3(row: dict[str, float]) -> None:
        if row["epoch"] == 3:
            raise Stop()

    with pytest.raises(Stop):
        train(spec, progress=False, checkpoints=policy, on_epoch=stop_in_epoch_3)
    assert sorted(p.name for p in policy.directory.glob("*.pt")) == ["epoch-0001.pt", "epoch-0002.pt"]
    damaged = {"newest": ["epoch-0002.pt"], "all": ["epoch-0001.pt", "epoch-0002.pt"]}.get(damage or "", [])
    for name in damaged:
        path = policy.directory / name
        path.write_bytes(path.read_bytes()[:-100])

    rows: list[dict[str, float]] = []
    with caplog.at_level(logging.WARNING, logger="sesweep.training.checkpoint"):
        result = train(spec, progress=False, checkpoints=policy, on_epoch=rows.append)
    assert result.environment["resumed_from_epoch"] == resumed
    assert result.record()["resumed_from_epoch"] == resumed
    assert uninterrupted[variant].record()["resumed_from_epoch"] == 0
    assert comparable(result) == comparable(uninterrupted[variant])
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]  # the restored rows first: tracking sees every epoch
    assert ("not usable" in caplog.text) == bool(damage)
    assert ("starts from epoch 0" in caplog.text) == (damage == "all")
    if variant == "learned":
        assert result.adaptive and {row["epoch"] for row in result.adaptive} == {1, 2, 3, 4}


def test_a_run_resumed_under_another_thread_count_goes_on_with_its_own_and_keeps_its_timings(
        tmp_path: Path, uninterrupted: dict[str, RunResult]):
    """Issue 21.2 / 21.7: CPU kernels split their sums by thread, so a run started at one thread and resumed at
    two matched neither; and the eval and setup seconds of the attempts before a resume were lost."""
    spec = run_spec(DIGITS)
    policy = CheckpointPolicy(tmp_path / "ckpt", every_epochs=1)

    def stop_in_epoch_3(row: dict[str, float]) -> None:
        if row["epoch"] == 3:
            raise Stop()

    with pytest.raises(Stop):
        train(spec, progress=False, checkpoints=policy, on_epoch=stop_in_epoch_3)  # one thread (the fixture)
    _, saved = next(read_checkpoints(policy.directory, run_key(spec)))
    torch.set_num_threads(2)
    result = train(spec, progress=False, checkpoints=policy)
    assert torch.get_num_threads() == 2  # this process's own count is put back
    assert result.environment["resumed_from_epoch"] == 2 and result.environment["threads"] == 1
    assert uninterrupted["se"].record()["threads"] == 1
    assert comparable(result) == comparable(uninterrupted["se"])
    earlier = saved["progress"]
    assert 0 < earlier["eval_seconds"] < result.metrics["eval_seconds"]
    assert 0 < earlier["setup_seconds"] < result.metrics["setup_seconds"]


def test_a_checkpoint_that_cannot_be_written_costs_the_resume_point_not_the_run(
        tmp_path: Path, uninterrupted: dict[str, RunResult], caplog: pytest.LogCaptureFixture):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="sesweep.training.checkpoint"):
        result = train(run_spec(DIGITS), progress=False, checkpoints=CheckpointPolicy(blocked, every_epochs=1))
    assert comparable(result) == comparable(uninterrupted["se"])
    assert "no checkpoint after epoch 1" in caplog.text


# --------------------------------------------------------------------------------------------------
# the real thing: a worker killed with SIGKILL mid-epoch, and the next `sesweep run`


def _sesweep_run(path: Path, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sesweep", "run", str(path), "--results", str(results), "--heartbeat", "1",
            "--grace", "3", "--no-tracking", "--threads", "1", "--quiet", *extra]


def _record(results: Path, name: str) -> dict[str, Any]:
    (path,) = (results / name / "runs").glob("*.json")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_from_its_checkpoint_in_the_next_sesweep_run(make_sweep, tmp_path: Path):
    recipe = {k.removeprefix("recipe."): v for k, v in DIGITS.items()} | {"epochs": 8, "augment": "standard",
                                                                                  "image_size": 16}
    path = make_sweep("resume", recipe=recipe)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    # the uninterrupted reference beside it (one thread each: the same arithmetic, whatever runs alongside)
    ref = subprocess.Popen(_sesweep_run(path, reference, "--checkpoint-every", "0"), cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(_sesweep_run(path, killed, "--checkpoint-every", "1"), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list((killed / "resume" / "checkpoints").glob("*/epoch-*.json")):
                time.sleep(0.2)  # into the next epoch
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert not (killed / "resume" / "runs").exists() or not list((killed / "resume" / "runs").glob("*.json"))

    # the next `sesweep run` waits out the grace period of the dead worker's run, then resumes it; on another
    # thread count (another --workers, another machine): the run goes on with the count it started with
    again = subprocess.run(_sesweep_run(path, killed, "--threads", "2"), cwd=ROOT, capture_output=True, text=True,
                           timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ref.wait(timeout=180) == 0, ref.stderr.read() if ref.stderr else ""

    got, want = _record(killed, "resume"), _record(reference, "resume")
    assert got["record"]["resumed_from_epoch"] > 0 and want["record"]["resumed_from_epoch"] == 0
    assert got["record"]["run_key"] == want["record"]["run_key"]  # the interval is not part of the run key
    assert got["record"]["threads"] == want["record"]["threads"] == 1
    for k in set(METRICS) - TIMING_METRICS:
        assert got["record"][k] == want["record"][k], k
    strip = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in got["curves"]]
    assert strip == [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in want["curves"]]
    assert len(strip) == 8
    assert not (killed / "resume" / "checkpoints").exists()  # removed once the run is recorded
    assert not checkpoint_dir("resume", killed, got["record"]["run_key"]).exists()
