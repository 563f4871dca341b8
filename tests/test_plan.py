"""Sweep files → manifests (sesweep.plan): expansion, names, dedupe, stable run keys, and the bad-spec corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sesweep.cli import main
from sesweep.plan import Plan, load_plan, parse_plan
from sesweep.run_identity import run_key
from sesweep.spec import SpecError, run_spec

ROOT = Path(__file__).resolve().parents[1]
BAD = sorted((Path(__file__).parent / "bad_specs").glob("*.yaml"))

HEAD = """\
name: t
model: {arch: resnet20}
recipe: {dataset: fake, epochs: 1}
seeds: [0, 1]
"""


def expected_key(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: <text the error names>'"
    return first.removeprefix("# expect: ")


def test_axes_cross_product_plus_named_variants_times_seeds():
    plan = parse_plan(HEAD + """\
axes:
  model.attention.reduction: [4, 8]
  model.attention.pool: [avg, max]
variants:
  tanh: {model.attention.gate: tanh}
  resnet: {model.attention.kind: none}
""")
    names = [v.name for v in plan.variants]
    assert names == ["r=4,pool=avg", "r=4,pool=max", "r=8,pool=avg", "r=8,pool=max", "tanh", "resnet"]
    assert len(plan.runs) == 6 * 2
    assert plan.baseline == "resnet"  # the default: a variant named resnet
    by_name = {v.name: v for v in plan.variants}
    assert by_name["r=8,pool=max"].spec.model.attention.reduction == 8
    assert by_name["r=8,pool=max"].spec.model.attention.pool == "max"
    # a named variant is an override of the base only: not crossed with the axes
    assert by_name["tanh"].spec.model.attention.reduction == 16
    assert by_name["tanh"].spec.model.attention.pool == "avg"
    assert {(r.variant, r.seed) for r in plan.runs} == {(n, s) for n in names for s in (0, 1)}
    assert all(r.spec.seed == r.seed for r in plan.runs)


def test_run_keys_are_the_run_spec_keys_and_do_not_depend_on_how_the_file_is_written():
    dotted = parse_plan(HEAD + "axes: {model.attention.reduction: [4, 8]}\n"
                               "variants: {g: {model.attention.gate: tanh}}\n")
    nested = parse_plan("""\
seeds: [0, 1]
variants:
  g: {model: {attention: {gate: tanh}}}
recipe: {epochs: 1, dataset: fake}
axes:
  model:
    attention:
      reduction: [4, 8]
name: t
model: {arch: resnet20}
""")
    assert dotted.keys == nested.keys
    assert dotted.keys == parse_plan(dotted.spec_text).keys  # stable across loads
    base = {"model.arch": "resnet20", "recipe.dataset": "fake", "recipe.epochs": 1}
    want = run_key(run_spec({**base, "model.attention.gate": "tanh", "seed": 1}))
    assert dotted.run_for(want).variant == "g" and dotted.run_for(want).seed == 1
    assert len(set(dotted.keys)) == len(dotted.keys)


def test_variants_that_resolve_to_the_same_run_are_one_run_and_the_manifest_says_so():
    plan = parse_plan(HEAD + """\
axes:
  model.attention.reduction: [8, 16]
variants:
  se16: {model.attention.reduction: 16}
  also_base: {}
  sig: {model.attention.gate: sigmoid}
  resnet: {model.attention.kind: none}
baseline: se16
""")
    assert [v.name for v in plan.variants] == ["r=8", "r=16", "resnet"]
    assert plan.duplicates == (("se16", "r=16"), ("also_base", "r=16"), ("sig", "r=16"))
    assert len(plan.runs) == 3 * 2
    assert plan.baseline == "r=16"  # the baseline named a merged variant: it follows the kept name
    manifest = json.loads(json.dumps(plan.manifest()))
    assert {"dropped": "se16", "kept": "r=16"} in manifest["duplicates"]
    assert [r["run_key"] for r in manifest["runs"]] == plan.keys
    assert "se16 is the same run as r=16" in plan.describe()


def test_no_axes_gives_the_base_variant():
    plan = parse_plan(HEAD + "variants: {relu: {model.attention.gate: relu}, baseline: {model.attention.kind: none}}\n")
    assert [v.name for v in plan.variants] == ["base", "relu", "baseline"]
    assert plan.baseline == "baseline"
    assert plan.variants[0].origin == "base" and plan.variants[0].overrides == {}


def test_queue_order_is_seed_major():
    plan = parse_plan(HEAD + "axes: {model.attention.reduction: [4, 8]}\n")
    assert [(r.seed, r.variant) for r in plan.queue_order()] == [(0, "r=4"), (0, "r=8"), (1, "r=4"), (1, "r=8")]


def test_labels_fall_back_to_full_keys_when_last_segments_clash():
    plan = parse_plan(HEAD + "axes: {model.attention.stages: [[2], [3, 4]], recipe.epochs: [1, 2]}\n")
    assert [v.name for v in plan.variants] == ["stages=[2],epochs=1", "stages=[2],epochs=2",
                                               "stages=[3,4],epochs=1", "stages=[3,4],epochs=2"]
    plan = parse_plan(HEAD + "axes: {model.attention.bias: [true, false], recipe.lr: [0.1, 0.05]}\n")
    assert plan.variants[-1].name == "bias=false,lr=0.05"


def test_imagenet_widths_are_checked_without_building_the_model():
    with pytest.raises(SpecError, match=r"axes\.model\.attention\.reduction: r=128 is larger than the 64 channels "
                                        r"of block layer1\.0\.attn_pre"):
        parse_plan("name: big\nmodel: {arch: resnet50, attention: {placement: pre}}\nseeds: [0]\n"
                   "axes: {model.attention.reduction: [16, 128]}\n", "big.yaml")


def test_smoke_sweep_covers_the_four_mission_axes():
    plan = load_plan(ROOT / "experiments" / "smoke.yaml")
    assert plan.name == "smoke" and plan.baseline == "resnet"
    assert plan.base.recipe.dataset == "digits" and plan.base.model.arch == "resnet20"
    assert len(plan.seeds) == 2
    specs = [v.spec.model.attention for v in plan.variants]
    se = [a for a in specs if a.kind == "se"]
    assert len({a.reduction for a in se}) >= 3
    assert {a.pool for a in se} >= {"avg", "max"}
    assert len({a.gate for a in se}) >= 3
    assert any(a.kind == "none" for a in specs)
    assert plan.spec_text == (ROOT / "experiments" / "smoke.yaml").read_text()


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_raises_naming_the_file_and_the_key(path: Path):
    with pytest.raises(SpecError) as info:
        load_plan(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected_key(path) in message, message
    assert "\n" not in message


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_spec_exits_2_and_writes_nothing(path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    results = tmp_path / "results"
    assert main(["run", str(path), "--dry-run", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and expected_key(path) in err
    assert not results.exists()


def test_bad_spec_exit_status_of_a_real_process(tmp_path: Path):
    bad = Path(__file__).parent / "bad_specs" / "ratio_larger_than_channels.yaml"
    out = subprocess.run([sys.executable, "-m", "sesweep", "run", str(bad), "--dry-run", "--results",
                          str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert f"{bad}: axes.model.attention.reduction: r=32 is larger than the 16 channels" in out.stderr
    assert not (tmp_path / "r").exists()


def test_cli_run_command_exits_2_on_a_bad_spec(tmp_path: Path):
    from sesweep import cli

    if "run" not in getattr(cli, "COMMANDS", {}):
        pytest.skip("`sesweep run` is not wired into sesweep.cli yet")
    bad = Path(__file__).parent / "bad_specs" / "duplicate_variant_names.yaml"
    out = subprocess.run([sys.executable, "-m", "sesweep.cli", "run", str(bad), "--dry-run", "--results",
                          str(tmp_path / "r")], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 2, out.stderr
    assert f"{bad}: variants.tanh: is given twice" in out.stderr


def test_dry_run_lists_the_runs_and_writes_nothing(make_sweep, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = make_sweep("dry", seeds=(0, 1), axes={"model.attention.reduction": [4, 8]})
    results = tmp_path / "results"
    assert main(["run", str(path), "--dry-run", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "sweep dry: 2 variants x 2 seeds = 4 runs" in out and "r=4" in out and "r=8" in out
    assert not results.exists()


def test_plan_is_picklable_for_spawned_workers(make_sweep):
    import pickle

    plan = load_plan(make_sweep("pick", seeds=(0, 1), axes={"model.attention.reduction": [4, 8]}))
    again: Plan = pickle.loads(pickle.dumps(plan))
    assert again.keys == plan.keys and again.runs == plan.runs


def test_a_huge_sweep_file_is_refused_before_it_is_parsed(tmp_path: Path):
    from sesweep.sweepfile import MAX_CHARS

    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\nseeds: [" + ", ".join(map(str, range(MAX_CHARS // 7))) + "]\n")
    start = time.perf_counter()
    with pytest.raises(SpecError, match=r"huge.yaml: the sweep file is [\d,]+ characters long, more than the limit"):
        load_plan(path)
    assert time.perf_counter() - start < 2


def test_max_runs_raises_the_limit_on_the_size_of_a_sweep():
    from sesweep.sweepfile import MAX_RUNS, check_size

    check_size({}, [100, 100], 1)  # exactly the default limit
    with pytest.raises(SpecError, match=r"max_runs: this sweep has 20,000 runs \(100 x 100 axis points \+ 0 variants"
                                        r", x 2 seeds\), more than the limit of 10,000; .*set max_runs: 20000"):
        check_size({}, [100, 100], 2)
    check_size({"max_runs": 20_000}, [100, 100], 2)
    with pytest.raises(SpecError, match="max_runs: this sweep has 30,009 runs"):  # variants and crossed baselines
        check_size({"variants": {"a": {}, "b": {}, "c": {}}, "baseline": {"model.attention.kind": "none"}},
                   [100, 50], 3)
    assert MAX_RUNS == 10_000
