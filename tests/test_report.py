"""The report: self-contained HTML, the tables and the summary in it, honest wording for small n."""

from __future__ import annotations

import argparse
import base64
import json
import math
import re

import pytest
from test_stats import (  # tests/ is on sys.path
    RATIO_VARIANTS,
    partial_ratio_outcome,
    write_adaptive_sweep,
    write_sweep,
)

from sesweep import figures, report, stats


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The partial ratio sweep, reported with two figures (the spec's figures: list) and 12 expected runs."""
    root = tmp_path_factory.mktemp("report")
    spec = write_sweep(root, "ratio", RATIO_VARIANTS, [0, 1, 2], partial_ratio_outcome,
                       extra_spec={"figures": ["ratio", "curves"]})
    files = report.run_report(spec, results_root=root / "results", reports_root=root / "reports", expected=12)
    return root, files


def test_html_is_self_contained(built):
    _, files = built
    page = files.html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.I)
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(files.figures) == 2
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_and_markdown_hold_the_tables_summary_and_spec(built):
    root, files = built
    page = files.html.read_text(encoding="utf-8")
    md = files.markdown.read_text(encoding="utf-8")
    for text in (page, md):
        assert "Sweep report: ratio" in text and "Synthetic ratio sweep for tests." in text
        assert "8 of 12 expected runs finished (partial)" in text
        assert "1 run diverged (se_r8 seed 1)" in text and "1 run failed (se_r16 seed 2)" in text
        assert "r=4 vs resnet: one matched seed only" in text and "too small for a test" in text
        assert "Table 10 layout: reduction ratio r" in text
        assert "model.attention.reduction: 8" in text                       # the spec's YAML
        assert "torch: 2.5.1" in text and "device: cpu" in text and "code version" in text
        assert "Adaptive SE" not in text and "fixed-r" not in text         # no adaptive variant: no section
    assert page.count("<table") == 4          # runs per variant, runs not finished, Table 10, overall
    assert "<th>top-1 err (%)</th>" in page and "<td>1/3</td>" in page
    assert "| r | variant | top-1 err (%) |" in md
    for link in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (files.markdown.parent / link).is_file()
    assert files.markdown.parent == root / "reports" / "ratio"


def test_expected_runs_and_unseen_variants_come_from_the_runners_manifest(tmp_path):
    spec = write_sweep(tmp_path, "ratio", RATIO_VARIANTS, [0, 1, 2], partial_ratio_outcome)
    names = [*RATIO_VARIANTS, "se_r2"]
    manifest = {"name": "ratio", "baseline": "resnet", "variants": [{"name": n} for n in names],
                "runs": [{"variant": n, "seed": s} for n in names for s in (0, 1, 2)]}
    (tmp_path / "results" / "ratio" / "manifest.json").write_text(json.dumps(manifest))
    files = report.run_report(spec, results_root=tmp_path / "results", out=tmp_path / "r", figures=False)
    md = files.markdown.read_text(encoding="utf-8")
    assert "8 of 15 expected runs finished (partial)" in md
    assert "No run recorded yet for 1 variant of the manifest: se_r2." in md


def comparison(diffs: tuple[float, ...], label: str = "r=8 vs resnet") -> stats.Contrast:
    comp = stats.Comparison("r=8", "resnet", "top1_err", tuple(range(len(diffs))), diffs, stats.summarize(diffs),
                            stats.paired_t_p(diffs), stats.sign_flip_p(diffs))
    return stats.Contrast(None, label, comp)


def test_summary_wording():
    # d = (−0.3, −0.4, −0.5): mean −0.4, sd 0.1, t = −4√3 ≈ −6.93, df 2: p = 1 − |t|/√(2 + t²) = 1 − √(48/50)
    sig = report.describe_contrast(comparison((-0.3, -0.4, -0.5)))
    half = stats.t_quantile(3) * 0.1 / math.sqrt(3)
    assert sig == (f"r=8 lowers top-1 error by 0.40 points vs resnet (95% CI {0.4 - half:.2f}–{0.4 + half:.2f}, "
                   f"paired t p={1 - math.sqrt(48 / 50):.3f}, sign-flip p=0.25, n=3).")
    ns = report.describe_contrast(comparison((0.5, -0.3, 0.1), "pool=max vs pool=avg"))
    assert ns.startswith("pool=max vs pool=avg: no significant difference in top-1 error (Δ +0.10 points")
    assert "n=3" in ns
    assert "n=1 is too small for a test" in report.describe_contrast(comparison((-0.7,)))
    assert "no matched seeds" in report.describe_contrast(comparison(()))
    assert "one degree of freedom" in report.describe_contrast(comparison((-0.2, -0.6)))


def test_results_directory_target_finds_the_spec_and_runs_without_figures(built, tmp_path, monkeypatch, capsys):
    root, _ = built
    monkeypatch.chdir(root)
    parser = argparse.ArgumentParser()
    report.add_report_arguments(parser)
    args = parser.parse_args(["results/ratio", "--out", str(tmp_path / "r"), "--no-figures", "--expected", "12"])
    assert report.cmd_report(args) == 0
    assert "wrote" in capsys.readouterr().out
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page and "8 of 12 expected runs finished" in page
    assert "Sweep spec (experiments/ratio.yaml)" in page
    assert report.cmd_report(parser.parse_args(["results/none"])) == 2


def test_adaptive_section_summary_and_figures(tmp_path):
    spec = write_adaptive_sweep(tmp_path, extra_spec={"tables": ["ratio", "adaptive"], "figures": ["adaptive"]})
    files = report.run_report(spec, results_root=tmp_path / "results", out=tmp_path / "r", expected=21)
    assert [f.slug for f in files.figures] == ["adaptive_pareto", "adaptive_ratios", "adaptive_trajectories"]
    md = files.markdown.read_text(encoding="utf-8")
    page = files.html.read_text(encoding="utf-8")
    section = md[md.index("## Adaptive SE vs the fixed ratio of equal cost"):md.index("## Environment")]
    assert "| adaptive | cost weight | variant |" in section and "| dynamic | 1 | dynamic-w1 | 3/3 |" in section
    assert all(f"figures/{f.png.name}" in section for f in files.figures)            # the figures are here …
    assert "## Figures" not in md and md.count("adaptive SE against the fixed ratio of equal cost") == 1  # … only
    assert page.count("<img") == 3 and "<h2>Adaptive SE vs the fixed ratio of equal cost</h2>" in page
    for text in (md, page):
        assert ("learned-w1 (learnable, cost weight 1) reaches 7.90% top-1 error (n=3) at 6.000k SE params; the "
                "fixed-r curve at equal SE params gives 8.57%, a difference of −0.67 points") in text
        assert "learned-w1 lowers top-1 error by 0.50 points vs r=4 (the fixed ratio nearest in SE params" in text
        assert "learned-w4 (learnable, cost weight 4) reaches 9.50% top-1 error (n=3) at 1.500k SE params, " \
               "outside the fixed-r range (2.00k–16.00k SE params)" in text
        assert ("dynamic-w1 (dynamic, cost weight 1) reaches 8.30% top-1 error (n=3) at 16.00k allocated SE params "
                "(its soft mask computes every allocated unit; expected active width 50% of them per test image, "
                "a width, not a cost); the fixed-r curve at equal SE params gives 8.00%") in text
        assert "expected SE params" not in text and "†" not in text
    assert figures.is_adaptive_figure(files.figures[0])
