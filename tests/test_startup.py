"""Every command starts fast (issue 22.4): ``--help`` and a refused command line load none of the heavy
libraries, ``status``, ``aggregate`` and ``report`` never import torch. Checked by what each command leaves in
``sys.modules`` of a fresh interpreter, not by timing it (the timings are in the issue's benchmarks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sesweep.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
#: what a command that trains nothing must not load; what --help and a refusal must not load besides torch
HEAVY = ("torch", "torchvision", "optuna", "mlflow", "pandas", "scipy", "matplotlib", "sqlalchemy")
#: the last line of stderr of :func:`sesweep`: the command's exit status and the heavy top-level packages loaded
MARK = "SESWEEP-STARTUP "

_PROGRAM = f"""\
import json, sys
from sesweep.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))
sys.stdout.flush()
print({MARK!r} + json.dumps({{"rc": rc, "loaded": loaded}}), file=sys.__stderr__)
"""


def _at_most_8_gb() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (8 * 1024**3, 8 * 1024**3))


def sesweep(*argv: str | Path, cwd: Path = ROOT, timeout: float = 120) -> tuple[int, list[str], str]:
    """``sesweep ARGV`` in a fresh interpreter: its exit status, the heavy libraries it loaded, its stderr.
    Its address space is capped at 8 GB: a regression that allocates what a check should refuse fails fast
    instead of swapping the machine."""
    out = subprocess.run([sys.executable, "-c", _PROGRAM, *map(str, argv)], capture_output=True, text=True,
                         cwd=cwd, timeout=timeout, preexec_fn=_at_most_8_gb)
    lines = out.stderr.splitlines()
    assert lines and lines[-1].startswith(MARK), out.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix(MARK))
    return result["rc"], result["loaded"], "\n".join(lines[:-1])


@pytest.mark.parametrize("name", [*COMMANDS, None])
def test_help_loads_no_heavy_library(name: str | None):
    rc, loaded, err = sesweep(*([name] if name else []), "--help")
    assert rc == 0, err
    assert loaded == []


def write_sweep(folder: Path, name: str, **recipe: object) -> Path:
    import yaml

    from tests.conftest import FAKE_RECIPE

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "model": {"arch": "resnet20"},
                                    "recipe": {**FAKE_RECIPE, **recipe}, "seeds": [0]}, sort_keys=False))
    return path


@pytest.mark.parametrize("argv, says", [
    (["run", "nope.yaml"], "nope.yaml: cannot read the sweep file"),
    (["run", "nope.yaml", "--dry-run"], "nope.yaml: cannot read the sweep file"),
    (["status", "nope.yaml"], "nope.yaml: cannot read the sweep file"),
    (["overhead", "nope.yaml"], "nope.yaml: cannot read the sweep file"),
    (["report", "nope.yaml"], "nope.yaml: no such sweep spec"),
    (["aggregate", "nope.yaml"], "nope.yaml: no such sweep spec"),
    (["report", "results/nope"], "neither a sweep spec"),
    (["info", "model.arch=nope"], "model.arch"),
    (["info", "model.attention.reduction"], "KEY=VALUE"),
    (["train", "model.arch=nope"], "model.arch"),
    (["bench", "recipe.nope=1"], "recipe.nope"),
    (["run", "experiments/smoke.yaml", "--worker", "2"], "did you mean --workers?"),
    (["status", "experiments/smoke.yaml", "--jsn"], "did you mean --json?"),
    (["report", "experiments/smoke.yaml", "--confidance", "0.9"], "did you mean --confidence?"),
    (["stauts"], "did you mean 'status'?"),
])
def test_a_refusal_is_one_line_and_loads_no_heavy_library(argv: list[str], says: str):
    rc, loaded, err = sesweep(*argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and says in lines[0], err
    assert loaded == []


def test_a_bad_key_of_a_sweep_file_is_refused_before_torch(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nseeds: [0]\nmodel: {arch: resnet20, attention: {reductoin: 4}}\n")
    for command in ("run", "status"):
        rc, loaded, err = sesweep(command, path)
        assert rc == 2 and "model.attention.reductoin" in err, err
        assert "torch" not in loaded, command


def test_status_of_a_sweep_that_never_ran_loads_no_torch(tmp_path: Path):
    spec = write_sweep(tmp_path, "never")
    rc, loaded, err = sesweep("status", spec, "--results", tmp_path / "results")
    assert rc == 0, err
    assert "torch" not in loaded and "mlflow" not in loaded


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished one-run sweep (``precision: auto``, resolved and stored by the run): (its spec, results)."""
    from sesweep.plan import load_plan
    from sesweep.runner.sweep import run_sweep

    folder = tmp_path_factory.mktemp("swept")
    spec = write_sweep(folder, "done", precision="auto")
    status = run_sweep(load_plan(spec), results_dir=folder / "results", tracking=False, progress=False)
    assert status.done == 1
    return spec, folder / "results"


def test_status_of_a_sweep_with_results_loads_no_torch(swept: tuple[Path, Path]):
    spec, results = swept
    for extra in ([], ["--json"]):
        rc, loaded, err = sesweep("status", spec, "--results", results, *extra)
        assert rc == 0, err
        assert "torch" not in loaded and "mlflow" not in loaded, extra


@pytest.mark.parametrize("command", ["aggregate", "report"])
def test_aggregate_and_report_load_no_torch(swept: tuple[Path, Path], command: str, tmp_path: Path):
    spec, results = swept
    extra = ["--no-figures"] if command == "report" else []
    rc, loaded, err = sesweep(command, spec, "--results", results, "--out", tmp_path / "out", *extra)
    assert rc == 0, err
    assert "torch" not in loaded


def test_bench_refuses_a_huge_model_before_building_anything():
    """``sesweep bench`` makes train's model checks first: a 10⁹-class classifier (256 GB) is one line."""
    rc, _, err = sesweep("bench", "model.num_classes=1000000000", "--sections", "cifar", timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "model.num_classes" in lines[0], err
