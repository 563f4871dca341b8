"""The report: self-contained HTML, the tables and the summary in it, honest wording for small n."""

from __future__ import annotations

import argparse
import base64
import html
import itertools
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

from sesweep import publish, publish_arguments, results
from sesweep.analysis import factors, figures, report, stats


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The partial ratio sweep, reported with two figures (the spec's figures: list) and 12 expected runs."""
    root = tmp_path_factory.mktemp("report")
    spec = write_sweep(root, "ratio", RATIO_VARIANTS, [0, 1, 2], partial_ratio_outcome,
                       extra_spec={"figures": ["ratio", "curves"]})
    files = publish.run_report(spec, results_root=root / "results", reports_root=root / "reports", expected=12)
    return root, files


def test_html_is_self_contained(built):
    _, files = built
    page = files.html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.I)
    assert "<link" not in page and "<script" not in page and "@import" not in page and "url(" not in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == len(files.figures) >= 2       # ratio, curves (+ excitation: drawn whenever saved)
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
        assert "se_r4 vs resnet: one matched seed only" in text and "too small for a test" in text
        assert "Table 10 layout: reduction ratio r" in text
        assert "model.attention.reduction: 8" in text                       # the spec's YAML
        assert "torch: 2.5.1" in text and "device: cpu" in text and "code version" in text
        assert "Adaptive SE" not in text and "fixed-r" not in text         # no adaptive variant: no section
    assert page.count("<table") == 5          # Table 10, overall, runs per variant, runs not finished, every run
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
    files = publish.run_report(spec, results_root=tmp_path / "results", out=tmp_path / "r", figures=False)
    md = files.markdown.read_text(encoding="utf-8")
    assert "8 of 15 expected runs finished (partial)" in md
    assert "No run recorded yet for 1 variant of the manifest: se_r2." in md


def comparison(diffs: tuple[float, ...], label: str = "r=8 vs resnet") -> factors.Contrast:
    comp = stats.Comparison("r=8", "resnet", "top1_err", tuple(range(len(diffs))), diffs, stats.summarize(diffs),
                            stats.paired_t_p(diffs), stats.sign_flip_p(diffs))
    return factors.Contrast(None, label, comp)


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
    publish_arguments.add_report_arguments(parser)
    args = parser.parse_args(["results/ratio", "--out", str(tmp_path / "r"), "--no-figures", "--expected", "12"])
    assert publish.cmd_report(args) == 0
    assert "wrote" in capsys.readouterr().out
    page = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "<img" not in page and "8 of 12 expected runs finished" in page
    assert "Sweep spec (experiments/ratio.yaml)" in page
    assert publish.cmd_report(parser.parse_args(["results/none"])) == 2


def test_adaptive_section_summary_and_figures(tmp_path):
    spec = write_adaptive_sweep(tmp_path, extra_spec={"tables": ["ratio", "adaptive"], "figures": ["adaptive"]})
    files = publish.run_report(spec, results_root=tmp_path / "results", out=tmp_path / "r", expected=21)
    assert [f.slug for f in files.figures] == ["adaptive_pareto", "adaptive_ratios", "adaptive_trajectories"]
    md = files.markdown.read_text(encoding="utf-8")
    page = files.html.read_text(encoding="utf-8")
    section = md[md.index("## Adaptive SE vs the fixed ratio of equal cost"):md.index("## Environment")]
    assert "| adaptive | cost weight | variant |" in section and "| dynamic | 1 | dynamic-w1 | 3/3 |" in section
    assert all(f"figures/{f.png.name}" in section for f in files.figures)            # the figures are here …
    assert "## Figures" not in md and md.count("adaptive SE against the fixed ratio of equal cost") == 1  # … only
    assert page.count("<img") == 3 and re.search(r'<h2 id="[^"]+">Adaptive SE vs the fixed ratio of equal cost</h2>',
                                                  page)
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


# --------------------------------------------------------------------------------------------------
# a report that reads like a results section (issue 10)


def h2(md: str) -> list[str]:
    return [line[3:] for line in md.splitlines() if line.startswith("## ")]


def section(md: str, title: str) -> str:
    """The Markdown of one level-2 section (up to the next one)."""
    start = md.index(f"\n## {title}\n")
    end = md.find("\n## ", start + 1)
    return md[start:end if end >= 0 else len(md)]


def github_anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def md_table(text: str) -> list[dict[str, str]]:
    """The first Markdown table in ``text`` as rows of header → cell."""
    lines = list(itertools.takewhile(lambda ln: ln.startswith("|"),
                                     itertools.dropwhile(lambda ln: not ln.startswith("|"), text.splitlines())))
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def test_the_report_is_ordered_like_a_results_section(built):
    _, files = built
    md = files.markdown.read_text(encoding="utf-8")
    heads = h2(md)
    assert heads[0] == "Contents" and heads[1].startswith("Headline: Table 10")
    assert heads[2] == "Verdict"
    for before, after in (("Verdict", "Tables"), ("Tables", "Figures"), ("Figures", "Caveats"),
                          ("Caveats", "Comparisons"), ("Comparisons", "Runs"), ("Runs", "Environment")):
        assert heads.index(before) < heads.index(after)
    assert heads[-1] == "Appendix: every run"
    # the description comes before the contents, the headline table is the first table of the report
    assert md.index("Synthetic ratio sweep for tests.") < md.index("## Contents")
    first = md_table(md[md.index("## Headline"):])
    by_variant = {row["variant"]: row for row in first}
    assert by_variant["se_r16"]["SENet top-1 (%)"] == "22.28" and by_variant["se_r4"]["SENet top-1 (%)"] == "22.25"
    assert by_variant["resnet"]["SENet top-1 (%)"] == "23.30"
    assert "r" in first[0] and list(by_variant) == ["se_r4", "se_r8", "se_r16", "resnet"]
    headline = section(md, heads[1])
    assert "ImageNet SE-ResNet-50" in headline and "only the direction" in headline
    assert "figures/ratio.png" in headline                       # the key figure: the headline factor's
    assert "figures/ratio.png" not in section(md, "Figures")      # shown once
    page = files.html.read_text(encoding="utf-8")
    assert page.index("<table") > page.index('id="headline') and "SENet top-1 (%)" in page[:page.index("</table>")]


def test_the_table_of_contents_links_every_section(built):
    _, files = built
    page = files.html.read_text(encoding="utf-8")
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    links = re.findall(r'<a href="#([^"]+)"', page)
    h2_ids = re.findall(r'<h2 id="([^"]+)"', page)
    assert links and set(links) <= ids and set(h2_ids) - {"contents"} == set(links)
    assert len(h2_ids) == len(re.findall(r"<h2", page))           # every section has an anchor
    md = files.markdown.read_text(encoding="utf-8")
    md_links = re.findall(r"\]\(#([^)]+)\)", section(md, "Contents"))
    assert md_links == [github_anchor(h) for h in h2(md)[1:]]


def test_verdicts_one_line_per_factor(built):
    _, files = built
    md = files.markdown.read_text(encoding="utf-8")
    verdict = [ln[2:] for ln in section(md, "Verdict").splitlines() if ln.startswith("- ")]
    assert [v.split(":")[0] for v in verdict if not v.startswith("SENet")] == ["vs resnet", "r (vs r=16)"]
    assert verdict[0] == ("vs resnet: se_r8 better than resnet by 0.98 points (Holm p=0.049, n=2); se_r4 one matched "
                          "seed only (Δ −0.70, no test); se_r16 −0.60 points on both seeds, no test (zero spread).")
    assert verdict[1].startswith("r (vs r=16): r=4 one matched seed only")
    assert "r=4 22.25%, r=8 22.26%, r=16 22.28%" in verdict[2]                  # what SENet found at these levels
    assert verdict[2].endswith("Here the same levels are all below resnet (Δ −0.98 to −0.60 points, 1 of 3 "
                               "significant): SENet's direction.")


def test_caveats_are_stated_once_and_the_comparisons_lack_them(built):
    _, files = built
    md = files.markdown.read_text(encoding="utf-8")
    page = html.unescape(files.html.read_text(encoding="utf-8"))
    for text in (md, page):
        assert text.count("one degree of freedom") == 1
        assert text.count("cannot reach p < 0.05") == 1
    assert "one degree of freedom" in section(md, "Caveats")
    assert "5 epochs" in section(md, "Caveats")                                        # the schedule
    assert "SE's gain does not appear" in section(md, "Caveats")
    comparisons = section(md, "Comparisons")
    assert "se_r8 lowers top-1 error by 0.98 points vs resnet (95% CI" in comparisons
    assert "treat as indicative" not in comparisons


def test_the_appendix_lists_every_run(built):
    root, files = built
    runs = results.read_runs(root / "results" / "ratio" / "runs.csv")
    md = files.markdown.read_text(encoding="utf-8")
    rows = md_table(section(md, "Appendix: every run"))
    assert len(rows) == len(runs) == 10
    assert list(rows[0]) == ["variant", "seed", "status", "top-1 err (%)", "params", "epochs", "run key"]
    assert [(r["variant"], r["seed"]) for r in rows[:2]] == [("resnet", "0"), ("resnet", "1")]
    assert {r["status"] for r in rows} == {"finished", "diverged", "failed"}
    assert all(len(r["run key"]) == 8 for r in rows)
    page = files.html.read_text(encoding="utf-8")
    appendix = page[page.index('id="appendix'):]
    assert appendix.count("<tr>") == len(runs) + 1


def test_a_sweep_without_comparisons_does_not_speak_of_significance(built, tmp_path):
    _, files = built
    assert "Significant: Holm-adjusted p < 0.05" in section(files.markdown.read_text(encoding="utf-8"), "Verdict")
    # two recipes of one SE net and no baseline (like experiments/precision-cpu.yaml): nothing is tested
    variants = {"se_r4": {"recipe.precision": "fp32"}, "se_r8": {"recipe.precision": "bf16"}}
    spec = write_sweep(tmp_path, "plain", variants, [0, 1], partial_ratio_outcome, baseline=None, excitation=False)
    alone = publish.run_report(spec, results_root=tmp_path / "results", reports_root=tmp_path / "reports",
                               figures=False)
    verdict = section(alone.markdown.read_text(encoding="utf-8"), "Verdict")
    assert "Significant" not in verdict and "not compared by a test" in verdict
