"""Where a sweep stands: counts of done / running / failed / pending runs, an ETA and a per-run table.

A sequential sweep's plan holds every seed up to its policy's max, but only the seeds its undecided contrasts
need will run: its summary gives the runs still possible as a range, at least (allocated now) and at most (every
undecided contrast going on to max), with an ETA for each end, and it is complete once none can run."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sesweep.plan import Plan
from sesweep.results import DEFAULT_RESULTS, sweep_dir
from sesweep.run_identity import RESULTS_VERSION
from sesweep.runner import precision
from sesweep.runner.config import SweepConfig
from sesweep.runner.outputs import find_result, older_results
from sesweep.runner.queue import classify, default_storage, failure_reason, open_storage, retry_from


@dataclass
class SweepStatus:
    """Counts of a sweep's runs and a per-run table; ``eta_seconds`` from the mean time of trained runs."""

    name: str
    total: int
    done: int
    finished: int
    diverged: int
    running: int
    failed: int
    pending: int
    eta_seconds: float | None
    rows: list[dict[str, Any]]
    #: run JSONs under results/NAME/runs/ recorded by another results version: [{results_version, runs}]
    older_results: list[dict[str, int]] = field(default_factory=list)
    #: why the run keys cannot be resolved (the plan's data are not on this machine), else None
    unresolved: str | None = None
    #: a sequential sweep's lines (:func:`sesweep.runner.seed_queue.status_lines`); empty for a fixed list
    sequential: list[str] = field(default_factory=list)
    #: a sequential sweep: of the ``pending`` runs (its plan's, up to max), those that will run whatever the
    #: results (allocated now) and those that still could; None for a fixed list (every pending run will run)
    pending_at_least: int | None = None
    pending_at_most: int | None = None
    #: the ETA (``eta_seconds``'s rule) of those two ends; ``eta_seconds`` of a sequential sweep is the latter
    eta_seconds_at_least: float | None = None
    eta_seconds_at_most: float | None = None

    @property
    def sequential_sweep(self) -> bool:
        return self.pending_at_most is not None

    @property
    def complete(self) -> bool:
        """No run is left to run: every run done or failed for good; for a sequential sweep, none running and
        none that the policy could still want (the rest belong to decided contrasts)."""
        if self.pending_at_most is not None:
            return self.running == 0 and self.pending_at_most == 0
        return self.done + self.failed == self.total

    @property
    def succeeded(self) -> bool:
        """Complete with no run failed: what exit status 0 and a FINISHED sweep run mean."""
        return self.complete and self.failed == 0

    def summary(self) -> str:
        head = (f"sweep {self.name}: {self.done}/{self.total} done ({self.finished} finished, {self.diverged} "
                f"diverged), {self.running} running, {self.failed} failed")
        if self.pending_at_least is None or self.pending_at_most is None:
            eta = "" if self.eta_seconds is None or self.complete else f", eta {duration(self.eta_seconds)}"
            return f"{head}, {self.pending} pending{eta}"
        head = head.replace(f"/{self.total} done", f" done of {self.total} at max", 1)
        least, most = self.pending_at_least, self.pending_at_most
        ends = [e for e in (self.eta_seconds_at_least, self.eta_seconds_at_most) if e is not None]
        eta = "" if not ends or self.complete else \
            f" (eta {' – '.join(dict.fromkeys(duration(e) for e in ends))})"
        if least == most:
            return f"{head}; pending: {most} more run{'s' if most != 1 else ''}{eta}"
        return f"{head}; pending: at least {least}, at most {most} more runs{eta}"

    def notes(self) -> list[str]:
        """Lines about results that are not counted above: unresolved keys, records of other results versions."""
        lines = list(self.sequential)
        if self.unresolved:
            lines.append(f"run keys cannot be resolved ({self.unresolved}): results on disk or in the study "
                         "cannot be matched, so every run shows as pending")
        for old in self.older_results:
            v, n = old["results_version"], old["runs"]
            runs = f"{n} run{'s' if n != 1 else ''}"
            if v < RESULTS_VERSION:
                lines.append(f"{runs} recorded by results version {v} (older than {RESULTS_VERSION}): not reused, "
                             "will be trained again")
            else:
                lines.append(f"{runs} recorded by results version {v} (newer than this code's {RESULTS_VERSION}): "
                             "not reused")
        return lines

    def table(self) -> str:
        lines = [self.summary(), *self.notes()]
        if not self.rows:
            return "\n".join(lines)
        cols = ("variant", "seed", "run_key", "state", "attempts", "seconds", "top1_err", "note")
        cells = [[_show(r.get(c)) for c in cols] for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _trial_seconds(t: FrozenTrial) -> float | None:
    if t.datetime_start is None or t.datetime_complete is None:
        return None
    return (t.datetime_complete - t.datetime_start).total_seconds()


def status_from_trials(plan: Plan, trials: Sequence[FrozenTrial], max_retries: int = 1, retry_from: int = 0,
                       grace_period: int | None = None) -> SweepStatus:
    states = classify(plan, trials, retry_from)
    counts = dict.fromkeys(("finished", "diverged", "running", "failed", "pending"), 0)
    rows = []
    trained_seconds = []
    for run in plan.queue_order():
        st = states[run.key]
        state = st.state(max_retries)
        counts[state if state in counts else "finished"] += 1
        row: dict[str, Any] = {"variant": run.variant, "seed": run.seed, "run_key": run.key, "state": state,
                               "attempts": len(st.failures) + (1 if st.done or st.running else 0)}
        if st.done is not None:
            row["seconds"] = st.done.user_attrs.get("wall_seconds") or _trial_seconds(st.done)
            record = (st.done.user_attrs.get("result") or {}).get("record", {})
            row["top1_err"] = record.get("top1_err")
            if "adopted_from" in st.done.user_attrs:
                row["note"] = "adopted"
            elif row["seconds"]:
                trained_seconds.append(float(row["seconds"]))
        elif st.running:
            row["note"] = f"on {st.running[0].user_attrs.get('worker', '?')}"
        elif st.last_failure is not None:
            row["note"] = failure_reason(st.last_failure, grace_period)
        rows.append(row)
    done = counts["finished"] + counts["diverged"]
    per_run = sum(trained_seconds) / len(trained_seconds) if trained_seconds else None

    def eta_of(pending: int) -> float | None:
        """The mean time of a trained run × the runs left (these and the running ones), over the running ones."""
        left = pending + counts["running"]
        return per_run * left / max(1, counts["running"]) if per_run is not None and left else None

    status = SweepStatus(plan.name, len(plan.runs), done, counts["finished"], counts["diverged"], counts["running"],
                         counts["failed"], counts["pending"], eta_of(counts["pending"]), rows)
    if plan.seed_policy is not None:
        from sesweep.runner.seed_queue import plan_allocation, recorded_outcomes, status_lines, still_possible

        alloc = plan_allocation(plan, recorded_outcomes((states[r.key] for r in plan.runs), max_retries,
                                                        _recorded_top1))
        least, most = still_possible(alloc, [r for r in plan.runs if states[r.key].state(max_retries) == "pending"])
        status = dataclasses.replace(status, sequential=status_lines(alloc), pending_at_least=least,
                                     pending_at_most=most, eta_seconds=eta_of(most),
                                     eta_seconds_at_least=eta_of(least), eta_seconds_at_most=eta_of(most))
    return status


def _recorded_top1(trial: FrozenTrial) -> float | None:
    """A finished trial's top-1 error, from the result it carries (None: none recorded)."""
    top1 = ((trial.user_attrs.get("result") or {}).get("record") or {}).get("top1_err")
    return float(top1) if isinstance(top1, int | float) else None


def sweep_status(plan: Plan, storage: str | None = None, results_dir: str | Path = DEFAULT_RESULTS,
                 max_retries: int = 1) -> SweepStatus:
    """Where a sweep stands (read-only: a sweep that never ran is all pending, and nothing is created), with
    the run JSONs of other results versions and, for a plan without its data, why keys are unresolved."""
    url = storage or default_storage(plan, results_dir)
    if storage is None and not (sweep_dir(plan, results_dir) / "optuna.db").is_file():
        plan = precision.settle_read_only(plan, results_dir)
        return _with_notes(status_from_trials(plan, [], max_retries), plan, results_dir)
    st = open_storage(url)
    try:
        study = optuna.load_study(study_name=plan.name, storage=st)
    except KeyError:
        plan = precision.settle_read_only(plan, results_dir)
        return _with_notes(status_from_trials(plan, [], max_retries), plan, results_dir)
    stored = study.user_attrs.get(precision.STUDY_ATTR)
    plan = plan.with_precision(stored) if stored else precision.settle_read_only(plan, results_dir)
    status = status_from_trials(plan, study.get_trials(deepcopy=False), max_retries, retry_from(study))
    return _with_notes(status, plan, results_dir)


def _with_notes(status: SweepStatus, plan: Plan, results_dir: str | Path) -> SweepStatus:
    return dataclasses.replace(status, older_results=older_results(plan, results_dir), unresolved=plan.unresolved)


def study_status(plan: Plan, study: optuna.Study, cfg: SweepConfig) -> SweepStatus:
    return status_from_trials(plan, study.get_trials(deepcopy=False), cfg.max_retries, retry_from(study),
                              cfg.grace_period)


def dry_status(plan: Plan, results_dir: str | Path) -> SweepStatus:
    rows = []
    done = finished = 0
    for run in plan.queue_order():
        found = find_result(run.key, plan, results_dir)
        state = found[1]["record"]["status"] if found else "pending"
        done += found is not None
        finished += state == "finished"
        rows.append({"variant": run.variant, "seed": run.seed, "run_key": run.key, "state": state,
                     "note": "" if found is None else f"result in {found[0]}"})
    status = SweepStatus(plan.name, len(plan.runs), done, finished, done - finished, 0, 0, len(plan.runs) - done,
                         None, rows)
    return _with_notes(status, plan, results_dir)
