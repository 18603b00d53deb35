"""Wall time of the NATS-Bench multi-trial protocol in simulate mode, through the command line's own path.

    python benchmarks/protocol_speed.py                      # 500 seeds x 5 searchers x 3 datasets, then tpe
    python benchmarks/protocol_speed.py --seeds 100 --algos rea,gp --datasets cifar10
    python benchmarks/protocol_speed.py --smoke              # 3 seeds: that every part runs, in about a minute

One local Ray is started (timed, as `python -m autohas.tune` starts it); then, per dataset and
searcher, one experiment exactly as `python -m autohas.tune --config benchmarks/nats-tss-multitrial.yaml
--algo ALGO --dataset DATASET --seeds N --quiet` runs it (autohas.tune.run: validation, the experiment
folder, the simulated runs as Ray tasks, results.jsonl, the report), on the CSV table with the
preset's budgets (20,000 / 40,000 / 120,000 simulated s). The searchers run one after another so
that each one's time is its own. Printed: per searcher and dataset the wall time, the time per
run, the mean simulation time of one run inside its Ray task, and how much of the wall time the
report took; the total of the five searchers (Ray's start included; the goal: under 5 minutes on
2 cores); tpe (Tune's Optuna sampler) apart. `--tune-seeds K` adds K seeds of REA on cifar10 in
tune mode (every evaluation a Ray Tune trial) and the ratio per seed against simulate mode.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from common import DEFAULT_TABLE, ROOT, require

PRESET = os.path.join(ROOT, "benchmarks", "nats-tss-multitrial.yaml")
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
FIVE = ("random", "rea", "reinforce", "gp", "bohb")
GOAL_SECONDS = 300.0


def run_experiment(argv: list[str]) -> tuple[float, float, str]:
    """Run `python -m autohas.tune ARGV` in this process (its Ray kept up); (wall s, report s, stdout)."""
    from autohas import report
    from autohas.tune import parse_options, run

    write_report, spent = report.write_report, []

    def timed_report(*args, **kwargs):
        start = time.perf_counter()
        try:
            return write_report(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    out = io.StringIO()
    report.write_report = timed_report  # tune.run imports it from the module when it runs
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = run(parse_options(argv))
        wall = time.perf_counter() - start
    finally:
        report.write_report = write_report
    if code != 0:
        raise SystemExit(f"autohas.tune {' '.join(argv)} ended with exit code {code}:\n{out.getvalue()}")
    return wall, sum(spent), out.getvalue()


def run_walls(folder: str) -> list[float]:
    """The simulation seconds of each run of an experiment (run.json: inside its Ray task)."""
    walls = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry, "run.json")
        if os.path.isfile(path):
            with open(path) as handle:
                walls.append(float(json.load(handle)["wall_seconds"]))
    return walls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=500)
    parser.add_argument("--algos", default=",".join(FIVE + ("tpe",)), help="searchers, run one after another")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--benchmark", default=DEFAULT_TABLE)
    parser.add_argument("--tune-seeds", type=int, default=1, help="seeds of REA on cifar10 in tune mode, for the ratio (0: none)")
    parser.add_argument("--storage", help="keep the experiments here (default: a temporary folder, deleted)")
    parser.add_argument("--smoke", action="store_true", help="3 seeds, no tune-mode comparison: that every part runs")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.tune_seeds = 3, 0
    benchmark = require(args.benchmark)
    algos = [a for a in args.algos.split(",") if a]
    datasets = [d for d in args.datasets.split(",") if d]
    storage = args.storage or tempfile.mkdtemp(prefix="protocol-speed-")
    from autohas.experiment import start_ray

    start = time.perf_counter()
    start_ray()
    ray_start = time.perf_counter() - start
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 0))
    print(f"Ray's start: {ray_start:.2f} s ({cpus} CPUs); {args.seeds} seeds per searcher and dataset; "
          f"table {os.path.basename(benchmark)}, budgets of {os.path.relpath(PRESET, ROOT)}", flush=True)
    print(f"{'dataset':15s} {'searcher':10s} {'runs':>5s} {'wall s':>8s} {'ms/run':>8s} {'sim ms/run':>10s} {'report s':>9s}")
    walls: dict[tuple[str, str], float] = {}
    try:
        for dataset in datasets:
            for algo in algos:
                name = f"{dataset}-{algo}"
                wall, reported, _ = run_experiment([
                    "--config", PRESET, "--algo", algo, "--dataset", dataset, "--benchmark", benchmark,
                    "--seeds", str(args.seeds), "--storage", storage, "--name", name, "--quiet", "--overwrite"])
                inside = run_walls(os.path.join(storage, name))
                walls[(dataset, algo)] = wall
                print(f"{dataset:15s} {algo:10s} {len(inside):5d} {wall:8.2f} {1000 * wall / args.seeds:8.1f} "
                      f"{1000 * statistics.fmean(inside):10.1f} {reported:9.2f}", flush=True)
        for group in (FIVE, ("tpe",)):
            mine = {key: value for key, value in walls.items() if key[1] in group}
            if not mine:
                continue
            ran = sorted({algo for _, algo in mine}, key=list(group).index)
            runs = len(mine) * args.seeds
            total = sum(mine.values())
            for dataset in datasets:
                part = [v for (d, _), v in mine.items() if d == dataset]
                if part:
                    print(f"{'+'.join(ran)} on {dataset}: {sum(part):.1f} s")
            line = f"{'+'.join(ran)}: {runs} runs in {total:.1f} s ({1000 * total / runs:.1f} ms per run)"
            if group is FIVE:
                complete = set(ran) == set(FIVE) and len(datasets) == len(DATASETS)
                line += f"; with Ray's start {total + ray_start:.1f} s"
                if complete and args.seeds == 500:
                    line += f" (goal: under {GOAL_SECONDS:.0f} s: {'met' if total + ray_start < GOAL_SECONDS else 'NOT met'})"
            print(line, flush=True)
        if args.tune_seeds > 0:
            per_run = walls.get(("cifar10", "rea"))
            compare_tune(storage, benchmark, args.tune_seeds, None if per_run is None else per_run / args.seeds)
    finally:
        ray.shutdown()
        if not args.storage:
            shutil.rmtree(storage, ignore_errors=True)
    return 0


def compare_tune(storage: str, benchmark: str, seeds: int, simulated_per_run: float | None) -> None:
    """REA on cifar10: `seeds` seeds as Ray Tune runs against the same seeds simulated (the same trials?),
    and the time per seed against that of a run in the protocol's simulate-mode experiment above."""
    common = ["--algo", "rea", "--space", "nats-tss", "--dataset", "cifar10", "--benchmark", benchmark,
              "--time-budget", "20000", "--seeds", str(seeds), "--storage", storage, "--quiet", "--overwrite"]
    tuned, _, _ = run_experiment(common + ["--mode", "tune", "--name", "tune-rea"])
    simulated, _, _ = run_experiment(common + ["--mode", "simulate", "--name", "simulate-rea"])
    same = _records(os.path.join(storage, "tune-rea")) == _records(os.path.join(storage, "simulate-rea"))
    line = (f"tune mode: {seeds} seed(s) of rea on cifar10 in {tuned:.1f} s ({tuned / seeds:.2f} s per seed; the same "
            f"seed(s) in simulate mode: {simulated:.1f} s, report included; the same trials: {'yes' if same else 'NO'})")
    if simulated_per_run:
        line += f"; per seed {tuned / seeds / simulated_per_run:.0f}x a run of the simulate-mode protocol ({1000 * simulated_per_run:.1f} ms)"
    print(line, flush=True)


def _records(folder: str) -> list[tuple]:
    """What both modes must agree on: per run, each record's architecture, epoch and clock, in order."""
    found = []
    with open(os.path.join(folder, "results.jsonl")) as handle:
        for line in handle:
            r = json.loads(line)
            found.append((r["seed"], r["seq"], r["arch"], r["epoch"], r["sim_seconds"]))
    return sorted(found)


if __name__ == "__main__":
    sys.exit(main())
