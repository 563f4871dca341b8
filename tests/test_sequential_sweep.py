"""A sequential sweep end to end at toy size (issue 24): `sesweep run` trains the seeds the policy allocates,
`sesweep status` shows the contrasts and the runs still possible, the report has its section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_sequential_sweep_runs_reports_and_shows_its_contrasts(make_sweep, tmp_path: Path):
    path = make_sweep("seq", variants={"resnet": {"model.attention.kind": "none"}})
    doc = yaml.safe_load(path.read_text())
    doc["seeds"] = {"start": 2, "max": 4, "step": 2, "margin": 0.3}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results, reports = tmp_path / "results", tmp_path / "reports"

    def sesweep(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "sesweep", *args], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    dry = sesweep("run", str(path), "--dry-run", "--results", str(results))
    assert "at start 2 seeds = 4 runs; at most 4 seeds = 8 runs" in dry
    sesweep("run", str(path), "--results", str(results), "--threads", "1", "--quiet", "--workers", "2")
    status = sesweep("status", str(path), "--results", str(results))
    assert "seed policy: 1 contrasts:" in status and "base vs resnet:" in status
    assert "8 done of 8 at max" in status and "; pending: 0 more runs" in status
    sesweep("report", str(results / "seq"), "--out", str(reports / "seq"))
    text = (reports / "seq" / "report.md").read_text()
    assert "## Sequential seeds" in text and "confidence sequence" in text and "saved" in text
    assert "figures/sequential.png" in text and (reports / "seq" / "figures" / "sequential.png").is_file()
