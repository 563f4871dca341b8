"""Proof by simulation of the seed policy: ``python -m sesweep.analysis.seed_simulation [--sweeps 10000]``.

A benchmark, not a timed test: the real policy (:func:`.seed_allocation.allocate`) and statistic
(:mod:`.sequential`) driven by simulated seed results. Each simulated sweep has a baseline and five variants
(five contrasts, each variant against the baseline, so they share the baseline's noise); a variant's top-1 error
on seed s is ``mu_v + e_vs`` with seed noise of std ``SEED_STD`` points, Gaussian or Student t with 3 degrees of
freedom (heavy tails, scaled to the same std). Every seed's result up to ``max`` is drawn up front and the
policy is replayed on them once: it reads a level's seeds only once it has allocated them, so this is the same
as feeding it round by round (a test checks that).

It prints, under no effect, the rate of sweeps with any false "better"/"worse" and its Clopper-Pearson 95%
interval, for the confidence sequence and for a naive rule (the fixed-n t interval at every look, through the
same driver and Bonferroni split); and under an effect of one standard deviation of the paired difference, the
median seeds the policy took to a decision against the fixed n a paired t-test needs for 80% power at the same
alpha, and the runs saved against training every variant to ``max``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from sesweep.analysis.seed_allocation import ContrastPair, allocate, contrast_alpha
from sesweep.analysis.sequential import BETTER, DECIDED, WORSE, IntervalRule, clopper_pearson, mixture_cs, naive_t
from sesweep.seed_policy import SeedPolicy

#: a variant's seed-to-seed std of top-1 error, in points (CIFAR ResNets: a few tenths of a point)
SEED_STD = 0.3
#: the simulated sweep: a baseline and this many variants, each contrasted with the baseline
CONTRASTS = 5
BASELINE = "baseline"


def noise(rng: np.random.Generator, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance seed noise: ``gauss`` or ``t3`` (Student t, 3 dof, divided by sqrt(3))."""
    if kind == "gauss":
        return rng.standard_normal(shape)
    if kind == "t3":
        return rng.standard_t(3, shape) / math.sqrt(3.0)
    raise ValueError(f"noise {kind!r}: allowed gauss, t3")


@dataclass(frozen=True)
class SweepOutcome:
    """One simulated sweep: per contrast the decision and the seeds its sides took, and the runs trained."""

    decisions: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: int


def simulate_sweep(rng: np.random.Generator, policy: SeedPolicy, effects: Sequence[float], kind: str,
                   rule: IntervalRule = mixture_cs) -> SweepOutcome:
    """One sweep: ``effects[i]`` (points) is variant i's true difference to the baseline."""
    variants = [BASELINE, *(f"v{i}" for i in range(len(effects)))]
    errors = SEED_STD * noise(rng, kind, (len(variants), policy.max))
    errors[1:] += np.asarray(effects, dtype=float)[:, None]
    outcomes = {v: dict(enumerate(map(float, errors[i]))) for i, v in enumerate(variants)}
    pairs = [ContrastPair(v, BASELINE) for v in variants[1:]]
    alloc = allocate(policy, variants, pairs, outcomes, rule)
    return SweepOutcome(tuple(c.decision for c in alloc.contrasts), tuple(c.level for c in alloc.contrasts),
                        alloc.at_least)


def false_rate(policy: SeedPolicy, kind: str, sweeps: int, seed: int, rule: IntervalRule = mixture_cs,
               contrasts: int = CONTRASTS) -> tuple[int, int]:
    """Under no effect: (sweeps with any "better"/"worse", sweeps)."""
    rng = np.random.default_rng(seed)
    bad = 0
    for _ in range(sweeps):
        out = simulate_sweep(rng, policy, [0.0] * contrasts, kind, rule)
        bad += any(d in (BETTER, WORSE) for d in out.decisions)
    return bad, sweeps


def t_test_n(effect_sd: float, alpha: float, power: float = 0.8, most: int = 1000) -> int:
    """The fixed number of pairs a two-sided paired t-test at ``alpha`` needs for ``power`` at a standardised
    effect (noncentral t)."""
    for n in range(2, most):
        crit = sps.t.ppf(1 - alpha / 2, n - 1)
        ncp = effect_sd * math.sqrt(n)
        if sps.nct.sf(crit, n - 1, ncp) + sps.nct.cdf(-crit, n - 1, ncp) >= power:
            return n
    return most


def _rate(k: int, n: int) -> str:
    lo, hi = clopper_pearson(k, n)
    return f"{k / n:.4f} [{lo:.4f}, {hi:.4f}] ({k}/{n})"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sesweep.analysis.seed_simulation", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--sweeps", type=int, default=10_000, help="simulated sweeps per setting (default 10000)")
    parser.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    args = parser.parse_args(argv)
    policy = SeedPolicy()
    alpha_k = contrast_alpha(policy, CONTRASTS)
    print(f"policy {policy}; {CONTRASTS} contrasts vs one baseline, alpha per contrast {alpha_k:g}; seed std "
          f"{SEED_STD} points; {args.sweeps} sweeps per setting; family-wise false better/worse rate, Clopper-Pearson "
          "95% interval")
    for kind in ("gauss", "t3"):
        for name, rule in (("confidence sequence", mixture_cs), ("naive t at every look", naive_t)):
            start = time.perf_counter()
            k, n = false_rate(policy, kind, args.sweeps, args.seed, rule)
            print(f"  no effect, {kind:5} noise, {name:22}: {_rate(k, n)}  ({time.perf_counter() - start:.0f} s)")
    diff_sd = SEED_STD * math.sqrt(2.0)
    effect = 1.0 * diff_sd
    fixed = t_test_n(1.0, alpha_k)
    print(f"effect {effect:.3f} points on every contrast = 1 std of the paired difference ({diff_sd:.3f}); a paired "
          f"t-test at alpha {alpha_k:g} needs n = {fixed} seeds for 80% power")
    for kind in ("gauss", "t3"):
        rng = np.random.default_rng(args.seed + 1)
        outs = [simulate_sweep(rng, policy, [effect] * CONTRASTS, kind) for _ in range(args.sweeps)]
        seeds = np.array([s for o in outs for s in o.seeds])
        decided = np.array([d in DECIDED for o in outs for d in o.decisions])
        right = np.mean([d == WORSE for o in outs for d in o.decisions])
        runs = np.mean([o.runs for o in outs])
        full = policy.max * (CONTRASTS + 1)
        median = np.median(seeds[decided]) if decided.any() else math.nan
        print(f"  {kind:5} noise: decided {decided.mean():.3f} of contrasts (correct 'worse' {right:.3f}) with median "
              f"{median:.0f} seeds (all contrasts: median {np.median(seeds):.0f}); {runs:.1f} runs per sweep of "
              f"{full} at max (saved {1 - runs / full:.0%})")


if __name__ == "__main__":
    main()
