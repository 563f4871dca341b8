"""A sweep's outputs from the runner's side: run payloads, results already on disk, and the tables rebuilt
from the study and the run JSONs (the files themselves are :mod:`sesweep.results`'s).

``results/<name>/runs/<run_key>.json`` per finished run (atomic), and ``runs.csv`` / ``curves.csv`` rebuilt
from the JSONs of the current manifest (atomic; by each worker at most every ``TABLES_EVERY`` seconds, and when
the sweep ends). A run key already finished in another sweep
under the same results directory is adopted, not trained again.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import optuna

from sesweep import results
from sesweep.plan import UNRESOLVED, Plan, Run, load_plan
from sesweep.results import (
    DEFAULT_RESULTS,
    DONE_STATUSES,
    code_version,
    pending_results,
    read_run_json,
    run_json_path,
    sweep_dir,
    write_run_json,
)
from sesweep.run_identity import RESULTS_VERSION, unkeyed_keys
from sesweep.runner.queue import COUNTED_FAILURES, classify, failure_reason, open_storage, retry_from, trial_status
from sesweep.spec import SpecError, flatten, schema_keys

#: RunResult fields that are not per-run detail lists (they are in the record, or are the record)
_NOT_DETAIL = frozenset({"spec", "status", "metrics", "reason", "environment"})


def result_payload(result: Any) -> dict[str, Any]:
    """A run's durable record: ``{"record", "curves", "hidden_widths", …}`` — every detail list of the result
    (``excitation`` too) beside the flat record, so the report step needs nothing else."""
    payload: dict[str, Any] = {"record": result.record()}
    for f in dataclasses.fields(result):
        if f.name not in _NOT_DETAIL:
            payload[f.name] = getattr(result, f.name)
    return payload


def provenance(run: Run) -> dict[str, Any]:
    """What computed a run, recorded beside its result: ``results_version`` (part of its key), ``code_version``
    (:func:`sesweep.results.code_version`) and ``data_id`` (:func:`sesweep.datasets.data_identity`)."""
    return {"results_version": RESULTS_VERSION, "code_version": code_version(), "data_id": run.data_id}


def sweep_view(record: dict[str, Any], run: Run) -> dict[str, Any]:
    """``record`` as this sweep states the run: the keys its run key leaves out (:func:`unkeyed_keys`: where
    the data live, the inert keys, the loader's knobs) take this plan's values. A result adopted from another
    sweep holds that sweep's values there (a fixed SE's cost weight, an unscaled rate's reference batch, the
    loader ``memory`` that this sweep's ``auto`` picks too); the analysis groups and pairs on the spec
    columns, so a borrowed value would read as a factor and split rows from their contrast."""
    flat = flatten(run.spec)
    return {**record, **{k: flat[k] for k in unkeyed_keys(run.spec) if k in record}}


def with_identity(payload: dict[str, Any], plan: Plan, run: Run) -> dict[str, Any]:
    record = {**sweep_view(payload["record"], run), "sweep": plan.name, "variant": run.variant, "seed": run.seed}
    return {**payload, "record": record, "curves": payload.get("curves", []),
            "hidden_widths": payload.get("hidden_widths", [])}


def find_result(key: str, plan: Plan, results_dir: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """A finished result for ``key`` already on disk: this sweep's runs/ first, then its results written but
    never recorded (their worker died before the study answered: ``runs/.pending/``), then any other sweep's.

    Only a record of this results version and of the same data is taken (the key covers both; this is a
    second check, for records written by older code or by hand); none for a key that is not resolved."""
    run = next((r for r in plan.runs if r.key == key), None)
    if run is None or run.data_id is None or key.startswith(UNRESOLVED):
        return None
    root = Path(results_dir)
    candidates = [run_json_path(plan, results_dir, key), *pending_results(plan, results_dir, key)]
    if root.is_dir():
        candidates += sorted(p for p in root.glob(f"*/runs/{key}.json") if p != candidates[0])
    for path in candidates:
        payload = read_run_json(path) if path.is_file() else None
        record = payload["record"] if payload else {}
        if (record.get("run_key") == key and record.get("status") in DONE_STATUSES
                and record.get("results_version") == RESULTS_VERSION and record.get("data_id") == run.data_id):
            return path, payload  # type: ignore[return-value]
    return None


def write_tables(plan: Plan, results_dir: str | Path, study: optuna.Study | None = None) -> tuple[Path, Path]:
    """Rebuild ``runs.csv`` and ``curves.csv`` from the current manifest's run JSONs (atomically).

    With ``study``: results the study holds but this machine lacks (finished on another machine) are
    written as run JSONs first, and runs that failed for good get a ``failed`` row with their reason.
    """
    out = sweep_dir(plan, results_dir)
    failed: dict[str, str] = {}
    if study is not None:
        states = classify(plan, study.get_trials(deepcopy=False), retry_from(study))
        for key, state in states.items():
            if state.done is not None and not run_json_path(plan, results_dir, key).is_file():
                result = state.done.user_attrs.get("result")
                if isinstance(result, dict) and isinstance(result.get("record"), dict):
                    write_run_json(plan, results_dir, with_identity(result, plan, state.run))
            elif (state.done is None and not state.live and state.last_failure is not None
                  and trial_status(state.last_failure) in COUNTED_FAILURES):  # not a run that was only interrupted
                failed[key] = failure_reason(state.last_failure)
    spec_keys = schema_keys()
    runs_rows: list[dict[str, Any]] = []
    curve_rows: list[dict[str, Any]] = []
    for run in plan.runs:
        payload = read_run_json(run_json_path(plan, results_dir, run.key))
        ident = {"run_key": run.key, "sweep": plan.name, "variant": run.variant, "seed": run.seed}
        if payload is None or payload["record"].get("status") not in DONE_STATUSES:
            if run.key in failed:
                runs_rows.append({**ident, "status": "failed", "reason": failed[run.key],
                                  "results_version": RESULTS_VERSION, "data_id": run.data_id, **flatten(run.spec)})
            continue
        runs_rows.append(results.run_row(ident, sweep_view(payload["record"], run), spec_keys))
        for curve in payload.get("curves", []):
            curve_rows.append({**ident, **curve})
    return results.write_tables(out, runs_rows, curve_rows, spec_keys)


def write_manifest(plan: Plan, results_dir: str | Path) -> None:
    """``manifest.json`` and ``sweep.yaml`` of a plan (:func:`sesweep.results.write_manifest`)."""
    results.write_manifest(sweep_dir(plan, results_dir), plan.manifest(), plan.spec_text)


def older_results(plan: Plan, results_dir: str | Path = DEFAULT_RESULTS) -> list[dict[str, int]]:
    """How many run JSONs under ``results/NAME/runs/`` another results version recorded (no
    ``results_version`` field: version 1), per version: ``[{"results_version": 1, "runs": 3}]``."""
    counts: Counter[int] = Counter()
    folder = sweep_dir(plan, results_dir) / "runs"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        payload = read_run_json(path)
        if payload is None:
            continue
        version = payload["record"].get("results_version", 1)
        if version != RESULTS_VERSION:
            counts[int(version)] += 1
    return [{"results_version": v, "runs": n} for v, n in sorted(counts.items())]


def rebuild_from_storage(spec: str | Path, storage: str, results_root: str | Path = DEFAULT_RESULTS,
                         data_root: str | None = None) -> Path:
    """Write a sweep's results folder (manifest, run JSONs, ``runs.csv``, ``curves.csv``) from its study alone, for
    ``sesweep aggregate/report SPEC --storage URL`` on a machine that shares no folder with the workers; returns
    the folder. Nothing is trained or queued. The run keys name the data, so a sweep whose data are not on this
    machine (an image folder) cannot be matched to its trials: refused, naming ``--data-root``."""
    from sesweep.runner import precision

    plan = load_plan(spec).with_data_root(data_root)
    if plan.unresolved:
        raise SpecError("--storage", f"{plan.unresolved}; the stored runs are found by run keys, which identify "
                                     "the data (--data-root DIR reads them from DIR)")
    try:
        study = optuna.load_study(study_name=plan.name, storage=open_storage(storage))
    except KeyError:
        raise SpecError("--storage", f"holds no sweep named {plan.name!r}") from None
    stored = study.user_attrs.get(precision.STUDY_ATTR)
    plan = plan.with_precision(stored) if stored else precision.settle_read_only(plan, results_root)
    write_manifest(plan, results_root)
    write_tables(plan, results_root, study)
    return sweep_dir(plan, results_root)
