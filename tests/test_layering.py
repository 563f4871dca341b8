"""The layers import one way: the analysis reads results, never the runner's plan, the training code or torch."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import sesweep
import sesweep.analysis

PACKAGE = Path(sesweep.__file__).parent
MAX_LINES = 450
#: what importing any analysis module must not pull in (``sesweep report`` starts fast and works without torch)
UPSTREAM = ("torch", "sesweep.plan", "sesweep.training")


def analysis_modules() -> list[str]:
    """Every module of sesweep.analysis, subpackages included (figures/)."""
    found = ["sesweep.analysis"]
    for info in pkgutil.walk_packages(sesweep.analysis.__path__, "sesweep.analysis."):
        found.append(info.name)
    return sorted(found)


def test_the_analysis_imports_neither_torch_nor_the_plan_nor_the_training_code():
    modules = analysis_modules()
    assert {"sesweep.analysis.report", "sesweep.analysis.tables", "sesweep.analysis.stats"} <= set(modules)
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or "
            f"any(m == u or m.startswith(u + '.') for u in {UPSTREAM!r}))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_aggregate_and_report_commands_start_without_torch_or_the_plan(tmp_path: Path):
    """What ``sesweep aggregate``/``report`` load to parse their arguments, read TARGET and run: a results folder
    whose runs.csv passes the first check, and a --confidence the handler refuses (after its module, with
    everything it needs, is imported)."""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "runs.csv").write_text("run_key\n")
    code = ("import sys\n"
            "from sesweep import cli\n"
            "for command in ('aggregate', 'report'):\n"
            f"    assert cli.main([command, {str(tmp_path / 'x')!r}, '--confidence', '2']) == 2\n"
            f"print(sorted(m for m in sys.modules if any(m == u or m.startswith(u + '.') for u in {UPSTREAM!r})))\n"
            "print('sesweep.publish' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-2:] == ["[]", "True"], out.stderr[-2000:]


#: modules that import without torch: the plan and what it reads (the data sets' listings and identities), the
#: runner (it imports the training code when it trains), and every command's arguments (tests/test_startup.py)
TORCH_FREE = ("sesweep.plan", "sesweep.datasets", "sesweep.run_identity", "sesweep.budget", "sesweep.results",
              "sesweep.runner.commands", "sesweep.runner.status", "sesweep.runner.sweep", "sesweep.runner.worker",
              "sesweep.runner.overhead", "sesweep.publish", "sesweep.cli", "sesweep.runner.arguments",
              "sesweep.training.arguments", "sesweep.publish_arguments")


def test_the_plan_the_runner_and_the_command_lines_import_without_torch():
    code = ("import importlib, sys\n"
            f"for name in {TORCH_FREE!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr[-2000:]


def test_no_analysis_module_imports_upstream_or_the_commands_even_inside_a_function():
    """Lazy imports count too: the analysis reads results folders and writes files, nothing else (publishing to
    MLflow and the commands live above it, in sesweep/publish.py and sesweep/cli.py)."""
    banned = ("sesweep.plan", "sesweep.training", "sesweep.runner", "sesweep.cli", "sesweep.publish", "torch")
    found = []
    for path in (PACKAGE / "analysis").rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1 and words[1].startswith(banned):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert found == []


def _too_long() -> list[str]:
    return sorted(f"{path.relative_to(PACKAGE.parent)} ({n})" for path in PACKAGE.rglob("*.py")
                  if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES)


def test_no_module_is_over_450_lines():
    """One concept per module: past ~450 lines a file holds several (split it, do not raise the limit)."""
    assert _too_long() == []
