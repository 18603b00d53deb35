"""A Vizier-style Gaussian-process bandit over a discrete space.

The GP is scikit-learn's: a constant times a Matern-5/2 kernel with one length scale
per input dimension (ARD), plus a white-noise term, on normalised targets.
Categorical decisions (unordered, e.g. an edge's operation) are one-hot encoded;
numeric decisions (e.g. a layer's width) become one coordinate in [0, 1]. The
acquisition is an upper confidence bound (mean + 1.8 std, Vizier's default
coefficient), maximised over a candidate pool, as Vizier's evolutionary acquisition
optimiser does: every one-decision mutation of the `top_k` best architectures so far
plus `num_random` uniformly random ones, minus those already evaluated or in flight.
The first `num_initial` proposals are uniformly random. The kernel's hyperparameters
are re-estimated (maximum marginal likelihood, warm-started) every `refit_every` new
observations and held fixed in between, which keeps a proposal at milliseconds.
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
from scipy.optimize import minimize

from autohas.spaces import Space, get_space
from autohas.searchers.base import SpaceSearcher


def encode_features(space: Space, genotypes: list[tuple]) -> np.ndarray:
    """Rows of GP inputs: one-hot for categorical decisions, [0, 1] for numeric ones."""
    columns = []
    for position, decision in enumerate(space.decisions):
        values = [g[position] for g in genotypes]
        if all(isinstance(c, (int, float)) for c in decision.choices):
            low, high = min(decision.choices), max(decision.choices)
            columns.append(((np.asarray(values, dtype=float) - low) / ((high - low) or 1.0))[:, None])
        else:
            lookup = {c: i for i, c in enumerate(decision.choices)}
            onehot = np.zeros((len(values), len(decision.choices)))
            onehot[np.arange(len(values)), [lookup[v] for v in values]] = 1.0
            columns.append(onehot)
    return np.hstack(columns)


PRECOMPUTED_UP_TO = 100_000  # spaces up to this size keep the features of all candidates (nats-tss, nats-sss)


@lru_cache(maxsize=4)
def all_features(space_name: str) -> np.ndarray:
    """GP inputs of every architecture, row = official index (computed once per process)."""
    space = get_space(space_name)
    return encode_features(space, [space.decode(space.index_to_arch(i)) for i in range(space.size)])


def _few_steps_lbfgs(obj_func, initial_theta, bounds):
    """The kernel optimiser: L-BFGS-B from the previous hyperparameters, at most 30 steps."""
    result = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": 30})
    return result.x, result.fun


class GaussianProcessBandit(SpaceSearcher):
    def __init__(
        self,
        space: Space,
        seed: int,
        num_initial: int = 10,
        ucb_coefficient: float = 1.8,
        refit_every: int = 25,
        top_k: int = 10,
        num_random: int = 1000,
        **kwargs,
    ):
        super().__init__(space, seed, **kwargs)
        self.num_initial = num_initial
        self.ucb_coefficient = ucb_coefficient
        self.refit_every = refit_every
        self.top_k = top_k
        self.num_random = num_random
        self.observed: dict[int, float] = {}  # official index -> best score seen
        self.kernel = None  # the last fitted kernel (hyperparameters included)
        self.fitted_at = 0  # number of observations when the hyperparameters were last estimated

    def _candidates(self) -> np.ndarray:
        """Official indices: neighbours of the best architectures so far, and random ones."""
        best = sorted(self.observed, key=self.observed.get, reverse=True)[: self.top_k]
        pool = []
        for index in best:
            pool.extend(self.space.arch_to_index(n) for n in self.space.neighbours(self.space.index_to_arch(index)))
        pool.extend(int(i) for i in self.rng.integers(self.space.size, size=self.num_random))
        taken = set(self.observed) | {self.space.arch_to_index(a) for a in self.pending.values()}
        return np.array(list(dict.fromkeys(i for i in pool if i not in taken)), dtype=int)

    def features(self, indices: np.ndarray) -> np.ndarray:
        """GP inputs of the candidates at these official indices: rows of the precomputed table of a
        small space, else encoded on demand (`has` has 1.27 million candidates)."""
        if self.space.size <= PRECOMPUTED_UP_TO:
            return all_features(self.space.name)[indices]
        return encode_features(self.space, [self.space.decode(self.space.index_to_arch(int(i))) for i in indices])

    def _fit(self):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        indices = np.array(list(self.observed), dtype=int)
        x, y = self.features(indices), np.array([self.observed[i] for i in indices])
        refit = self.kernel is None or len(indices) - self.fitted_at >= self.refit_every
        if self.kernel is None:
            self.kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
                length_scale=np.ones(x.shape[1]), length_scale_bounds=(0.3, 1e2), nu=2.5
            ) + WhiteKernel(1e-2, (1e-6, 1e0))
        gp = GaussianProcessRegressor(kernel=self.kernel, normalize_y=True, optimizer=_few_steps_lbfgs if refit else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes of the kernel optimiser
            gp.fit(x, y)
        if refit:
            self.kernel, self.fitted_at = gp.kernel_, len(indices)
        return gp

    def propose(self) -> str:
        if len(self.observed) < self.num_initial:
            return self.space.sample(self.rng)
        candidates = self._candidates()
        if len(candidates) == 0:
            return self.space.sample(self.rng)
        mean, std = self._fit().predict(self.features(candidates), return_std=True)
        return self.space.index_to_arch(int(candidates[int(np.argmax(mean + self.ucb_coefficient * std))]))

    def observe(self, arch: str, score: float) -> None:
        index = self.space.arch_to_index(arch)
        self.observed[index] = max(score, self.observed.get(index, -np.inf))
