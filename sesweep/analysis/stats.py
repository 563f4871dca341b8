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

Adaptive SE variants (learned or per-input widths) are compared with the sweep's fixed-ratio curve at equal
SE parameters (:func:`adaptive_comparisons`): the curve's mean error interpolated linearly in log(SE params),
never extrapolated, and the paired difference to the fixed ratio nearest in SE params.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import numpy as np
import pandas as pd
import yaml
from scipy import stats as sps

from sesweep.spec import RunSpec, flatten
from sesweep.vocabulary import short_name

#: the usual metric columns of a run record, in ``sesweep.training.train.METRICS`` order; any other numeric column
#: of runs.csv is aggregated too (after these), so a metric added to the record needs no change here, and
#: aggregating never imports torch
METRICS: tuple[str, ...] = ("top1_err", "top5_err", "test_loss", "train_loss", "params", "se_params", "macs",
                            "train_seconds", "train_img_per_s", "infer_ms", "peak_mem_mb", "epochs_done")
#: runs.csv columns that identify a run or describe where it ran: never aggregated as metrics
ID_COLUMNS = frozenset({"run_key", "sweep", "variant", "seed", "status", "reason", "resolved_device",
                        "resolved_precision", "torch_version", "infer_batch", "python_version", "code_version",
                        "attempt", "worker", "hostname", "results_version", "data_id", "host", "device_name",
                        "timed_shared", "concurrent_workers"})
#: metrics compared against the reference with paired differences
PAIRED_METRICS: tuple[str, ...] = ("top1_err", "top5_err", "test_loss")
#: metrics where larger is better (everything else: smaller is better)
HIGHER_IS_BETTER = frozenset({"train_img_per_s"})
SPEC_PREFIXES = ("model.", "recipe.")
#: spec keys that never define a factor of a sweep (where or how a run happened, not what it computes)
NON_FACTOR_KEYS = frozenset({"recipe.data_root", "recipe.device", "recipe.precision", "recipe.eval_batch_size"})
STATUSES = ("finished", "diverged", "failed")
#: the sign-flip permutation test enumerates all 2ⁿ sign vectors up to this many pairs
MAX_EXACT_PAIRS = 16


class SweepDataError(FileNotFoundError):
    """A sweep's results cannot be found or read; the message says which path and why."""


# --------------------------------------------------------------------------------------------------
# loading


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
    root = results_root if results_root is not None else Path("results")
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


def load_sweep(target: str | Path, results_root: Path | None = None) -> Sweep:
    """Read runs.csv (required), curves.csv and runs/*.json (optional) and the spec of a sweep."""
    name, results_dir, spec_path = resolve_target(target, results_root)
    runs_csv = results_dir / "runs.csv"
    if not runs_csv.is_file():
        raise SweepDataError(f"{runs_csv}: not found — has any run of sweep '{name}' finished yet?")
    warnings: list[str] = []
    runs = read_runs(runs_csv)
    spec_text = spec_path.read_text() if spec_path else ""
    spec = _parse_spec(spec_text, spec_path, warnings)
    details = _read_details(results_dir / "runs", warnings)
    curves = _read_curves(results_dir / "curves.csv", details)
    manifest = _read_manifest(results_dir / "manifest.json", warnings)
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


def _parse_spec(text: str, path: Path | None, warnings: list[str]) -> dict[str, Any]:
    """The spec as a mapping; an unreadable spec is a warning, not a failure (the runs still count)."""
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


ATTENTION_PREFIX = "model.attention."


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
        if not _same(a[key].iloc[0], b[key].iloc[0]):
            return (f"not matched: {key} is {format_value(a[key].iloc[0])} for {variant} but "
                    f"{format_value(b[key].iloc[0])} for {reference}")
    return "no seed finished in both"


# --------------------------------------------------------------------------------------------------
# what the sweep varies


def spec_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith(SPEC_PREFIXES)]


def variant_configs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per variant: its resolved spec keys (from any of its runs, failed ones included)."""
    cols = spec_columns(runs)
    return runs.groupby("variant", sort=False)[cols].first() if cols else pd.DataFrame(index=runs["variant"].unique())


def is_attention_off(config: Mapping[str, Any]) -> bool:
    return str(config.get("model.attention.kind", "se")) == "none"


def varied_keys(configs: pd.DataFrame) -> list[str]:
    """Spec keys whose value differs between variants (the sweep's factors).

    Attention sub-keys are compared among attention variants only: a ResNet baseline still carries the
    default ``reduction`` etc., which mean nothing without attention.
    """
    attn_rows = configs.loc[np.array([not is_attention_off(r) for _, r in configs.iterrows()], dtype=bool)]
    keys = []
    for key in configs.columns:
        if key in NON_FACTOR_KEYS:
            continue
        rows = attn_rows if key.startswith("model.attention.") and key != "model.attention.kind" else configs
        if rows[key].astype(str).nunique() > 1:
            keys.append(key)
    return keys


#: variant names the baseline defaults to when the spec names none (as in sesweep.plan)
DEFAULT_BASELINES = ("resnet", "baseline")


def find_baseline(spec: Mapping[str, Any], configs: pd.DataFrame) -> str | None:
    """The spec's ``baseline``; else a variant called resnet/baseline; else the one variant without attention."""
    named = spec.get("baseline")
    if isinstance(named, str) and named in configs.index:
        return named
    for name in DEFAULT_BASELINES:
        if name in configs.index:
            return name
    off = [v for v, row in configs.iterrows() if is_attention_off(row)]
    return str(off[0]) if len(off) == 1 else None


def find_baselines(manifest: Mapping[str, Any], spec: Mapping[str, Any], configs: pd.DataFrame) -> list[str]:
    """The baseline variants that have runs: the runner's manifest (``baselines``, one per backbone when the
    sweep crosses its baseline with the axes), else :func:`find_baseline` on the spec."""
    listed = manifest.get("baselines")
    if not isinstance(listed, list):
        listed = [manifest["baseline"]] if manifest.get("baseline") else []
    found = [str(b) for b in listed if str(b) in configs.index]
    if found or listed:
        return found
    one = find_baseline(spec, configs)
    return [one] if one is not None else []


def group_keys(configs: pd.DataFrame) -> list[str]:
    """The factors that are not attention knobs (``model.arch``, recipe keys): a variant is only ever compared
    with a baseline — and tables only ever pool rows — that agree on all of them."""
    return [k for k in varied_keys(configs) if not k.startswith(ATTENTION_PREFIX)]


def baseline_references(configs: pd.DataFrame, baselines: Sequence[str]) -> dict[str, str | None]:
    """Variant → its baseline: the one baseline that agrees with it on every non-attention spec key (same
    architecture, same recipe); None where no baseline does. Baselines map to themselves."""
    keys = [k for k in configs.columns if not k.startswith(ATTENTION_PREFIX) and k not in NON_FACTOR_KEYS]
    out: dict[str, str | None] = {}
    for v, row in configs.iterrows():
        if v in baselines:
            out[str(v)] = str(v)
            continue
        match = [b for b in baselines if all(_same(configs.at[b, k], row[k]) for k in keys)]
        out[str(v)] = match[0] if len(match) == 1 else None
    return out


def literal_order(key: str) -> list[Any] | None:
    """The allowed values of a spec key in schema order (e.g. placement: standard, pre, post, identity)."""
    cls: Any = RunSpec
    hint: Any = None
    for part in key.split("."):
        try:
            hint = get_type_hints(cls).get(part)
        except TypeError:
            return None
        if hint is None:
            return None
        cls = hint
    args = get_args(hint)
    if get_origin(hint) is not None and args and all(isinstance(a, str) for a in args):
        return list(args)
    return None


def sort_value(key: str, value: Any) -> tuple[int, float, str]:
    """A sort key that orders numbers numerically, schema literals in schema order, the rest as text."""
    order = literal_order(key)
    if order is not None and value in order:
        return (0, float(order.index(value)), "")
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def variant_order(configs: pd.DataFrame, baselines: str | Sequence[str] | None, keys: Sequence[str],
                  manifest: Mapping[str, Any] | None = None) -> list[str]:
    """Grouped by the non-attention factors (architecture, recipe), in each group its baseline first.

    With the runner's ``manifest`` (its ``runs``, else its ``variants``): the spec's order — the order the
    manifest first names each variant (axes levels as written, then the named variants in file order), the
    groups in the order their first variant comes; variants the manifest does not name follow. Without one:
    the groups and then the variants ordered by their factor values (r = 2, 4, 8 …), then by name."""
    bases = [baselines] if isinstance(baselines, str) else list(baselines or [])
    groups = [k for k in keys if not k.startswith(ATTENTION_PREFIX)]
    rest = [k for k in keys if k not in groups]

    def rank(v: Any) -> tuple[Any, ...]:
        return ([sort_value(k, configs.at[v, k]) for k in groups], v not in bases,
                [sort_value(k, configs.at[v, k]) for k in rest], str(v))

    fallback = [str(v) for v in sorted(configs.index, key=rank)]
    manifest = manifest or {}
    listed = [r.get("variant") for r in manifest.get("runs") or [] if isinstance(r, Mapping)] or \
        [v.get("name") for v in manifest.get("variants") or [] if isinstance(v, Mapping)]
    position = {str(v): i for i, v in enumerate(dict.fromkeys(listed)) if v is not None}
    if not any(v in position for v in fallback):
        return fallback
    spec_order = sorted(fallback, key=lambda v: position.get(v, len(position)))   # stable: the unnamed keep theirs
    group_of = {v: tuple(str(configs.at[v, k]) for k in groups) for v in spec_order}
    first = {g: i for i, g in reversed(list(enumerate(group_of[v] for v in spec_order)))}
    return sorted(spec_order, key=lambda v: (first[group_of[v]], v not in bases))


@dataclass(frozen=True)
class Held:
    """The level a factor is held at (paper tables) or compared against (factor contrasts), and why."""

    value: Any
    source: str          # "base" (the sweep's base value), "default" (the schema default) or "first level"


def base_value(key: str, manifest: Mapping[str, Any], spec: Mapping[str, Any]) -> Any:
    """The sweep's resolved base value of a key: the manifest's ``base`` (the runner resolves it), else the
    spec's nested ``model:``/``recipe:`` sections; None when neither says."""
    base = manifest.get("base")
    if isinstance(base, Mapping) and key in base:
        return base[key]
    node: Any = spec
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def held_level(key: str, levels: Sequence[Any], manifest: Mapping[str, Any], spec: Mapping[str, Any]) -> Held:
    """A factor's reference level: the sweep's base value, else the schema default, else the first level in
    sort order — never a count of which level happens to have most variants."""
    default = flatten(RunSpec()).get(key)
    base = base_value(key, manifest, spec)
    candidates = (("base", default if base is None else base), ("default", default))  # unset: the default
    for source, candidate in candidates:
        if candidate is None:
            continue
        for level in levels:
            if _same(level, candidate):
                return Held(level, source)
    return Held(levels[0] if levels else None, "first level")


def reference_value(key: str, spec: Mapping[str, Any], levels: Sequence[Any],
                    manifest: Mapping[str, Any] | None = None) -> Any:
    """A factor's reference level (:func:`held_level`'s value)."""
    return held_level(key, levels, manifest or {}, spec).value


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _same(a: Any, b: Any) -> bool:
    """Config values compared across CSV round trips: 16 == 16.0 == "16", [2, 3] == "[2, 3]", null == NaN."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return _norm(a) == _norm(b)


def _norm(v: Any) -> str:
    return re.sub(r"\s+", "", str(list(v) if isinstance(v, tuple) else v))


def factor_pairs(configs: pd.DataFrame, key: str, reference: Any, keys: Sequence[str],
                 baseline: str | Sequence[str] | None) -> list[tuple[str, str]]:
    """(variant, reference variant) pairs differing in ``key`` only, the reference at level ``reference``."""
    bases = [baseline] if isinstance(baseline, str) else list(baseline or [])
    rows = {v: r for v, r in configs.iterrows() if v not in bases and not is_attention_off(r)}
    others = [k for k in keys if k != key]
    pairs = []
    for v, row in rows.items():
        if _same(row[key], reference):
            continue
        match = [w for w, r in rows.items() if _same(r[key], reference)
                 and all(_same(r[k], row[k]) for k in others)]
        if len(match) == 1:
            pairs.append((str(v), str(match[0])))
    return pairs


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


@dataclass(frozen=True)
class Analysis:
    """A sweep, aggregated: what tables, figures and the report share."""

    sweep: Sweep
    configs: pd.DataFrame
    factors: list[str]
    baseline: str | None         # the first baseline (the only one unless the sweep crosses it with the axes)
    order: list[str]
    table: pd.DataFrame          # :func:`aggregate`, rows in ``order``
    confidence: float = 0.95
    alpha: float = 0.05
    baselines: tuple[str, ...] = ()
    #: variant → its baseline (same architecture and recipe), None where the sweep has none
    references: dict[str, str | None] = field(default_factory=dict)

    def is_baseline(self, variant: str) -> bool:
        return variant in self.baselines


def analyze(sweep: Sweep, confidence: float = 0.95) -> Analysis:
    """Aggregate a loaded sweep: baselines, factors, variant order and the per-variant statistics."""
    runs = sweep.runs
    configs = variant_configs(runs)
    factors = varied_keys(configs)
    baselines = find_baselines(sweep.manifest, sweep.spec, configs)
    refs = baseline_references(configs, baselines)
    order = variant_order(configs, baselines, factors, sweep.manifest)
    table = aggregate(runs, refs, seeds=sweep.seeds, confidence=confidence).reindex(order)
    return Analysis(sweep, configs, factors, baselines[0] if baselines else None, order, table, confidence,
                    1.0 - confidence, tuple(baselines), refs)


def recipe_mismatch(configs: pd.DataFrame) -> list[str]:
    """Recipe keys that differ between variants: such variants are not matched, say so."""
    return [k for k in varied_keys(configs) if k.startswith("recipe.")]


# --------------------------------------------------------------------------------------------------
# labels and the contrasts a summary talks about

# short names of the usual factors, as the SENet paper writes them (SHORT_NAMES, short_name): defined in
# sesweep.vocabulary with the table and figure names that use them


def format_value(value: Any) -> str:
    """A config value as people write it: 16.0 → 16, "[2, 3]" stays, NaN → —."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def held_levels(an: Analysis) -> dict[str, Held]:
    """Per attention factor (but ``kind``): the level paper tables hold it at and labels leave unsaid — the
    sweep's base value, else the schema default (:func:`held_level`). Non-attention factors (architecture,
    recipe) are not held: tables group by them."""
    keys = [k for k in an.factors if k.startswith(ATTENTION_PREFIX) and k != "model.attention.kind"]
    return {k: held_level(k, factor_levels(an, k), an.sweep.manifest, an.sweep.spec) for k in keys}


def common_levels(an: Analysis) -> dict[str, str]:
    """Per held factor, its held level formatted (:func:`held_levels`)."""
    return {k: format_value(h.value) for k, h in held_levels(an).items()}


def variant_labels(an: Analysis) -> dict[str, str]:
    """Short readable labels ("r=8", "pool=max", "arch=resnet32"): per variant, the attention factors where it
    differs from the held level (the first factor when none does) and the non-attention factors; a
    baseline is its name plus those; the variant's name where a label is not unique."""
    held = common_levels(an)
    keys = list(held)
    groups = [k for k in an.factors if not k.startswith(ATTENTION_PREFIX)]
    labels = {}
    for v in an.order:
        row = an.configs.loc[v]
        grouping = [f"{short_name(k)}={format_value(row[k])}" for k in groups]
        if is_attention_off(row):
            labels[v] = v if v in an.baselines or not grouping else ", ".join([v, *grouping])
            continue
        differ = [k for k in keys if format_value(row[k]) != held[k]] or keys[:1]
        labels[v] = ", ".join([*(f"{short_name(k)}={format_value(row[k])}" for k in differ), *grouping]) or v
    if len(set(labels.values())) < len(labels):
        return {v: v for v in an.order}
    return labels


@dataclass(frozen=True)
class Contrast:
    """One comparison the report states: against the baseline, or a factor level against its reference."""

    factor: str | None           # None: against the baseline
    label: str                   # "r=8 vs resnet", "pool=max vs pool=avg"
    comparison: Comparison


#: the family of the contrasts of every variant against its baseline (the overall table's Δ column)
BASELINE_FAMILY = "vs baseline"


def contrasts(an: Analysis, metric: str = "top1_err") -> list[Contrast]:
    """Every variant against its baseline (same architecture and recipe), then, per factor, every level
    against the reference level with everything else equal; Holm-adjusted within each family
    (:data:`BASELINE_FAMILY`, then one family per factor)."""
    labels = variant_labels(an)
    out = []
    for v in an.order:
        ref = an.references.get(v)
        if an.baselines and not an.is_baseline(v):
            comp = compare(an.sweep.runs, v, ref, metric, an.confidence) if ref else Comparison(
                v, "", metric, (), (), summarize([]), math.nan, math.nan,
                "no baseline with the same architecture and recipe")
            out.append(Contrast(None, f"{labels[v]} vs {labels[ref] if ref else 'baseline'}", comp))
    for key in an.factors:
        if key == "model.attention.kind" or (an.baselines and _only_baseline_differs(an, key)):
            continue
        levels = factor_levels(an, key)
        ref = held_level(key, levels, an.sweep.manifest, an.sweep.spec).value
        for v, w in factor_pairs(an.configs, key, ref, an.factors, an.baselines):
            comp = compare(an.sweep.runs, v, w, metric, an.confidence, vary={key})
            name = short_name(key)
            rest = [k for k in an.factors if k not in (key, "model.attention.kind")]
            where = ", ".join(f"{short_name(k)}={format_value(an.configs.at[v, k])}" for k in rest)
            label = f"{name}={format_value(an.configs.at[v, key])} vs {name}={format_value(ref)}"
            out.append(Contrast(key, f"{label} ({where})" if where else label, comp))
    return adjust_family(out)


def family_of(c: Contrast) -> str:
    """The Holm family of a contrast: all contrasts against the baseline, or one factor's level contrasts."""
    return BASELINE_FAMILY if c.factor is None else f"{short_name(c.factor)} levels"


def adjust_family(items: Sequence[Contrast], family: str | None = None) -> list[Contrast]:
    """The contrasts with Holm–Bonferroni adjusted p-values, one family per :func:`family_of` (or all in
    ``family``); a contrast without a p-value stays unadjusted and does not count."""
    names = [family or family_of(c) for c in items]
    out = list(items)
    for name in dict.fromkeys(names):
        idx = [i for i, n in enumerate(names) if n == name]
        ps = [items[i].comparison.p_t for i in idx]
        size = family_size(ps)
        for i, p in zip(idx, holm(ps), strict=True):
            comp = dataclasses.replace(items[i].comparison, p_holm=p, family=name, family_size=size)
            out[i] = dataclasses.replace(items[i], comparison=comp)
    return out


def _only_baseline_differs(an: Analysis, key: str) -> bool:
    """A non-attention key that only the baselines change is already covered by the baseline contrasts."""
    others = an.configs.drop(index=list(an.baselines))
    return not key.startswith(ATTENTION_PREFIX) and others[key].astype(str).nunique() <= 1


def factor_levels(an: Analysis, key: str) -> list[Any]:
    """The distinct values of a factor among the attention variants, in sort order."""
    keep = [not an.is_baseline(str(v)) and not is_attention_off(r) for v, r in an.configs.iterrows()]
    rows = an.configs.loc[np.array(keep, dtype=bool)]
    seen: list[Any] = []
    for value in rows[key] if key in rows.columns else []:
        if not any(_same(value, s) for s in seen):
            seen.append(value)
    return sorted(seen, key=lambda x: sort_value(key, x))


def contrast_frame(items: Sequence[Contrast]) -> pd.DataFrame:
    """The contrasts as a table (comparisons.csv): raw ``p_t`` and Holm-adjusted ``p_holm`` within ``family``."""
    return pd.DataFrame([{"factor": c.factor or "baseline", "label": c.label, **c.comparison.as_row()}
                         for c in items])


# --------------------------------------------------------------------------------------------------
# adaptive SE against the fixed ratios of equal cost

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
            and adaptive_kind(an.configs.loc[w]) == "none" and all(_same(an.configs.at[w, k], row[k]) for k in keys)]


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
