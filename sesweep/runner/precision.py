"""``recipe.precision: auto``, resolved once per sweep and kept: every run of a sweep trains in one precision.

``auto`` means "what this device does best" (:func:`sesweep.training.hardware.resolve_precision`), which differs
between machines. If each worker resolved it for itself, a sweep run from a CPU and a GPU machine would compare
fp32 runs with bf16 runs. So the first machine that starts the sweep resolves it, stores the answer in the
study (the one store every worker shares; mirrored in ``manifest.json``), and every worker after it uses that
answer; a worker whose device cannot train in it refuses to start (:func:`check_honoured`). The resolved
precision replaces ``auto`` in the run specs, so it is part of every run key and of every record.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sesweep.plan import Plan
from sesweep.results import sweep_dir
from sesweep.spec import SpecError

if TYPE_CHECKING:
    import optuna

    from sesweep.runner.queue import SweepLock

log = logging.getLogger("sesweep.runner.precision")

#: the study's user attribute that holds the sweep's resolved precision
STUDY_ATTR = "sesweep_precision"


def resolve_here(plan: Plan) -> str:
    """What ``auto`` resolves to on this machine, for the devices the sweep's ``auto`` runs ask for."""
    from sesweep.training.hardware import resolve_device, resolve_precision

    devices = sorted({r.spec.recipe.device for r in plan.runs if r.spec.recipe.precision == "auto"})
    answers = {d: resolve_precision("auto", resolve_device(d)) for d in devices}
    if len(set(answers.values())) > 1:
        found = ", ".join(f"{d} → {p}" for d, p in answers.items())
        raise SpecError("recipe.precision", f"auto resolves differently on the devices of this sweep ({found}); "
                                            "allowed: one precision for the sweep (fp32, bf16 or fp16)")
    return next(iter(answers.values()))


def settle(plan: Plan, study: optuna.Study, lock: SweepLock) -> Plan:
    """The plan with ``auto`` replaced by the sweep's precision: the study's, or this machine's, stored in the
    study (under the sweep lock, so two machines starting at once agree)."""
    if not plan.auto_precision():
        return plan
    stored = study.user_attrs.get(STUDY_ATTR)
    if stored is None:
        with lock():
            stored = study.user_attrs.get(STUDY_ATTR)  # another machine may have settled it meanwhile
            if stored is None:
                stored = resolve_here(plan)
                study.set_user_attr(STUDY_ATTR, stored)
                log.info("precision auto resolved to %s for sweep %s on this machine", stored, plan.name)
    return plan.with_precision(stored)


def settle_read_only(plan: Plan, results_dir: str | Path) -> Plan:
    """For ``--dry-run`` and ``status``, which write nothing: the precision in the sweep's manifest when it has
    run before, else what this machine would resolve."""
    if not plan.auto_precision():
        return plan
    stored = recorded(plan, results_dir)
    return plan.with_precision(stored if stored is not None else resolve_here(plan))


def recorded(plan: Plan, results_dir: str | Path) -> str | None:
    """The resolved precision ``manifest.json`` holds, if any."""
    path = sweep_dir(plan, results_dir) / "manifest.json"
    try:
        value = json.loads(path.read_text()).get("resolved_precision")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def check_honoured(plan: Plan) -> None:
    """Refuse, before claiming a run, a sweep whose precision this machine's device cannot train in."""
    from sesweep.training.hardware import check_precision, resolve_device

    for device, precision in sorted({(r.spec.recipe.device, r.spec.recipe.precision) for r in plan.runs}):
        if precision == "auto":
            continue
        try:
            check_precision(precision, resolve_device(device))
        except SpecError as exc:
            raise SpecError(exc.key, f"this sweep trains in {precision} (resolved once for the whole sweep, so "
                                     f"its runs stay matched), which this machine cannot: {exc.message}") from None
