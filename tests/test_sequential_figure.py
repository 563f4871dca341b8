"""The figure of a sequential sweep's confidence sequences (issue 24): drawn for a sweep with a seed policy and
embedded in the report's sequential section, absent for a fixed-list sweep; the band it plots is the
statistic's own running interval, the one the report's text prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_stats import metrics_for, write_sweep  # tests/ is on sys.path

from sesweep import results
from sesweep.analysis import factors
from sesweep.analysis.figures.sequential import SLUG, sequence_traces, trace_of, y_range
from sesweep.analysis.report import write_report
from sesweep.analysis.seed_allocation import ContrastPair, allocate, contrast_alpha, target_n
from sesweep.analysis.sequential import BETTER, EQUIVALENT, INCONCLUSIVE, WORSE, mixture_c, mixture_cs
from sesweep.seed_policy import SeedPolicy

POLICY = SeedPolicy(start=4, max=20, step=2, margin=0.3, alpha=0.05)
#: mean top-1 error per variant: r=4 a point worse, r=8 the same, r=16 0.15 better (inside the margin), r=2 a
#: third of a point worse (near the margin: likely inconclusive at max)
MEANS = {"resnet": 10.0, "r=4": 11.0, "r=8": 10.0, "r=16": 9.85, "r=2": 10.3}
VARIANTS: dict[str, dict[str, Any]] = {"resnet": {"model.attention.kind": "none"},
                                       **{v: {"model.attention.reduction": int(v[2:])} for v in MEANS if v[:2] == "r="}}


def top1(variant: str, seed: int) -> float:
    """Seed noise of 0.3 points, independent per variant and seed (the paired difference's std is 0.42)."""
    return MEANS[variant] + 0.3 * float(np.random.default_rng([seed, *map(ord, variant)]).standard_normal())


def write_sequential_sweep(root: Path, name: str = "seq", policy: SeedPolicy = POLICY,
                           stopped_at: int | None = None) -> Path:
    """A results folder as a sequential sweep leaves it: only the seeds the policy allocated on these errors are
    recorded (with ``stopped_at``, only those below it: a sweep stopped mid-way), and the manifest carries the
    policy and the plan's runs at max. Returns the results folder."""
    contrasts = [ContrastPair(v, "resnet", f"{v} vs resnet") for v in VARIANTS if v != "resnet"]
    full = {v: {s: top1(v, s) for s in range(policy.max)} for v in VARIANTS}
    alloc = allocate(policy, list(VARIANTS), contrasts, full)

    def outcome(variant: str, seed: int) -> dict[str, float] | str:
        if not alloc.wants(variant, seed) or (stopped_at is not None and seed >= stopped_at):
            return "missing"
        return metrics_for(top1(variant, seed), 1.0, 272_474 + (0 if variant == "resnet" else 10_000))

    write_sweep(root, name, VARIANTS, list(policy.seeds), outcome, extra_spec={"seeds": policy.as_dict()},
                excitation=False)
    folder = root / "results" / name
    manifest = {"name": name, "seed_policy": policy.as_dict(), "baseline": "resnet", "baselines": ["resnet"],
                "runs": [{"variant": v, "seed": s} for v in VARIANTS for s in policy.seeds]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> tuple[factors.Analysis, Path]:
    root = tmp_path_factory.mktemp("seq")
    folder = write_sequential_sweep(root)
    return factors.analyze(results.load_sweep(folder)), root


def test_the_plotted_band_is_the_statistics_running_interval(sequential):
    an, _ = sequential
    found = sequence_traces(an)
    assert found is not None
    traces, alpha = found
    assert alpha == pytest.approx(contrast_alpha(POLICY, 4))
    c = mixture_c(alpha, target_n(POLICY))
    runs = an.sweep.runs
    for t in traces:
        # the differences recomputed from runs.csv, the interval from the statistic's own rule
        err = {v: dict(zip(g["seed"], g["top1_err"], strict=True)) for v, g in runs.groupby("variant")}
        seeds = sorted(set(err[t.variant]) & set(err["resnet"]))
        d = np.array([err[t.variant][s] - err["resnet"][s] for s in seeds])
        lo, hi = mixture_cs(d, alpha, c)
        np.testing.assert_array_equal(t.lo, np.maximum.accumulate(lo))
        np.testing.assert_array_equal(t.hi, np.minimum.accumulate(hi))
        np.testing.assert_allclose(t.mean, np.cumsum(d) / np.arange(1, len(d) + 1))
        assert list(t.n) == list(range(1, len(d) + 1))
        assert t.first_bounded is not None and t.first_bounded > 1     # the first looks are unbounded
    decisions = {t.variant: t.decision for t in traces}
    assert decisions["r=4"] == WORSE and decisions["r=8"] in (EQUIVALENT, INCONCLUSIVE)
    assert set(decisions.values()) <= {BETTER, WORSE, EQUIVALENT, INCONCLUSIVE}  # every contrast settled


@pytest.mark.slow  # > 5 s: out of the fast tier
def test_a_sequential_report_embeds_the_figure_and_a_fixed_list_one_has_none(sequential, tmp_path):
    an, root = sequential
    files = write_report(an, tmp_path / "report")
    slugs = [f.slug for f in files.figures]
    assert slugs.count(SLUG) == 1 and (tmp_path / "report" / "figures" / f"{SLUG}.png").is_file()
    assert next(f for f in files.figures if f.slug == SLUG).problems == ()   # the layout measured clean
    md = (tmp_path / "report" / "report.md").read_text()
    section = md[md.index("## Sequential seeds"):]
    section = section[:section.index("\n## ", 3)]
    assert f"figures/{SLUG}.png" in section and "roughly Gaussian paired seed differences" in section
    assert md.count(f"figures/{SLUG}.png") == 1                          # in its section only, not among Figures
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count(f'alt="{SLUG}"') == 1
    # every panel title names its decision and seeds, as the section's bullets do
    traces, _ = sequence_traces(an) or ([], 0.0)
    for t in traces:
        assert f"{t.label}: {t.decision}, {len(t.n)} seeds" in section

    fixed = factors.analyze(results.load_sweep(write_fixed(root / "fixed")))
    assert sequence_traces(fixed) is None
    plain = write_report(fixed, tmp_path / "plain")
    assert SLUG not in [f.slug for f in plain.figures]
    assert not (tmp_path / "plain" / "figures" / f"{SLUG}.png").exists()
    assert "## Sequential seeds" not in (tmp_path / "plain" / "report.md").read_text()


def write_fixed(root: Path) -> Path:
    write_sweep(root, "fixed", VARIANTS, [0, 1, 2], lambda v, s: metrics_for(top1(v, s), 1.0, 272_474),
                excitation=False)
    return root / "results" / "fixed"


def test_the_y_range_keeps_the_margin_the_mean_and_the_last_interval_and_says_when_it_cuts():
    state = allocate(POLICY, ["a", "b"], [ContrastPair("a", "b", "a vs b")],
                     {"a": {s: 11 + 0.3 * np.sin(s) for s in range(8)}, "b": dict.fromkeys(range(8), 10.0)})
    t = trace_of(state.contrasts[0], POLICY.margin, POLICY.max)
    lo, hi, cut = y_range(t)
    assert lo < -POLICY.margin and hi > max(POLICY.margin, t.hi[-1], *t.mean)
    assert cut == bool(np.nanmax(np.where(np.isfinite(t.hi), t.hi, np.nan)) > hi)
