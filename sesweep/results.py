"""The one owner of a sweep's results folder, ``results/NAME/``: its paths, its files, writer and reader.

    results/NAME/
      runs/KEY.json    one finished run: {"record": flat record, "curves": [...], "hidden_widths": [...], …}
      checkpoints/KEY/ a run's mid-run checkpoints while it trains (sesweep.training.checkpoint); gone when it ends
      runs.csv         one row per run of the current manifest (RUN_COLUMNS, PROVENANCE_COLUMNS, spec keys, METRICS)
      curves.csv       one row per run and epoch (CURVE_COLUMNS, then the curve's values)
      manifest.json    the expanded plan (runs, baselines, tables, figures, …) and the parsed sweep file (``spec``)
      sweep.yaml       the sweep file as run

The runner writes these (:func:`write_run_json`, :func:`write_tables`, :func:`write_manifest`), the analysis
reads them (:func:`load_sweep`). Nothing here imports torch or ``sesweep.plan``; pandas only in the reader.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import io
import json
import os
import re
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_RESULTS = "results"
#: the environment variable that moves the results folder of every command (``--results`` still wins)
RESULTS_ENV = "SESWEEP_RESULTS"


def default_results_root() -> str:
    """Where results live when ``--results`` is not given: ``$SESWEEP_RESULTS``, else ``results/`` (relative to
    the current folder, so a sweep started from another folder would otherwise retrain what exists)."""
    return os.environ.get(RESULTS_ENV) or DEFAULT_RESULTS

#: statuses of a run record: ``finished`` and ``diverged`` are results (a run that diverged is not run again);
#: ``failed`` is the runs.csv row of a run that failed for good (it has no run JSON)
DONE_STATUSES = ("finished", "diverged")
STATUSES = (*DONE_STATUSES, "failed")

#: metric columns every run record has (errors in percent, as in the SENet paper), in runs.csv order
METRICS = ("top1_err", "top5_err", "test_loss", "train_loss", "params", "se_params", "macs", "train_seconds",
           "train_img_per_s", "infer_ms", "peak_mem_mb", "peak_rss_mb", "epochs_done", "diverged_epoch", "se_budget",
           "soft_top1_err", "se_active_width", "truncated_top1_err", "setup_seconds", "eval_seconds", "probe_seconds")
#: the metrics the analysis aggregates first, in this order (its tables' column order); the others are
#: aggregated after them as plain numeric columns of runs.csv: CPU memory, the divergence epoch and the metrics
#: only adaptive SE runs have (their tables read those by name)
SUMMARY_METRICS: tuple[str, ...] = tuple(m for m in METRICS if m not in {
    "peak_rss_mb", "diverged_epoch", "se_budget", "soft_top1_err", "se_active_width", "truncated_top1_err",
    "setup_seconds", "eval_seconds", "probe_seconds"})

#: variant names the baseline defaults to when the spec names none
DEFAULT_BASELINES = ("resnet", "baseline")

RUN_COLUMNS = ("run_key", "sweep", "variant", "seed", "status", "reason")
#: what computed each run (``sesweep.runner.outputs.provenance``): runs.csv's columns after RUN_COLUMNS
PROVENANCE_COLUMNS = ("results_version", "data_id", "code_version")
CURVE_COLUMNS = ("run_key", "sweep", "variant", "seed", "epoch")


class _Named(Protocol):
    name: str


# --------------------------------------------------------------------------------------------------
# paths and provenance


def sweep_dir(sweep: str | _Named, results_dir: str | Path = DEFAULT_RESULTS) -> Path:
    """``results_dir/NAME`` of a sweep (its name, or anything with a ``name``: a plan)."""
    return Path(results_dir) / (sweep if isinstance(sweep, str) else sweep.name)


def run_json_path(sweep: str | _Named, results_dir: str | Path, key: str) -> Path:
    return sweep_dir(sweep, results_dir) / "runs" / f"{key}.json"


def checkpoint_dir(sweep: str | _Named, results_dir: str | Path, key: str) -> Path:
    """``results_dir/NAME/checkpoints/KEY/``: one run's mid-run checkpoints (in the results folder, which every
    worker of the sweep reads, so a run whose worker died resumes on any other)."""
    return sweep_dir(sweep, results_dir) / "checkpoints" / key


def checkpoint_sidecars(directory: Path) -> list[Path]:
    """The sidecars of the checkpoints in ``directory`` (``epoch-0007.json``, :mod:`sesweep.training.checkpoint`),
    newest first (the zero-padded epoch sorts them); torch-free, so the runner reads them without training code."""
    return sorted(directory.glob("epoch-*.json"), reverse=True) if directory.is_dir() else []


@functools.cache
def code_version() -> str:
    """The code that computed a run: ``<package version>[+g<commit>[.dirty]]``, e.g. ``0.1.0+g895d768a1b2c.dirty``.

    The one source of truth for every record's ``code_version`` and every MLflow run's tag. The commit (12 hex
    digits) and the ``.dirty`` flag (tracked files differ from the commit) come from git when the package runs
    from its own checkout; installed without git, or from a wheel, it is the package version alone.
    """
    from sesweep import __version__

    package = __version__
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        package = version("sesweep")
    here = Path(__file__).resolve().parent  # the sesweep package, whose parent is the checkout

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "--no-optional-locks", *args], cwd=here, capture_output=True, text=True,
                                 timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    commit = git("rev-parse", "--short=12", "HEAD") if top else None
    if not top or not commit or Path(top).resolve() != here.parent:  # not sesweep's own checkout
        return package
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"{package}+g{commit}{'.dirty' if dirty else ''}"


# --------------------------------------------------------------------------------------------------
# writing


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk: no half-written file left behind
        tmp.unlink(missing_ok=True)
        raise


def pending_json_path(sweep: str | _Named, results_dir: str | Path, key: str, trial: int) -> Path:
    """``runs/.pending/KEY.TRIAL.json``: a result written before the study has said it is *the* result of its
    key (a worker taken for dead may finish after another has recorded the same run; it must not overwrite
    that one's ``runs/KEY.json``). Promoted to ``runs/KEY.json`` once recorded, removed if a duplicate."""
    return sweep_dir(sweep, results_dir) / "runs" / ".pending" / f"{key}.{trial}.json"


def pending_results(sweep: str | _Named, results_dir: str | Path, key: str) -> list[Path]:
    """Results of ``key`` written but never promoted (their worker died before the study answered)."""
    folder = sweep_dir(sweep, results_dir) / "runs" / ".pending"
    return sorted(folder.glob(f"{key}.*.json")) if folder.is_dir() else []


def write_run_json(sweep: str | _Named, results_dir: str | Path, payload: dict[str, Any],
                   trial: int | None = None) -> Path:
    """A run's JSON, atomically: ``runs/KEY.json``, or its pending file when ``trial`` is given."""
    key = payload["record"]["run_key"]
    path = run_json_path(sweep, results_dir, key) if trial is None else pending_json_path(sweep, results_dir, key,
                                                                                            trial)
    atomic_write(path, json.dumps(payload, indent=1, default=str))
    return path


def read_run_json(path: Path) -> dict[str, Any] | None:
    """A run JSON, or None when it is unreadable or not one (no ``record`` mapping)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("record"), dict):
        return None
    return payload


def run_row(ident: Mapping[str, Any], record: Mapping[str, Any], spec_keys: Sequence[str]) -> dict[str, Any]:
    """A finished run's runs.csv row: identity, status, spec keys, METRICS, then the rest of its record."""
    row = {**ident, "status": record.get("status"), "reason": record.get("reason", "")}
    row.update({k: record.get(k) for k in spec_keys})
    row.update({k: record.get(k) for k in METRICS})
    row.update({k: v for k, v in record.items() if k not in row})
    return row


def write_tables(folder: Path, runs_rows: list[dict[str, Any]], curve_rows: list[dict[str, Any]],
                 spec_keys: Sequence[str]) -> tuple[Path, Path]:
    """``runs.csv`` and ``curves.csv`` in ``folder`` (atomically, one writer at a time)."""
    # `seed` is both identity and spec key
    first = list(dict.fromkeys([*RUN_COLUMNS, *PROVENANCE_COLUMNS, *spec_keys, *METRICS]))
    with _local_lock(folder / ".tables.lock"):
        runs_path, curves_path = folder / "runs.csv", folder / "curves.csv"
        atomic_write(runs_path, _csv_text(runs_rows, first))
        atomic_write(curves_path, _csv_text(curve_rows, CURVE_COLUMNS))
    return runs_path, curves_path


def write_manifest(folder: Path, manifest: Mapping[str, Any], spec_text: str) -> None:
    """``manifest.json`` (the expanded runs, merges and notes, and ``spec``: the sweep file parsed, so the
    analysis needs nothing upstream) and ``sweep.yaml`` (the file as run)."""
    try:
        spec = yaml.safe_load(spec_text) if spec_text else None
    except yaml.YAMLError:
        spec = None
    doc = {**manifest, "spec": spec} if isinstance(spec, dict) else dict(manifest)
    atomic_write(folder / "manifest.json", json.dumps(doc, indent=1, default=str))
    atomic_write(folder / "sweep.yaml", spec_text)


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    if value is None:
        return ""
    return value


def _csv_text(rows: list[dict[str, Any]], first: Sequence[str]) -> str:
    columns = list(first)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


@contextlib.contextmanager
def _local_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# reading


class SweepDataError(FileNotFoundError):
    """A sweep's results cannot be found or read; the message says which path and why."""


@dataclass(frozen=True)
class Sweep:
    """Everything the tables, figures and report read, loaded once."""

    name: str
    results_dir: Path
    runs: pd.DataFrame
    curves: pd.DataFrame
    spec: dict[str, Any] = field(default_factory=dict)
    spec_text: str = ""
    spec_path: Path | None = None
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    #: ``manifest.json`` the sweep runner writes beside runs.csv (the expanded runs), if present
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def expected(self) -> int | None:
        """How many runs the sweep has, from its manifest (None when unknown)."""
        runs = self.manifest.get("runs")
        return len(runs) if isinstance(runs, list) else None

    @property
    def seeds(self) -> list[int] | None:
        """The spec's seeds, when the spec is known (for "n of expected")."""
        seeds = self.spec.get("seeds")
        return [int(s) for s in seeds] if isinstance(seeds, list) else None


def resolve_target(target: str | Path, results_root: Path | None = None) -> tuple[str, Path, Path | None]:
    """TARGET (a spec file or a results directory) → (sweep name, results directory, spec path or None).

    A spec ``experiments/NAME.yaml`` maps to ``<results_root>/NAME`` (default ``results/``); a results
    directory is used as is and its spec is the ``sweep.yaml`` the runner saved there (the file as run),
    else ``experiments/NAME.yaml``.
    """
    path = Path(target)
    root = results_root if results_root is not None else Path(default_results_root())
    if path.is_file() or path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise SweepDataError(f"{path}: no such sweep spec")
        name = _spec_name(path)
        return name, root / name, path
    if not path.is_dir():
        raise SweepDataError(f"{path}: neither a sweep spec (.yaml) nor a results directory")
    name = path.resolve().name
    candidates = [path / "sweep.yaml", path / "spec.yaml", Path("experiments") / f"{name}.yaml"]
    spec_path = next((p for p in candidates if p.is_file()), None)
    return name, path, spec_path


def _spec_name(path: Path) -> str:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SweepDataError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name else path.stem


def find_sweep(target: str | Path, results_root: Path | None = None) -> tuple[str, Path, Path | None]:
    """:func:`resolve_target`, where its results folder holds runs.csv (else a :class:`SweepDataError`)."""
    name, results_dir, spec_path = resolve_target(target, results_root)
    if not (results_dir / "runs.csv").is_file():
        raise SweepDataError(f"{results_dir / 'runs.csv'}: not found — has any run of sweep '{name}' finished yet?")
    return name, results_dir, spec_path


def load_sweep(target: str | Path, results_root: Path | None = None) -> Sweep:
    """Read runs.csv (required), curves.csv, runs/*.json and manifest.json (optional) of a sweep."""
    name, results_dir, spec_path = find_sweep(target, results_root)
    warnings: list[str] = []
    runs = read_runs(results_dir / "runs.csv")
    spec_text = spec_path.read_text() if spec_path else ""
    details = _read_details(results_dir / "runs", warnings)
    curves = _read_curves(results_dir / "curves.csv", details)
    manifest = _read_manifest(results_dir / "manifest.json", warnings)
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        # a manifest written before it carried the parsed sweep file (or none at all): parse the file
        spec = _spec_from_yaml(spec_text, spec_path, warnings)
    return Sweep(name, results_dir, runs, curves, spec, spec_text, spec_path, details, tuple(warnings), manifest)


def _read_manifest(path: Path, warnings: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        warnings.append(f"{path}: unreadable ({exc.__class__.__name__}); expected run count unknown")
        return {}
    return data if isinstance(data, dict) else {}


def _spec_from_yaml(text: str, path: Path | None, warnings: list[str]) -> dict[str, Any]:
    """The spec file as a mapping; an unreadable spec is a warning, not a failure (the runs still count)."""
    if not text:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        warnings.append(f"{path}: not valid YAML ({exc.__class__.__name__}); spec ignored")
        return {}
    return data if isinstance(data, dict) else {}


def read_runs(path: Path) -> pd.DataFrame:
    """runs.csv as a frame; a run recorded twice (same run_key) keeps its last row."""
    import pandas as pd

    try:
        runs = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SweepDataError(f"{path}: empty (not even a header row)") from None
    for col in ("variant", "status"):
        if col not in runs.columns:
            raise SweepDataError(f"{path}: no '{col}' column")
    runs = _drop_repeated_columns(runs)
    runs["variant"] = runs["variant"].astype(str)
    runs["status"] = runs["status"].fillna("failed").astype(str)
    if "run_key" in runs.columns:
        runs = runs.drop_duplicates("run_key", keep="last")
    return runs.reset_index(drop=True)


def _drop_repeated_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """A column written twice (pandas reads the second as ``seed.1``) is dropped when it repeats the first."""
    drop = []
    for col in runs.columns:
        m = re.fullmatch(r"(.+)\.(\d+)", str(col))
        if m and m.group(1) in runs.columns and runs[col].astype(str).equals(runs[m.group(1)].astype(str)):
            drop.append(col)
    return runs.drop(columns=drop)


def _read_details(folder: Path, warnings: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.json")):
        try:
            out[path.stem] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            warnings.append(f"{path}: unreadable ({exc.__class__.__name__}); skipped")
    return out


def _read_curves(path: Path, details: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """curves.csv, or else the curves stored in the per-run JSON files."""
    import pandas as pd

    if path.is_file():
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()
    rows = []
    for key, detail in details.items():
        record = detail.get("record", {})
        for row in detail.get("curves", []) or []:
            rows.append({"run_key": key, "variant": record.get("variant"), "seed": record.get("seed"), **row})
    return pd.DataFrame(rows)
