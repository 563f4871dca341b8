"""The command line (issue 10, "errors before work, not after"): bad data and bad names fail at load with
one line and exit 2, `status` says by its exit status whether runs failed, and every command that prints
results prints JSON (and nothing else on stdout) with --json."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sesweep.cli import main
from sesweep.plan import load_plan
from sesweep.runner import sweep as sw
from sesweep.spec import flatten, run_spec

#: a run of well under a second (as in conftest.FAKE_RECIPE)
FAKE = {"dataset": "fake", "train_subset": 32, "test_subset": 16, "image_size": 16, "epochs": 1, "batch_size": 16,
        "eval_batch_size": 16, "precision": "fp32", "augment": "none", "device": "cpu"}
FAKE_ARGS = [f"recipe.{k}={v}" for k, v in FAKE.items()]


def write_spec(path: Path, **doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"name": "t", "seeds": [0], **doc}, sort_keys=False))
    return path


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str], rc: int = 0) -> Any:
    """``sesweep ARGV`` in-process: its exit status, and its whole stdout parsed as JSON."""
    capsys.readouterr()
    assert main(argv) == rc
    out = capsys.readouterr().out
    return json.loads(out)


# --------------------------------------------------------------------------------------------------
# data that are not there: one line, exit 2, before any run is queued


def image_folder(root: Path, images: bool) -> Path:
    """train/ and test/ with two class folders each; with one tiny PNG per class and split if ``images``."""
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("a", "b"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            if images:
                Image.new("RGB", (8, 8), (200, 10, 10) if cls == "a" else (10, 10, 200)).save(folder / "0.png")
    return root


@pytest.mark.parametrize("case", ["missing", "empty_folder", "no_images", "option_missing"])
def test_data_that_are_not_there_exit_2_with_one_line_and_write_nothing(case: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]):
    root = {"missing": tmp_path / "nope", "empty_folder": tmp_path / "empty", "option_missing": tmp_path / "nope",
            "no_images": image_folder(tmp_path / "noimg", images=False)}[case]
    (tmp_path / "empty").mkdir()
    spec_root = str(image_folder(tmp_path / "good", images=True)) if case == "option_missing" else str(root)
    spec = write_spec(tmp_path / "s.yaml", recipe={"dataset": "imagefolder", "data_root": spec_root, "epochs": 1},
                      variants={"resnet": {"model.attention.kind": "none"}})
    results = tmp_path / "results"
    argv = ["run", str(spec), "--results", str(results), "--no-tracking", "--quiet"]
    argv += ["--data-root", str(root)] if case == "option_missing" else []
    assert main(argv) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("sesweep run: error: ") and "recipe.data_root" in line and str(root.name) in line, line
    assert not results.exists()


@pytest.mark.parametrize("locked", ["root", "train"])
def test_an_unreadable_data_folder_is_one_line_exit_2(locked: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch):
    # chmod 000 does not stop root (the tests may run as root), so the permission error is simulated
    root = image_folder(tmp_path / "locked", images=True)
    if locked == "root":
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != root and real_access(p, mode, **kw))
    else:
        real = os.scandir

        def scandir(path: Any = ".") -> Any:
            if str(path).startswith(str(root / "train")):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    spec = write_spec(tmp_path / "s.yaml", recipe={"dataset": "imagefolder", "data_root": str(root), "epochs": 1})
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--no-tracking", "--quiet"]) == 2
    line = one_line_error(capsys.readouterr().err)
    where = root if locked == "root" else root / "train"
    assert f"recipe.data_root: cannot read {where}: " in line and "permission denied" in line.lower(), line
    assert not results.exists()


def test_a_subset_larger_than_the_data_is_one_line_exit_2_before_any_run(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]):
    spec = write_spec(tmp_path / "s.yaml", recipe={**FAKE, "train_subset": 5000})
    results = tmp_path / "results"
    assert main(["run", str(spec), "--results", str(results), "--no-tracking", "--quiet"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "recipe.train_subset: 5000 is more than the 1000 images" in line, line
    assert not results.exists()


# --------------------------------------------------------------------------------------------------
# unknown table and figure names: at load, naming the field and the allowed names


@pytest.mark.parametrize("field, name, allowed", [
    ("tables", "ratoi", ["ratio", "overall", "squeeze", "excitation", "adaptive", "table10"]),
    ("figures", "paretto", ["pareto", "ratio", "curves", "excitation", "adaptive"]),
])
def test_unknown_table_or_figure_name_exits_2_naming_the_field_and_the_allowed_names(
        field: str, name: str, allowed: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = write_spec(tmp_path / "s.yaml", recipe=FAKE, axes={"model.attention.reduction": [4, 8]},
                      **{field: ["overall" if field == "tables" else "curves", name]})
    results = tmp_path / "results"
    assert main(["run", str(spec), "--dry-run", "--results", str(results)]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert f"{spec}: {field}[1]: '{name}' is not " in line, line
    assert "did you mean" in line, line
    assert all(a in line for a in allowed), line
    assert not results.exists()


def test_names_valid_in_general_but_not_for_this_sweep_still_load(tmp_path: Path):
    """A ratio sweep asking for the stages table is a note when the report is built, not a load error."""
    spec = write_spec(tmp_path / "s.yaml", recipe=FAKE, axes={"model.attention.reduction": [4, 8]},
                      tables=["Stages", "table 13", "model.arch", "arch", "lr", "overall"],
                      figures=["gate", "pareto", "latency", "pool", "model.attention.placement"])
    plan = load_plan(spec)
    assert plan.tables[0] == "Stages" and plan.figures[0] == "gate"


def test_every_experiment_names_valid_tables_and_figures():
    from sesweep.vocabulary import check_names

    paths = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))
    docs = [yaml.safe_load(p.read_text()) for p in paths if p.name != "dvc.yaml"]  # DVC's pipeline file is there
    assert sum(1 for d in docs if d.get("tables") or d.get("figures")) >= 5
    for doc in docs:
        check_names("tables", doc.get("tables") or [])
        check_names("figures", doc.get("figures") or [])


def test_the_vocabulary_is_exactly_what_tables_and_figures_recognise():
    from sesweep import vocabulary
    from sesweep.analysis import figures, tables
    from sesweep.spec import schema_keys

    assert tables.PAPER_TABLES is vocabulary.PAPER_TABLES
    assert figures.FIGURE_NAMES is vocabulary.FIGURE_NAMES
    recognised: set[str] = set()
    for key in [k for k in schema_keys() if k != "seed"]:  # never varied between variants
        for adaptive in (False, True):
            choices, _ = tables.choose_tables([key], adaptive=adaptive)
            recognised |= set().union(*(tables._names(c) for c in choices))
    assert recognised == set(vocabulary.table_names())
    drawn = {n for names in figures.FIGURE_NAMES.values() for n in names}
    drawn |= {n for k in schema_keys() if k.startswith("model.") and k not in (
        "model.attention.kind", "model.attention.reduction") for n in figures._factor_names(k)}
    assert drawn == set(vocabulary.figure_names())


# --------------------------------------------------------------------------------------------------
# sesweep info


def test_info_honours_recipe_image_size(capsys: pytest.CaptureFixture[str]):
    at16 = run_json(capsys, ["info", "recipe.image_size=16", "--json"])
    at32 = run_json(capsys, ["info", "recipe.image_size=32", "--json"])
    assert (at16["input_size"], at32["input_size"]) == (16, 32)
    assert 3.5 < at32["macs"] / at16["macs"] < 4.5
    assert run_json(capsys, ["info", "recipe.image_size=16", "--input-size", "32", "--json"])["macs"] == at32["macs"]
    assert main(["info", "recipe.image_size=16"]) == 0
    assert "at 16x16" in capsys.readouterr().out


def learnable_run_json(tmp_path: Path) -> Path:
    """A run JSON as `sesweep run` writes it, for a learnable SE on 16x16 images (widths: 2 per block)."""
    flat = flatten(run_spec({"model.attention.adaptive": "learnable", "model.attention.reduction": 4,
                             "recipe.image_size": 16}))
    blocks = [f"layer{i}.{j}.attn_branch" for i in (1, 2, 3) for j in range(3)]
    payload = {"record": {**flat, "run_key": "0" * 16, "status": "finished"},
               "hidden_widths": [{"block": b, "hidden": 2} for b in blocks]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(payload))
    return path


def test_info_of_a_run_json_is_at_its_image_size_with_its_learned_widths(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]):
    path = learnable_run_json(tmp_path)
    cost = run_json(capsys, ["info", "--run", str(path), "--json"])
    assert cost["input_size"] == 16
    assert {w["hidden"] for w in cost["hidden_widths"]} == {2}
    # an override the learned widths still fit is fine
    assert run_json(capsys, ["info", "--run", str(path), "model.num_classes=7", "--json"])["input_size"] == 16


@pytest.mark.parametrize("override", ["model.attention.reduction=16", "model.arch=resnet32",
                                      "model.attention.placement=pre"])
def test_info_run_with_an_override_the_learned_widths_do_not_fit_is_one_line_exit_2(
        override: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = learnable_run_json(tmp_path)
    assert main(["info", "--run", str(path), override]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("sesweep info: error: --run: ") and override in line and "Traceback" not in line, line


# --------------------------------------------------------------------------------------------------
# sesweep status: exit 1 when runs failed; and --json on every command that prints results


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path]]:
    """Sweeps run once per module: ``swept("failed")`` (one finished, one failed run) and ``swept("diverged")``
    (one finished, one diverged); returns (spec path, results folder)."""
    import torch

    root = tmp_path_factory.mktemp("cli-sweeps")
    variants = {"failed": {"toolarge": {"recipe.train_subset": 5000}}, "diverged": {"boom": {"recipe.lr": 1.0e30}}}
    done: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in done:
            spec = write_spec(root / f"{name}.yaml", name=name, recipe=FAKE, variants=variants[name])
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                sw.run_sweep(load_plan(spec), results_dir=root / "results", tracking=False, max_retries=1,
                             progress=False, heartbeat_interval=1, grace_period=4)
            finally:
                torch.set_num_threads(before)
            done[name] = spec, root / "results"
        return done[name]

    return get


def test_status_exits_1_when_a_run_failed(swept, capsys: pytest.CaptureFixture[str]):
    spec, results = swept("failed")
    assert main(["status", str(spec), "--results", str(results)]) == 1
    assert "1 failed" in capsys.readouterr().out
    doc = run_json(capsys, ["status", str(spec), "--results", str(results), "--json"], rc=1)
    assert (doc["failed"], doc["finished"], doc["total"]) == (1, 1, 2)
    assert {"rows", "notes", "pending", "running", "diverged", "eta_seconds"} <= set(doc)


def test_status_exits_0_when_a_run_diverged(swept, capsys: pytest.CaptureFixture[str]):
    spec, results = swept("diverged")
    doc = run_json(capsys, ["status", str(spec), "--results", str(results), "--json"], rc=0)
    assert (doc["diverged"], doc["failed"]) == (1, 0)
    boom = next(r for r in doc["rows"] if r["variant"] == "boom")
    assert boom["state"] == "diverged" and boom["top1_err"] is None  # NaN: null, as standard JSON has no NaN


def test_status_help_documents_the_exit_status(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "exit status" in out and "1 when a run failed" in out and "diverged" in out


def test_aggregate_and_report_json(swept, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec, results = swept("diverged")
    doc = run_json(capsys, ["aggregate", str(spec), "--results", str(results), "--json"])
    assert set(doc) == {"folder", "files"} and all(Path(f).is_file() for f in doc["files"])
    doc = run_json(capsys, ["report", str(spec), "--results", str(results), "--out", str(tmp_path / "rep"),
                            "--no-figures", "--json"])
    assert {"markdown", "html", "figures", "notes"} <= set(doc)
    assert Path(doc["markdown"]).is_file() and Path(doc["html"]).is_file() and doc["figures"] == []


def test_run_dry_run_json_is_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = write_spec(tmp_path / "s.yaml", recipe=FAKE, axes={"model.attention.reduction": [4, 8]}, seeds=[0, 1])
    doc = run_json(capsys, ["run", str(spec), "--dry-run", "--json", "--results", str(tmp_path / "r")])
    assert doc["name"] == "t" and len(doc["runs"]) == 4
    assert {"variant", "seed", "run_key", "params", "se_params", "macs"} <= set(doc["runs"][0])
    assert doc["on_disk"]["pending"] == 4 and doc["unresolved"] is None
    assert not (tmp_path / "r").exists()


def test_info_train_and_bench_json(capsys: pytest.CaptureFixture[str], one_torch_thread: None):
    cost = run_json(capsys, ["info", "--json"])
    assert {"arch", "attention", "params", "se_params", "macs", "input_size", "hidden_widths"} <= set(cost)
    doc = run_json(capsys, ["train", *FAKE_ARGS, "--quiet", "--json"])
    assert doc["record"]["status"] == "finished" and len(doc["curves"]) == 1
    doc = run_json(capsys, ["bench", *FAKE_ARGS, "recipe.image_size=8", "recipe.batch_size=4", "--sections", "cifar",
                            "--kinds", "se", "--precisions", "fp32", "--steps", "1", "--repeats", "1", "--json"])
    assert len(doc["cifar"]["rows"]) == 1 and doc["cifar"]["rows"][0]["attention"] == "se"


def test_json_is_documented_in_every_command_help(capsys: pytest.CaptureFixture[str]):
    for command in ("run", "status", "aggregate", "report", "info", "train", "bench", "overhead"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--json" in capsys.readouterr().out, command
