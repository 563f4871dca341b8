"""The DVC pipeline (dvc.yaml): a real `dvc repro` of the smoke experiment in a throwaway git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: the smoke experiment in miniature (same name, so dvc.yaml's smoke stages run it): 2 variants x 1 seed
TINY_SMOKE = """\
name: smoke
model: {arch: resnet20, attention: {kind: se, reduction: 8}}
recipe: {dataset: digits, image_size: 8, train_subset: 200, test_subset: 100, epochs: 1, batch_size: 50,
         precision: fp32, device: cpu}
seeds: [0]
variants:
  resnet: {model.attention.kind: none}
baseline: resnet
"""


def dvc(repo: Path, *args: str, stdout_only: bool = False) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
           "SESWEEP_CACHE": str(repo / ".cache")}
    out = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"dvc {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout if stdout_only else out.stdout + out.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if not (BIN / "dvc").exists():
        pytest.skip("dvc is not installed in this environment: pip install -e .")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "sesweep", repo / "sesweep", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "experiments", repo / "experiments")
    (repo / "experiments" / "smoke.yaml").write_text(TINY_SMOKE)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    return repo


def _stages(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["stages"]


def test_the_other_experiments_pipeline_has_the_smoke_pipelines_stages_run_from_the_root():
    """experiments/dvc.yaml repeats the root stages (DVC has no include): the two must not drift apart."""
    root, others = _stages(ROOT / "dvc.yaml"), _stages(ROOT / "experiments" / "dvc.yaml")
    assert set(root) == set(others) == {"run", "aggregate", "report"}
    for name in root:
        assert others[name]["do"].pop("wdir") == ".."
        assert others[name]["do"] == root[name]["do"], name
    specs = {p.stem for p in (ROOT / "experiments").glob("*.yaml") if p.name != "dvc.yaml"}
    listed = yaml.safe_load((ROOT / "experiments" / "dvc.yaml").read_text())["vars"][0]["experiments"]
    assert yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"][0]["experiments"] == ["smoke"]
    assert sorted([*listed, "smoke"]) == sorted(specs), "every experiment spec is in one of the two pipelines"


@pytest.mark.slow
def test_dvc_repro_runs_the_smoke_pipeline_end_to_end_and_a_second_repro_does_nothing(repo: Path):
    first = dvc(repo, "repro")  # bare: the smoke experiment only
    for stage in ("run@smoke", "aggregate@smoke", "report@smoke"):
        assert f"Running stage '{stage}'" in first
    assert first.count("Running stage") == 3, first
    results, report = repo / "results" / "smoke", repo / "reports" / "smoke"
    assert len(list((results / "runs").glob("*.json"))) == 2
    assert (results / "tables" / "overall.csv").is_file() and (report / "report.html").is_file()
    metrics = json.loads((results / "metrics.json").read_text())
    assert set(metrics["top1_err"]) == {"base", "resnet"}
    stamp = {p: p.stat().st_mtime_ns for p in [*results.rglob("*.csv"), report / "report.html"]}

    # results and reports are versioned: cached outputs with their hashes in dvc.lock, the spec copy declared
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    outs = {o["path"]: o for stage in lock.values() for o in stage["outs"]}
    for path in ("results/smoke/runs.csv", "results/smoke/runs", "results/smoke/sweep.yaml",
                 "results/smoke/manifest.json", "results/smoke/tables", "reports/smoke"):
        assert outs[path]["md5"], path
    assert "Data and pipelines are up to date" in dvc(repo, "status", "dvc.yaml")
    assert any((repo / ".dvc" / "cache").rglob("*")), "outputs are in DVC's cache"

    # the curves plot draws one line per run, coloured by variant; the report's figures are image plots
    shown = json.loads(dvc(repo, "plots", "show", "--json", "results/smoke/curves.csv", "reports/smoke/figures",
                           stdout_only=True))
    assert not shown.get("errors"), shown.get("errors")
    curves_key = next(k for k in shown["data"] if k.endswith("results/smoke/curves.csv"))
    curves = shown["data"][curves_key][0]["content"]["encoding"]
    assert curves["color"]["field"] == "variant"
    assert {"field": "run_key", "type": "nominal"} in curves["detail"]
    images = [k for k in shown["data"] if "reports/smoke/figures/" in k]
    assert images and all(k.endswith(".png") for k in images), images

    # another experiment is one target away, run from the repository root
    dry = dvc(repo, "repro", "--dry", "--single-item", "experiments/dvc.yaml:run@cifar10-ratio-cpu")
    assert "sesweep run experiments/cifar10-ratio-cpu.yaml" in dry

    second = dvc(repo, "repro", "report@smoke")
    assert "Running stage" not in second
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp

    # a spec change re-runs the pipeline; the runner trains only the new run (a second seed)
    spec = repo / "experiments" / "smoke.yaml"
    spec.write_text(spec.read_text().replace("seeds: [0]", "seeds: [0, 1]"))
    third = dvc(repo, "repro", "report@smoke")
    assert "Running stage 'run@smoke'" in third
    assert len(list((results / "runs").glob("*.json"))) == 4
    assert "Running stage" not in dvc(repo, "repro", "report@smoke")
