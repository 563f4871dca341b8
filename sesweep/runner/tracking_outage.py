"""A tracking server that does not answer costs one warning line, never the sweep: runs go on untracked, their
trials are marked ``tracking_pending``, and they are logged to the server when it answers again
(:func:`catch_up`: by a worker after a run of its own missed the server, and once more when the sweep ends).

Why not wait for it as for the storage: MLflow is a side channel (:mod:`sesweep.runner.tracking`); the study
holds every result, so nothing is lost by logging it later, and a GPU should not idle while a tracking server
restarts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sesweep.runner.outage import unreachable
from sesweep.runner.outputs import with_identity

if TYPE_CHECKING:
    import optuna

    from sesweep.plan import Plan
    from sesweep.runner.queue import SweepLock
    from sesweep.runner.tracking import Tracker

log = logging.getLogger("sesweep.runner.tracking")

#: the trial attribute of a finished run whose MLflow run is missing or incomplete (logged by :func:`catch_up`)
PENDING = "tracking_pending"


def catch_up(plan: Plan, study: optuna.Study, lock: SweepLock, tracker: Tracker) -> bool:
    """Log the finished runs of ``plan`` whose trials are ``tracking_pending`` to the tracking server, if it
    answers now; True when none is left pending. Each is logged under the sweep lock, after checking the mark
    again, so two workers catching up at once log it once (and :meth:`Tracker.log_completed` finds a FINISHED
    one first). Best effort: any failure leaves the marks for a later call. It reads every finished trial, so
    workers call it only after a run of theirs missed the server (and the sweep once, at its end)."""
    from optuna.trial import TrialState

    try:
        runs = {r.key: r for r in plan.runs}
        done = study.user_attrs
        pending = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if t.user_attrs.get("run_key") in runs and is_pending(t, done)]
        if not pending:
            return True
        if unreachable(tracker.uri) is not None or tracker.sweep_run(study) is None:
            return False
        logged = settled = 0
        for trial in pending:
            payload = trial.user_attrs.get("result")
            with lock():
                if _logged_attr(trial._trial_id) in study.user_attrs or not isinstance(payload, dict):
                    settled += 1  # another worker logged it meanwhile (or there is nothing to log)
                    continue
                run = runs[trial.user_attrs["run_key"]]
                result = tracker.log_completed(run, with_identity(payload, plan, run), late=True)
                if result.get("error") or not result.get("run_id"):
                    break  # gone again: the rest waits for the next call
                study.set_user_attr(_logged_attr(trial._trial_id), result["run_id"])
            logged += 1
    except Exception as exc:  # a side channel: never the sweep's end
        log.warning("catching up on MLflow tracking failed (%s); tried again after the next run",
                    str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__)
        return False
    if logged:
        log.warning("logged %d run(s) finished while the tracking server was away to %s", logged, tracker.uri)
    return logged + settled == len(pending)


def _logged_attr(trial_id: int) -> str:
    """The study attribute that says trial ``trial_id``'s pending run has been logged (a finished trial's own
    attributes cannot change), valued with its MLflow run id."""
    return f"tracked_late:{trial_id}"


def is_pending(trial: Any, study_attrs: dict[str, Any]) -> bool:
    """Whether a finished trial's run still waits to be logged to the tracking server."""
    return bool(trial.user_attrs.get(PENDING)) and _logged_attr(trial._trial_id) not in study_attrs


def pending_attrs(tracker: Any, logged: bool, errors: list[str]) -> dict[str, Any]:
    """The trial attributes that say a finished run still has to be logged: none without a tracker; else
    ``tracking_pending`` when its MLflow run was not started or logged (server away) or had errors."""
    errors = [e for e in errors if e]
    if tracker is None or (logged and not errors):
        return {}
    attrs: dict[str, Any] = {PENDING: True}
    if errors:
        attrs["tracking_error"] = "; ".join(errors)[:2000]
    return attrs
