"""Adaptive SE against the sweep's fixed ratios of equal cost.

Adaptive SE variants (learned or per-input widths) are compared with the sweep's fixed-ratio curve at equal
SE parameters (:func:`adaptive_comparisons`): the curve's mean error interpolated linearly in log(SE params),
never extrapolated, and the paired difference to the fixed ratio nearest in SE params.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sesweep.analysis.factors import Analysis, is_attention_off
from sesweep.analysis.fmt import format_value
from sesweep.analysis.stats import Comparison, Summary, compare, finished, same_value, summarize

ADAPTIVE_KEY = "model.attention.adaptive"
#: keys that say how an adaptive SE learns its widths (inert on a fixed-ratio SE): a fixed-r curve is matched
#: to an adaptive variant on every factor except these, the ratio and the attention kind
ADAPTIVE_KEYS = frozenset({ADAPTIVE_KEY, "model.attention.cost_weight", "model.attention.cost_unit"})
#: what the "fixed-r at equal SE params" column says when it holds no number (or that it holds one)
INTERPOLATED = "interpolated"
OUTSIDE_RANGE = "outside the fixed-r range"
TOO_FEW_FIXED = "fewer than 2 fixed-r points"
NO_FINISHED_RUN = "no finished run"


def adaptive_kind(config: Mapping[str, Any]) -> str:
    """none, learnable or dynamic; "none" without attention or in a runs table older than adaptive SE."""
    value = config.get(ADAPTIVE_KEY, "none")
    if is_attention_off(config) or value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    return str(value)


def adaptive_variants(an: Analysis) -> list[str]:
    """The variants whose SE widths are learned or input-dependent, in the sweep's order."""
    return [v for v in an.order if adaptive_kind(an.configs.loc[v]) != "none"]


def fixed_ratio_variants(an: Analysis, variant: str) -> list[str]:
    """The fixed-ratio SE variants that differ from ``variant`` only in r (and the adaptive knobs): its curve."""
    row = an.configs.loc[variant]
    skip = ADAPTIVE_KEYS | {"model.attention.kind", "model.attention.reduction"}
    keys = [k for k in an.factors if k not in skip]
    return [w for w in an.order if w != an.baseline and not is_attention_off(an.configs.loc[w])
            and adaptive_kind(an.configs.loc[w]) == "none"
            and all(same_value(an.configs.at[w, k], row[k]) for k in keys)]


def allocated_se_params(runs: pd.DataFrame) -> pd.Series:
    """The SE parameters each run's net really has (``se_params``): a learnable run's hardened net, a dynamic
    run's allocated width (its soft mask computes every allocated unit, so nothing is scaled by its budget)."""
    if "se_params" not in runs.columns:
        return pd.Series(math.nan, index=runs.index)
    return pd.to_numeric(runs["se_params"], errors="coerce")


def interpolate_log_cost(costs: Sequence[float], errors: Sequence[float], at: float) -> tuple[float, str]:
    """The error of a cost/error curve at cost ``at``, linear in log(cost), and what the value is.

    Returns ``(error, INTERPOLATED)``, or NaN with why not: :data:`NO_FINISHED_RUN` (``at`` unknown),
    :data:`TOO_FEW_FIXED` (fewer than two usable points) or :data:`OUTSIDE_RANGE` (never extrapolated).
    """
    pts = sorted((float(c), float(e)) for c, e in zip(costs, errors, strict=True)
                 if np.isfinite(c) and c > 0 and np.isfinite(e))
    if at is None or not np.isfinite(at):
        return math.nan, NO_FINISHED_RUN
    if len(pts) < 2:
        return math.nan, TOO_FEW_FIXED
    lo, hi = pts[0][0], pts[-1][0]
    if not lo * (1 - 1e-9) <= at <= hi * (1 + 1e-9):
        return math.nan, OUTSIDE_RANGE
    xs = np.log([c for c, _ in pts])
    return float(np.interp(math.log(min(max(at, lo), hi)), xs, [e for _, e in pts])), INTERPOLATED


def block_stage(block: str) -> int | None:
    """SENet's stage of a block name: ``layerK.…`` is stage K + 1 (conv{K+1}_x), as the models number them."""
    m = re.match(r"layer(\d+)\.", block)
    return int(m.group(1)) + 1 if m else None


def finished_details(an: Analysis, variant: str) -> list[tuple[int, dict[str, Any]]]:
    """(seed, runs/<run_key>.json) of the variant's finished runs that saved one, lowest seed first."""
    runs = finished(an.sweep.runs)
    runs = runs[runs["variant"] == variant]
    runs = runs.sort_values("seed") if "seed" in runs.columns else runs
    out = []
    for _, row in runs.iterrows():
        detail = an.sweep.details.get(str(row.get("run_key")))
        if detail:
            out.append((int(row["seed"]) if "seed" in row.index else 0, detail))
    return out


def logged_ratio(row: Mapping[str, Any]) -> float:
    """The ratio of one per-epoch adaptive row: a dynamic block's mean per-image C / width over the test set
    when it was logged (the last batch alone is noisy), else C / effective width."""
    value = row.get("sample_ratio_mean")
    if value is not None and np.isfinite(value):
        return float(value)
    value = row.get("effective_ratio")
    return float(value) if value is not None else math.nan


def adaptive_log(an: Analysis, variant: str) -> pd.DataFrame:
    """The per-epoch width log of a variant's finished runs: seed, epoch, block, position, stage, ratio."""
    columns = ["seed", "epoch", "block", "position", "stage", "ratio", "effective_width", "max_hidden"]
    rows = []
    for seed, detail in finished_details(an, variant):
        positions: dict[str, int] = {}
        for r in detail.get("adaptive") or []:
            block = str(r.get("block"))
            positions.setdefault(block, len(positions))
            rows.append({"seed": seed, "epoch": r.get("epoch"), "block": block, "position": positions[block],
                         "stage": block_stage(block), "ratio": logged_ratio(r),
                         "effective_width": r.get("effective_width"), "max_hidden": r.get("max_hidden")})
    return pd.DataFrame(rows, columns=columns)


def block_ratios(an: Analysis, variant: str) -> pd.DataFrame:
    """Per finished seed and SE block (model order): stage, channels, learned ratio and effective width.

    A learnable run's ratio is C / the learned width its hardening recorded (``hidden_widths``); a dynamic
    run's ``hidden_widths`` hold the allocated maximum, so its ratio comes from the last epoch of its width
    log (:func:`logged_ratio`).
    """
    columns = ["seed", "position", "block", "stage", "channels", "ratio", "width"]
    rows = []
    kind = adaptive_kind(an.configs.loc[variant])
    for seed, detail in finished_details(an, variant):
        log = detail.get("adaptive") or []
        last = max((r.get("epoch", 0) for r in log), default=None)
        if kind == "learnable" and detail.get("hidden_widths"):
            entries = [(w["block"], w["channels"], w["reduction"], w["exact"]) for w in detail["hidden_widths"]]
        else:
            entries = [(r["block"], r["channels"], logged_ratio(r), r.get("effective_width")) for r in log
                       if r.get("epoch", 0) == last]
        rows += [{"seed": seed, "position": i, "block": str(b), "stage": block_stage(str(b)), "channels": c,
                  "ratio": float(r), "width": math.nan if w is None else float(w)}
                 for i, (b, c, r, w) in enumerate(entries)]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class AdaptiveComparison:
    """One adaptive variant against the sweep's fixed-ratio curve: at equal SE params, and paired with the
    fixed ratio nearest in SE params."""

    variant: str
    kind: str                        # learnable | dynamic
    cost_weight: Any
    top1: Summary                    # top-1 error over the finished seeds
    se_params: float                 # mean over finished seeds of the SE params the net has (dynamic: allocated)
    stage_ratios: dict[int, float]   # stage → mean learned ratio over its blocks and the seeds
    fixed: tuple[str, ...]           # the fixed-ratio variants with a finished run, by SE params
    fixed_costs: tuple[float, ...]
    fixed_errors: tuple[float, ...]
    fixed_at_cost: float             # the fixed-r curve's error at ``se_params`` (NaN: see ``note``)
    note: str                        # INTERPOLATED, OUTSIDE_RANGE, TOO_FEW_FIXED or NO_FINISHED_RUN
    nearest: str | None              # the fixed-ratio variant nearest in log(SE params)
    paired: Comparison | None        # variant − nearest, matched by seed
    #: dynamic only: mean share of the allocated hidden units active per test image (``se_active_width``,
    #: mean over seeds) — a width, not a cost; NaN for learnable variants or runs that did not record it
    active_width: float = math.nan

    @property
    def nearest_cost(self) -> float:
        """Mean SE params of the nearest fixed ratio (NaN without one)."""
        return self.fixed_costs[self.fixed.index(self.nearest)] if self.nearest in self.fixed else math.nan

    @property
    def d_curve(self) -> float:
        """Adaptive − fixed-r curve at equal SE params (NaN where the curve gives no value)."""
        return self.top1.mean - self.fixed_at_cost


def adaptive_comparisons(an: Analysis, metric: str = "top1_err") -> list[AdaptiveComparison]:
    """Every adaptive variant against its fixed-ratio curve (empty when the sweep has no adaptive variant)."""
    if metric not in an.sweep.runs.columns:
        return []
    done = finished(an.sweep.runs)
    cost = allocated_se_params(done)
    active = pd.to_numeric(done["se_active_width"], errors="coerce") if "se_active_width" in done.columns else \
        pd.Series(math.nan, index=done.index)
    out = []
    for v in adaptive_variants(an):
        mine = done["variant"] == v
        top1 = summarize(done.loc[mine, metric], an.confidence)
        at = float(cost[mine].mean()) if top1.n else math.nan
        fixed = [(w, float(cost[done["variant"] == w].mean()), float(an.table.at[w, f"{metric}_mean"]))
                 for w in fixed_ratio_variants(an, v)]
        fixed = sorted(((w, c, e) for w, c, e in fixed if np.isfinite(c) and c > 0 and np.isfinite(e)),
                       key=lambda t: t[1])
        value, note = interpolate_log_cost([c for _, c, _ in fixed], [e for _, _, e in fixed], at)
        nearest = min(fixed, key=lambda t: abs(math.log(t[1]) - math.log(at)))[0] \
            if fixed and np.isfinite(at) and at > 0 else None
        ratios = block_ratios(an, v).dropna(subset=["stage", "ratio"])
        stages = {int(s): float(g.mean()) for s, g in ratios.groupby("stage")["ratio"]}
        kind = adaptive_kind(an.configs.loc[v])
        width = active[mine].dropna()
        out.append(AdaptiveComparison(
            v, kind, an.configs.loc[v].get("model.attention.cost_weight", math.nan),
            top1, at, stages, tuple(w for w, _, _ in fixed), tuple(c for _, c, _ in fixed),
            tuple(e for _, _, e in fixed), value, note, nearest,
            compare(an.sweep.runs, v, nearest, metric, an.confidence) if nearest else None,
            float(width.mean()) if kind == "dynamic" and len(width) else math.nan))
    return out


def ratio_label(an: Analysis, variant: str) -> str:
    """A fixed-ratio variant as the paper writes it: "r=8"."""
    return f"r={format_value(an.configs.at[variant, 'model.attention.reduction'])}"


def adaptive_labels(an: Analysis) -> dict[str, str]:
    """Adaptive variants by kind and cost weight ("learnable, w=1"); their names where that is not unique."""
    names = adaptive_variants(an)
    weight = "model.attention.cost_weight"
    labels = {v: f"{adaptive_kind(an.configs.loc[v])}, w={format_value(an.configs.loc[v].get(weight))}"
              for v in names}
    return labels if len(set(labels.values())) == len(labels) else {v: v for v in names}
