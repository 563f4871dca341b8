"""``precision: auto``: one documented rule per device, resolved once per sweep, part of every run key."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch

import sesweep.training.hardware as hardware
from sesweep.plan import load_plan
from sesweep.runner import precision
from sesweep.runner.queue import open_storage
from sesweep.runner.sweep import run_sweep
from sesweep.spec import SpecError

CPU = torch.device("cpu")


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="no /proc/cpuinfo on this system")
def test_native_bf16_is_read_from_the_cpu_flags():
    assert hardware.cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def test_auto_on_the_cpu_is_bf16_only_with_native_bf16(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert hardware.resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert hardware.resolve_precision("auto", CPU) == "fp32"
    assert hardware.resolve_precision("bf16", CPU) == "bf16"  # asked for explicitly: honoured (emulated)


def test_fp16_on_the_cpu_is_refused():
    with pytest.raises(SpecError, match=r"recipe.precision: fp16 autocast is for CUDA devices"):
        hardware.resolve_precision("fp16", CPU)


def sweep_file(make_sweep, **recipe) -> Path:
    return make_sweep("auto", seeds=(0,), variants={"resnet": {"model.attention.kind": "none"}},
                      recipe={"precision": "auto", **recipe})


def test_the_resolved_precision_is_part_of_the_run_keys(make_sweep):
    plan = load_plan(sweep_file(make_sweep))
    as_fp32, as_bf16 = plan.with_precision("fp32"), plan.with_precision("bf16")
    assert plan.auto_precision() and not as_fp32.auto_precision()
    assert set(as_fp32.keys).isdisjoint(as_bf16.keys)
    # a run resolved to fp32 is the run an explicit fp32 spec asks for: one result serves both
    explicit = load_plan(make_sweep("explicit", seeds=(0,), variants={"resnet": {"model.attention.kind": "none"}}))
    assert sorted(as_fp32.keys) == sorted(explicit.keys)
    assert all(r.spec.recipe.precision == "bf16" for r in as_bf16.runs)
    assert as_bf16.manifest()["resolved_precision"] == "bf16"
    assert explicit.with_precision("bf16") is explicit  # nothing to resolve


def test_a_sweep_resolves_auto_once_and_every_later_worker_keeps_it(make_sweep, tmp_path: Path):
    path = sweep_file(make_sweep)
    here = precision.resolve_here(load_plan(path))
    other = "fp32" if here == "bf16" else "bf16"
    results = tmp_path / "results"
    # another machine started this sweep and resolved auto to `other`: it is in the shared study
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=open_storage(storage), study_name="auto")
    study.set_user_attr(precision.STUDY_ATTR, other)
    status = run_sweep(load_plan(path), results_dir=results, storage=storage, tracking=False, progress=False)
    assert status.done == status.total == 2
    manifest = json.loads((results / "auto" / "manifest.json").read_text())
    assert manifest["resolved_precision"] == other
    records = [json.loads(p.read_text())["record"] for p in (results / "auto" / "runs").glob("*.json")]
    assert {r["recipe.precision"] for r in records} == {other}
    assert {r["resolved_precision"] for r in records} == {other}


def test_the_first_machine_stores_its_resolution_in_the_study(make_sweep, tmp_path: Path):
    path = sweep_file(make_sweep)
    results = tmp_path / "results"
    run_sweep(load_plan(path), results_dir=results, tracking=False, progress=False)
    study = optuna.load_study(study_name="auto", storage=f"sqlite:///{results / 'auto' / 'optuna.db'}")
    assert study.user_attrs[precision.STUDY_ATTR] == precision.resolve_here(load_plan(path))
    # and status (read-only) finds the same keys: every run is done
    from sesweep.runner.status import sweep_status

    assert sweep_status(load_plan(path), results_dir=results).done == 2


def test_a_worker_that_cannot_honour_the_sweeps_precision_refuses(make_sweep):
    plan = load_plan(sweep_file(make_sweep)).with_precision("fp16")
    with pytest.raises(SpecError, match=r"this sweep trains in fp16 .* which this machine cannot"):
        precision.check_honoured(plan)

