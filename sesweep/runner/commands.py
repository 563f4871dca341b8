"""``sesweep run`` and ``sesweep status``: their arguments and handlers."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from sesweep.plan import Plan, check_data, load_plan
from sesweep.results import RESULTS_ENV, default_results_root, sweep_dir
from sesweep.runner import precision
from sesweep.runner.config import DEFAULT_CHECKPOINT_EVERY, DEFAULT_HEARTBEAT, GRACE_INTERVALS, SweepConfig
from sesweep.runner.outage import DEFAULT_STORAGE_PATIENCE
from sesweep.runner.status import SweepStatus, sweep_status
from sesweep.runner.sweep import require_data, run_sweep


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
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


def cmd_run(args: argparse.Namespace) -> int:
    """Run, resume or join a sweep: exit 0 when every run is done, 1 when some failed or are left, 2 on a bad spec."""
    plan = load_plan(args.sweep).with_data_root(args.data_root)
    costs = _check_up_front(args, plan)
    if not args.quiet and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger("sesweep").setLevel(logging.INFO)
    if args.dry_run:
        return _dry_run(args, plan, costs)
    require_data(plan)  # before anything is written or started
    check_data(plan)  # an error every run would fail with at data loading: one line now, not N failed runs
    try:
        status = run_sweep(plan, SweepConfig.from_args(args, plan.name))
    except KeyboardInterrupt:
        print(f"sesweep run: interrupted; the same command resumes {plan.name}", file=sys.stderr)
        return 130
    if args.json:
        from sesweep.json_output import print_json

        print_json(args, {**status_json(status), "results": str(sweep_dir(plan, args.results))})
    elif not args.quiet:
        print(status.summary())
        print(f"results: {sweep_dir(plan, args.results)}/runs.csv")
    return 0 if status.succeeded else 1


def _check_up_front(args: argparse.Namespace, plan: Plan) -> dict[str, tuple[dict[str, Any], str]]:
    """What ``run`` and ``--dry-run`` both refuse before anything is read or written, besides the spec itself
    and the data: a ``--storage`` that cannot be a database, and a sweep whose training compute is above its
    ``max_train_flop``. Returns each variant's model cost (for the manifest)."""
    from sesweep.budget import check_compute, variant_costs
    from sesweep.runner.storage_url import check_storage_url

    if args.storage is not None:
        check_storage_url(args.storage)
    costs = variant_costs(plan)
    check_compute(plan, costs)
    return costs


def _dry_run(args: argparse.Namespace, plan: Plan, costs: dict[str, tuple[dict[str, Any], str]]) -> int:
    """The plan, its manifest and what is on disk; then the data checks ``run`` makes (downloading nothing):
    exit 2 with run's one-line refusal where ``run`` would refuse, else 0. Writes nothing."""
    from sesweep.budget import train_flop

    config = SweepConfig.from_args(args, plan.name)
    plan = precision.settle_read_only(plan, args.results)  # the keys the runs will have
    status = run_sweep(plan, config, dry_run=True)
    if args.json:
        from sesweep.json_output import print_json

        print_json(args, {**plan.manifest(), "unresolved": plan.unresolved, "runs": manifest_rows(plan, costs),
                          "train_flop": train_flop(plan, costs)[0], "on_disk": status_json(status)})
    else:
        print(plan.describe())
        print(manifest_table(plan, costs))
        print(status.summary().replace(f"sweep {plan.name}: ", "already on disk: ", 1))
        for line in status.notes():
            print(line)
    sys.stdout.flush()
    require_data(plan)
    check_data(plan, download=False)
    return 0


def status_json(status: SweepStatus) -> dict[str, Any]:
    """A sweep's status as ``--json`` prints it: the counts, the rows, the notes and whether it is complete."""
    return {**status.to_dict(), "notes": status.notes(), "complete": status.complete}


def manifest_costs(plan: Plan) -> dict[str, tuple[dict[str, Any], str]]:
    """Each variant's model cost (params, SE params, MACs at the recipe's input size) and "*" where estimated
    (:func:`sesweep.budget.variant_costs`: the data not on this machine; built once per distinct model)."""
    from sesweep.budget import variant_costs

    return variant_costs(plan)


def manifest_rows(plan: Plan, costs: dict[str, tuple[dict[str, Any], str]] | None = None) -> list[dict[str, Any]]:
    """Every run with its key and its model's cost, for ``--dry-run --json`` (``estimated``: see
    :func:`manifest_costs`)."""
    costs = manifest_costs(plan) if costs is None else costs
    return [{"variant": run.variant, "seed": run.seed, "run_key": run.key,
             **{k: costs[run.variant][0][k] for k in ("params", "se_params", "macs", "input_size")},
             "estimated": bool(costs[run.variant][1])} for run in plan.runs]


def manifest_table(plan: Plan, costs: dict[str, tuple[dict[str, Any], str]] | None = None) -> str:
    """Every run with its key and its model's cost (params, SE params, MACs at the recipe's input size)."""
    costs = manifest_costs(plan) if costs is None else costs
    w = max(14, *(len(v.name) + 1 for v in plan.variants))
    lines = [f"  {'variant':<{w}}{'seed':>5}  {'run_key':<17}{'params':>12}{'se_params':>11}{'MACs':>10}"]
    for run in plan.runs:
        cost, note = costs[run.variant]
        lines.append(f"  {run.variant:<{w}}{run.seed:>5}  {run.key:<17}{cost['params']:>12,}"
                     f"{cost['se_params']:>11,}{cost['macs'] / 1e6:>9.2f}M{note}")
    if any(note for _, note in costs.values()):
        lines.append("  * data not on this machine: cost at the architecture's design input size and 10 classes")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    """Counts of done / running / failed / pending runs, the ETA, and a per-run table; exit 1 when a run failed."""
    plan = load_plan(args.sweep).with_data_root(args.data_root)
    status = sweep_status(plan, storage=args.storage, results_dir=args.results, max_retries=args.max_retries)
    if args.json:
        from sesweep.json_output import print_json

        print_json(args, status_json(status))
    else:
        print(status.table())
    return 1 if status.failed else 0  # a diverged run is a result; a failed one is not
