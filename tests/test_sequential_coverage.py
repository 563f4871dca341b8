"""The report's coverage of a sequential sweep (issue 24): "expected" is what the seed policy allocated on the
recorded results, not the plan at max; a sweep stopped while contrasts are undecided is partial."""

from __future__ import annotations

import json
from pathlib import Path

from test_sequential_figure import POLICY, VARIANTS, write_fixed, write_sequential_sweep  # tests/ is on sys.path

from sesweep import publish, results
from sesweep.analysis import factors
from sesweep.analysis.sequential_results import sweep_allocation

AT_MAX = POLICY.max * len(VARIANTS)


def coverage_of(folder: Path, out: Path) -> tuple[str, factors.Analysis]:
    files = publish.run_report(folder, out=out, figures=False)
    return files.markdown.read_text(encoding="utf-8"), factors.analyze(results.load_sweep(folder))


def test_a_settled_sequential_sweep_is_complete_at_the_runs_its_policy_allocated(tmp_path):
    text, an = coverage_of(write_sequential_sweep(tmp_path), tmp_path / "r")
    found = sweep_allocation(an)
    assert found is not None
    _, alloc = found
    n = alloc.at_least
    assert n == len(an.sweep.runs) < AT_MAX                      # the policy stopped short of max
    assert f"{n} of {n} runs finished, as the seed policy allocated them on the recorded results (complete: " \
           f"every contrast decided or inconclusive; {AT_MAX} at max)" in text
    assert f"of {AT_MAX} expected runs" not in text and "(partial" not in text
    assert text.count("as the seed policy allocated them") == 2    # the setting sentence and the Runs section


def test_a_sequential_sweep_stopped_while_contrasts_are_undecided_is_partial(tmp_path):
    folder = write_sequential_sweep(tmp_path, stopped_at=6)
    text, an = coverage_of(folder, tmp_path / "r")
    found = sweep_allocation(an)
    assert found is not None
    _, alloc = found
    undecided = sum(c.open for c in alloc.contrasts)
    assert undecided and alloc.at_least > len(an.sweep.runs)     # more seeds allocated than recorded
    assert f"{len(an.sweep.runs)} of {alloc.at_least} runs finished, as the seed policy allocated them on the " \
           f"recorded results (partial: {undecided} of {len(alloc.contrasts)} contrasts undecided, which could " \
           f"take the sweep to {alloc.at_most} runs; {AT_MAX} at max)" in text
    section = text[text.index("## Sequential seeds"):]
    section = section[:section.index("\n## ", 3)]
    assert "saved" not in section                                # no saving claimed while it could still grow
    assert f"The policy has allocated {alloc.at_least} runs so far of {AT_MAX} at max; {undecided} contrasts " \
           f"are still undecided and could take it to {alloc.at_most}." in section

    # an explicit --expected is still the reader's count, the plain sentence
    files = publish.run_report(folder, out=tmp_path / "e", figures=False, expected=7)
    assert f"{len(an.sweep.runs)} of 7 expected runs finished" in files.markdown.read_text(encoding="utf-8")


def test_a_variant_of_the_manifest_with_no_run_yet_counts_its_start_seeds(tmp_path):
    folder = write_sequential_sweep(tmp_path, stopped_at=6)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["runs"] += [{"variant": "r=32", "seed": s} for s in POLICY.seeds]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    text, an = coverage_of(folder, tmp_path / "r")
    found = sweep_allocation(an)
    assert found is not None and found[1].seeds["r=32"] == POLICY.start
    assert f"; {AT_MAX + POLICY.max} at max)" in text


def test_a_sequential_report_says_its_t_intervals_and_p_values_are_descriptive_only(tmp_path):
    """After optional stopping a t interval's 95 % and a p-value's α do not hold: every place that prints them
    (tables, comparisons, caveats) says so, and points to the confidence sequences that decided."""
    text, _ = coverage_of(write_sequential_sweep(tmp_path), tmp_path / "r")
    note = "descriptive only"
    caveats = text.split("## Caveats", 1)[1].split("\n## ", 1)[0]
    comparisons = text.split("## Comparisons", 1)[1].split("\n## ", 1)[0]
    assert note in caveats and note in comparisons and "confidence sequence" in caveats
    headline = text.split("## Verdict", 1)[0]
    assert note in headline  # the first table a reader sees carries it too


def test_a_fixed_list_report_has_no_optional_stopping_note(tmp_path):
    text, _ = coverage_of(write_fixed(tmp_path / "fixed"), tmp_path / "r")
    assert "descriptive only" not in text
