"""The NATS-Bench multi-trial protocol in simulate mode: searchers x seeds x datasets on nats-tss.

    python benchmarks/nats_multitrial.py [--seeds 100] [--algos random,rea] [--benchmark PATH]

Each run has the official time budget of its dataset (20,000 / 40,000 / 120,000 simulated s),
the CSV table's official validation signal (valid12), every evaluation charged from scratch,
the incumbent the best signal so far, and its acc200 read at the budget as draw-table.py
reads it. Prints, per dataset, each searcher's mean +- std over seeds and, for each searcher
against random, the difference of the means with Welch's t-test p-value.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from common import DEFAULT_TABLE, require, start_ray

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--algos", default="random,rea")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--benchmark", default=DEFAULT_TABLE)
    args = parser.parse_args()
    benchmark = require(args.benchmark)
    print(f"ray.init: {start_ray():.2f} s ({os.cpu_count()} CPUs)")
    import ray
    from scipy.stats import ttest_ind

    from autohas.bench import open_benchmark
    from autohas.report import load
    from autohas.runner import RunSpec
    from autohas.simulate import simulate_experiment
    from autohas.validate import DEFAULT_TIME_BUDGETS

    algos = args.algos.split(",")
    print(f"signal: {open_benchmark(benchmark, 'nats-tss').signal}")
    with tempfile.TemporaryDirectory() as storage:
        for dataset in args.datasets.split(","):
            budget = float(DEFAULT_TIME_BUDGETS["nats-tss"][dataset])
            folder = os.path.join(storage, dataset)
            os.makedirs(folder)
            specs = [
                RunSpec(algo=algo, seed=seed, space="nats-tss", dataset=dataset, benchmark=benchmark,
                        experiment_dir=folder, time_budget=budget, num_samples=None)
                for algo in algos for seed in range(args.seeds)
            ]
            start = time.perf_counter()
            simulate_experiment(specs)
            wall = time.perf_counter() - start
            (group,) = load([folder])
            finals = {algo: [r.final_test_acc(budget) for r in group.runs[algo]] for algo in algos}
            print(f"{dataset} (budget {budget:.0f} s, {args.seeds} seeds, {wall:.1f} s wall):")
            for algo in algos:
                values = finals[algo]
                print(f"  {algo:10s} {statistics.fmean(values):6.2f} +- {statistics.pstdev(values):.2f}")
            if "random" in finals:
                for algo in algos:
                    if algo != "random":
                        diff = statistics.fmean(finals[algo]) - statistics.fmean(finals["random"])
                        p = ttest_ind(finals[algo], finals["random"], equal_var=False).pvalue
                        print(f"  {algo} - random: {diff:+.2f} points (Welch p = {p:.2g})")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
