"""The seed policy's statistic and allocation (issue 24): the closed form against a direct evaluation of the
mixture martingale, null coverage under optional stopping (a naive rule fails it), and a count check that a
policy adding seeds to decided contrasts fails."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from sesweep.analysis.seed_allocation import ContrastPair, allocate, contrast_alpha, evaluate, target_n
from sesweep.analysis.seed_simulation import false_rate
from sesweep.analysis.sequential import (
    BETTER,
    EQUIVALENT,
    UNDECIDED,
    WORSE,
    clopper_pearson,
    mixture_c,
    mixture_cs,
    naive_t,
    sequence,
)
from sesweep.seed_policy import SeedPolicy, parse_seed_policy
from sesweep.spec import SpecError


def closed_form_m(x: np.ndarray, c: float) -> float:
    t, s1, s2 = len(x), float(np.sum(x)), float(np.sum(x * x))
    return math.sqrt(c / (c + t)) * (s2 / (s2 - s1 * s1 / (t + c))) ** (t / 2)


def direct_m(x: np.ndarray, c: float) -> float:
    """M_t(0) by its definition: the scale-invariant likelihood ratio, N(delta sigma, sigma^2) mixed over delta ~
    N(0, 1/c) and sigma ~ d sigma / sigma, against N(0, sigma^2) -- integrated numerically (log sigma = u)."""
    def lik(u: float, delta: float) -> float:
        s = math.exp(u)
        return float(np.exp(np.sum(-0.5 * ((x - delta * s) / s) ** 2) - len(x) * u))

    prior = math.sqrt(c / (2 * math.pi))

    def over_sigma(delta: float) -> float:
        peak = math.log(math.sqrt(float(np.mean(x * x))) / (1 + abs(delta)))  # where the sigma mass sits
        return integrate.quad(lambda u: lik(u, delta), peak - 15, peak + 15, epsabs=0, epsrel=1e-11, limit=200)[0]

    width = 12 / math.sqrt(c)
    num = integrate.quad(lambda d: over_sigma(d) * prior * math.exp(-0.5 * c * d * d), -width, width,
                         epsabs=0, epsrel=1e-10, limit=400)[0]
    den = over_sigma(0.0)
    return num / den


@pytest.mark.parametrize("c", [0.05, 1.0])
def test_closed_form_matches_a_direct_evaluation_of_the_mixture_martingale(c: float):
    rng = np.random.default_rng(3)
    for t in (1, 2, 5):
        x = rng.normal(0.4, 1.3, t)
        assert direct_m(x, c) == pytest.approx(closed_form_m(x, c), rel=1e-5)


def test_the_interval_ends_are_where_the_martingale_reaches_one_over_alpha():
    rng = np.random.default_rng(4)
    d = rng.normal(0.2, 0.5, 9)
    alpha, c = 0.01, mixture_c(0.01, 10)
    lo, hi = mixture_cs(d, alpha, c)
    for end in (lo[-1], hi[-1]):
        assert closed_form_m(d - end, c) == pytest.approx(1 / alpha, rel=1e-8)
    inside = (lo[-1] + hi[-1]) / 2
    assert closed_form_m(d - inside, c) < 1 / alpha


def test_decisions_better_worse_equivalent_undecided():
    rng = np.random.default_rng(5)
    c = mixture_c(0.01, 12)
    z = rng.standard_normal(20)
    assert sequence(range(20), -2 + 0.3 * z, 0.01, 0.3, c).decision == BETTER
    assert sequence(range(20), 2 + 0.3 * z, 0.01, 0.3, c).decision == WORSE
    assert sequence(range(20), 0.02 * z, 0.01, 0.3, c).decision == EQUIVALENT
    assert sequence(range(3), z[:3], 0.01, 0.3, c).decision == UNDECIDED


def test_null_coverage_holds_under_optional_stopping_and_a_naive_rule_fails_it():
    # 400 sweeps of 5 null contrasts, fixed seed: alpha = 0.05 family-wise. The sequence's false rate must stay
    # inside the binomial interval of alpha (upper end below 0.08); the t interval at every look exceeds it.
    policy = SeedPolicy(start=3, max=20, step=1, margin=0.01, alpha=0.05)
    k, n = false_rate(policy, "gauss", 400, seed=11)
    lo, _ = clopper_pearson(k, n)
    assert lo <= policy.alpha, f"confidence sequence: {k}/{n} false findings"
    kn, _ = false_rate(policy, "gauss", 400, seed=11, rule=naive_t)
    assert clopper_pearson(kn, n)[0] > policy.alpha, f"naive t at every look: only {kn}/{n}"


def replay_rounds(policy: SeedPolicy, variants, pairs, outcomes):
    """Feed the policy round by round (only the seeds it allocated are 'recorded'), as the queue does."""
    seen: dict[str, dict[int, float]] = {v: {} for v in variants}
    history = []
    while True:
        alloc = allocate(policy, variants, pairs, seen)
        history.append(alloc)
        grown = False
        for v, n in alloc.seeds.items():
            for s in range(n):
                if s not in seen[v]:
                    seen[v][s] = outcomes[v][s]
                    grown = True
        if not grown:
            return history


def test_seeds_go_only_to_variants_of_undecided_contrasts():
    policy = SeedPolicy(start=6, max=16, step=2, margin=0.3, alpha=0.05)
    rng = np.random.default_rng(7)
    variants = ["baseline", "clear", "null"]
    outcomes = {"baseline": dict(enumerate(10 + 0.3 * rng.standard_normal(16))),
                "clear": dict(enumerate(15 + 0.3 * rng.standard_normal(16))),   # 5 points worse: decided at start
                "null": dict(enumerate(10 + 0.3 * rng.standard_normal(16)))}
    pairs = [ContrastPair("clear", "baseline"), ContrastPair("null", "baseline")]
    history = replay_rounds(policy, variants, pairs, outcomes)
    final = history[-1]
    state = {c.pair.variant: c for c in final.contrasts}
    assert state["clear"].decision == WORSE and state["clear"].sequence.decided_at <= 6
    # the count check: a decided contrast's variant keeps start seeds; the undecided one and the baseline grow
    assert final.seeds["clear"] == policy.start
    assert final.seeds["null"] == final.seeds["baseline"] > policy.start
    assert final.at_least == sum(final.seeds.values()) == 6 + 2 * state["null"].level
    # and it is the same as the one-shot replay on every result (what the simulation uses)
    assert allocate(policy, variants, pairs, outcomes).seeds == final.seeds
    # every round added exactly step seeds to the sides of a contrast open on the seeds it had, none elsewhere
    alpha = contrast_alpha(policy, len(pairs))
    for before, after in itertools.pairwise(history):
        states = [evaluate(p, min(before.seeds[p.variant], before.seeds[p.reference]), outcomes, policy, alpha)
                  for p in pairs]
        open_sides = {v for c in states if c.open for v in (c.pair.variant, c.pair.reference)}
        for v in variants:
            added = after.seeds[v] - before.seeds[v]
            assert added == (min(policy.step, policy.max - before.seeds[v]) if v in open_sides else 0), v


def test_alpha_is_split_over_the_contrasts_and_c_is_fixed_before_data():
    policy = SeedPolicy()
    assert contrast_alpha(policy, 5) == pytest.approx(0.01)
    assert mixture_c(0.01, target_n(policy)) == mixture_c(0.01, target_n(policy)) > 0


@pytest.mark.parametrize("raw, field", [({"start": 1}, "seeds.start"), ({"start": 5, "max": 4}, "seeds.max"),
                                        ({"margin": 0}, "seeds.margin"), ({"alpha": 0.7}, "seeds.alpha"),
                                        ({"steps": 2}, "seeds.steps"), ({"step": True}, "seeds.step")])
def test_a_bad_policy_is_one_line_naming_the_field(raw, field):
    with pytest.raises(SpecError) as err:
        parse_seed_policy(raw)
    assert field in str(err.value) and "\n" not in str(err.value)
