"""Simulate mode against tune mode: 100 seeds of REA on nats-tss cifar10 (20,000 s budget).

    python benchmarks/simulate_speed.py [--seeds 100] [--tune-seeds 3] [--benchmark PATH]

Prints the wall time of the simulated-clock driver for all seeds (Ray tasks on this
machine's cores), the wall time of a few seeds as real Ray Tune runs, and the ratio
per seed. Aim: 100 seeds in under 10 s on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from common import DEFAULT_TABLE, require, start_ray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--tune-seeds", type=int, default=3)
    parser.add_argument("--benchmark", default=DEFAULT_TABLE)
    args = parser.parse_args()
    benchmark = require(args.benchmark)
    print(f"ray.init: {start_ray():.2f} s ({os.cpu_count()} CPUs)")
    import ray

    from autohas.runner import RunSpec, execute
    from autohas.simulate import simulate_experiment

    with tempfile.TemporaryDirectory() as storage:

        def spec(seed: int, name: str) -> RunSpec:
            os.makedirs(os.path.join(storage, name), exist_ok=True)
            return RunSpec(algo="rea", seed=seed, space="nats-tss", dataset="cifar10", benchmark=benchmark,
                           experiment_dir=os.path.join(storage, name), time_budget=20000.0, num_samples=None)

        start = time.perf_counter()
        outcomes = simulate_experiment([spec(s, "simulate") for s in range(args.seeds)])
        simulate_wall = time.perf_counter() - start
        trials = sum(o.trials for o in outcomes)
        start = time.perf_counter()
        tuned = [execute(spec(s, "tune")) for s in range(args.tune_seeds)]
        tune_wall = time.perf_counter() - start
    ray.shutdown()
    per_simulated = simulate_wall / args.seeds
    per_tuned = tune_wall / args.tune_seeds
    print(f"simulate mode: {args.seeds} seeds, {trials} trials in {simulate_wall:.2f} s wall ({per_simulated * 1000:.1f} ms per seed)")
    print(f"tune mode: {args.tune_seeds} seeds, {sum(o.trials for o in tuned)} trials in {tune_wall:.2f} s wall ({per_tuned:.2f} s per seed)")
    print(f"ratio (tune / simulate, per seed): {per_tuned / per_simulated:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
