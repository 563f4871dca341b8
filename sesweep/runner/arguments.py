"""``sesweep run``, ``status`` and ``overhead``: their arguments (and defaults) and the reading of the sweep file
into ``args.plan``, torch-, optuna- and mlflow-free (a fast --help, a fast refusal of a sweep file that is not
there or not valid); their handlers are :mod:`sesweep.runner.commands` and :mod:`sesweep.runner.overhead`
(imported by :data:`sesweep.cli.COMMANDS` after these)."""

from __future__ import annotations

import argparse

from sesweep.plan import load_plan
from sesweep.results import RESULTS_ENV, default_results_root
from sesweep.runner.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_HEARTBEAT, GRACE_INTERVALS
from sesweep.runner.outage import DEFAULT_STORAGE_PATIENCE
from sesweep.spec import SpecError


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Run, resume or join a sweep: exit 0 when every run is done, 1 when some failed or are left, "
                          "2 on a bad spec.")
    parser.add_argument("sweep", metavar="FILE", help="sweep spec, e.g. experiments/smoke.yaml")
    _common_arguments(parser)
    parser.add_argument("--workers", type=int, default=1,
                        help="local worker processes (default 1); each gets cores/N torch threads "
                             "and, on a machine with several GPUs, GPU i mod count")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per worker (default: cores / workers)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="read the data from DIR instead of the spec's recipe.data_root (run keys identify "
                             "the data's content, not where they live: the same data moved keep their keys)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: sqlite:///RESULTS/NAME/mlflow.db)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    parser.add_argument("--heartbeat", type=int, default=DEFAULT_HEARTBEAT, metavar="SECONDS",
                        help=f"heartbeat interval of a running run (default {DEFAULT_HEARTBEAT}); a run silent "
                             f"for {GRACE_INTERVALS} intervals is taken as lost and run again")
    parser.add_argument("--grace", type=int, default=None, metavar="SECONDS",
                        help=f"seconds without heartbeat before a run is lost (default {GRACE_INTERVALS} x heartbeat)")
    parser.add_argument("--checkpoint-every", default=DEFAULT_CHECKPOINT_EVERY, metavar="N|DURATION",
                        help=f"checkpoint each run at epoch ends into RESULTS/NAME/checkpoints/ (default "
                             f"{DEFAULT_CHECKPOINT_EVERY}): N = every N epochs, a duration (90s, 5m, 1h) = at the "
                             "first epoch end that long after the last one, 0 = never; a run whose worker died "
                             "resumes from its last checkpoint, on any worker")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the checkpoints of finished runs (default: removed once the run is recorded)")
    parser.add_argument("--storage-patience", default=f"{DEFAULT_STORAGE_PATIENCE:.0f}", metavar="SECONDS|DURATION",
                        help=f"how long a worker waits out a storage that does not answer, retrying with back-off "
                             f"(default {DEFAULT_STORAGE_PATIENCE:.0f} s; 90s, 10m, 1h also work); a run finished "
                             "meanwhile is kept in the results folder and recorded by the next run")
    parser.add_argument("--retry-failed", action="store_true",
                        help="give runs that failed for good a fresh --max-retries budget")
    parser.add_argument("--no-wait", action="store_true",
                        help="exit when nothing is left to take, instead of waiting for runs other workers hold")
    parser.add_argument("--dry-run", action="store_true", help="validate and list the runs; write nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no per-run lines")
    parser.add_argument("--json", action="store_true",
                        help="print the result as JSON on stdout, and nothing else there (progress and logs go to "
                             "stderr); its keys are stable. With --dry-run the plan: the manifest's keys, its runs "
                             "with their cost, unresolved and on_disk (as `sesweep status --json`); else the final "
                             "status, as `sesweep status --json`, and results")
    parser.epilog = ("exit status: 0 when every run is done (finished or diverged; a sequential sweep: every run "
                     "its seed policy wants), 1 when runs failed or are left, "
                     "2 on a bad spec or data that are not there (checked before anything is queued)")


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Counts of done / running / failed / pending runs, the ETA, and a per-run table; exit 1 "
                          "when a run failed.")
    parser.add_argument("sweep", metavar="FILE", help="sweep spec, e.g. experiments/smoke.yaml")
    _common_arguments(parser)
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="read the data (their identity is part of every run key) from DIR instead of the "
                             "spec's recipe.data_root")
    parser.add_argument("--json", action="store_true",
                        help="print the status as JSON on stdout, and nothing else there; its keys are stable: "
                             "name, total, done, finished, diverged, running, failed, pending, eta_seconds, rows, "
                             "older_results, unresolved, notes, complete, sequential (a sequential sweep's contrast "
                             "lines, else empty); pending_at_least and pending_at_most (of the pending runs, those "
                             "that will run and those that still could), eta_seconds_at_least and "
                             "eta_seconds_at_most (eta_seconds is the latter): a sequential sweep's, else null")
    parser.epilog = ("exit status: 0 when no run has failed (pending and running runs included; a diverged run is "
                     "a result, not a failure), 1 when a run failed (for good: after --max-retries retries, "
                     "counted with the same --max-retries as the run), 2 on a bad spec")


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL shared by every worker (default: sqlite:///RESULTS/NAME/optuna.db; "
                             "e.g. postgresql+psycopg://user:pass@host/db for several machines)")
    parser.add_argument("--results", default=default_results_root(), metavar="DIR",
                        help=f"results folder (default ${RESULTS_ENV}, else results/)")
    parser.add_argument("--max-retries", type=int, default=1,
                        help="times a failed run is run again before it is left failed (default 1)")


def add_overhead_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Run a sweep from scratch and print where its wall time went."
    parser.add_argument("sweep", metavar="FILE", help="sweep spec to run from scratch, e.g. experiments/smoke.yaml")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, as sesweep run (default 1)")
    parser.add_argument("--no-tracking", action="store_true", help="run without MLflow (to see what it costs)")
    parser.add_argument("--json", action="store_true", help="print the breakdown as JSON on stdout")
    parser.epilog = ("runs every run of the sweep (nothing is reused: a temporary results folder); the data set's "
                     "decoded cache is reused when there is one, as it is for users")


# --------------------------------------------------------------------------------------------------
# reading the sweep file (after parsing, before the handler's module is imported)


def read_run(args: argparse.Namespace) -> None:
    """``run``: ``args.plan``, the sweep file read and checked (its keys and values first; its models then, which
    imports torch), reading its data from ``--data-root``."""
    args.plan = load_plan(args.sweep).with_data_root(args.data_root)


def read_status(args: argparse.Namespace) -> None:
    """``status``: ``args.plan`` as for ``run``, less the model checks (status builds no model: it starts without
    torch)."""
    args.plan = load_plan(args.sweep, models=False).with_data_root(args.data_root)


def read_overhead(args: argparse.Namespace) -> None:
    """``overhead``: a bad ``--workers`` or sweep file, refused before anything runs."""
    if args.workers < 1:
        raise SpecError("--workers", f"{args.workers} is out of range; allowed: >= 1")
    load_plan(args.sweep)
