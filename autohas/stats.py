"""The statistics behind the report's claims, free of I/O: confidence intervals of a mean, ranks
within a seed, and the tests that decide whether a method is told apart from the best one.

A method's numbers are its runs' final accuracies (higher is better), one per seed. The best
method is the one with the highest mean; every other is compared with it by a two-sided
Mann-Whitney U test (no normality assumed), the p-values Holm-corrected over those comparisons,
and called "tied with the best" where the corrected p is not below `ALPHA`. When every method
ran the same seeds the runs are paired, and a Friedman test over all methods (ranks within each
seed) says whether they differ at all.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np

ALPHA = 0.05
LEVEL = 0.95

BEST = "best"
TIED = "tied with the best"
WORSE = "worse than the best"


def mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student-t confidence interval of the mean; None for fewer than two values (no spread to
    estimate: the report prints "n/a" rather than a made-up ± 0). The t quantile comes from
    scipy.special (what scipy.stats.t uses), which spares a one-searcher report scipy.stats'
    import (~1.5 s of a 100-seed run's 10 s)."""
    from scipy.special import stdtrit

    data = np.asarray(values, dtype=float)
    if data.size < 2:
        return None
    mean = float(data.mean())
    sem = float(data.std(ddof=1) / math.sqrt(data.size))
    if sem == 0.0:
        return mean, mean
    low, high = (mean + sem * stdtrit(data.size - 1, q) for q in ((1 - level) / 2, (1 + level) / 2))
    return float(low), float(high)


def ci_halfwidths(samples: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """Per column of `samples` (runs x points, NaN where a run has no value yet): the half-width of
    the Student-t interval of the column's mean; NaN where fewer than two runs have a value."""
    from scipy.special import stdtrit

    counts = np.sum(~np.isnan(samples), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(samples, axis=0, ddof=1)
        quantile = stdtrit(np.maximum(counts - 1, 1), 0.5 + level / 2)
        width = quantile * std / np.sqrt(counts)
    return np.where(counts >= 2, width, np.nan)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given: the i-th smallest of m is multiplied
    by m - i + 1, then made non-decreasing in that order and capped at 1."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for step, i in enumerate(order):
        running = max(running, min(1.0, (m - step) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value (scipy's default method); 1.0 where both samples are one
    and the same constant (no evidence of a difference; scipy may give NaN there)."""
    from scipy import stats

    p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return 1.0 if math.isnan(p) else p


def shared_seeds(by_seed: Mapping[str, Mapping[Hashable, float]]) -> list[Hashable]:
    """The seeds every method has a value for, in the first method's order."""
    sets = [set(values) for values in by_seed.values()]
    if not sets:
        return []
    common = set.intersection(*sets)
    return [seed for seed in next(iter(by_seed.values())) if seed in common]


def paired(by_seed: Mapping[str, Mapping[Hashable, float]]) -> bool:
    """Whether every method ran exactly the same seeds (then runs of one seed form a block)."""
    sets = [set(values) for values in by_seed.values()]
    return len(sets) >= 2 and all(s == sets[0] for s in sets) and bool(sets[0])


def average_ranks(by_seed: Mapping[str, Mapping[Hashable, float]], seeds: Sequence[Hashable]) -> dict[str, float]:
    """Each method's rank within each of `seeds` (1 = highest value, ties share the mean rank),
    averaged over those seeds."""
    from scipy.stats import rankdata

    names = list(by_seed)
    if not names or not seeds:
        return {}
    values = np.array([[by_seed[name][seed] for name in names] for seed in seeds], dtype=float)
    ranks = rankdata(-values, axis=1, method="average")
    return {name: float(ranks[:, j].mean()) for j, name in enumerate(names)}


def friedman(by_seed: Mapping[str, Mapping[Hashable, float]], seeds: Sequence[Hashable]) -> tuple[float, float] | None:
    """Friedman chi-square statistic and p-value over all methods, blocks = `seeds`; None with
    fewer than three methods or two seeds, or when every block is one tie (no ranking at all)."""
    from scipy import stats

    if len(by_seed) < 3 or len(seeds) < 2:
        return None
    groups = [[by_seed[name][seed] for seed in seeds] for name in by_seed]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.friedmanchisquare(*groups)
    statistic, p = float(result.statistic), float(result.pvalue)
    if math.isnan(statistic) or math.isnan(p):
        return None
    return statistic, p


@dataclass
class MethodStats:
    """One method's row: its runs' finals summarised and its comparison with the best."""

    name: str
    values: list[float]
    mean: float
    median: float
    ci: tuple[float, float] | None
    average_rank: float | None = None
    p_value: float | None = None  # raw Mann-Whitney p against the best (None for the best itself)
    p_holm: float | None = None
    verdict: str = BEST

    @property
    def runs(self) -> int:
        return len(self.values)


@dataclass
class Comparison:
    """The methods of one table, best first (then by mean), and the table-wide facts."""

    methods: list[MethodStats] = field(default_factory=list)
    paired: bool = False
    rank_seeds: int = 0  # the seeds the average ranks are over (0: no seed every method ran)
    friedman: tuple[float, float] | None = None
    alpha: float = ALPHA

    def by_name(self) -> dict[str, MethodStats]:
        return {m.name: m for m in self.methods}


def compare(by_seed: Mapping[str, Mapping[Hashable, float]], alpha: float = ALPHA) -> Comparison:
    """Summarise and compare methods given as name -> {seed: final value} (methods without any
    value are left out; a seed is any key that names the same block across methods). The best is
    the highest mean (first of equals in the order given)."""
    present = {name: dict(values) for name, values in by_seed.items() if values}
    methods = []
    for name, values in present.items():
        data = [float(v) for v in values.values()]
        methods.append(MethodStats(name, data, float(np.mean(data)), float(np.median(data)), mean_ci(data)))
    result = Comparison(alpha=alpha)
    if not methods:
        return result
    best = max(methods, key=lambda m: m.mean)  # max keeps the first of equals
    others = [m for m in methods if m is not best]
    raw = [mann_whitney(best.values, m.values) for m in others]
    for method, p, adjusted in zip(others, raw, holm(raw)):
        method.p_value, method.p_holm = p, adjusted
        method.verdict = TIED if adjusted >= alpha else WORSE
    seeds = shared_seeds(present)
    if len(present) >= 2 and seeds:
        ranks = average_ranks(present, seeds)
        for method in methods:
            method.average_rank = ranks[method.name]
        result.rank_seeds = len(seeds)
    result.paired = paired(present)
    if result.paired:
        result.friedman = friedman(present, seeds)
    result.methods = [best] + sorted(others, key=lambda m: -m.mean)
    return result
