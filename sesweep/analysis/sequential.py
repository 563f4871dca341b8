"""Anytime-valid confidence sequences for a contrast's mean paired difference, and the decision they give.

The statistic
    Lai's (1976, "On confidence sequences", Ann. Statist. 4:265-280) scale-invariant normal-mixture t
    confidence sequence, in the form of Howard, Ramdas, McAuliffe & Sekhon (2021, "Time-uniform, nonparametric,
    nonasymptotic confidence sequences", Ann. Statist. 49:1055-1080, the Gaussian-mixture boundaries of their
    Section 3) and of Wang & Ramdas (2024, "Anytime-valid t-tests and confidence sequences for Gaussian means
    with unknown variance", Sequential Analysis; the scale-invariant likelihood-ratio martingale of their
    Theorem 4.9). Assumption: the per-seed paired differences d_1, d_2, ... are i.i.d. N(mu, sigma^2) with
    sigma unknown -- roughly Gaussian seed noise, which the report states.

    Derivation (so the closed form below can be checked by hand). For the tested mean m put x_i = d_i - m,
    S_1 = sum x_i, S_2 = sum x_i^2 over the first t pairs. The likelihood ratio of the scale-invariant
    statistic (x_1/|x_1|, ..., x_t/|x_1|) for N(delta*sigma, sigma^2) against N(0, sigma^2), mixed over the
    standardised effect delta ~ N(0, 1/c), is (integrate sigma against d sigma / sigma, then delta):

        M_t(m) = sqrt(c / (c + t)) * (S_2 / (S_2 - S_1^2 / (t + c)))^(t/2),    M_1 = 1.

    Under d_i ~ N(m, sigma^2) it is a nonnegative martingale with mean 1, so by Ville's inequality
    P(exists t: M_t(m) >= 1/alpha) <= alpha: the set {m : M_t(m) < 1/alpha} holds the true mean at *every* t at
    once, with probability >= 1 - alpha, whatever rule decides when to stop or to add seeds. Solving
    M_t(m) < 1/alpha for m with V = sum (d_i - mean)^2, K = ((t + c)/c)^(1/t) * alpha^(-2/t):

        |mean - m| < sqrt((K - 1) * V / (t * (1 - K c / (t + c))))       (no bound where K c >= t + c).

    The running intersection of these intervals is a confidence sequence too (it holds the mean whenever
    every interval does) and is what decisions read, so an interval never widens again. The mixture width c is
    chosen before any data (:func:`mixture_c`: the narrowest interval at a target number of seeds).

Why not a t interval
    After optional stopping ("add seeds until it is clear") the t interval's 95% is wrong: looking at every
    seed count inflates false findings (the simulation, :mod:`.seed_simulation`, measures it). The sequence is
    wider at a fixed n; that is the price of being valid at every n.

Why implemented here
    ``confseq`` (Howard et al.'s package, MIT) builds a C++ extension with Boost, calls itself early-stage and
    unstable, and its normal-mixture boundaries take a known variance (a sub-Gaussian scale), not the
    unknown-variance t mixture this needs; the closed form above is a dozen lines of numpy.

Decisions (top-1 error, lower is better; the sequence is of variant minus reference): ``better`` (the sequence
lies below 0), ``worse`` (above 0), ``equivalent`` (inside +-margin), ``undecided`` (go on), ``inconclusive``
(the cap is reached undecided). Better/worse is checked before equivalence, and a decision, once made, stands.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

BETTER, WORSE, EQUIVALENT, UNDECIDED, INCONCLUSIVE = "better", "worse", "equivalent", "undecided", "inconclusive"
#: the decisions that stop a contrast
DECIDED = (BETTER, WORSE, EQUIVALENT)

#: an interval rule: (differences in seed order, alpha, mixture c) -> per-n (lower, upper), n = 1..len
IntervalRule = Callable[[np.ndarray, float, float], tuple[np.ndarray, np.ndarray]]


def _running(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per n = 1..len: the n, the mean and the sum of squared deviations V of the first n differences."""
    n = np.arange(1, len(d) + 1, dtype=float)
    s1 = np.cumsum(d)
    mean = s1 / n
    v = np.maximum(np.cumsum(d * d) - s1 * mean, 0.0)
    spread = np.maximum.accumulate(d) - np.minimum.accumulate(d) if len(d) else d
    v = np.where(spread <= 1e-9 * np.maximum(1.0, np.maximum.accumulate(np.abs(d))), 0.0, v)
    return n, mean, v


def cs_factor(n: np.ndarray | float, alpha: float, c: float) -> np.ndarray:
    """sqrt((K - 1) / (t (1 - K c / (t + c)))): the half-width is this times sqrt(V); inf where unbounded."""
    t = np.asarray(n, dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        k = np.exp((np.log((t + c) / c) - 2.0 * math.log(alpha)) / t)
        room = 1.0 - k * c / (t + c)
        out = np.sqrt((k - 1.0) / (t * room))
    return np.where((room > 0) & (t >= 2), out, np.inf)


def mixture_cs(d: np.ndarray, alpha: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    """The normal-mixture t confidence sequence (module doc) after each of the first n differences, as (lo, hi)
    arrays; (-inf, inf) below two pairs and where all differences are equal (zero spread: the interval is
    undefined, as the paired t-test's is in :mod:`.stats`)."""
    n, mean, v = _running(np.asarray(d, dtype=float))
    with np.errstate(invalid="ignore"):
        half = np.where(v > 0, cs_factor(n, alpha, c) * np.sqrt(v), np.inf)
    return mean - half, mean + half


def naive_t(d: np.ndarray, alpha: float, c: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-n t interval at level alpha after every pair: the wrong rule (valid at one pre-set n only), for
    the simulation and the test that shows its inflation."""
    n, mean, v = _running(np.asarray(d, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        half = sps.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1)) * np.sqrt(v / np.maximum(n - 1, 1) / n)
    half = np.where((n >= 2) & (v > 0), half, np.inf)
    return mean - half, mean + half


@functools.lru_cache(maxsize=256)
def mixture_c(alpha: float, target_n: int) -> float:
    """The mixture width c giving the narrowest sequence at ``target_n`` pairs: chosen from the policy alone,
    before any result, so it cannot bias the sequence."""
    t = max(int(target_n), 3)

    def width(log_c: float) -> float:
        f = float(cs_factor(t, alpha, math.exp(log_c)))
        return f * math.sqrt(t - 1) if math.isfinite(f) else 1e9

    found = optimize.minimize_scalar(width, bounds=(-14.0, 4.0), method="bounded")
    return float(math.exp(found.x))


@dataclass(frozen=True)
class ContrastSequence:
    """A contrast's sequence over its pairs: per n the running-intersection interval, and the decision."""

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    decision: str
    #: the number of pairs at which the decision was made (None: undecided)
    decided_at: int | None

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def interval(self) -> tuple[float, float]:
        """The interval after the last pair ((-inf, inf) with none)."""
        return (self.lo[-1], self.hi[-1]) if self.lo else (-math.inf, math.inf)


def sequence(seeds: Sequence[int], diffs: Sequence[float], alpha: float, margin: float, c: float,
             capped: bool = False, rule: IntervalRule = mixture_cs) -> ContrastSequence:
    """The decision on differences in seed order: the first n whose running interval lies below 0 (better),
    above 0 (worse) or inside +-margin (equivalent); else undecided, or inconclusive when ``capped``."""
    d = np.asarray(diffs, dtype=float)
    if len(d):
        lo, hi = rule(d, alpha, c)
        lo, hi = np.maximum.accumulate(lo), np.minimum.accumulate(hi)
    else:
        lo = hi = np.zeros(0)
    decision, at = (INCONCLUSIVE if capped else UNDECIDED), None
    for i in range(len(d)):
        found = BETTER if hi[i] < 0 else WORSE if lo[i] > 0 else \
            EQUIVALENT if -margin < lo[i] and hi[i] < margin else None
        if found is not None:
            decision, at = found, i + 1
            break
    return ContrastSequence(tuple(int(s) for s in seeds), tuple(float(x) for x in d), tuple(float(x) for x in lo),
                     tuple(float(x) for x in hi), decision, at)


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact binomial (Clopper-Pearson) interval of a rate k/n."""
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(sps.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi
