"""Tables and figures: the chooser, partial sweeps, Markdown/LaTeX/CSV output, figure files and style."""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess

import pandas as pd
import pytest
from PIL import Image
from test_stats import (  # tests/ is on sys.path
    RATIO_VARIANTS,
    T975_DF2,
    adaptive_outcome,
    metrics_for,
    partial_ratio_outcome,
    write_adaptive_sweep,
    write_sweep,
)

from sesweep import publish, publish_arguments, results
from sesweep.analysis import equal_cost, factors, figures, stats, tables


@pytest.fixture(scope="module")
def ratio(tmp_path_factory):
    """The partial ratio sweep: se_r4 one seed, se_r8 one diverged run, se_r16 one failed run."""
    root = tmp_path_factory.mktemp("ratio")
    spec = write_sweep(root, "ratio", RATIO_VARIANTS, [0, 1, 2], partial_ratio_outcome)
    return factors.analyze(results.load_sweep(spec, root / "results"))


def factor_sweep(tmp_path, key: str, levels: list[str], partial: bool = False) -> factors.Analysis:
    """A sweep of one categorical factor, variants named as sesweep.plan names axes variants.

    ``partial``: the last level has seed 0 only and the first level's seed 2 failed.
    """
    short = key.rpartition(".")[2]
    variants = {"resnet": {"model.attention.kind": "none"}} | {f"{short}={lv}": {key: lv} for lv in levels}
    err = {name: 10.0 - 0.3 * i for i, name in enumerate(variants)}

    def outcome(v: str, s: int) -> dict[str, float] | str:
        if partial and v == f"{short}={levels[-1]}" and s > 0:
            return "missing"
        if partial and v == f"{short}={levels[0]}" and s == 2:
            return "failed"
        return metrics_for(err[v] + 0.2 * s + 0.01 * len(v) * s, 2.0, 272_474 + 100 * len(v))

    spec = write_sweep(tmp_path, short, variants, [0, 1, 2], outcome, axes={key: levels}, excitation=False)
    return factors.analyze(results.load_sweep(spec, tmp_path / "results"))


@pytest.mark.parametrize("key, slug", [
    ("model.attention.reduction", "table10_ratio"), ("model.attention.pool", "table11_squeeze"),
    ("model.attention.gate", "table12_excitation"), ("model.attention.stages", "table13_stages"),
    ("model.attention.placement", "table14_integration"), ("model.attention.min_hidden", "factor_min_hidden"),
])
def test_the_chooser_picks_the_paper_table_for_what_varies(key, slug):
    choices, notes = tables.choose_tables(["model.attention.kind", key])
    assert [c.slug for c in choices] == [slug, "overall"] and notes == []


def test_the_chooser_reads_the_factors_off_the_runs(ratio, tmp_path):
    assert [c.slug for c in tables.choose_tables(ratio.factors)[0]] == ["table10_ratio", "overall"]
    pool = factor_sweep(tmp_path / "pool", "model.attention.pool", ["max", "avg"])
    assert pool.factors == ["model.attention.kind", "model.attention.pool"]
    assert [c.slug for c in tables.choose_tables(pool.factors)[0]] == ["table11_squeeze", "overall"]
    assert [c.label for c in factors.contrasts(pool)][-1] == "pool=max vs pool=avg"   # avg: the reference level
    gate = factor_sweep(tmp_path / "gate", "model.attention.gate", ["tanh", "relu", "sigmoid"])
    assert [c.slug for c in tables.choose_tables(gate.factors)[0]] == ["table12_excitation", "overall"]
    assert gate.order == ["resnet", "gate=sigmoid", "gate=tanh", "gate=relu"]  # schema order, as in the paper


def test_a_spec_tables_list_filters_and_unknown_names_are_reported():
    factors = ["model.attention.kind", "model.attention.reduction", "model.attention.pool"]
    choices, notes = tables.choose_tables(factors, ["squeeze", "fig9"])
    assert [c.slug for c in choices] == ["table11_squeeze", "overall"]
    assert notes == ["table 'fig9' was requested but this sweep does not vary its factor"]
    assert [c.slug for c in tables.choose_tables(factors, ["10"])[0]] == ["table10_ratio", "overall"]


def test_partial_sweep_tables_show_n_and_exclusions(ratio):
    built, _ = tables.build_tables(ratio)
    t10 = {t.choice.slug: t for t in built}["table10_ratio"]
    nums = t10.numbers.set_index("variant")
    assert list(nums.index) == ["se_r4", "se_r8", "se_r16", "resnet"]  # paper order: r ascending, ResNet last
    assert nums.loc["se_r4", ["n", "n_expected"]].tolist() == [1, 3]
    assert (nums.loc["se_r8", "n"], nums.loc["se_r8", "n_diverged"]) == (2, 1)
    assert (nums.loc["se_r16", "n"], nums.loc["se_r16", "n_failed"]) == (2, 1)
    shown = t10.shown.set_index("variant")
    assert shown.loc["se_r4", "n"] == "1/3" and shown.loc["resnet", "n"] == "3/3"
    assert shown.loc["se_r4", "top-1 err (%)"] == "9.30"            # one seed: no interval, and n says so
    assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", shown.loc["se_r8", "top-1 err (%)"])
    assert shown.loc["se_r8", "excluded"] == "1 diverged" and shown.loc["se_r16", "excluded"] == "1 failed"
    assert shown.loc["resnet", "Δ top-1 vs resnet"] == "(baseline)"
    assert shown.loc["se_r4", "Δ top-1 vs resnet"] == "−0.70 (n=1)"
    assert shown.loc["se_r4", "params"] == "284.0k" and shown.loc["resnet", "params"] == "272.5k"


def test_written_files_markdown_latex_and_csv_round_trip(ratio, tmp_path):
    paths = tables.write_tables(ratio, tmp_path / "tables")
    names = {p.name for p in paths}
    assert {"table10_ratio.csv", "table10_ratio.md", "table10_ratio.tex", "overall.csv", "overall.md",
            "overall.tex", "variants.csv", "comparisons.csv"} <= names
    built = {t.choice.slug: t for t in tables.build_tables(ratio)[0]}
    for slug, t in built.items():
        back = pd.read_csv(tmp_path / "tables" / f"{slug}.csv")
        pd.testing.assert_frame_equal(back, t.numbers, check_dtype=False)
        md = (tmp_path / "tables" / f"{slug}.md").read_text().splitlines()
        header = "| " + " | ".join(t.shown.columns) + " |"
        assert header in md
        start = md.index(header)
        assert re.fullmatch(r"\|(:--\||--:\|)+", md[start + 1])
        assert len([ln for ln in md[start + 2:] if ln.startswith("|")]) == len(t.shown)
        check_latex((tmp_path / "tables" / f"{slug}.tex").read_text(), len(t.shown))
    comps = pd.read_csv(tmp_path / "tables" / "comparisons.csv")
    row = comps[(comps["variant"] == "se_r8") & (comps["reference"] == "resnet") & (comps["metric"] == "top1_err")]
    assert row["n_pairs"].item() == 2 and row["seeds"].item() == "0,2"


def check_latex(tex: str, rows: int) -> None:
    """Structure of a booktabs table: environments, rules, one line per row, every special escaped."""
    assert tex.count(r"\begin{tabular}") == 1 and tex.count(r"\end{tabular}") == 1
    assert r"\begin{table}" in tex and r"\caption{" in tex and r"\label{tab:" in tex
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    assert len([ln for ln in body.strip().splitlines() if ln.rstrip().endswith(r"\\")]) == rows
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    head = tex.split(r"\toprule", 1)[1].split(r"\midrule", 1)[0]
    columns = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    assert head.count("&") == len(columns) - 1                    # header cells match the column spec
    text = tex.replace(r"\_", "").replace(r"\%", "").replace(r"\label{tab:", "")
    assert "_" not in text.split(r"\begin{tabular}")[1] and "%" not in text   # nothing unescaped
    assert "±" not in tex and "Δ" not in tex and "−" not in tex          # pdflatex-safe without packages


def test_latex_escapes_underscores_and_compiles_when_pdflatex_is_there(ratio, tmp_path):
    t10 = next(t for t in tables.build_tables(ratio)[0] if t.choice.slug == "table10_ratio")
    tex = tables.to_latex(t10.shown, t10.caption, "tab:ratio")
    assert r"se\_r8" in tex and r"$\pm$" in tex and r"$\Delta$ top-1 vs resnet" in tex
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed: structure checked, not compiled")
    doc = tmp_path / "t.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage[margin=1cm,landscape]{geometry}"
                   f"\\begin{{document}}{tex}\\end{{document}}")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_figures_for_a_partial_sweep(ratio, tmp_path):
    files, notes = figures.make_figures(ratio, tmp_path / "fig")
    slugs = [f.slug for f in files]
    assert slugs[:4] == ["ratio", "pareto_params", "pareto_infer_ms", "curves"] and notes == []
    assert "pareto_macs" not in slugs                                # equal MACs: nothing to trade off
    assert slugs[4] == "excitation_se_r16"                           # the reference level r=16 first
    for f in files:
        with Image.open(f.png) as im:
            dpi = im.info["dpi"]
            width_in = im.size[0] / dpi[0]
        assert dpi[0] == pytest.approx(figures.DPI, abs=1) and figures.DPI >= 200
        assert width_in == pytest.approx(figures.COLUMN_IN, abs=0.02) or width_in == pytest.approx(
            figures.PAGE_IN, abs=0.02)
        assert f.pdf.read_bytes()[:5] == b"%PDF-" and f.caption


def test_gate_sweep_with_a_single_seed_variant_and_a_failed_run(tmp_path):
    gate = factor_sweep(tmp_path, "model.attention.gate", ["sigmoid", "tanh", "relu"], partial=True)
    assert gate.table.loc["gate=relu", "n"] == 1 and gate.table.loc["gate=sigmoid", "n_failed"] == 1
    out = figures.make_figures(gate, tmp_path / "fig")[0]
    assert [f.slug for f in out][:1] == ["gate"] and out[0].png.stat().st_size > 10_000
    t12 = tables.build_tables(gate)[0][0]
    assert t12.choice.slug == "table12_excitation"
    assert t12.shown["n"].tolist() == ["2/3", "3/3", "1/3", "3/3"]        # sigmoid, tanh, relu, resnet
    assert t12.shown["excluded"].tolist() == ["1 failed", "", "", ""]


def test_one_colour_per_variant_and_paper_fonts(ratio):
    colors = figures.variant_colors(ratio.order, ratio.baseline)
    assert colors == figures.variant_colors(ratio.order, ratio.baseline)
    assert colors["resnet"] == figures.BASELINE_COLOR
    assert len(set(colors.values())) == len(ratio.order)
    rc = figures.paper_rc()
    sizes = [v for k, v in rc.items() if k.endswith(("fontsize", "labelsize", "titlesize")) or k == "font.size"]
    assert sizes and all(isinstance(v, int | float) and v >= 8 for v in sizes)


def test_pareto_front():
    # (cost, error): (3, 6) is beaten by (2, 4); (4, 1) is the most accurate
    assert figures.pareto_front([1, 2, 3, 4], [5, 4, 6, 1]) == [0, 1, 3]
    assert figures.pareto_front([1, 1], [2, 2]) == [0, 1]


def test_aggregate_command(ratio, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    publish_arguments.add_aggregate_arguments(parser)
    spec = ratio.sweep.spec_path
    results = ratio.sweep.results_dir.parent
    args = parser.parse_args([str(spec), "--results", str(results), "--out", str(tmp_path / "t")])
    assert publish.cmd_aggregate(args) == 0
    assert (tmp_path / "t" / "table10_ratio.tex").is_file() and "wrote" in capsys.readouterr().out
    assert publish.cmd_aggregate(parser.parse_args([str(tmp_path / "missing")])) == 2
    assert "neither a sweep spec" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# adaptive SE against the fixed ratio of equal cost


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory):
    """Fixed r = 2 … 16, learned-w1 (between r=8 and r=4), learned-w4 (below r=16), dynamic-w1 (allocates r=2)."""
    root = tmp_path_factory.mktemp("adaptive")
    spec = write_adaptive_sweep(root)
    return factors.analyze(results.load_sweep(spec, root / "results"))


def test_interpolation_in_log_se_params_never_extrapolates():
    costs, errors = [8_000, 2_000, 4_000], [8.4, 9.2, 8.8]                    # unsorted: sorted by cost
    value, note = equal_cost.interpolate_log_cost(costs, errors, 6_000)
    assert note == equal_cost.INTERPOLATED
    assert value == pytest.approx(8.8 - 0.4 * math.log(1.5) / math.log(2))  # 8.566015
    assert equal_cost.interpolate_log_cost(costs, errors, 8_000) == (pytest.approx(8.4), equal_cost.INTERPOLATED)
    for at in (1_999, 8_001):
        value, note = equal_cost.interpolate_log_cost(costs, errors, at)
        assert math.isnan(value) and note == equal_cost.OUTSIDE_RANGE
    assert equal_cost.interpolate_log_cost([4_000], [8.8], 4_000)[1] == equal_cost.TOO_FEW_FIXED
    assert equal_cost.interpolate_log_cost(costs, errors, math.nan)[1] == equal_cost.NO_FINISHED_RUN
    assert equal_cost.block_stage("layer1.2.attn_branch") == 2 and equal_cost.block_stage("fc") is None


def test_adaptive_table_against_hand_computed_values(adaptive):
    built, notes = tables.build_tables(adaptive)
    assert [t.choice.slug for t in built] == ["table10_ratio", "adaptive", "overall"] and notes == []
    t = {t.choice.slug: t for t in built}["adaptive"]
    nums = t.numbers.set_index("variant")
    assert list(nums.index) == ["learned-w1", "learned-w4", "dynamic-w1"]
    w1 = nums.loc["learned-w1"]
    assert w1["se_params"] == pytest.approx(6_000) and math.isnan(w1["se_active_width"])
    assert w1["fixed_r"] == "16,8,4,2" and w1["fixed_note"] == equal_cost.INTERPOLATED
    at_cost = 8.8 + (8.4 - 8.8) * math.log(6_000 / 4_000) / math.log(8_000 / 4_000)
    assert w1["fixed_top1_err"] == pytest.approx(at_cost) and w1["top1_err"] == pytest.approx(7.9)
    assert w1["d_fixed_curve"] == pytest.approx(7.9 - at_cost)
    # nearest in log SE params: 8000 (log ratio 0.288) beats 4000 (0.405); paired d = −0.5, −0.4, −0.6
    assert (w1["nearest"], w1["nearest_r"], w1["nearest_se_params"]) == ("se_r4", 4, 8_000)
    half = T975_DF2 * 0.1 / math.sqrt(3)
    assert w1["d_nearest"] == pytest.approx(-0.5) and w1["n_pairs_nearest"] == 3
    assert (w1["d_nearest_ci_lo"], w1["d_nearest_ci_hi"]) == (pytest.approx(-0.5 - half), pytest.approx(-0.5 + half))
    assert w1["p_t_nearest"] == pytest.approx(stats.paired_t_p([-0.5, -0.4, -0.6]))
    # learned widths 4, 3.2, 3.2 of C = 16 (stage 2), 4, 5, 5 of 32 (stage 3), 16 of 64 (stage 4)
    assert w1[["ratio_stage2", "ratio_stage3", "ratio_stage4"]].tolist() == pytest.approx(
        [(4 + 5 + 5) / 3, (8 + 6.4 + 6.4) / 3, 4.0])
    w4 = nums.loc["learned-w4"]
    assert w4["se_params"] == 1_500 and math.isnan(w4["fixed_top1_err"]) \
        and w4["fixed_note"] == equal_cost.OUTSIDE_RANGE
    assert w4["nearest"] == "se_r16"
    dyn = nums.loc["dynamic-w1"]   # allocated SE params 16000: exactly r=2's (never 0.5 × 16000); ratio from the log
    assert dyn["se_params"] == 16_000 and dyn["fixed_top1_err"] == pytest.approx(8.0) and dyn["nearest"] == "se_r2"
    assert dyn["se_active_width"] == pytest.approx(0.5) and "se_params_expected" not in nums.columns
    assert dyn["ratio_stage3"] == pytest.approx(16 * 1.1)
    shown = t.shown.set_index("variant")
    assert shown.loc["dynamic-w1", "SE params"] == "16.00k" and shown.loc["learned-w1", "SE params"] == "6.00k"
    assert shown.loc["dynamic-w1", tables.ACTIVE_WIDTH_COLUMN] == "50%"
    assert shown.loc["learned-w1", tables.ACTIVE_WIDTH_COLUMN] == "—" and "not a cost" in tables.ACTIVE_WIDTH_COLUMN
    assert shown.loc["learned-w4", "fixed-r top-1 at equal SE params"] == "outside the fixed-r range"
    assert shown.loc["learned-w1", "fixed-r top-1 at equal SE params"] == f"{at_cost:.2f}"
    assert shown.loc["learned-w1", "nearest fixed r (SE params)"] == "r=4 (8.00k)"  # one unit with 16.00k
    assert shown.loc["learned-w1", "p (paired t)"] == "0.013"
    assert "a dynamic one its allocated SE" in t.caption and "se_budget ×" not in t.caption


def test_adaptive_table_files_and_name(adaptive, ratio, tmp_path):
    tables.write_tables(adaptive, tmp_path)
    t = next(t for t in tables.build_tables(adaptive)[0] if t.choice.slug == "adaptive")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "adaptive.csv"), t.numbers, check_dtype=False)
    assert "| learnable | 1 | learned-w1 | 3/3 |" in (tmp_path / "adaptive.md").read_text()
    check_latex((tmp_path / "adaptive.tex").read_text(), len(t.shown))
    assert r"\textdagger{}" not in (tmp_path / "adaptive.tex").read_text()
    assert r"50\%" in (tmp_path / "adaptive.tex").read_text()
    factors = adaptive.factors
    assert "model.attention.cost_weight" in factors                   # a column here, not a table of its own
    assert [c.slug for c in tables.choose_tables(factors, ["adaptive"], adaptive=True)[0]] == ["adaptive", "overall"]
    assert tables.choose_tables(ratio.factors, ["adaptive"])[1] == [
        "table 'adaptive' was requested but this sweep does not vary its factor"]
    assert equal_cost.adaptive_comparisons(ratio) == [] and figures.adaptive_ratio_figure(ratio, {}, tmp_path) is None


def test_learned_ratio_per_block_figure(adaptive, tmp_path):
    ratios = equal_cost.block_ratios(adaptive, "learned-w1")
    assert ratios["seed"].tolist() == [0] * 9 + [1] * 9 + [2] * 9
    assert ratios["stage"].tolist()[:9] == [2, 2, 2, 3, 3, 3, 4, 4, 4] and ratios["position"].max() == 8
    assert ratios["ratio"].tolist()[:9] == pytest.approx([4, 4, 4, 8, 8, 8, 4, 4, 4])
    colors = figures.variant_colors(adaptive.order, adaptive.baseline)
    fig = figures.adaptive_ratio_figure(adaptive, colors, tmp_path)   # make_figures: see tests/test_report.py
    assert fig.slug == "adaptive_ratios" and figures.is_adaptive_figure(fig) and fig.png.stat().st_size > 10_000
    with Image.open(fig.png) as im:
        assert im.size[0] / im.info["dpi"][0] == pytest.approx(figures.COLUMN_IN, abs=0.02)
    assert fig.pdf.read_bytes()[:5] == b"%PDF-"


def test_partial_adaptive_sweep(tmp_path):
    """One fixed ratio finished (no curve), learned-w1 failed everywhere, learned-w4 lost a seed."""
    def outcome(variant: str, seed: int) -> dict[str, float] | str:
        if variant in ("se_r2", "se_r8", "se_r16") or (variant == "learned-w4" and seed == 2):
            return "missing"
        return "failed" if variant == "learned-w1" else adaptive_outcome(variant, seed)

    an = factors.analyze(results.load_sweep(write_adaptive_sweep(tmp_path, outcome), tmp_path / "results"))
    t = next(t for t in tables.build_tables(an)[0] if t.choice.slug == "adaptive")
    nums = t.numbers.set_index("variant")
    assert nums.loc["learned-w1", "n"] == 0 and nums.loc["learned-w1", "fixed_note"] == equal_cost.NO_FINISHED_RUN
    assert nums.loc["learned-w4", "n"] == 2 and nums.loc["learned-w4", "n_pairs_nearest"] == 2
    assert nums.loc["learned-w4", "fixed_note"] == nums.loc["dynamic-w1", "fixed_note"] == equal_cost.TOO_FEW_FIXED
    assert nums.loc["dynamic-w1", "nearest"] == "se_r4"
    shown = t.shown.set_index("variant")
    assert shown.loc["learned-w1", "top-1 err (%)"] == "—" and shown.loc["learned-w1", "excluded"] == "3 failed"
    assert shown.loc["learned-w4", "n"] == "2/3"
    assert figures.adaptive_pareto_figure(an, figures.variant_colors(an.order, an.baseline), tmp_path) is not None


def test_paper_tables_hold_the_other_factors_at_the_base_value(tmp_path):
    """A smoke-like sweep: r axis at avg/sigmoid plus a gate and a pool variant at r=8 (the base r)."""
    variants = {"resnet": {"model.attention.kind": "none"},
                **{f"r={r}": {"model.attention.reduction": r} for r in (4, 8, 16)},
                "tanh": {"model.attention.reduction": 8, "model.attention.gate": "tanh"},
                "max_pool": {"model.attention.reduction": 8, "model.attention.pool": "max"}}
    err = {name: 10.0 - 0.2 * i for i, name in enumerate(variants)}
    spec = write_sweep(tmp_path, "mixed", variants, [0, 1],
                       lambda v, s: metrics_for(err[v] + 0.1 * s, 2.0, 272_474 + 100 * len(v)), excitation=False,
                       extra_spec={"model": {"arch": "resnet20", "attention": {"reduction": 8}}})
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    built = {t.choice.slug: t for t in tables.build_tables(an)[0]}
    ratio_rows = built["table10_ratio"].numbers
    assert ratio_rows["r"].dropna().tolist() == [4, 8, 16] and len(ratio_rows) == 4  # + the baseline row
    assert built["table12_excitation"].numbers["gate"].dropna().tolist() == ["sigmoid", "tanh"]
    assert "other factors held at the sweep's base value (r=8, pool=avg)" in built["table12_excitation"].caption
    # one label per variant: the name its table row and figure legend give, also in the prose's contrasts
    assert factors.variant_labels(an)["max_pool"] == "max_pool" and factors.variant_labels(an)["r=4"] == "r=4"
    assert "max_pool vs resnet" in [c.label for c in factors.baseline_contrasts(an)]


# --------------------------------------------------------------------------------------------------
# published numbers beside ours, significance marks, spec order, top-5 only where it says something


def test_published_numbers_are_senets():
    from sesweep.analysis import published
    r16 = published.imagenet_row(10, 16)
    assert (r16.top1, r16.top5, r16.params_m) == (22.28, 6.03, 28.1) and "Table 10" in r16.source
    assert published.imagenet_row(10, 32.0).top1 == 22.72 and published.imagenet_row(10, "2").top1 == 22.29
    base = published.IMAGENET_BASELINE
    assert (base.top1, base.top5, base.params_m, base.label) == (23.30, 6.55, 25.6, "ResNet-50")
    assert published.imagenet_row(11, "max").top1 == 22.57 and published.imagenet_row(11, "avg").top5 == 6.03
    assert [published.imagenet_row(12, g).top1 for g in ("relu", "tanh", "sigmoid")] == [23.47, 23.00, 22.28]
    assert [published.imagenet_row(13, s).top1 for s in ("[2]", (3,), [4], "all")] == [23.03, 23.04, 22.68, 22.28]
    assert [published.imagenet_row(14, p).top1 for p in ("standard", "pre", "post", "identity")] == [
        22.28, 22.23, 22.78, 22.20]
    assert published.imagenet_row(10, 64) is None and published.imagenet_row(11, "avgmax") is None
    assert published.imagenet_row(13, "[2, 3]") is None and published.imagenet_row(12, "hard_sigmoid") is None
    c100 = published.cifar_result("preresnet110", "cifar100")
    assert (c100.original, c100.se, c100.table, c100.paper_arch) == (26.88, 23.85, 5, "ResNet-110")
    assert published.cifar_result("preresnet164", "cifar10").original == 5.46
    assert published.cifar_result("wrn16_8", "cifar10").se == 3.88
    assert published.cifar_result("resnet20", "cifar10") is None
    assert published.cifar_result("preresnet110", "digits") is None
    # SENet's CIFAR nets are the pre-activation ones: the post-activation ResNet-110/164 match no row
    assert published.cifar_result("resnet110", "cifar10") is None
    assert published.cifar_result("resnet164", "cifar100") is None
    # every net SENet's CIFAR tables name is a model.arch (tests/test_models.py: each one is built)
    from typing import get_args, get_type_hints

    from sesweep.spec import ModelSpec

    assert {arch for arch, _ in published.CIFAR} <= set(get_args(get_type_hints(ModelSpec)["arch"]))


def test_paper_tables_show_senets_numbers_beside_ours(ratio):
    built = {t.choice.slug: t for t in tables.build_tables(ratio)[0]}
    t10 = built["table10_ratio"]
    shown = t10.shown.set_index("variant")
    assert shown.loc["se_r16", "SENet top-1 (%)"] == "22.28" and shown.loc["se_r4", "SENet top-1 (%)"] == "22.25"
    assert shown.loc["se_r16", "SENet Δ vs ResNet-50"] == "−1.02"
    assert shown.loc["se_r8", "SENet Δ vs ResNet-50"] == "−1.04"
    assert shown.loc["resnet", "SENet top-1 (%)"] == "23.30" and shown.loc["resnet", "SENet Δ vs ResNet-50"] == ""
    assert "SENet TPAMI v4, Table 10" in t10.caption and "ImageNet SE-ResNet-50" in t10.caption
    assert "resnet20 on digits" in t10.caption and "only the direction" in t10.caption
    assert "SENet top-1 (%)" not in built["overall"].shown.columns
    assert "senet" not in " ".join(t10.numbers.columns).lower()        # the CSV keeps its columns


def test_a_sweep_matching_a_published_cifar_entry_gets_its_numbers(tmp_path):
    where = {"model.arch": "preresnet110", "recipe.dataset": "cifar10"}
    variants = {"resnet": {**where, "model.attention.kind": "none"}, "se": where,
                "se_r8": {**where, "model.attention.reduction": 8}}
    spec = write_sweep(tmp_path, "c10", variants, [0, 1], lambda v, s: metrics_for(7.0 - len(v) / 10 + s, 1, 1),
                       excitation=False)
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    t10 = next(t for t in tables.build_tables(an)[0] if t.choice.slug == "table10_ratio")
    shown = t10.shown.set_index("variant")
    cifar = shown["SENet CIFAR-10 err (%)"]
    assert (cifar["se"], cifar["resnet"], cifar["se_r8"]) == ("5.21", "6.37", "")
    assert shown.loc["se", "SENet CIFAR-10 Δ vs ResNet-110"] == "−1.16"
    assert shown.loc["se", "SENet top-1 (%)"] == "22.28"                  # the ImageNet ablation too
    assert "SENet TPAMI v4, Table 4" in t10.caption


def significant_r4(variant: str, seed: int) -> dict[str, float]:
    """se_r4 is 1.00 point better than resnet on every seed give or take 0.05 (Holm p ≪ 0.05); se_r8 is noise."""
    base = (10.0, 11.0, 9.0, 10.5)[seed]
    shift = {"resnet": (0, 0, 0, 0), "se_r4": (-1.0, -0.95, -1.05, -1.0), "se_r8": (0.3, -0.3, 0.2, -0.2)}[variant]
    return metrics_for(base + shift[seed], 1.0, 270_000 + len(variant))


def test_significant_deltas_are_marked_and_the_caption_says_so(tmp_path):
    variants = {k: RATIO_VARIANTS[k] for k in ("resnet", "se_r4", "se_r8")}
    spec = write_sweep(tmp_path, "sig", variants, [0, 1, 2, 3], significant_r4, excitation=False)
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    for t in tables.build_tables(an)[0][:2]:                            # Table 10 and the overall table
        shown = t.shown.set_index("variant")
        delta = shown["Δ top-1 vs resnet"]
        assert re.fullmatch(r"−1\.00\* \[−\d\.\d\d, −\d\.\d\d\]", delta["se_r4"]), delta["se_r4"]
        assert "*" not in delta["se_r8"] and delta["resnet"] == "(baseline)"
        assert float(t.numbers.set_index("variant").at["se_r4", "p_holm"]) < 0.05
        assert "*: Holm-adjusted p < 0.05" in t.caption
    tables.write_tables(an, tmp_path / "tables")
    assert r"−1.00\* [" in (tmp_path / "tables" / "table10_ratio.md").read_text()   # no stray emphasis


def test_variants_follow_the_spec_order_of_the_runners_manifest(tmp_path):
    variants = {"se_r16": {"model.attention.reduction": 16}, "se_r4": {"model.attention.reduction": 4},
                "max_pool": {"model.attention.pool": "max"}, "resnet": {"model.attention.kind": "none"}}
    spec = write_sweep(tmp_path, "order", variants, [0, 1], lambda v, s: metrics_for(9.0 + len(v) / 10 + s, 1, 1),
                       excitation=False)
    before = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    assert before.order == ["resnet", "se_r4", "se_r16", "max_pool"]          # no manifest: sorted by level
    manifest = {"name": "order", "baseline": "resnet", "variants": [{"name": n} for n in variants],
                "runs": [{"variant": n, "seed": s} for n in variants for s in (0, 1)]}
    (tmp_path / "results" / "order" / "manifest.json").write_text(json.dumps(manifest))
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    assert an.order == ["resnet", "se_r16", "se_r4", "max_pool"]              # the spec's order, baseline first
    t10 = tables.build_tables(an)[0][0]
    assert t10.numbers["variant"].tolist() == ["se_r16", "se_r4", "resnet"]   # baseline row last, as in the paper
    # crossed with the architecture: groups in the order the manifest first names them, each baseline first
    configs = pd.DataFrame({"model.arch": ["resnet32", "resnet20", "resnet32", "resnet20", "resnet20"],
                            "model.attention.kind": ["se", "se", "none", "none", "se"],
                            "model.attention.reduction": [8, 8, 16, 16, 4]},
                           index=["a32", "a20", "base32", "base20", "b20"])
    keys = ["model.arch", "model.attention.kind", "model.attention.reduction"]
    runs = [{"variant": v, "seed": 0} for v in ("a32", "a20", "b20", "base32", "base20")]
    assert factors.variant_order(configs, ["base32", "base20"], keys, {"runs": runs}) == [
        "base32", "a32", "base20", "a20", "b20"]
    assert factors.variant_order(configs, ["base32", "base20"], keys) == ["base20", "b20", "a20", "base32", "a32"]


def test_top5_is_shown_only_with_more_than_ten_classes(ratio, tmp_path):
    from sesweep.training import data
    assert tables.DATASET_CLASSES == data.NUM_CLASSES
    assert tables.class_count(ratio) == 10                                   # digits
    built = tables.build_tables(ratio)[0]
    assert all("top-5 err (%)" not in t.shown.columns for t in built)
    assert "top5_err" in built[0].numbers.columns                            # the CSV keeps it
    assert tables.classes_from_data_id("imagefolder:1000classes:train=9:test=3:0123456789abcdef") == 1000
    assert tables.classes_from_data_id("digits:test_fraction=0.2:split_seed=0") is None
    variants = {k: {**v, "recipe.dataset": "cifar100"} for k, v in RATIO_VARIANTS.items()}
    spec = write_sweep(tmp_path, "c100", variants, [0, 1], lambda v, s: metrics_for(30.0 - len(v) + s, 9.0, 1),
                       excitation=False)
    an = factors.analyze(results.load_sweep(spec, tmp_path / "results"))
    assert tables.class_count(an) == 100
    assert all("top-5 err (%)" in t.shown.columns for t in tables.build_tables(an)[0])


def test_the_operators_table_has_exact_attention_params_and_other_tables_do_not(tmp_path):
    """ECA-Net Table 2's layout: the operator's own cost beside its error, exact (ECA adds tens of params)."""
    an = factor_sweep(tmp_path, "model.attention.excitation", ["mlp", "none", "eca"])
    built = {t.choice.slug: t for t in tables.build_tables(an)[0]}
    shown = built["table2_operators"].shown.set_index("variant")
    assert shown.loc["excitation=eca", "attention params"] == f"{100 * len('excitation=eca'):,}"
    assert list(shown.columns).index("attention params") == list(shown.columns).index("params") + 1
    gate = factor_sweep(tmp_path / "gate", "model.attention.gate", ["sigmoid", "tanh"])
    assert all("attention params" not in t.shown.columns for t in tables.build_tables(gate)[0]
               if t.choice.slug != "overall")
