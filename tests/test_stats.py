"""Aggregation and statistics against hand-computed values on small synthetic runs tables.

The helpers at the top also write whole synthetic sweeps (runs.csv, curves.csv, runs/*.json, the spec) in
exactly the shape the sweep runner writes; tests/test_tables.py and tests/test_report.py import them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from sesweep import results
from sesweep.analysis import factors, stats
from sesweep.run_identity import run_key
from sesweep.spec import flatten, run_spec

MetricFn = Callable[[str, int], "dict[str, float] | str"]
DetailFn = Callable[[str, int, "dict[str, Any]"], "dict[str, Any]"]

# --------------------------------------------------------------------------------------------------
# synthetic sweeps


def run_row(sweep: str, variant: str, seed: int, overrides: Mapping[str, Any], outcome: dict[str, float] | str,
            ) -> dict[str, Any]:
    """One runs.csv row: ids, status, every resolved spec key, environment, metrics (NaN unless finished)."""
    spec = run_spec({**overrides, "seed": seed})
    status = outcome if isinstance(outcome, str) else "finished"
    metrics = dict.fromkeys(stats.METRICS, math.nan)
    if isinstance(outcome, dict):
        metrics |= outcome
    reason = {"finished": "", "diverged": "training loss became nan in epoch 2",
              "failed": "RuntimeError: out of memory"}[status]
    return {"run_key": run_key(spec), "sweep": sweep, "variant": variant, "seed": seed, "status": status,
            "reason": reason, **flatten(spec), "resolved_device": "cpu", "resolved_precision": "fp32",
            "torch_version": "2.5.1", "infer_batch": 128, **metrics}


def metrics_for(top1: float, top5: float, params: int, macs: int = 41_000_000, infer_ms: float = 5.0,
                ) -> dict[str, float]:
    return {"top1_err": top1, "top5_err": top5, "test_loss": top1 / 20, "train_loss": top1 / 25,
            "params": params, "se_params": max(0, params - 272_474), "macs": macs, "train_seconds": 30.0,
            "train_img_per_s": 1500.0, "infer_ms": infer_ms, "peak_mem_mb": 300.0, "epochs_done": 5}


def write_sweep(root: Path, name: str, variants: Mapping[str, Mapping[str, Any]], seeds: Sequence[int],
                outcome: MetricFn, *, axes: Mapping[str, list[Any]] | None = None, baseline: str | None = "resnet",
                epochs: int = 5, excitation: bool = True, extra_spec: Mapping[str, Any] | None = None,
                details: DetailFn | None = None) -> Path:
    """Write experiments/NAME.yaml and results/NAME/{runs.csv,curves.csv,runs/*.json}; returns the spec path.

    ``outcome(variant, seed)`` gives the metrics of a finished run, the status "diverged"/"failed", or
    "missing" (the run is not in the results at all). ``details(variant, seed, row)`` gives extra keys of a
    finished run's JSON (``hidden_widths``, ``adaptive``).
    """
    spec = {"name": name, "description": f"Synthetic {name} sweep for tests.", "model": {"arch": "resnet20"},
            "recipe": {"dataset": "digits", "epochs": epochs}, "seeds": list(seeds),
            "variants": {k: dict(v) for k, v in variants.items()}, **({"axes": axes} if axes else {}),
            **({"baseline": baseline} if baseline else {}), **(extra_spec or {})}
    (root / "experiments").mkdir(parents=True, exist_ok=True)
    spec_path = root / "experiments" / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = root / "results" / name
    (out / "runs").mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    for variant, overrides in variants.items():
        for seed in seeds:
            result = outcome(variant, seed)
            if result == "missing":
                continue
            row = run_row(name, variant, seed, {"recipe.epochs": epochs, **overrides}, result)
            rows.append(row)
            run_curves = _curves(row, epochs) if row["status"] == "finished" else []
            curves += [{"run_key": row["run_key"], "sweep": name, "variant": variant, "seed": seed, **c}
                       for c in run_curves]
            detail = {"record": row, "curves": run_curves, "hidden_widths": []}
            if excitation and row["model.attention.kind"] == "se" and row["status"] == "finished":
                detail["excitation"] = _excitation(seed)
            if details is not None and row["status"] == "finished":
                detail |= details(variant, seed, row)
            (out / "runs" / f"{row['run_key']}.json").write_text(json.dumps(detail, default=str))
    pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)
    pd.DataFrame(curves).to_csv(out / "curves.csv", index=False)
    return spec_path


def _curves(row: Mapping[str, Any], epochs: int) -> list[dict[str, float]]:
    final = row["top1_err"]
    return [{"epoch": e, "train_loss": 2.0 / e, "test_loss": 1.5 / e, "top1_err": final + 30.0 / e - 30.0 / epochs,
             "top5_err": row["top5_err"] + 5.0 / e - 5.0 / epochs, "lr": 0.1 * (1 - e / epochs),
             "epoch_seconds": 6.0} for e in range(1, epochs + 1)]


def _excitation(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for stage, channels in ((2, 16), (3, 32), (4, 64)):
        for cls in range(4):
            mean = np.clip(0.5 + 0.1 * (stage - 2) * (cls - 1.5) + 0.05 * rng.standard_normal(channels), 0, 1)
            out.append({"block": f"layer{stage - 1}.2.attn_branch", "stage": stage, "class": cls,
                        "mean": [round(float(v), 6) for v in mean]})
    return out


RATIO_VARIANTS: dict[str, dict[str, Any]] = {
    "resnet": {"model.attention.kind": "none"},
    "se_r4": {"model.attention.reduction": 4},
    "se_r8": {"model.attention.reduction": 8},
    "se_r16": {"model.attention.reduction": 16},
}


def partial_ratio_outcome(variant: str, seed: int) -> dict[str, float] | str:
    """A partial ratio sweep: se_r4 has one seed only, se_r16 seed 2 failed, se_r8 seed 1 diverged."""
    if variant == "se_r4" and seed > 0:
        return "missing"
    if variant == "se_r16" and seed == 2:
        return "failed"
    if variant == "se_r8" and seed == 1:
        return "diverged"
    base = {"resnet": 10.0, "se_r4": 9.2, "se_r8": 9.0, "se_r16": 9.4}[variant]
    params = {"resnet": 272_474, "se_r4": 284_000, "se_r8": 278_000, "se_r16": 275_000}[variant]
    noise = [0.0, 0.6, -0.3][seed] + 0.05 * ((seed * 7 + len(variant)) % 3)
    return metrics_for(base + noise, base / 4 + noise / 2, params, infer_ms=5.0 + params / 1e5)


ADAPTIVE_VARIANTS: dict[str, dict[str, Any]] = {
    "resnet": {"model.attention.kind": "none"},
    **{f"se_r{r}": {"model.attention.reduction": r} for r in (2, 4, 8, 16)},
    **{f"learned-w{w}": {"model.attention.adaptive": "learnable", "model.attention.reduction": 2,
                         "model.attention.cost_weight": w} for w in (1, 4)},
    "dynamic-w1": {"model.attention.adaptive": "dynamic", "model.attention.reduction": 2,
                   "model.attention.cost_weight": 1},
}
#: SE params per seed: the fixed ratios halve it per doubling of r; learned-w1 sits between r=8 and r=4
#: (mean 6000), learned-w4 below r=16 (outside the curve), dynamic-w1 allocates r=2's 16000 and uses half
ADAPTIVE_SE_PARAMS = {"se_r2": 16_000, "se_r4": 8_000, "se_r8": 4_000, "se_r16": 2_000,
                      "learned-w1": (5_800, 6_200, 6_000), "learned-w4": 1_500, "dynamic-w1": 16_000}
#: top-1 error per seed: fixed r = 2 … 16 at 8.0 … 9.2 (+0, +0.3, −0.3); learned-w1 0.5, 0.4, 0.6 below r=4
FIXED_TOP1 = {"se_r2": 8.0, "se_r4": 8.4, "se_r8": 8.8, "se_r16": 9.2}
SEED_NOISE = (0.0, 0.3, -0.3)
LEARNED_W1_GAIN = (-0.5, -0.4, -0.6)
#: learned-w1's learned widths per stage and seed (C = 16, 32, 64 → ratios 4, 8, 4 at seed 0)
LEARNED_WIDTHS = {2: (4.0, 3.2), 3: (4.0, 5.0), 4: (16.0, 16.0)}
STAGE_CHANNELS = {2: 16, 3: 32, 4: 64}


def adaptive_outcome(variant: str, seed: int) -> dict[str, float]:
    """The adaptive sweep's metrics (see :data:`ADAPTIVE_SE_PARAMS` and :data:`FIXED_TOP1`)."""
    se = ADAPTIVE_SE_PARAMS.get(variant, 0)
    se = se[seed] if isinstance(se, tuple) else se
    if variant == "learned-w1":
        top1 = FIXED_TOP1["se_r4"] + SEED_NOISE[seed] + LEARNED_W1_GAIN[seed]
    else:
        top1 = {**FIXED_TOP1, "resnet": 10.0, "learned-w4": 9.5, "dynamic-w1": 8.3}[variant] + SEED_NOISE[seed]
    out = metrics_for(top1, top1 / 4, 272_474 + se, macs=41_000_000 + 2 * se)
    if variant.startswith("dynamic"):
        out |= {"se_budget": 0.5, "se_active_width": 0.5}  # half the allocated units active on average
    elif variant.startswith("learned"):
        out |= {"se_budget": 0.4, "soft_top1_err": top1 - 0.1}
    return out


def adaptive_details(variant: str, seed: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """hidden_widths and the per-epoch width log of an adaptive run, shaped as the trainer writes them."""
    kind = row["model.attention.adaptive"]
    if kind == "none":
        return {}
    blocks = [(stage, f"layer{stage - 1}.{i}.attn_branch") for stage in (2, 3, 4) for i in range(3)]
    widths, log = [], []
    for stage, block in blocks:
        c = STAGE_CHANNELS[stage]
        width = LEARNED_WIDTHS[stage][min(seed, 1)] if variant == "learned-w1" else c / 16
        widths.append({"block": block, "channels": c, "reduction": c / width, "exact": width,
                       "hidden": max(1, math.floor(width + 0.5)), "rounded": False, "raised": False})
        for epoch in range(1, int(row["recipe.epochs"]) + 1):
            w = c / 2 + (width - c / 2) * epoch / int(row["recipe.epochs"])
            entry = {"epoch": epoch, "block": block, "module": block, "kind": kind, "channels": c,
                     "max_hidden": c // 2, "effective_width": w, "effective_ratio": c / w}
            if kind == "learnable":
                entry["hardened_width"] = max(1, math.floor(w + 0.5))
            else:
                entry |= {"sample_ratio_mean": c / w * 1.1, "sample_ratio_std": 0.5, "sample_ratio_min": c / w,
                          "sample_ratio_max": c / w * 1.5, "sample_ratio_n": 100}
            log.append(entry)
    if kind == "dynamic":  # a dynamic run's hidden_widths hold the allocated width
        widths = [{**w, "reduction": 2, "exact": w["channels"] / 2, "hidden": w["channels"] // 2} for w in widths]
    return {"hidden_widths": widths, "adaptive": log}


def write_adaptive_sweep(root: Path, outcome: MetricFn = adaptive_outcome, **kw: Any) -> Path:
    """The adaptive sweep (fixed r = 2 … 16, learned-w1/-w4, dynamic-w1, resnet) with its width logs."""
    return write_sweep(root, "adaptive", ADAPTIVE_VARIANTS, [0, 1, 2], outcome, details=adaptive_details,
                       excitation=False, **kw)


# --------------------------------------------------------------------------------------------------
# the hand-computed example


def hand_runs(tmp_path: Path) -> pd.DataFrame:
    """resnet: 10, 11, 12; se: 9, 10.5, 10.5 (differences −1, −0.5, −1.5); se_r8: 9.5, diverged, failed."""
    rows = [run_row("hand", "resnet", s, {"model.attention.kind": "none"}, metrics_for(e, e / 4, 272_474))
            for s, e in zip((0, 1, 2), (10.0, 11.0, 12.0), strict=True)]
    rows += [run_row("hand", "se", s, {}, metrics_for(e, e / 4, 275_000))
             for s, e in zip((0, 1, 2), (9.0, 10.5, 10.5), strict=True)]
    rows += [run_row("hand", "se_r8", 0, {"model.attention.reduction": 8}, metrics_for(9.5, 2.0, 278_000)),
             run_row("hand", "se_r8", 1, {"model.attention.reduction": 8}, "diverged"),
             run_row("hand", "se_r8", 2, {"model.attention.reduction": 8}, "failed")]
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).sample(frac=1.0, random_state=3).to_csv(path, index=False)  # completion order
    return results.read_runs(path)


def t_cdf_df2(t: float) -> float:
    """Student t CDF with 2 degrees of freedom in closed form: 1/2 + t / (2 √(2 + t²))."""
    return 0.5 + t / (2.0 * math.sqrt(2.0 + t * t))


#: t(0.975, df=2) from the closed form: q² = 0.95² · (2 + q²) → q = √(2 · 0.9025 / 0.0975)
T975_DF2 = math.sqrt(2 * 0.9025 / 0.0975)


def test_every_recorded_metric_is_aggregated(tmp_path):
    from sesweep.results import METRICS

    runs = hand_runs(tmp_path)
    for m in METRICS:  # a metric the record gained later is a plain numeric column of runs.csv
        if m not in runs.columns:
            runs[m] = 1.0
    assert set(METRICS) <= set(stats.metric_columns(runs))
    assert not {"seed", "infer_batch", "model.attention.reduction"} & set(stats.metric_columns(runs))


def test_t_quantile_matches_the_closed_forms():
    assert pytest.approx(4.302653, abs=1e-6) == T975_DF2
    assert stats.t_quantile(3) == pytest.approx(T975_DF2, rel=1e-9)
    assert stats.t_quantile(2) == pytest.approx(math.tan(0.475 * math.pi), rel=1e-9)  # df=1: Cauchy
    assert math.isnan(stats.t_quantile(1))


def test_mean_std_and_t_interval_by_hand(tmp_path):
    table = stats.aggregate(hand_runs(tmp_path), "resnet")
    row = table.loc["resnet"]
    assert row["top1_err_mean"] == pytest.approx(11.0)
    assert row["top1_err_std"] == pytest.approx(1.0)             # √(((−1)² + 0 + 1²) / 2)
    half = T975_DF2 * 1.0 / math.sqrt(3)                           # 2.484138
    assert half == pytest.approx(2.484138, abs=1e-6)
    assert row["top1_err_ci_lo"] == pytest.approx(11.0 - half)
    assert row["top1_err_ci_hi"] == pytest.approx(11.0 + half)
    assert row["top1_err_n"] == 3
    se = table.loc["se"]
    assert se["top1_err_mean"] == pytest.approx(10.0)
    assert se["top1_err_std"] == pytest.approx(math.sqrt(0.75))  # deviations −1, 0.5, 0.5


def test_paired_delta_interval_and_t_test_by_hand(tmp_path):
    runs = hand_runs(tmp_path)
    comp = stats.compare(runs, "se", "resnet", "top1_err")
    assert comp.seeds == (0, 1, 2)
    assert comp.diffs == pytest.approx((-1.0, -0.5, -1.5))
    # mean −1, sd 0.5, se = 0.5/√3, t = −2√3; CI −1 ± 4.302653 · 0.288675
    assert comp.delta.mean == pytest.approx(-1.0)
    assert comp.delta.std == pytest.approx(0.5)
    se = 0.5 / math.sqrt(3)
    assert comp.delta.ci_lo == pytest.approx(-1.0 - T975_DF2 * se)
    assert comp.delta.ci_hi == pytest.approx(-1.0 + T975_DF2 * se)
    assert comp.delta.ci_lo == pytest.approx(-2.242069, abs=1e-6)
    t = -1.0 / se
    p = 2 * (1 - t_cdf_df2(abs(t)))                                # = 1 − |t| / √(2 + t²) = 1 − √12/√14
    assert p == pytest.approx(1 - math.sqrt(12 / 14))
    assert comp.p_t == pytest.approx(p, rel=1e-9)
    assert comp.p_t == pytest.approx(0.074180, abs=1e-6)
    # all 8 sign flips: |mean| ≥ 1 only for the two all-same-sign vectors
    assert comp.p_perm == pytest.approx(2 / 8)
    table = stats.aggregate(runs, "resnet")
    assert table.at["se", "d_top1_err_mean"] == pytest.approx(-1.0)
    assert table.at["se", "d_top1_err_p_t"] == pytest.approx(p)
    assert table.at["se", "d_top1_err_n"] == 3
    assert math.isnan(table.at["resnet", "d_top1_err_mean"])


def test_pairing_is_by_seed_not_by_row_order(tmp_path):
    runs = hand_runs(tmp_path)
    shuffled = runs.sample(frac=1.0, random_state=11)
    assert stats.compare(shuffled, "se", "resnet", "top1_err").diffs == pytest.approx((-1.0, -0.5, -1.5))


def test_failed_and_diverged_runs_are_counted_and_excluded(tmp_path):
    table = stats.aggregate(hand_runs(tmp_path), "resnet", seeds=[0, 1, 2])
    r8 = table.loc["se_r8"]
    assert (r8["n_runs"], r8["n"], r8["n_diverged"], r8["n_failed"]) == (3, 1, 1, 1)
    assert r8["top1_err_mean"] == pytest.approx(9.5)
    assert math.isnan(r8["top1_err_std"]) and math.isnan(r8["top1_err_ci_lo"])   # n = 1: no interval
    assert r8["missing_seeds"] == "1,2" and r8["n_expected"] == 3
    comp = stats.compare(hand_runs(tmp_path), "se_r8", "resnet", "top1_err")
    assert comp.n == 1 and comp.diffs == pytest.approx((-0.5,))
    assert math.isnan(comp.p_t) and comp.p_perm == pytest.approx(1.0)
    assert table.loc["resnet", "n_diverged"] == 0


def test_rank_by_mean_top1_error(tmp_path):
    table = stats.aggregate(hand_runs(tmp_path), "resnet")
    # means: se_r8 9.5, se 10.0, resnet 11.0
    assert table["rank"].to_dict() == {"se_r8": 1, "se": 2, "resnet": 3}


def test_small_samples_and_degenerate_differences():
    assert stats.paired_t_p([0.3]) != stats.paired_t_p([0.3])  # NaN: one pair is no test
    # zero spread: the t statistic is undefined, so no p-value (never p = 0 or p = 1) and the reason is given
    assert math.isnan(stats.paired_t_p([0.0, 0.0, 0.0])) and math.isnan(stats.paired_t_p([0.2, 0.2]))
    assert "zero spread" in stats.no_test_reason([0.2, 0.2]) and stats.no_test_reason([0.1, 0.3]) == ""
    assert math.isnan(stats.paired_t_p([8.3 - 8.0, 7.3 - 7.0]))  # equal up to float rounding is equal
    # n = 2, df = 1 (Cauchy): d = (1, 3), t = 2 / (√2 / √2) = 2, p = 1 − 2·atan(2)/π
    assert stats.paired_t_p([1.0, 3.0]) == pytest.approx(1 - 2 * math.atan(2.0) / math.pi)
    assert stats.sign_flip_p([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 32)  # the smallest p at n = 5
    assert stats.summarize([]).n == 0 and math.isnan(stats.summarize([]).mean)
    assert stats.summarize([1.0, float("nan"), 3.0]).n == 2


def test_factors_baseline_order_and_contrasts(tmp_path):
    spec = write_sweep(tmp_path, "ratio", RATIO_VARIANTS, [0, 1, 2], partial_ratio_outcome)
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    assert an.factors == ["model.attention.kind", "model.attention.reduction"]
    assert an.baseline == "resnet"
    assert an.order == ["resnet", "se_r4", "se_r8", "se_r16"]
    labels = [c.label for c in factors.contrasts(an)]
    assert labels[:3] == ["se_r4 vs resnet", "se_r8 vs resnet", "se_r16 vs resnet"]  # the tables' names
    # the reference level of r is the schema default 16
    assert "r=4 vs r=16" in labels and "r=8 vs r=16" in labels


def test_a_column_written_twice_is_read_once(tmp_path):
    """The runner may write `seed` twice (id and spec key); pandas reads the second as `seed.1`."""
    path = tmp_path / "runs.csv"
    path.write_text("run_key,variant,seed,status,model.attention.kind,seed,top1_err\n"
                    "a,resnet,0,finished,none,0,10.0\nb,resnet,1,finished,none,1,11.0\n")
    runs = results.read_runs(path)
    assert list(runs.columns) == ["run_key", "variant", "seed", "status", "model.attention.kind", "top1_err"]
    assert stats.metric_columns(runs) == ["top1_err"]


def test_target_resolution(tmp_path, monkeypatch):
    spec = write_sweep(tmp_path, "ratio", RATIO_VARIANTS, [0], partial_ratio_outcome)
    monkeypatch.chdir(tmp_path)
    assert spec == tmp_path / "experiments/ratio.yaml"
    assert results.resolve_target("experiments/ratio.yaml") == ("ratio", Path("results/ratio"),
                                                              Path("experiments/ratio.yaml"))
    name, folder, found = results.resolve_target("results/ratio")
    assert (name, folder) == ("ratio", Path("results/ratio")) and found == Path("experiments/ratio.yaml")
    with pytest.raises(results.SweepDataError, match="neither a sweep spec"):
        results.resolve_target("nowhere")
    (tmp_path / "results" / "empty").mkdir()
    with pytest.raises(results.SweepDataError, match=r"runs\.csv: not found"):
        results.load_sweep("results/empty")
