"""Issue 22.8: the results folder is ``--results``, else ``$SESWEEP_RESULTS``, else ``results/`` in the current
folder: a sweep started from another folder with the variable set finds (and does not retrain) what exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from sesweep.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_environment_variable_moves_the_results_of_every_command(make_sweep, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]):
    spec = make_sweep("moved")
    root = tmp_path / "elsewhere"
    monkeypatch.setenv("SESWEEP_RESULTS", str(root))
    monkeypatch.chdir(tmp_path / "experiments")  # another folder: results/ here would be empty
    assert main(["run", str(spec), "--no-tracking", "--quiet", "--threads", "1"]) == 0
    assert (root / "moved" / "runs.csv").is_file() and not (tmp_path / "experiments" / "results").exists()
    capsys.readouterr()
    assert main(["status", str(spec)]) == 0
    assert "1/1 done" in capsys.readouterr().out
    assert main(["aggregate", str(spec)]) == 0
    assert (root / "moved" / "tables").is_dir()
    # --results still wins
    assert main(["status", str(spec), "--results", str(tmp_path / "other")]) == 0
    assert "0/1 done" in capsys.readouterr().out
