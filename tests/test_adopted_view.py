"""Issue 21.1: a result adopted from another sweep shows *this* sweep's view of the run. Keys that the run key
leaves out (inert: a fixed SE's cost weight, an unscaled learning rate's reference batch) must not carry the
other sweep's values into ``runs.csv``, where the analysis would read them as factors and pairing keys."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sesweep.plan import load_plan
from sesweep.publish import run_aggregate
from sesweep.runner import sweep as sw

FAST = {"heartbeat_interval": 1, "grace_period": 4, "progress": False, "threads": 1}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))



@pytest.mark.slow  # > 5 s: out of the fast tier
def test_an_adopted_fixed_se_does_not_bring_its_cost_weight(make_sweep, tmp_path: Path):
    results = tmp_path / "results"
    a = load_plan(make_sweep("a", seeds=(0, 1, 2), variants={"se8": {"model.attention.reduction": 8,
                                                                      "model.attention.cost_weight": 1}}))
    sw.run_sweep(a, results_dir=results, tracking=False, **FAST)
    b_path = make_sweep("b", seeds=(0, 1, 2), axes={"model.attention.reduction": [4, 8]},
                        variants={"resnet": {"model.attention.kind": "none"}})
    b_path.write_text(b_path.read_text() + "baseline: resnet\ntables: [ratio, overall]\n")
    b = load_plan(b_path)
    assert {r.key for r in b.runs} & {r.key for r in a.runs}, "B must adopt A's r=8 runs"
    sw.run_sweep(b, results_dir=results, tracking=False, **FAST)
    table = rows(results / "b" / "runs.csv")
    assert {r["model.attention.cost_weight"] for r in table if r["variant"] == "r=8"} == {"0"}
    run_aggregate(b_path, results_root=results)
    ratio = rows(results / "b" / "tables" / "table10_ratio.csv")
    assert {"r=4", "r=8"} <= {r.get("variant", "") for r in ratio} | {r.get("label", "") for r in ratio}, ratio
    contrasts = (results / "b" / "tables" / "comparisons.csv").read_text()
    assert "cost_weight" not in contrasts


def test_an_adopted_baseline_does_not_bring_its_reference_batch(make_sweep, tmp_path: Path):
    results = tmp_path / "results"
    a = load_plan(make_sweep("a", seeds=(0, 1), variants={"resnet": {"model.attention.kind": "none"}},
                             recipe={"lr_reference_batch": 64}))
    sw.run_sweep(a, results_dir=results, tracking=False, **FAST)
    b_path = make_sweep("b", seeds=(0, 1), axes={"model.attention.reduction": [4, 8]},
                        variants={"resnet": {"model.attention.kind": "none"}})
    b_path.write_text(b_path.read_text() + "baseline: resnet\ntables: [ratio, overall]\n")
    b = load_plan(b_path)
    sw.run_sweep(b, results_dir=results, tracking=False, **FAST)
    assert {r["recipe.lr_reference_batch"] for r in rows(results / "b" / "runs.csv")} == {"256"}
    run_aggregate(b_path, results_root=results)
    overall = (results / "b" / "tables" / "overall.csv").read_text()
    assert "no baseline" not in overall


def test_an_adopted_run_shows_this_sweeps_loader_knobs(make_sweep):
    """Issue 21.6: ``loader: memory`` and ``auto`` are one run on a built-in set (one key), so a record trained
    under one shows the other sweep's loader and budget, not a factor that splits it from its contrasts."""
    from sesweep.run_identity import run_key
    from sesweep.runner.outputs import sweep_view
    from sesweep.spec import flatten, run_spec

    run = load_plan(make_sweep("b", seeds=(0,))).runs[0]
    other = run_spec({"recipe.loader": "memory", "recipe.memory_budget_gb": 16}, run.spec)
    assert run_key(other, run.data_id) == run.key
    view = sweep_view(flatten(other), run)
    assert (view["recipe.loader"], view["recipe.memory_budget_gb"]) == (run.spec.recipe.loader,
                                                                        run.spec.recipe.memory_budget_gb)
