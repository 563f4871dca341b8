"""Aggregation and statistics of a sweep's runs: what a table or a claim in a paper rests on.

Inputs are the sweep's portable outputs (``results/NAME/runs.csv``, ``curves.csv``, ``runs/*.json``) and
its spec file. Everything here works on partial sweeps: missing seeds, failed and diverged runs are
counted (``n``, ``n_diverged``, ``n_failed``) and shown, never silently dropped; only the means exclude
runs that did not finish.

Statistics (all two-sided, 95% by default):

* per variant and metric: mean, sample std (ddof=1), n and a Student-t confidence interval
  ``mean ± t(1-α/2, n-1) · std / √n`` (none for n < 2);
* the *paired* difference to a reference variant (the baseline, or a factor's reference level): runs are
  paired by seed (and recipe keys), because a seed fixes the data order and the shared initial weights, so
  the per-seed differences cancel the seed-to-seed noise. Its CI is the t interval of the differences and
  its test the paired t-test (t distribution from scipy). The exact sign-flip permutation p-value of the
  mean difference is reported beside it; the t-test p-value drives the "significant" wording, because
  with n ≤ 5 pairs the permutation test cannot go below 2/2ⁿ ≥ 0.0625 at all.

What the sweep varies, its :class:`~.factors.Analysis`, labels and contrasts are :mod:`.factors`; adaptive SE
against the fixed ratios of equal cost is :mod:`.equal_cost`; the results folder is read by :mod:`sesweep.results`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from sesweep.analysis.fmt import format_value
from sesweep.results import (  # noqa: F401  (the results reader, re-exported for the analysis modules)
    STATUSES,
    SUMMARY_METRICS,
    Sweep,
    SweepDataError,
    load_sweep,
    read_runs,
    resolve_target,
)
from sesweep.spec import ATTENTION_PREFIX

#: the usual metric columns of a run record, in aggregation order (:data:`sesweep.results.SUMMARY_METRICS`); any
#: other numeric column of runs.csv is aggregated too (after these), so a metric added to the record needs no
#: change here, and aggregating never imports torch
METRICS: tuple[str, ...] = SUMMARY_METRICS
#: runs.csv columns that identify a run or describe where it ran: never aggregated as metrics
ID_COLUMNS = frozenset({"run_key", "sweep", "variant", "seed", "status", "reason", "resolved_device",
                        "resolved_precision", "torch_version", "infer_batch", "python_version", "code_version",
                        "attempt", "worker", "hostname", "results_version", "data_id", "host", "device_name",
                        "timed_shared", "concurrent_workers", "resumed_from_epoch", "threads"})
#: metrics compared against the reference with paired differences
PAIRED_METRICS: tuple[str, ...] = ("top1_err", "top5_err", "test_loss")
#: metrics where larger is better (everything else: smaller is better)
HIGHER_IS_BETTER = frozenset({"train_img_per_s"})
SPEC_PREFIXES = ("model.", "recipe.")
#: spec keys that never define a factor of a sweep (where or how a run happened, not what it computes)
NON_FACTOR_KEYS = frozenset({"recipe.data_root", "recipe.device", "recipe.precision", "recipe.eval_batch_size"})
#: the sign-flip permutation test enumerates all 2ⁿ sign vectors up to this many pairs
MAX_EXACT_PAIRS = 16


# --------------------------------------------------------------------------------------------------
# elementary statistics


@dataclass(frozen=True)
class Summary:
    """Mean, sample std, n and the Student-t confidence interval of one sample."""

    mean: float
    std: float
    n: int
    ci_lo: float
    ci_hi: float

    @property
    def half_width(self) -> float:
        return (self.ci_hi - self.ci_lo) / 2


def t_quantile(n: int, confidence: float = 0.95) -> float:
    """The two-sided Student-t critical value for n observations (n - 1 degrees of freedom)."""
    return float(sps.t.ppf(0.5 + confidence / 2, n - 1)) if n >= 2 else math.nan


def summarize(values: Iterable[float], confidence: float = 0.95) -> Summary:
    """Mean ± t CI of the finite values; std and CI are NaN below two values (nothing to estimate from)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Summary(math.nan, math.nan, 0, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return Summary(mean, math.nan, 1, math.nan, math.nan)
    std = float(x.std(ddof=1))
    half = t_quantile(n, confidence) * std / math.sqrt(n)
    return Summary(mean, std, n, mean - half, mean + half)


def paired_t_p(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test on per-seed differences.

    NaN where the test gives no p-value: below two pairs, and with zero spread (all differences equal, which
    happens because errors move in steps of 1/N_test): t = mean / 0 is undefined, so the test says nothing
    — :func:`no_test_reason` says why.
    """
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return math.nan
    if zero_spread(d):
        return math.nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    t = mean / (sd / math.sqrt(n))
    return float(2.0 * sps.t.sf(abs(t), n - 1))


def sign_flip_p(diffs: Sequence[float]) -> float:
    """Exact two-sided sign-flip permutation p-value of the mean difference (all 2ⁿ sign vectors).

    Under "no effect" each per-seed difference is as likely to have either sign. NaN for no pairs or more
    than :data:`MAX_EXACT_PAIRS`.
    """
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0 or n > MAX_EXACT_PAIRS:
        return math.nan
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    means = np.abs(signs @ d) / n
    observed = abs(float(d.mean()))
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def zero_spread(diffs: Sequence[float]) -> bool:
    """All differences equal up to float rounding (8.3 − 8.0 and 7.3 − 7.0 differ in the 16th digit)."""
    d = np.asarray(diffs, dtype=float)
    return len(d) >= 2 and float(d.max() - d.min()) <= 1e-9 * max(1.0, float(np.abs(d).max()))


def no_test_reason(diffs: Sequence[float]) -> str:
    """Why the paired t-test gives no p-value and no interval for these differences ("" when it does)."""
    d = [float(x) for x in diffs]
    if len(d) < 2:
        return "no matched pairs" if not d else "one matched pair: no test"
    if zero_spread(d):
        return (f"n/a: the difference is {d[0]:+.4g} on all {len(d)} seeds (zero spread), so the t-test and its "
                "interval are undefined")
    return ""


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of one metric: variant minus reference, per matched seed.

    ``note`` says why there is no pair or no test (unmatched configs, zero spread); ``p_holm`` is the
    Holm–Bonferroni adjusted p within the comparison's family (:func:`adjust_family`), NaN until adjusted.
    """

    variant: str
    reference: str
    metric: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    delta: Summary
    p_t: float
    p_perm: float
    note: str = ""
    p_holm: float = math.nan
    family: str = ""
    family_size: int = 0

    @property
    def n(self) -> int:
        return len(self.diffs)

    def as_row(self) -> dict[str, Any]:
        return {"variant": self.variant, "reference": self.reference, "metric": self.metric, "n_pairs": self.n,
                "seeds": ",".join(map(str, self.seeds)), "delta_mean": self.delta.mean,
                "delta_std": self.delta.std, "delta_ci_lo": self.delta.ci_lo, "delta_ci_hi": self.delta.ci_hi,
                "p_t": self.p_t, "p_holm": self.p_holm, "family": self.family, "family_size": self.family_size,
                "p_perm": self.p_perm, "note": self.note}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order.

    NaN entries are not tests: they stay NaN and do not count towards the family size."""
    ps = [float(p) for p in pvalues]
    tested = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    m = len(tested)
    out = [math.nan] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def family_size(pvalues: Sequence[float]) -> int:
    """How many of ``pvalues`` are tests (not NaN): the m of a Holm family."""
    return sum(not math.isnan(float(p)) for p in pvalues)


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """Only the runs that finished: the ones every mean is taken over."""
    return runs[runs["status"] == "finished"]




def pairing_keys(runs: pd.DataFrame, vary: Iterable[str] | None = None) -> list[str]:
    """Columns two runs must share to be a matched pair: the seed and every spec key the contrast does not
    vary. ``vary`` defaults to the attention keys (an SE variant against its plain ResNet or another SE
    variant): the architecture, the class count and the whole recipe must then agree."""
    varied = set(vary) if vary is not None else {c for c in runs.columns if c.startswith(ATTENTION_PREFIX)}
    keys = ["seed"] if "seed" in runs.columns else []
    return keys + [c for c in spec_columns(runs) if c not in varied and c not in NON_FACTOR_KEYS]


def compare(runs: pd.DataFrame, variant: str, reference: str, metric: str, confidence: float = 0.95,
            vary: Iterable[str] | None = None) -> Comparison:
    """Paired difference ``variant − reference`` of ``metric`` over the seeds both finished, pairing runs that
    agree on every key the contrast does not vary (:func:`pairing_keys`); runs of another architecture or
    recipe are never pairs, and ``note`` names the key that kept them apart. Zero spread gives no interval
    and no t-test (:func:`no_test_reason`)."""
    done = finished(runs)
    keys = pairing_keys(runs, vary)
    empty = summarize([])
    if metric not in runs.columns or not keys:
        return Comparison(variant, reference, metric, (), (), empty, math.nan, math.nan, "metric not recorded")
    a = done[done["variant"] == variant][[*keys, metric]]
    b = done[done["variant"] == reference][[*keys, metric]]
    merged = a.merge(b, on=keys, suffixes=("_v", "_r")).dropna(subset=[f"{metric}_v", f"{metric}_r"])
    merged = merged.sort_values(keys[0])
    diffs = (merged[f"{metric}_v"] - merged[f"{metric}_r"]).to_numpy(dtype=float)
    seeds = tuple(int(s) for s in merged["seed"]) if "seed" in merged.columns else ()
    note = no_test_reason(diffs) if len(diffs) else _unmatched_reason(runs, variant, reference, keys)
    delta = summarize(diffs, confidence)
    if zero_spread(diffs):  # a zero-width "interval" the data cannot support
        delta = Summary(delta.mean, delta.std, delta.n, math.nan, math.nan)
    return Comparison(variant, reference, metric, seeds, tuple(float(d) for d in diffs), delta,
                      paired_t_p(diffs), sign_flip_p(diffs), note)


def _unmatched_reason(runs: pd.DataFrame, variant: str, reference: str, keys: Sequence[str]) -> str:
    """Why two variants have no matched pair: the first spec key they disagree on, or no common seed."""
    a, b = runs[runs["variant"] == variant], runs[runs["variant"] == reference]
    if a.empty or b.empty:
        return f"no run of {variant if a.empty else reference}"
    for key in keys[1:]:
        if not same_value(a[key].iloc[0], b[key].iloc[0]):
            return (f"not matched: {key} is {format_value(a[key].iloc[0])} for {variant} but "
                    f"{format_value(b[key].iloc[0])} for {reference}")
    return "no seed finished in both"


# --------------------------------------------------------------------------------------------------
# the runs table's spec columns, and config values compared across CSV round trips


def spec_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith(SPEC_PREFIXES)]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def same_value(a: Any, b: Any) -> bool:
    """Config values compared across CSV round trips: 16 == 16.0 == "16", [2, 3] == "[2, 3]", null == NaN."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return _norm(a) == _norm(b)


def _norm(v: Any) -> str:
    return re.sub(r"\s+", "", str(list(v) if isinstance(v, tuple) else v))


# --------------------------------------------------------------------------------------------------
# the per-variant aggregate


def status_counts(runs: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """Per variant: runs recorded, finished, diverged, failed (anything else), seeds done and missing."""
    rows = []
    for variant, group in runs.groupby("variant", sort=False):
        status = group["status"]
        done_seeds = sorted(int(s) for s in group.loc[status == "finished", "seed"]) if "seed" in group else []
        row: dict[str, Any] = {
            "variant": variant, "n_runs": len(group), "n": int((status == "finished").sum()),
            "n_diverged": int((status == "diverged").sum()),
            "n_failed": int((~status.isin(["finished", "diverged"])).sum()),
            "seeds": ",".join(map(str, done_seeds)),
        }
        if seeds is not None:
            row["n_expected"] = len(seeds)
            row["missing_seeds"] = ",".join(str(s) for s in seeds if s not in done_seeds)
        rows.append(row)
    columns = ["variant", "n_runs", "n", "n_diverged", "n_failed", "seeds"]
    columns += ["n_expected", "missing_seeds"] if seeds is not None else []
    return pd.DataFrame(rows, columns=columns).set_index("variant")


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The metrics present in the runs table: the usual ones in record order, then other numeric columns."""
    known = [m for m in METRICS if m in runs.columns]
    extra = [c for c in runs.columns if c not in known and c not in ID_COLUMNS and not c.startswith(SPEC_PREFIXES)
             and pd.api.types.is_numeric_dtype(runs[c]) and not pd.api.types.is_bool_dtype(runs[c])]
    return known + extra


def aggregate(runs: pd.DataFrame, baseline: str | Mapping[str, str | None] | None = None, *,
              seeds: Sequence[int] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """One row per variant: counts, ``<metric>_{mean,std,n,ci_lo,ci_hi}``, paired deltas vs its baseline
    (``d_<metric>_{mean,ci_lo,ci_hi,n,p_t,p_holm,p_perm,ref,note}``) and ``rank`` by mean top-1 error (1 = best).

    ``baseline``: one variant, or per variant its own (:func:`baseline_references`). ``p_holm`` adjusts the
    p-values of every variant against its baseline as one family (the overall table's Δ column)."""
    out = status_counts(runs, seeds)
    cols: dict[str, Any] = {}  # built apart and joined once (a column at a time fragments the frame)
    done = finished(runs)
    refs = dict(baseline) if isinstance(baseline, Mapping) else dict.fromkeys(out.index, baseline)
    for metric in metric_columns(runs):
        values = {v: summarize(done.loc[done["variant"] == v, metric], confidence) for v in out.index}
        for stat in ("mean", "std", "n", "ci_lo", "ci_hi"):
            cols[f"{metric}_{stat}"] = [getattr(values[v], stat) for v in out.index]
    for metric in (m for m in PAIRED_METRICS if m in runs.columns):
        comps = {v: compare(runs, v, refs[v], metric, confidence) if refs.get(v) not in (None, v) else None
                 for v in out.index}
        cols[f"d_{metric}_mean"] = [c.delta.mean if c else math.nan for c in comps.values()]
        cols[f"d_{metric}_ci_lo"] = [c.delta.ci_lo if c else math.nan for c in comps.values()]
        cols[f"d_{metric}_ci_hi"] = [c.delta.ci_hi if c else math.nan for c in comps.values()]
        cols[f"d_{metric}_n"] = [c.n if c else 0 for c in comps.values()]
        cols[f"d_{metric}_p_t"] = [c.p_t if c else math.nan for c in comps.values()]
        cols[f"d_{metric}_p_holm"] = holm(list(cols[f"d_{metric}_p_t"]))
        cols[f"d_{metric}_p_perm"] = [c.p_perm if c else math.nan for c in comps.values()]
        cols[f"d_{metric}_ref"] = [c.reference if c else None for c in comps.values()]
        cols[f"d_{metric}_note"] = [c.note if c else _no_reference_note(v, refs) for v, c in comps.items()]
    out = pd.concat([out, pd.DataFrame(cols, index=out.index)], axis=1)
    if "top1_err_mean" in out.columns:
        out["rank"] = out["top1_err_mean"].rank(method="min", ascending=True).astype("Int64")
    return out


def _no_reference_note(variant: str, refs: Mapping[str, str | None]) -> str:
    if refs.get(variant) == variant:
        return "baseline"
    if not any(refs.values()):
        return "no baseline"
    return "no baseline with the same architecture and recipe"
