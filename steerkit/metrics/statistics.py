"""Honest statistics over questions: bootstrap intervals and paired differences.

Every score a sweep or a study compares is a mean over the same evaluation questions, so the
question is the unit of resampling: a percentile bootstrap (seeded numpy, resampling questions
with replacement) gives the interval of one setting's mean, and resampling the *pairs* of
per-question scores gives the interval of the difference between two settings. Seed 001's
n = 20 "improvements" vanished at n = 200; :func:`paired_difference` warns
(:class:`SmallSampleWarning`) when the interval of the difference contains 0 or the minimum
detectable effect at this n is larger than the observed difference.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import norm

N_RESAMPLES = 2000


class SmallSampleWarning(UserWarning):
    """Too few questions to tell two settings apart."""


class Interval(NamedTuple):
    """``estimate`` (the mean of ``n`` non-missing scores) and its bootstrap interval
    ``[low, high]``, in the scores' units; NaN bounds when ``n < 2``."""

    estimate: float
    low: float
    high: float
    n: int


class PairedDifference(NamedTuple):
    """Mean of ``first - second`` over ``n`` questions scored in both settings, its bootstrap
    interval ``[low, high]`` and ``minimum_detectable`` (the smallest |difference| a two-sided
    test at ``1 - confidence`` detects with 80 % power at this n; scores' units). ``resolved`` is
    True when the interval excludes 0 and the |difference| is at least ``minimum_detectable``."""

    difference: float
    low: float
    high: float
    n: int
    minimum_detectable: float
    resolved: bool


def _finite(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one score per question (1-D), got shape {array.shape}")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (0.95 for a 95 % interval), got {confidence!r}")


def _percentile_interval(values: np.ndarray, confidence: float, n_resamples: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (``(n,)``, no NaN, ``n >= 2``)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_ci(scores, *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """Mean of per-question ``scores`` with a seeded percentile bootstrap interval over questions.

    Missing scores (NaN) are left out; ``n`` counts the others.
    """
    _check_confidence(confidence)
    values = _finite(scores, "scores")
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if len(values) == 1:
        return Interval(float(values[0]), math.nan, math.nan, 1)
    return Interval(float(values.mean()), *_percentile_interval(values, confidence, n_resamples, seed), len(values))


def bootstrap_table(table: pd.DataFrame, columns=None, *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES,
                    seed: int = 0) -> pd.DataFrame:
    """:func:`bootstrap_ci` of every score column of a per-question table (one row per question).

    Returns a DataFrame indexed by column name with ``estimate``, ``low``, ``high``, ``n``.
    ``columns`` defaults to the numeric columns of ``table``.
    """
    columns = list(table.select_dtypes("number").columns if columns is None else columns)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the score table (it has {list(table.columns)})")
    rows = {c: bootstrap_ci(table[c], confidence=confidence, n_resamples=n_resamples, seed=seed)._asdict()
            for c in columns}
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(Interval._fields))


def minimum_detectable_effect(differences, *, confidence: float = 0.95, power: float = 0.8) -> float:
    """Smallest mean paired difference a two-sided z-test at level ``1 - confidence`` detects
    with probability ``power`` at this n: ``(z_{1-a/2} + z_power) * sd(differences) / sqrt(n)``
    (scores' units; NaN when ``n < 2``)."""
    values = _finite(differences, "differences")
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return math.nan
    z = norm.ppf(1 - (1 - confidence) / 2) + norm.ppf(power)
    return float(z * values.std(ddof=1) / math.sqrt(len(values)))


def paired_difference(first, second, *, confidence: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0,
                      label: str = "first - second", warn: bool = True) -> PairedDifference:
    """Mean per-question difference ``first - second`` with a paired bootstrap interval.

    Parameters
    ----------
    first, second : per-question scores of two settings on the same questions (same order);
        a question missing (NaN) in either is left out.
    label : what the difference is, for the warning (``"layer 12 x 4 - unsteered coherence"``).
    warn : emit a :class:`SmallSampleWarning` when the difference is not resolved (the interval
        contains 0, or ``|difference| < minimum_detectable``), naming the n that would resolve it.
    """
    _check_confidence(confidence)
    a, b = _finite(first, "first"), _finite(second, "second")
    if a.shape != b.shape:
        raise ValueError(f"first has {len(a)} scores and second {len(b)}: pass one score per question for both")
    differences = (a - b)[~(np.isnan(a) | np.isnan(b))]
    n = len(differences)
    if n < 2:
        result = PairedDifference(float(differences.mean()) if n else math.nan, math.nan, math.nan, n, math.nan, False)
    else:
        low, high = _percentile_interval(differences, confidence, n_resamples, seed)
        mean = float(differences.mean())
        detectable = minimum_detectable_effect(differences, confidence=confidence)
        result = PairedDifference(mean, low, high, n, detectable, bool((low > 0 or high < 0) and abs(mean) >= detectable))
    if warn and not result.resolved:
        warnings.warn(_unresolved_message(result, differences, label, confidence), SmallSampleWarning, stacklevel=2)
    return result


def _unresolved_message(result: PairedDifference, differences: np.ndarray, label: str, confidence: float) -> str:
    if result.n < 2:
        return f"{label}: {result.n} paired question(s) cannot estimate a difference; use more questions"
    needed = ""
    if result.difference != 0 and differences.std(ddof=1) > 0:
        z = norm.ppf(1 - (1 - confidence) / 2) + norm.ppf(0.8)
        needed = f" (about {math.ceil((z * differences.std(ddof=1) / abs(result.difference)) ** 2)} for this effect)"
    return (f"{label}: n = {result.n} questions cannot tell the difference {result.difference:+.3g} "
            f"({confidence:.0%} CI {result.low:+.3g} to {result.high:+.3g}, minimum detectable effect "
            f"{result.minimum_detectable:.3g}); use more questions{needed}")
