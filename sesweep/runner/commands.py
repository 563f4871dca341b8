"""``sesweep run`` and ``sesweep status``: their handlers (their arguments, and the reading of the sweep file
into ``args.plan``: :mod:`sesweep.arguments`). Importing this module imports no torch: status never needs it,
run imports it when it trains (:mod:`sesweep.runner.worker`)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from sesweep.plan import Plan, check_data
from sesweep.results import sweep_dir
from sesweep.runner import precision
from sesweep.runner.config import SweepConfig
from sesweep.runner.status import SweepStatus, sweep_status
from sesweep.runner.sweep import require_data, run_sweep


def cmd_run(args: argparse.Namespace) -> int:
    """Run, resume or join the sweep ``args.plan`` (:func:`sesweep.arguments.read_run`): exit 0 when every run is
    done, 1 when some failed or are left, 2 on a bad spec."""
    plan = args.plan
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
    """Counts of done / running / failed / pending runs of ``args.plan`` (:func:`sesweep.arguments.read_status`),
    the ETA, and a per-run table; exit 1 when a run failed."""
    plan = args.plan
    status = sweep_status(plan, storage=args.storage, results_dir=args.results, max_retries=args.max_retries)
    if args.json:
        from sesweep.json_output import print_json

        print_json(args, status_json(status))
    else:
        print(status.table())
    return 1 if status.failed else 0  # a diverged run is a result; a failed one is not
