"""The ``aggregate`` and ``report`` commands: analyse a results folder, write its tables or its report, and
publish them on the sweep's MLflow run when it is tracked.

The analysis itself (:mod:`sesweep.analysis`) reads a results folder and writes files; it never talks to the
runner. Publishing to MLflow is the runner's (:func:`sesweep.runner.tracking.log_sweep_outputs`), so the two
meet here, above both.
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
from sesweep.results import SweepDataError, default_results_root, load_sweep
from sesweep.runner.tracking import log_sweep_outputs

# --------------------------------------------------------------------------------------------------
# sesweep aggregate


def add_aggregate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sesweep aggregate``."""
    parser.add_argument("target", help="a sweep spec (experiments/NAME.yaml → results/NAME) or a results directory")
    parser.add_argument("--results", dest="results_root", type=Path, default=None, metavar="DIR",
                        help="results folder a spec's results are under (default $SESWEEP_RESULTS, else results/)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS/tables)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON on stdout, and nothing else there; its keys are "
                             "stable: folder, files")
    add_storage_arguments(parser)


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """``--storage`` (and ``--data-root``) of ``aggregate`` and ``report``: the results folder from the study."""
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="first rebuild RESULTS/NAME (run JSONs, runs.csv, curves.csv) from the sweep's storage "
                             "(the --storage of sesweep run), on a machine that shares no folder with the workers; "
                             "TARGET is then the sweep spec")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="with --storage: where the data are (run keys identify the data)")


def rebuild(args: argparse.Namespace) -> None:
    """With ``--storage``: write the results folder from the storage before it is read (nothing is trained)."""
    if args.storage is None:
        return
    from sesweep.runner.outputs import rebuild_from_storage
    from sesweep.spec import SpecError

    if not Path(args.target).is_file():
        raise SpecError("--storage", f"{args.target} is not a sweep spec file; with --storage, give the spec "
                                     "(experiments/NAME.yaml)")
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


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sesweep report``."""
    parser.add_argument("target", help="a sweep spec (experiments/NAME.yaml → results/NAME) or a results directory")
    parser.add_argument("--results", dest="results_root", type=Path, default=None, metavar="DIR",
                        help="results folder a spec's results are under (default $SESWEEP_RESULTS, else results/)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: reports/NAME)")
    parser.add_argument("--expected", type=int, default=None,
                        help="how many runs the sweep should have (default: from RESULTS/NAME/manifest.json; "
                             "with a seed policy, the runs it allocated on the recorded results; else unknown)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--no-figures", action="store_true", help="tables and summary only (faster)")
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON on stdout, and nothing else there; its keys are "
                             "stable: markdown, html, figures (slug, caption, png, pdf), notes")
    add_storage_arguments(parser)


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
