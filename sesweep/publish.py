"""The ``aggregate`` and ``report`` commands: analyse a results folder, write its tables or its report, and
publish them on the sweep's MLflow run when it is tracked.

The analysis itself (:mod:`sesweep.analysis`) reads a results folder and writes files; it never talks to the
runner. Publishing to MLflow is the runner's (:func:`sesweep.runner.tracking.log_sweep_outputs`), so the two
meet here, above both. Their arguments, and the first check of TARGET: :mod:`sesweep.publish_arguments`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sesweep.analysis.coverage import expected_runs
from sesweep.analysis.factors import analyze
from sesweep.analysis.figures import PAPER_DIR
from sesweep.analysis.report import ReportFiles, write_report
from sesweep.analysis.tables import write_metrics, write_tables
from sesweep.json_output import print_json
from sesweep.publish_arguments import check_storage_target
from sesweep.results import SweepDataError, default_results_root, load_sweep
from sesweep.runner.tracking import log_sweep_outputs

# --------------------------------------------------------------------------------------------------
# sesweep aggregate


def rebuild(args: argparse.Namespace) -> None:
    """With ``--storage``: write the results folder from the storage before it is read (nothing is trained)."""
    if args.storage is None:
        return
    from sesweep.runner.outputs import rebuild_from_storage

    check_storage_target(args.target)
    rebuild_from_storage(args.target, args.storage, args.results_root or default_results_root(), args.data_root)


def run_aggregate(target: str | Path, *, results_root: Path | None = None, out: Path | None = None,
                  confidence: float = 0.95) -> list[Path]:
    """Load a sweep, aggregate it and write its tables; returns the files written."""
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {confidence}")
    sweep = load_sweep(target, results_root)
    an = analyze(sweep, confidence)
    paths = write_tables(an, out if out is not None else sweep.results_dir / "tables")
    paths = [*paths, write_metrics(an, (out.parent if out is not None else sweep.results_dir) / "metrics.json")]
    log_sweep_outputs(sweep.results_dir, "tables", paths)
    return paths


def cmd_aggregate(args: argparse.Namespace) -> int:
    """Aggregate a sweep's runs: mean ± CI per variant, paired deltas vs the baseline, paper-style tables."""
    rebuild(args)
    try:
        paths = run_aggregate(args.target, results_root=args.results_root, out=args.out, confidence=args.confidence)
    except (SweepDataError, ValueError) as exc:
        print(f"sesweep aggregate: error: {exc}", file=sys.stderr)
        return 2
    folder = paths[0].parent if paths else Path(".")
    if getattr(args, "json", False):
        print_json(args, {"folder": str(folder), "files": [str(p) for p in paths]})
        return 0
    print(f"wrote {len(paths)} files to {folder}: {', '.join(sorted({p.stem for p in paths}))}")
    return 0

# --------------------------------------------------------------------------------------------------
# sesweep report


def run_report(target: str | Path, *, results_root: Path | None = None, out: Path | None = None,
               reports_root: Path | None = None, expected: int | None = None, confidence: float = 0.95,
               figures: bool = True) -> ReportFiles:
    """Load, analyse and report a sweep.

    ``expected`` (the number of runs the sweep should have) defaults to the runner's manifest.json; for a sweep
    with a seed policy, to the runs the policy allocated on the recorded results (not the plan at max); else
    to unknown.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"--confidence must be in (0, 1), got {confidence}")
    sweep = load_sweep(target, results_root)
    an = analyze(sweep, confidence)
    note = ""
    if expected is None:
        expected, note = expected_runs(sweep)
    folder = out if out is not None else (reports_root or Path("reports")) / sweep.name
    files = write_report(an, folder, expected=expected, figures=figures, notes=[note] if note else [])
    log_sweep_outputs(sweep.results_dir, "report", [files.markdown, files.html, *files.figures])
    return files


def cmd_report(args: argparse.Namespace) -> int:
    """Write reports/NAME/report.md and a self-contained report.html (tables, figures, summary)."""
    rebuild(args)
    try:
        files = run_report(args.target, results_root=args.results_root, out=args.out, expected=args.expected,
                           confidence=args.confidence, figures=not args.no_figures)
    except (SweepDataError, ValueError) as exc:
        print(f"sesweep report: error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print_json(args, {"markdown": str(files.markdown), "html": str(files.html),
                          "figures": [{"slug": f.slug, "caption": f.caption, "png": str(f.png), "pdf": str(f.pdf)}
                                      for f in files.figures],
                          "notes": list(files.notes)})
        return 0
    print(f"wrote {files.markdown}, {files.html} and {len(files.figures)} figures: PNG in "
          f"{files.markdown.parent / 'figures'}, PDF in {files.markdown.parent / PAPER_DIR}")
    return 0
