"""Wall time per trial of a real Ray Tune run with the tabular trainable.

    python benchmarks/tune_overhead.py [--trials 200] [--benchmark PATH]

Runs `random` on nats-tss (cifar10) for N trials through the same runner the CLI
uses (reuse_actors, one checkpoint per report) and prints Ray's start-up time and
the wall seconds per trial, the figure the simulated-clock driver is compared with.
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from common import DEFAULT_TABLE, require, start_ray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--benchmark", default=DEFAULT_TABLE)
    parser.add_argument("--algo", default="random")
    args = parser.parse_args()
    benchmark = require(args.benchmark)
    init_seconds = start_ray()
    import ray

    from autohas.runner import RunSpec, execute

    with tempfile.TemporaryDirectory() as storage:
        spec = RunSpec(
            algo=args.algo, seed=0, space="nats-tss", dataset="cifar10", benchmark=benchmark,
            experiment_dir=storage, time_budget=None, num_samples=args.trials,
        )
        outcome = execute(spec)
    ray.shutdown()
    print(f"ray.init: {init_seconds:.2f} s")
    print(f"{outcome.trials} trials of {args.algo} on nats-tss/cifar10 in tune mode: {outcome.wall_seconds:.2f} s wall")
    print(f"wall time per trial: {outcome.wall_seconds / max(1, outcome.trials):.3f} s")
    return 0 if outcome.trials == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
