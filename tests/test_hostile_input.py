"""Hostile input (issue 14, part 4): every malformed sweep file or command line exits 2 with one line on stderr,
never a traceback, and writes nothing; ``--dry-run`` checks what ``run`` checks (data included) and answers in
seconds. Cases run in-process through the CLI's ``main`` (one real process checks the exit status end to end)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sesweep.cli import main

ROOT = Path(__file__).resolve().parents[1]
BAD = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))
FAKE = {"dataset": "fake", "train_subset": 32, "test_subset": 16, "image_size": 16, "epochs": 1, "batch_size": 16,
        "eval_batch_size": 16, "precision": "fp32", "augment": "none", "device": "cpu"}
MODES = {"run": ["--no-tracking", "--quiet"], "dry-run": ["--dry-run"]}


def sweep(path: Path, recipe: dict[str, Any] | None = None, **doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": "t", "model": {"arch": "resnet20"}, "recipe": {**FAKE, **(recipe or {})}, "seeds": [0], **doc}
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], results: Path) -> str:
    """``sesweep ARGV --results RESULTS``: exit 2, one non-empty line on stderr, no traceback, nothing written."""
    capsys.readouterr()
    assert main([*argv, "--results", str(results)]) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in out + err
    assert not results.exists() or not any(results.iterdir()), f"{results} was written"
    return lines[0]


# --------------------------------------------------------------------------------------------------
# the bad-spec corpus, through run and --dry-run


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_every_bad_spec_is_refused_with_one_line_by_run_and_dry_run(path: Path, mode: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]):
    line = refused(capsys, ["run", str(path), *MODES[mode]], tmp_path / "results")
    assert path.read_text().splitlines()[0].removeprefix("# expect: ") in line


def hostile_specs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name → (sweep file, what its one line must name)."""
    tmp.mkdir(parents=True, exist_ok=True)
    non_utf8 = tmp / "bytes.yaml"
    non_utf8.write_bytes(b"name: t\nseeds: [0]\ndescription: \xff\xfe\x00\n")
    seeds = tmp / "million_seeds.yaml"
    seeds.write_text("name: t\nseeds: [" + ", ".join(map(str, range(1_000_000))) + "]\n")
    grid = tmp / "grid.yaml"
    sweep(grid, axes={"recipe.lr": [round(0.001 * (i + 1), 3) for i in range(1000)],
                      "recipe.weight_decay": [i * 1e-5 for i in range(100)]})
    return {
        "epochs 10^12": (sweep(tmp / "epochs.yaml", {"epochs": 10**12}), "max_train_flop: this sweep would train"),
        "batch 10^9": (sweep(tmp / "batch.yaml", {"batch_size": 10**9}), "recipe.batch_size: 1000000000 is more"),
        "10^6 seeds": (seeds, "characters long, more than the limit"),
        "10^5-point grid": (grid, "max_runs: this sweep has 100,000 runs"),
        "non-UTF-8 bytes": (non_utf8, "not UTF-8"),
        "directory": (tmp / "adir", "cannot read the sweep file"),
        "missing": (tmp / "nowhere.yaml", "cannot read the sweep file"),
        "wrong type": (sweep(tmp / "type.yaml", {"epochs": "ten"}), "recipe.epochs"),
        "unknown key": (sweep(tmp / "unknown.yaml", {"epocs": 3}), "recipe.epocs: unknown key"),
    }


@pytest.mark.parametrize("mode", MODES)
def test_hostile_sweep_files_are_refused_with_one_line(mode: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]):
    (tmp_path / "adir").mkdir()
    for name, (path, names) in hostile_specs(tmp_path / "specs").items():
        line = refused(capsys, ["run", str(path), *MODES[mode]], tmp_path / "results")
        assert names in line, (name, line)


def test_absurd_compute_gives_the_estimate_the_limit_and_the_knob(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]):
    path = sweep(tmp_path / "s.yaml", {"epochs": 10**12})
    line = refused(capsys, ["run", str(path), "--dry-run"], tmp_path / "results")
    assert re.search(r"max_train_flop: this sweep would train for about [\d.]+e\+21 FLOP \(sum over its 1 runs of 6 x "
                     r"MACs x train images x epochs; .* days of one GPU at 300 TFLOP/s\), more than the limit of "
                     r"2e\+20; .*set max_train_flop: 1\.0e\+22 in the sweep file$", line), line
    allow = line.rsplit("set max_train_flop: ", 1)[1].split()[0]
    text = path.read_text() + f"max_train_flop: {allow}\n"
    path.write_text(text)
    capsys.readouterr()
    assert main(["run", str(path), "--dry-run", "--results", str(tmp_path / "results")]) == 0
    assert not (tmp_path / "results").exists()


def test_a_huge_layer_gives_its_size_the_limit_and_the_knob(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "s.yaml"
    sweep(path)
    path.write_text(path.read_text().replace("arch: resnet20", "arch: resnet20\n  num_classes: 2000000"))
    line = refused(capsys, ["run", str(path), "--dry-run"], tmp_path / "results")
    assert line.endswith("model.num_classes: 2,000,000 classes would make a layer of 128,000,000 parameters (0.512 GB "
                         "in fp32), more than the limit of 100,000,000 per layer; if you mean it, set "
                         "max_layer_params: 128000000 in the sweep file (variant base)"), line
    path.write_text(path.read_text() + "max_layer_params: 128000000\n")
    capsys.readouterr()
    assert main(["run", str(path), "--dry-run", "--results", str(tmp_path / "results")]) == 0


def test_the_shipped_sweeps_are_under_the_default_compute_limit():
    from sesweep.budget import MAX_TRAIN_FLOP, train_flop
    from sesweep.plan import load_plan

    plan = load_plan(ROOT / "experiments" / "senet-imagenet-stages-placement.yaml")  # the largest
    total, assumed = train_flop(plan)
    assert assumed and 5e19 < total < MAX_TRAIN_FLOP


def test_unreadable_spec_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading the file")
    path = sweep(tmp_path / "s.yaml")
    path.chmod(0)
    try:
        assert "Permission denied" in refused(capsys, ["run", str(path), "--dry-run"], tmp_path / "results")
    finally:
        path.chmod(0o644)


# --------------------------------------------------------------------------------------------------
# --storage that is not a database


def bad_storages(tmp: Path) -> dict[str, Callable[[], str]]:
    folder = tmp / "folder"
    text = tmp / "notes.txt"
    return {
        "a file name": lambda: "results.txt",
        "http": lambda: "http://127.0.0.1:1/x",
        "parent is a file": lambda: (text.write_text("x"), f"sqlite:///{text}/x.db")[1],
        "a folder": lambda: (folder.mkdir(exist_ok=True), f"sqlite:///{folder}")[1],
        "not sqlite": lambda: (text.write_text("x"), f"sqlite:///{text}")[1],
        "in memory": lambda: "sqlite://",
        "no driver": lambda: "postgresql+nosuchdriver://u@h/db",
    }


@pytest.mark.parametrize("mode", MODES)
def test_a_storage_that_is_not_a_database_is_one_line_naming_storage(mode: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]):
    spec = sweep(tmp_path / "s.yaml")
    for name, url in bad_storages(tmp_path).items():
        line = refused(capsys, ["run", str(spec), "--storage", url(), *MODES[mode]], tmp_path / "results")
        assert "--storage" in line and ("allowed: sqlite:///PATH" in line or "driver" in line), (name, line)
    assert not (tmp_path / "notes.txt" / "x.db").exists()


def test_a_storage_url_is_checked_without_contacting_anything():
    from sesweep.runner.storage_url import check_storage_url

    check_storage_url("sqlite:////tmp/sesweep-never-created/deeper/optuna.db")
    assert not Path("/tmp/sesweep-never-created").exists()


# --------------------------------------------------------------------------------------------------
# a data root that holds no data set; --dry-run checks the data as run does


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dataset, names", [("imagefolder", "no train/ folder under"),
                                            ("cifar10", "no CIFAR-10 files under")])
def test_an_empty_data_root_is_one_line(dataset: str, names: str, mode: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("no network here")))
    (tmp_path / "empty").mkdir()
    spec = sweep(tmp_path / "s.yaml", {"dataset": dataset, "train_subset": None, "image_size": None})
    line = refused(capsys, ["run", str(spec), "--data-root", str(tmp_path / "empty"), *MODES[mode]],
                   tmp_path / "results")
    assert f"recipe.data_root: {names}" in line, line
    assert not any((tmp_path / "empty").iterdir()), "--data-root was written"


def test_dry_run_refuses_a_batch_larger_than_the_data_as_run_does(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]):
    spec = sweep(tmp_path / "s.yaml", {"batch_size": 64})  # train_subset 32
    line = refused(capsys, ["run", str(spec), "--dry-run"], tmp_path / "results")
    assert "recipe.batch_size: 64 is more than the 32 training images" in line


def test_a_real_process_exits_2_with_one_line(tmp_path: Path):
    out = subprocess.run([sys.executable, "-m", "sesweep", "run", str(tmp_path), "--dry-run", "--results",
                          str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert out.stderr.strip().count("\n") == 0 and "cannot read the sweep file" in out.stderr


# --------------------------------------------------------------------------------------------------
# issue 22: every entry point makes the same checks, and a refused command creates nothing


def listing(root: Path) -> list[str]:
    """Every path under ``root`` (folders included): what a refused command must leave as it found it."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out + err, err
    return lines[0]


@pytest.mark.parametrize("command", ["info", "train"])
def test_a_huge_layer_is_refused_by_info_and_train_before_anything_is_built(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    from sesweep.training import commands, models, train

    monkeypatch.chdir(tmp_path)
    # Each module binds its own name at import; importing ``commands`` here (the CLI imports it lazily) keeps
    # it from binding the failing stand-in for good, which broke later tests in the same process.
    for module in (models, train, commands):
        monkeypatch.setattr(module, "build_model", lambda *a, **k: pytest.fail("the model was built"))
    line = one_line_refusal(capsys, [command, "model.num_classes=1000000000"])
    assert "model.num_classes: 1,000,000,000 classes would make a layer of 64,000,000,000 parameters" in line, line
    assert listing(tmp_path) == []


@pytest.mark.parametrize("mode", MODES)
def test_a_storage_folder_that_cannot_be_made_is_one_line_and_creates_nothing(
        mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here")
    spec = sweep(tmp_path / "s.yaml")
    before = listing(tmp_path)
    line = one_line_refusal(capsys, ["run", str(spec), "--storage", "sqlite:////proc/nope/x.db",
                                     "--results", str(tmp_path / "results"), *MODES[mode]])
    assert line.startswith("sesweep run: error: --storage: cannot create /proc/nope/x.db"), line
    assert listing(tmp_path) == before


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: (_ for _ in ()).throw(OSError("no network here")))


@pytest.mark.parametrize("command", ["train", "run"])
def test_a_missing_data_root_is_one_line_and_creates_nothing(command: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch):
    _offline(monkeypatch)
    monkeypatch.chdir(tmp_path)
    spec = sweep(tmp_path / "s.yaml", {"dataset": "cifar10", "data_root": "data/missing/deep", "train_subset": None,
                                       "test_subset": None, "image_size": None})
    before = listing(tmp_path)
    argv = (["train", "recipe.dataset=cifar10", "recipe.data_root=data/missing/deep"] if command == "train" else
            ["run", str(spec), "--no-tracking", "--quiet"])
    line = one_line_refusal(capsys, argv)
    assert "recipe.data_root: no CIFAR-10 files under data/missing/deep" in line, line
    assert listing(tmp_path) == before


def test_an_abbreviated_option_is_refused_with_a_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = sweep(tmp_path / "s.yaml")
    before = listing(tmp_path)
    line = one_line_refusal(capsys, ["run", str(spec), "--worker", "2", "--results", str(tmp_path / "r")])
    assert "--worker" in line and "did you mean --workers?" in line, line
    assert listing(tmp_path) == before


@pytest.mark.parametrize("argv, suggestion", [(["trian"], "did you mean 'train'?"),
                                              (["stauts", "x.yaml"], "did you mean 'status'?"),
                                              (["info", "--jsn"], "did you mean --json?"),
                                              (["report", "x.yaml", "--confidance", "0.9"],
                                               "did you mean --confidence?")])
def test_a_misspelt_command_or_option_gets_a_suggestion(argv: list[str], suggestion: str,
                                                        capsys: pytest.CaptureFixture[str]):
    assert suggestion in one_line_refusal(capsys, argv)


def test_every_parser_refuses_abbreviations():
    import argparse

    from sesweep.cli import COMMANDS, command_parser

    for name in COMMANDS:
        parser = command_parser(name)
        assert isinstance(parser, argparse.ArgumentParser) and parser.allow_abbrev is False, name
