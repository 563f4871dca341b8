"""The results folder (sesweep.results): what the runner writes is what the analysis reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from sesweep import results


def _record(key: str, variant: str, seed: int, top1: float, status: str = "finished") -> dict:
    return {"run_key": key, "sweep": "tiny", "variant": variant, "seed": seed, "status": status, "reason": "",
            "top1_err": top1, "params": 10, "extra_metric": 1.5}


def test_written_runs_curves_and_manifest_read_back(tmp_path: Path):
    folder = results.sweep_dir("tiny", tmp_path)
    spec_text = "name: tiny\ndescription: a tiny sweep\nseeds: [0, 1]\nbaseline: resnet\n"
    manifest = {"name": "tiny", "baselines": ["resnet"], "runs": [{"variant": "resnet", "seed": 0, "run_key": "a"},
                                                                   {"variant": "se", "seed": 0, "run_key": "b"}]}
    results.write_manifest(folder, manifest, spec_text)
    rows, curves = [], []
    for key, variant, top1 in (("a", "resnet", 5.0), ("b", "se", 4.0)):
        payload = {"record": _record(key, variant, 0, top1), "curves": [{"epoch": 1, "top1_err": top1}],
                   "hidden_widths": []}
        path = results.write_run_json("tiny", tmp_path, payload)
        assert path == results.run_json_path("tiny", tmp_path, key)
        assert results.read_run_json(path) == payload
        ident = {k: payload["record"][k] for k in ("run_key", "sweep", "variant", "seed")}
        rows.append(results.run_row(ident, payload["record"], ["seed"]))
        curves += [{**ident, **c} for c in payload["curves"]]
    results.write_tables(folder, rows, curves, ["seed"])
    header = (folder / "runs.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == list(results.RUN_COLUMNS) and header.index("top1_err") < header.index("extra_metric")

    sweep = results.load_sweep(folder)
    assert sweep.name == "tiny" and sweep.expected == 2 and sweep.seeds == [0, 1]
    assert sweep.spec == yaml.safe_load(spec_text) and sweep.manifest["baselines"] == ["resnet"]
    assert list(sweep.runs["run_key"]) == ["a", "b"] and list(sweep.runs["top1_err"]) == [5.0, 4.0]
    assert len(sweep.curves) == 2 and set(sweep.details) == {"a", "b"} and not sweep.warnings
    assert (folder / "sweep.yaml").read_text() == spec_text


def test_the_spec_comes_from_the_manifest_and_from_sweep_yaml_only_for_older_manifests(tmp_path: Path):
    folder = tmp_path / "old"
    results.write_tables(folder, [{"run_key": "a", "variant": "v", "status": "finished"}], [], [])
    (folder / "sweep.yaml").write_text("name: old\nseeds: [3]\n")
    (folder / "manifest.json").write_text(json.dumps({"name": "old", "runs": []}))  # no "spec": written before it
    assert results.load_sweep(folder).spec == {"name": "old", "seeds": [3]}
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "spec": {"name": "old", "seeds": [7]}}))
    assert results.load_sweep(folder).seeds == [7]


def test_metrics_are_defined_once_and_the_analysis_aggregates_a_subset_in_record_order():
    from sesweep.analysis import stats

    assert stats.METRICS == results.SUMMARY_METRICS
    assert [m for m in results.METRICS if m in results.SUMMARY_METRICS] == list(results.SUMMARY_METRICS)
    assert set(results.DONE_STATUSES) < set(results.STATUSES)


def test_reading_results_imports_neither_torch_nor_the_plan():
    # aggregate and report also log their outputs through the runner's tracking module
    code = ("import sys, sesweep.results, sesweep.analysis.stats, sesweep.runner.tracking; "
            "print(sorted(m for m in ('torch', 'sesweep.plan', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
