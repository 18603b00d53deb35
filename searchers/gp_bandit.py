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

Speed (tests/test_searcher_speedups.py): the pool is built on official indices (a per-process table
of every architecture's neighbours for spaces up to PRECOMPUTED_UP_TO, no string round trips);
between refits the posterior is computed directly with scikit-learn's kernel (`posterior`: the
numbers its fit + predict give, bit for bit); the refits maximise `log_marginal_likelihood`, scikit-
learn's likelihood and gradient up to rounding, computed ~3x faster; the linear algebra of these
small matrices runs on one BLAS thread. The refits' rounding differences can move where L-BFGS stops
(30 steps, before convergence), so runs follow scikit-learn's proposals only for a while; the outcome
over 50 seeds is the same (benchmarks/REPORT.md, issue 20).
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
from scipy.linalg import cho_solve, cholesky, solve_triangular
from scipy.optimize import minimize
from scipy.spatial.distance import cdist, pdist, squareform

from autohas.spaces import Space
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
def _tables(space: Space) -> tuple[np.ndarray, np.ndarray | None]:
    """GP inputs of every architecture (row = official index) and, where the space keeps
    `Space.neighbours`' order (decision, then choice), the official indices of every architecture's
    neighbours in that order (row = official index); computed once per process and space."""
    genotypes = [space.decode(space.index_to_arch(i)) for i in range(space.size)]
    features = encode_features(space, genotypes)
    if type(space).neighbours is not Space.neighbours:
        return features, None
    widths = [len(d.choices) for d in space.decisions]
    lookups = [{c: i for i, c in enumerate(d.choices)} for d in space.decisions]
    codes = np.array([[lookup[v] for lookup, v in zip(lookups, g)] for g in genotypes], dtype=np.int64)
    codes = codes.reshape(space.size, len(widths))
    radix = np.array([int(np.prod(widths[p + 1 :])) for p in range(len(widths))], dtype=np.int64)  # mixed radix
    keys = codes @ radix
    index_of_key = np.full(space.size, -1, dtype=np.int64)
    index_of_key[keys] = np.arange(space.size)
    if (index_of_key < 0).any():  # not one architecture per genotype: leave it to Space.neighbours
        return features, None
    columns = []
    for p, width in enumerate(widths):
        for j in range(width - 1):  # the choices other than the current one, in choice order
            other = j + (j >= codes[:, p])
            columns.append(index_of_key[keys + (other - codes[:, p]) * radix[p]])
    return features, np.stack(columns, axis=1) if columns else np.zeros((space.size, 0), dtype=np.int64)


@lru_cache(maxsize=20_000)
def _neighbour_indices(space: Space, index: int) -> np.ndarray:
    """The official indices of `Space.neighbours` of the architecture at `index`, in its order
    (a large space, or one with neighbours of its own)."""
    return np.array([space.arch_to_index(n) for n in space.neighbours(space.index_to_arch(index))], dtype=np.int64)


def _few_steps_lbfgs(obj_func, initial_theta, bounds):
    """The kernel optimiser: L-BFGS-B from the previous hyperparameters, at most 30 steps."""
    result = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": 30})
    return result.x, result.fun


@lru_cache(maxsize=1)
def _blas_threads():
    """A threadpoolctl controller of the process's BLAS libraries (scikit-learn's dependency)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def held_kernel(kernel):
    """The kernel `GaussianProcessRegressor(kernel, optimizer=None).fit` predicts with: a clone whose
    hyperparameters went through their log scale and back (`theta`), which can move them by an ulp."""
    from sklearn.base import clone

    held = clone(kernel)
    held.theta = held.theta
    return held


SQRT5 = np.sqrt(5.0)


def log_marginal_likelihood(theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                            alpha: float = 1e-10) -> tuple[float, np.ndarray]:
    """Log marginal likelihood of normalised targets `y` at `x`, and its gradient in `theta`, for this
    searcher's kernel (constant * Matern-5/2 with one length scale per input + white noise; `theta` =
    log of [constant, length scales..., noise], scikit-learn's order): the numbers of scikit-learn's
    `GaussianProcessRegressor.log_marginal_likelihood(theta, eval_gradient=True)` up to rounding.

    Why not scikit-learn's: it builds the n x n x d tensor of squared coordinate differences and
    contracts it with an einsum, most of a gp run. Here each length scale's term of
    0.5 * sum_ij W_ij dK_ij/dlog(l_k) is summed with matrix products instead: with z = x / l and
    M = W * dK/d(squared distance) (symmetric), sum_ij M_ij (z_ik - z_jk)^2 = 2 (M 1)^T z_k^2 - 2 z_k^T M z_k
    (z shifted by its first row first, against cancellation)."""
    constant, length_scales, noise = np.exp(theta[0]), np.exp(theta[1:-1]), np.exp(theta[-1])
    z = x / length_scales
    s = SQRT5 * pdist(z, metric="euclidean")
    decay = np.exp(-s)
    matern = squareform((1.0 + s + s**2 / 3.0) * decay)
    np.fill_diagonal(matern, 1.0)
    k = constant * matern
    k[np.diag_indices_from(k)] += noise + alpha
    try:
        lower = cholesky(k, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return -np.inf, np.zeros_like(theta)
    weights = cho_solve((lower, True), y, check_finite=False)
    value = -0.5 * (y @ weights) - np.log(np.diag(lower)).sum() - len(y) / 2 * np.log(2 * np.pi)
    inner = np.outer(weights, weights) - cho_solve((lower, True), np.eye(len(y)), check_finite=False)
    gradient = np.empty_like(theta)
    gradient[0] = 0.5 * constant * np.sum(inner * matern)  # dK/dlog(constant) = constant * matern
    m = inner * squareform(constant * 5.0 / 3.0 * (1.0 + s) * decay)  # W * dK/d(squared scaled distance)
    centred = z - z[0]  # distances do not move; a coordinate equal at every point adds an exact 0
    gradient[1:-1] = m.sum(axis=1) @ (centred * centred) - np.einsum("ik,ik->k", m @ centred, centred)
    gradient[-1] = 0.5 * noise * np.trace(inner)
    return value, gradient


def kernel_matrix(kernel, a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """`kernel(a)` or `kernel(a, b)` for this searcher's kernel (constant * Matern-5/2 + white noise),
    the same numbers by the same elementwise operations, without scikit-learn's composite-kernel
    passes (a full constant matrix multiplied in, a zero noise matrix added): a third of a proposal.
    Any other kernel is called as it is."""
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, Product, Sum, WhiteKernel

    if not (isinstance(kernel, Sum) and isinstance(kernel.k1, Product) and isinstance(kernel.k2, WhiteKernel)
            and isinstance(kernel.k1.k1, ConstantKernel) and isinstance(kernel.k1.k2, Matern)
            and kernel.k1.k2.nu == 2.5):
        return kernel(a) if b is None else kernel(a, b)
    length_scale = np.squeeze(np.asarray(kernel.k1.k2.length_scale, dtype=float))
    if b is None:
        k = pdist(a / length_scale, metric="euclidean") * SQRT5
    else:
        k = cdist(a / length_scale, b / length_scale, metric="euclidean") * SQRT5
    decay = np.exp(-k)
    square = k * k  # (k**2 / 3 + (1 + k)) * exp(-k), in place: scikit-learn's operations in its order
    square /= 3.0
    k += 1.0
    k += square
    k *= decay
    if b is None:
        k = squareform(k)
        np.fill_diagonal(k, 1)
    k *= kernel.k1.k1.constant_value
    if b is None:
        k[np.diag_indices_from(k)] += kernel.k2.noise_level
    return k


def posterior(kernel, x: np.ndarray, y: np.ndarray, candidates: np.ndarray,
              alpha: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation at `candidates` of the GP with exactly this kernel on (x, y), with
    normalised targets: the numbers scikit-learn's `GaussianProcessRegressor(normalize_y=True)` predicts
    (`predict(candidates, return_std=True)`) once fitted to (x, y) with `kernel_` = `kernel`, by the same
    operations, without the fit's validation, kernel cloning and log-marginal-likelihood evaluation
    (tests/test_searcher_speedups.py checks equality, bit for bit)."""
    y_mean, y_std = np.mean(y, axis=0), np.std(y, axis=0)
    if y_std == 0.0:
        y_std = 1.0
    k = kernel_matrix(kernel, x)
    k[np.diag_indices_from(k)] += alpha
    lower = cholesky(k, lower=True, check_finite=False)
    weights = cho_solve((lower, True), (y - y_mean) / y_std, check_finite=False)
    k_trans = kernel_matrix(kernel, candidates, x)
    mean = y_std * (k_trans @ weights) + y_mean
    v = solve_triangular(lower, k_trans.T, lower=True, check_finite=False)
    var = kernel.diag(candidates).copy()
    var -= np.einsum("ij,ji->i", v.T, v)
    var[var < 0] = 0.0
    return mean, np.sqrt(var * y_std**2)


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
        self.held = None  # held_kernel(self.kernel): what the proposals between refits predict with

    def _neighbours(self, index: int) -> np.ndarray:
        if self.space.size <= PRECOMPUTED_UP_TO:
            table = _tables(self.space)[1]
            if table is not None:
                return table[index]
        return _neighbour_indices(self.space, index)

    def _candidates(self) -> np.ndarray:
        """Official indices: neighbours of the best architectures so far, and random ones, each once
        (first occurrence), minus those evaluated or in flight."""
        best = sorted(self.observed, key=self.observed.get, reverse=True)[: self.top_k]
        random = self.rng.integers(self.space.size, size=self.num_random)
        pool = np.concatenate([self._neighbours(i) for i in best] + [random])
        in_flight = [self.space.arch_to_index(a) for a in self.pending.values()]
        taken = np.fromiter(list(self.observed) + in_flight, dtype=np.int64)
        pool = pool[~np.isin(pool, taken)]
        _, first = np.unique(pool, return_index=True)
        return pool[np.sort(first)]

    def features(self, indices: np.ndarray) -> np.ndarray:
        """GP inputs of the candidates at these official indices: rows of the precomputed table of a
        small space, else encoded on demand (`has` has 1.27 million candidates)."""
        if self.space.size <= PRECOMPUTED_UP_TO:
            return _tables(self.space)[0][indices]
        return encode_features(self.space, [self.space.decode(self.space.index_to_arch(int(i))) for i in indices])

    def _refit(self, x: np.ndarray, y: np.ndarray) -> None:
        """Re-estimate the kernel's hyperparameters by maximum marginal likelihood (L-BFGS warm-started
        from the last ones), as scikit-learn's `GaussianProcessRegressor(normalize_y=True).fit` with
        `_few_steps_lbfgs` does, with the likelihood of `log_marginal_likelihood`."""
        from sklearn.base import clone
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        if self.kernel is None:
            self.kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
                length_scale=np.ones(x.shape[1]), length_scale_bounds=(0.3, 1e2), nu=2.5
            ) + WhiteKernel(1e-2, (1e-6, 1e0))
        kernel = clone(self.kernel)
        y_std = np.std(y) or 1.0
        targets = (y - np.mean(y)) / y_std

        def negated(theta):
            value, gradient = log_marginal_likelihood(theta, x, targets)
            return -value, -gradient

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes of the kernel optimiser
            kernel.theta = _few_steps_lbfgs(negated, kernel.theta, kernel.bounds)[0]
        self.kernel, self.fitted_at, self.held = kernel, len(y), None

    def propose(self) -> str:
        if len(self.observed) < self.num_initial:
            return self.space.sample(self.rng)
        candidates = self._candidates()
        if len(candidates) == 0:
            return self.space.sample(self.rng)
        indices = np.fromiter(self.observed, dtype=np.int64)
        x, y = self.features(indices), np.fromiter(self.observed.values(), dtype=float)
        # small matrices: BLAS threads only contend (several-fold slower on a busy machine)
        with _blas_threads().limit(limits=1, user_api="blas"):
            if self.kernel is None or len(indices) - self.fitted_at >= self.refit_every:
                self._refit(x, y)
                kernel = self.kernel  # the fit that estimated the hyperparameters predicts with them as they are
            else:
                if getattr(self, "held", None) is None:  # (a state saved before `held` existed)
                    self.held = held_kernel(self.kernel)
                kernel = self.held
            mean, std = posterior(kernel, x, y, self.features(candidates))
        return self.space.index_to_arch(int(candidates[int(np.argmax(mean + self.ucb_coefficient * std))]))

    def observe(self, arch: str, score: float) -> None:
        index = self.space.arch_to_index(arch)
        self.observed[index] = max(score, self.observed.get(index, -np.inf))
