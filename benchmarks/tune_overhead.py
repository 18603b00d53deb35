"""Wall time per trial of a real Ray Tune run with the tabular trainable.

    python benchmarks/tune_overhead.py [--trials 200] [--benchmark PATH]

Runs `random` on nats-tss (cifar10) for N trials through the same runner the CLI
uses (reuse_actors, one checkpoint per report) and prints Ray's start-up time and
the wall seconds per trial, the figure the simulated-clock driver is compared with.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DEFAULT_TABLE = os.path.join(ROOT, "..", "shared", "data", "nats-tss", "nats-tss-table.csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--benchmark", default=DEFAULT_TABLE)
    parser.add_argument("--algo", default="random")
    args = parser.parse_args()
    if not os.path.exists(args.benchmark):
        print(f"benchmark {args.benchmark} not found: pass --benchmark", file=sys.stderr)
        return 2
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    from autohas.runner import RunSpec, execute

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as storage:
        spec = RunSpec(
            algo=args.algo, seed=0, space="nats-tss", dataset="cifar10", benchmark=os.path.abspath(args.benchmark),
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
