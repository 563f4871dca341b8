"""Speed statistics that never mix devices: ``infer_ms`` and ``train_img_per_s`` per host and device.

A run's speed says something only about the device it ran on, and only if nothing else was training there
while it was timed. Every run record carries ``host``, ``device_name`` and ``timed_shared`` (see
:func:`sesweep.training.hardware.device_slot`); :func:`speed_stats` groups by the first two and leaves out runs timed
while shared. pandas only (no torch), so tables and reports can call it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

#: the speed metrics of a run record (the others — errors, params, MACs — do not depend on the device)
SPEED_METRICS: tuple[str, ...] = ("infer_ms", "train_img_per_s")
#: what the grouping columns say for runs recorded before ``host`` / ``device_name`` were
NOT_RECORDED = "not recorded"


class SpeedStats(NamedTuple):
    """:func:`speed_stats`' answer: the table and a one-line caveat for its caption (unpacks as a pair)."""

    table: pd.DataFrame
    caveat: str


def _shared(values: pd.Series) -> pd.Series:
    """``timed_shared`` as True / False / NA, whatever runs.csv made of it (bools, "True"/"False", blanks)."""
    mapping = {True: True, False: False, "true": True, "false": False, "1": True, "0": False,
               "1.0": True, "0.0": False}
    return values.map(lambda v: mapping.get(v.strip().lower() if isinstance(v, str) else v, pd.NA)
                      if not (isinstance(v, float) and pd.isna(v)) else pd.NA)


def speed_stats(runs: pd.DataFrame, by: Sequence[str] = ("variant",),
                metrics: Sequence[str] = SPEED_METRICS) -> SpeedStats:
    """Speed per ``(*by, host, device_name)`` over finished runs, leaving out runs timed while shared.

    ``runs`` is runs.csv as a DataFrame; columns of ``by`` that it lacks are ignored (``by=()`` groups by host
    and device only). Runs whose status is not ``finished`` are ignored. Runs with ``timed_shared`` true — another
    sesweep worker trained on the same device of the same host during their timing — are excluded and counted;
    runs where it is unknown (blank, or a runs.csv from before it was recorded) are kept and counted. Missing
    ``host`` / ``device_name`` read :data:`NOT_RECORDED`.

    Returns ``SpeedStats(table, caveat)``. ``table`` has one row per group, sorted by the group columns, with:
    ``n_runs`` (finished runs), ``n_shared`` (excluded: timed while shared), ``n_unknown`` (kept: sharing not
    recorded), ``n`` (runs used), and per metric ``<m>_mean``, ``<m>_std`` (sample std; NaN below 2 runs),
    ``<m>_median``, ``<m>_n`` (runs used with a finite value). ``caveat`` is one line for a caption: how many
    host/device pairs the speeds come from (compare speeds only within one), how many runs were excluded as
    shared, and whether host/device or sharing were not recorded.
    """
    frame = runs.copy()
    if "status" in frame.columns:
        frame = frame[frame["status"].astype(str) == "finished"]
    keys = [c for c in by if c in frame.columns] + ["host", "device_name"]
    missing_where = {c: int(frame[c].isna().sum()) if c in frame.columns else len(frame)
                     for c in ("host", "device_name")}
    for col in ("host", "device_name"):
        frame[col] = frame[col].fillna(NOT_RECORDED).astype(str) if col in frame.columns else NOT_RECORDED
    shared = _shared(frame["timed_shared"]) if "timed_shared" in frame.columns else pd.Series(pd.NA, frame.index)
    frame["_shared"] = shared.eq(True).fillna(False).astype(bool)
    frame["_unknown"] = shared.isna()
    for m in metrics:
        frame[m] = pd.to_numeric(frame[m], errors="coerce") if m in frame.columns else float("nan")

    rows = []
    for group, part in frame.groupby(keys, sort=True, dropna=False):
        used = part[~part["_shared"]]
        row = dict(zip(keys, group if isinstance(group, tuple) else (group,), strict=True))
        row.update(n_runs=len(part), n_shared=int(part["_shared"].sum()), n_unknown=int(part["_unknown"].sum()),
                   n=len(used))
        for m in metrics:
            values = used[m].dropna()
            row.update({f"{m}_mean": values.mean() if len(values) else float("nan"),
                        f"{m}_std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                        f"{m}_median": values.median() if len(values) else float("nan"),
                        f"{m}_n": len(values)})
        rows.append(row)
    columns = keys + ["n_runs", "n_shared", "n_unknown", "n"] + [
        f"{m}_{s}" for m in metrics for s in ("mean", "std", "median", "n")]
    table = pd.DataFrame(rows, columns=columns)
    return SpeedStats(table, _caveat(frame, missing_where))


def variant_speeds(runs: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per variant: mean ``infer_ms`` and ``train_img_per_s`` over its runs not timed while another worker shared
    the device — only when every finished run ran on one host and device; otherwise empty (speeds of different
    machines are never averaged; show :func:`speed_stats` per device instead)."""
    table = speed_stats(runs).table
    if table.empty or "variant" not in table.columns or len(table[["host", "device_name"]].drop_duplicates()) != 1:
        return {}
    return {str(r["variant"]): {m: r[f"{m}_mean"] for m in SPEED_METRICS} for _, r in table.iterrows()}


def _caveat(frame: pd.DataFrame, missing: dict[str, int]) -> str:
    """One line: where the speeds come from and what was left out or is unknown."""
    if frame.empty:
        return "Speed: no finished runs."
    pairs = frame.groupby(["host", "device_name"]).size()
    known = [(h, d, n) for (h, d), n in pairs.items() if NOT_RECORDED not in (h, d)]
    if len(pairs) == 1 and known:
        host, device, _ = known[0]
        parts = [f"Speed measured on one device ({device}, host {host})"]
    elif len(pairs) == 1:
        parts = ["Speed"]
    else:
        parts = [f"Speed measured on {len(pairs)} host/device pairs, reported separately: compare speeds only "
                 f"within one"]
    n_shared, n_unknown = int(frame["_shared"].sum()), int(frame["_unknown"].sum())

    def runs(n: int) -> str:
        return f"{n} run{'s' if n != 1 else ''}"

    if n_shared:
        parts.append(f"{runs(n_shared)} timed while another sesweep worker trained on the same device "
                     f"excluded")
    else:
        parts.append("no run was timed while another sesweep worker trained on the same device"
                     if not n_unknown else "")
    no_device = max(missing.values())
    if no_device:
        parts.append(f"host/device not recorded for {runs(no_device)} (their speeds may mix devices)")
    if n_unknown:
        parts.append(f"device sharing not recorded for {runs(n_unknown)} (kept)")
    text = "; ".join(p for p in parts if p)
    return (text.replace("Speed; ", "Speed: ", 1) if text.startswith("Speed; ") else text) + "."
