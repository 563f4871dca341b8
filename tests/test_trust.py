"""Comparisons a reviewer can trust (issue 9): baselines of the same architecture, the paper tables' held
factors, Holm-adjusted significance and no p-value where the paired t-test has none."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from test_stats import metrics_for, run_row, write_sweep  # tests/ is on sys.path

from sesweep import publish, results
from sesweep.analysis import factors, report, stats, tables
from sesweep.plan import Plan, parse_plan
from sesweep.spec import SpecError

DEPTH = """\
name: depth
model: {arch: resnet20, attention: {kind: se, reduction: 16}}
recipe: {dataset: fake, epochs: 1}
seeds: [0, 1, 2]
axes:
  model.arch: [resnet20, resnet32, resnet44]
baseline: {model.attention.kind: none}
"""


def write_plan_results(root: Path, plan: Plan, top1: Callable[[str, int], float]) -> Path:
    """results/NAME/{runs.csv, manifest.json} as the runner writes them, every run finished with ``top1``."""
    out = root / plan.name
    out.mkdir(parents=True)
    rows = []
    for run in plan.runs:
        overrides = {k: v for k, v in _flat(run.spec).items() if k != "seed"}
        rows.append(run_row(plan.name, run.variant, run.seed, overrides, metrics_for(top1(run.variant, run.seed),
                                                                                    1.0, 270_000)))
    pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)
    (out / "manifest.json").write_text(json.dumps(plan.manifest(), default=str))
    return out


def _flat(spec) -> dict:
    from sesweep.spec import flatten

    return flatten(spec)


# --------------------------------------------------------------------------------------------------
# a baseline per architecture


def test_a_baseline_mapping_is_crossed_with_the_axes():
    plan = parse_plan(DEPTH)
    archs = ("resnet20", "resnet32", "resnet44")
    assert plan.baselines == tuple(f"baseline,arch={a}" for a in archs)
    assert [v.name for v in plan.variants] == [f"arch={a}" for a in archs] + list(plan.baselines)
    for arch, name in zip(archs, plan.baselines, strict=True):
        spec = next(v.spec for v in plan.variants if v.name == name)
        assert spec.model.arch == arch and spec.model.attention.kind == "none"
    assert plan.manifest()["baselines"] == list(plan.baselines) and len(plan.runs) == 6 * 3


def test_a_crossed_baseline_over_attention_axes_is_one_run():
    plan = parse_plan(DEPTH.replace("model.arch: [resnet20, resnet32, resnet44]",
                                    "model.attention.reduction: [4, 8]"))
    assert plan.baselines == ("baseline",) and [v.name for v in plan.variants] == ["r=4", "r=8", "baseline"]


def test_a_single_named_baseline_cannot_serve_a_depth_axis():
    text = DEPTH.replace("baseline: {model.attention.kind: none}",
                         "variants: {resnet: {model.attention.kind: none}}\nbaseline: resnet")
    with pytest.raises(SpecError, match=r"axes vary model.arch.*baseline: \{model.attention.kind: none\}"):
        parse_plan(text)


def test_the_depth_example_is_a_crossed_baseline_sweep():
    from sesweep.plan import load_plan

    plan = load_plan(Path(__file__).resolve().parents[1] / "experiments" / "cifar10-depth-cpu.yaml")
    assert len(plan.baselines) == 3 and len(plan.variants) == 6
    assert {v.spec.model.arch for v in plan.variants} == {"resnet20", "resnet32", "resnet44"}


DEPTH_ERR = {"arch=resnet20": 9.0, "baseline,arch=resnet20": 10.0, "arch=resnet32": 7.5,
             "baseline,arch=resnet32": 8.0, "arch=resnet44": 6.8, "baseline,arch=resnet44": 7.0}


def depth_analysis(tmp_path: Path) -> factors.Analysis:
    plan = parse_plan(DEPTH)
    out = write_plan_results(tmp_path, plan, lambda v, s: DEPTH_ERR[v] + 0.1 * s * (1 + len(v) % 3))
    return factors.analyze(results.load_sweep(out))


def test_deltas_pair_within_the_architecture(tmp_path):
    an = depth_analysis(tmp_path)
    assert an.references["arch=resnet32"] == "baseline,arch=resnet32"
    d = an.table["d_top1_err_mean"]
    assert d["arch=resnet20"] == pytest.approx(-1.0, abs=0.2)
    assert d["arch=resnet32"] == pytest.approx(-0.5, abs=0.2)   # not −2.5 (vs ResNet-20)
    assert d["arch=resnet44"] == pytest.approx(-0.2, abs=0.2)
    vs_base = [c for c in factors.contrasts(an) if c.factor is None]
    assert {(c.comparison.variant, c.comparison.reference) for c in vs_base} == {
        (f"arch={a}", f"baseline,arch={a}") for a in ("resnet20", "resnet32", "resnet44")}
    # the depth table groups by architecture: each SE row next to the plain ResNet of its depth
    table = next(t for t in tables.build_tables(an)[0] if t.choice.key == "model.arch")
    assert list(table.numbers["variant"]) == ["arch=resnet20", "baseline,arch=resnet20", "arch=resnet32",
                                              "baseline,arch=resnet32", "arch=resnet44", "baseline,arch=resnet44"]
    shown = table.shown.set_index("variant")
    assert shown.loc["baseline,arch=resnet32", "Δ top-1 vs baseline (same arch)"] == "(baseline)"


def test_a_single_baseline_is_never_paired_across_architectures(tmp_path):
    """Results of a sweep from before crossed baselines: one ResNet-20 baseline, SE nets of two depths."""
    variants = {"resnet": {"model.attention.kind": "none"}, "se20": {}, "se56": {"model.arch": "resnet56"}}
    err = {"resnet": 10.0, "se20": 9.5, "se56": 7.0}
    spec = write_sweep(tmp_path, "old", variants, [0, 1, 2], lambda v, s: metrics_for(err[v] + 0.1 * s * len(v), 1, 1),
                       excitation=False)
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    assert an.table.at["se20", "d_top1_err_mean"] == pytest.approx(-0.5, abs=0.3)
    assert math.isnan(an.table.at["se56", "d_top1_err_mean"])
    comp = stats.compare(an.sweep.runs, "se56", "resnet", "top1_err")
    assert comp.n == 0 and "model.arch is resnet56 for se56 but resnet20 for resnet" in comp.note


# --------------------------------------------------------------------------------------------------
# held factors


def test_paper_tables_hold_other_factors_at_the_base_value_not_by_a_tie_break(tmp_path):
    """A gate × placement factorial: every level has two variants, so a mode is a tie (broken alphabetically it
    picked gate=relu, placement=identity); the base is sigmoid/standard."""
    variants = {"resnet": {"model.attention.kind": "none"}}
    for gate in ("relu", "sigmoid"):
        for placement in ("identity", "standard"):
            variants[f"{gate}-{placement}"] = {"model.attention.gate": gate, "model.attention.placement": placement}
    spec = write_sweep(tmp_path, "gxp", variants, [0, 1], lambda v, s: metrics_for(10.0 - len(v) / 10 + s, 1, 1),
                       excitation=False,
                       extra_spec={"model": {"arch": "resnet20", "attention": {"gate": "sigmoid"}}})
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    built = {t.choice.slug: t for t in tables.build_tables(an)[0]}
    gate_table = built["table12_excitation"]
    assert list(gate_table.numbers["variant"]) == ["sigmoid-standard", "relu-standard", "resnet"]  # schema order
    assert "held at the sweep's base value (placement=standard)" in gate_table.caption
    integration = built["table14_integration"]
    assert list(integration.numbers["variant"]) == ["sigmoid-standard", "sigmoid-identity", "resnet"]
    assert "held at the sweep's base value (gate=sigmoid)" in integration.caption
    assert factors.variant_labels(an)["relu-identity"] == "relu-identity"  # the name the tables print


# --------------------------------------------------------------------------------------------------
# multiple comparisons and degenerate differences


def test_holm_by_hand():
    adjusted = stats.holm([0.01, 0.04, 0.03, math.nan])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adjusted[3])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.family_size([0.1, math.nan]) == 1


def significant_once(variant: str, seed: int) -> dict[str, float]:
    """Four SE variants vs resnet over 4 seeds; r=4's raw p is just below 0.05, the others are noise."""
    base = {0: 10.0, 1: 11.0, 2: 9.0, 3: 10.5}[seed]
    shift = {"resnet": 0.0, "se_r4": -0.5, "se_r8": 0.0, "se_r16": 0.0, "se_r2": 0.0}[variant]
    noise = {"resnet": (0, 0, 0, 0), "se_r4": (0.0, -0.4, 0.4, -0.2), "se_r8": (0.3, -0.3, 0.2, -0.2),
             "se_r16": (-0.3, 0.4, 0.1, -0.2), "se_r2": (0.2, 0.1, -0.4, 0.1)}[variant][seed]
    return metrics_for(base + shift + noise, 1.0, 270_000 + len(variant))


def test_significance_in_the_report_and_tables_uses_holm(tmp_path):
    variants = {"resnet": {"model.attention.kind": "none"}, **{f"se_r{r}": {"model.attention.reduction": r}
                                                                for r in (2, 4, 8, 16)}}
    spec = write_sweep(tmp_path, "holm", variants, [0, 1, 2, 3], significant_once, excitation=False)
    files = publish.run_report(spec, results_root=tmp_path / "results", out=tmp_path / "r", figures=False)
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    r4 = next(c for c in factors.contrasts(an) if c.factor is None and c.comparison.variant == "se_r4").comparison
    assert r4.p_t < 0.05 < r4.p_holm and r4.family_size == 4 and r4.family == factors.BASELINE_FAMILY
    md = files.markdown.read_text(encoding="utf-8")
    assert "se_r4 vs resnet: no significant difference in top-1 error" in md  # the tables' name
    assert "Holm" in md and "without correction" not in md
    tables.write_tables(an, tmp_path / "tables")
    comps = pd.read_csv(tmp_path / "tables" / "comparisons.csv")
    assert {"p_t", "p_holm", "family", "family_size"} <= set(comps.columns)
    row = comps[(comps["variant"] == "se_r4") & (comps["metric"] == "top1_err") & (comps["factor"] == "baseline")]
    assert row["p_holm"].iloc[0] == pytest.approx(r4.p_holm)
    overall = pd.read_csv(tmp_path / "tables" / "overall.csv").set_index("variant")
    assert overall.at["se_r4", "p_holm"] == pytest.approx(r4.p_holm)


def test_identical_differences_get_no_p_value_and_no_interval(tmp_path):
    """Errors move in steps of 1/N_test: the same Δ on every seed is common and the t-test says nothing."""
    variants = {"resnet": {"model.attention.kind": "none"}, "se": {}}
    spec = write_sweep(tmp_path, "same", variants, [0, 1, 2],
                       lambda v, s: metrics_for((8.3 if v == "se" else 8.0) - s, 1.0, 1), excitation=False)
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    comp = stats.compare(an.sweep.runs, "se", "resnet", "top1_err")
    assert comp.n == 3 and comp.delta.mean == pytest.approx(0.3)
    assert math.isnan(comp.p_t) and math.isnan(comp.delta.ci_lo) and "zero spread" in comp.note
    sentence = report.describe_contrast(factors.Contrast(None, "se vs resnet", comp))
    assert "paired t p" not in sentence and "p<0.001" not in sentence and "p and CI n/a" in sentence
    shown = tables.display(tables.overall_table(an), an.baselines).set_index("variant")
    assert shown.at["se", "p (paired t)"] == "n/a" and shown.at["se", "p (Holm)"] == "n/a"
    assert shown.at["se", "Δ top-1 vs resnet"] == "+0.30 (n=3, same on every seed)"
