"""gp with scikit-learn's own refits against gp as it is (its own likelihood gradient): the same outcome?

The refits' likelihood and gradient are scikit-learn's up to rounding (tests/test_searcher_speedups.py),
but L-BFGS stops after 30 steps, short of the optimum, and the last-bit differences move where: runs
follow scikit-learn's proposals for a while, then part. This runs the same seeds both ways in
simulate mode on the CSV table (the preset's budgets) and prints, per dataset, how many runs stayed
identical, the mean final test accuracy of each (standard error), the Mann-Whitney p of the
difference, and the time of each.

    python benchmarks/gp_equivalence.py [--seeds 50] [--datasets cifar10,cifar100,ImageNet16-120]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

import numpy as np
from scipy.stats import mannwhitneyu

from common import DEFAULT_TABLE, require

BUDGETS = {"cifar10": 20000.0, "cifar100": 40000.0, "ImageNet16-120": 120000.0}


def scikit_learn_refit(self, x: np.ndarray, y: np.ndarray) -> None:
    """The refit as it was: GaussianProcessRegressor.fit with the same optimiser and kernel."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    from autohas.searchers.gp_bandit import _few_steps_lbfgs

    if self.kernel is None:
        self.kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
            length_scale=np.ones(x.shape[1]), length_scale_bounds=(0.3, 1e2), nu=2.5) + WhiteKernel(1e-2, (1e-6, 1e0))
    gp = GaussianProcessRegressor(kernel=self.kernel, normalize_y=True, optimizer=_few_steps_lbfgs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(x, y)
    self.kernel, self.fitted_at, self.held = gp.kernel_, len(y), None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--datasets", default=",".join(BUDGETS))
    parser.add_argument("--benchmark", default=DEFAULT_TABLE)
    args = parser.parse_args()
    benchmark = require(args.benchmark)
    from autohas.records import value_at_budget
    from autohas.runner import RunSpec
    from autohas.searchers.gp_bandit import GaussianProcessBandit
    from autohas.simulate import simulate_run

    own_refit = GaussianProcessBandit._refit
    ways = {"scikit-learn refits": scikit_learn_refit, "own gradient": own_refit}
    with tempfile.TemporaryDirectory() as folder:
        for dataset in [d for d in args.datasets.split(",") if d]:
            budget = BUDGETS[dataset]
            finals = {name: [] for name in ways}
            seconds = dict.fromkeys(ways, 0.0)
            identical = 0
            for seed in range(args.seeds):
                archs = []
                for name, refit in ways.items():
                    GaussianProcessBandit._refit = refit
                    spec = RunSpec(algo="gp", seed=seed, space="nats-tss", dataset=dataset, benchmark=benchmark,
                                   experiment_dir=os.path.join(folder, f"{dataset}-{seed}-{len(archs)}"),
                                   time_budget=budget, num_samples=None)
                    start = time.perf_counter()
                    records = simulate_run(spec)[0]
                    seconds[name] += time.perf_counter() - start
                    archs.append([r["arch"] for r in records])
                    finals[name].append(value_at_budget([r["sim_seconds"] for r in records],
                                                        [r["best_test_acc"] for r in records], budget))
                identical += archs[0] == archs[1]
            GaussianProcessBandit._refit = own_refit
            (a_name, a), (b_name, b) = ((n, np.array(v)) for n, v in finals.items())
            print(f"{dataset} ({args.seeds} seeds): identical runs {identical}, equal final numbers {int((a == b).sum())}; "
                  f"{a_name} {a.mean():.3f} (se {a.std(ddof=1) / np.sqrt(len(a)):.3f}, {seconds[a_name]:.1f} s), "
                  f"{b_name} {b.mean():.3f} (se {b.std(ddof=1) / np.sqrt(len(b)):.3f}, {seconds[b_name]:.1f} s); "
                  f"Mann-Whitney p {mannwhitneyu(a, b).pvalue:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
