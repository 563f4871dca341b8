"""The DVC pipeline (dvc.yaml): a real `dvc repro` of the smoke experiment in a throwaway git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
           "SESWEEP_CACHE": str(repo / ".cache")}
    out = subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"dvc {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if not (BIN / "dvc").exists():
        pytest.skip("dvc is not installed in this environment: pip install -e '.[test]'")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "sesweep", repo / "sesweep", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "experiments", repo / "experiments")
    (repo / "experiments" / "smoke.yaml").write_text(TINY_SMOKE)
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    return repo


def test_dvc_repro_runs_the_smoke_pipeline_end_to_end_and_a_second_repro_does_nothing(repo: Path):
    first = dvc(repo, "repro", "report@smoke")
    for stage in ("run@smoke", "aggregate@smoke", "report@smoke"):
        assert f"Running stage '{stage}'" in first
    results, report = repo / "results" / "smoke", repo / "reports" / "smoke"
    assert len(list((results / "runs").glob("*.json"))) == 2
    assert (results / "tables" / "overall.csv").is_file() and (report / "report.html").is_file()
    metrics = json.loads((results / "metrics.json").read_text())
    assert set(metrics["top1_err"]) == {"base", "resnet"}
    stamp = {p: p.stat().st_mtime_ns for p in [*results.rglob("*.csv"), report / "report.html"]}

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
