"""``sesweep aggregate`` and ``report``: their arguments and the first check of their TARGET, free of the analysis
and of torch, optuna and mlflow (a fast --help, a fast refusal of a TARGET that holds no results); their
handlers are :mod:`sesweep.publish` (imported by :data:`sesweep.cli.COMMANDS` after these)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sesweep.results import find_sweep
from sesweep.spec import SpecError


def add_aggregate_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sesweep aggregate``."""
    parser.description = ("Aggregate a sweep's runs: mean ± CI per variant, paired deltas vs the baseline, paper-style "
                          "tables.")
    parser.add_argument("target", help="a sweep spec (experiments/NAME.yaml → results/NAME) or a results directory")
    parser.add_argument("--results", dest="results_root", type=Path, default=None, metavar="DIR",
                        help="results folder a spec's results are under (default $SESWEEP_RESULTS, else results/)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RESULTS/tables)")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON on stdout, and nothing else there; its keys are "
                             "stable: folder, files")
    add_storage_arguments(parser)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``sesweep report``."""
    parser.description = "Write reports/NAME/report.md and a self-contained report.html (tables, figures, summary)."
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


def add_storage_arguments(parser: argparse.ArgumentParser) -> None:
    """``--storage`` (and ``--data-root``) of ``aggregate`` and ``report``: the results folder from the study."""
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="first rebuild RESULTS/NAME (run JSONs, runs.csv, curves.csv) from the sweep's storage "
                             "(the --storage of sesweep run), on a machine that shares no folder with the workers; "
                             "TARGET is then the sweep spec")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="with --storage: where the data are (run keys identify the data)")


# --------------------------------------------------------------------------------------------------
# the first check of TARGET (after parsing, before the handler's module is imported)


def read_results(args: argparse.Namespace) -> None:
    """``aggregate``, ``report``: TARGET must be a sweep file or a results folder, with a finished run
    (:func:`sesweep.results.find_sweep`); with ``--storage`` (the folder is rebuilt first), a sweep file."""
    if args.storage is not None:
        check_storage_target(args.target)
    else:
        find_sweep(args.target, args.results_root)


def check_storage_target(target: str) -> None:
    """With ``--storage``, TARGET is the sweep file (the results folder is rebuilt from the storage)."""
    if not Path(target).is_file():
        raise SpecError("--storage", f"{target} is not a sweep spec file; with --storage, give the spec "
                                     "(experiments/NAME.yaml)")
