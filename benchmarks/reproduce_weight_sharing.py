"""The NATS-Bench weight-sharing protocol on a GPU: derived architectures' acc200 beside the published values.

Protocol (NATS-Bench / NAS-Bench-201, `exps/NATS-algos/search-cell.py`): 100 search epochs on
cifar10-valid (25k train / 25k valid of CIFAR-10), 3 seeds per method; the derived
architecture's 200-epoch CIFAR-10 test accuracy looked up in the NATS-Bench table. The runs
go through the CLI as one Tune experiment, four trials packed per GPU (`--gpus-per-trial
0.25`), and this prints per method: the mean +- std over seeds of acc200, the published value
(OStr-DARTS, Table I, NAS-Bench-201 searched on CIFAR-10), the search wall time and epoch time.

    python benchmarks/reproduce_weight_sharing.py --methods gdas,darts-v1,darts-v2,setn,enas,rsps
    python benchmarks/reproduce_weight_sharing.py --smoke      # < 5 min on one H100/H200

`--smoke`: 3 epochs of gdas alone on the GPU (its epoch time), then gdas and darts-v1 with two
seeds each packed four to the GPU at 0.25 each (their epoch times and the packing throughput:
search epochs per hour of wall time, the four together against one alone). `--search-batches N` shortens every
epoch to N steps (for a try on a CPU: the figures then say nothing about the protocol).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from common import DEFAULT_TABLE, require
from weight_sharing import DEFAULT_DATA, PUBLISHED

OPTIMUM = 94.37  # the best acc200 of the 15,625 cells


def run_experiment(argv: list[str]) -> float:
    """Run the CLI with `argv`; its wall seconds (exit on failure)."""
    from autohas.tune import main

    began = time.perf_counter()
    code = main(argv)
    if code != 0:
        print(f"the experiment failed (exit {code}): {' '.join(argv)}", file=sys.stderr)
        sys.exit(code)
    return time.perf_counter() - began


def searches(results: str) -> dict[tuple[str, int], list[dict]]:
    """The weight-sharing records of an experiment per (algo, seed), in epoch order."""
    runs: dict[tuple[str, int], list[dict]] = {}
    with open(results) as f:
        for line in f:
            record = json.loads(line)
            runs.setdefault((record["algo"], int(record["seed"])), []).append(record)
    return {key: sorted(rows, key=lambda r: r["epoch"]) for key, rows in runs.items()}


def epoch_seconds(rows: list[dict]) -> list[float]:
    """Measured search seconds of each epoch of one search."""
    costs = [r["trial_sim_seconds"] for r in rows]
    return [b - a for a, b in zip([0.0] + costs[:-1], costs)]


def common_args(args, storage: str, name: str) -> list[str]:
    argv = ["--space", "nats-tss", "--dataset", "cifar10", "--data-dir", args.data_dir, "--benchmark", args.benchmark,
            "--storage", storage, "--name", name, "--overwrite"]
    if args.search_batches:
        argv += ["--search-batches", str(args.search_batches)]
    if args.gpus_per_trial:
        argv += ["--gpus-per-trial", str(args.gpus_per_trial)]
    return argv


def protocol(args, storage: str) -> None:
    methods = args.methods.split(",")
    argv = ["--algo", ",".join(methods), "--seeds", str(args.seeds), "--search-epochs", str(args.epochs)]
    wall = run_experiment(argv + common_args(args, storage, "protocol"))
    runs = searches(os.path.join(storage, "protocol", "results.jsonl"))
    print(f"\n{len(methods)} methods x {args.seeds} seeds x {args.epochs} epochs in {wall / 3600:.2f} h wall\n")
    print("method | acc200 (mean +- std over seeds) | published | optimum | search wall per run | epoch time")
    print("---|---|---|---|---|---")
    for algo in methods:
        finals = [rows[-1] for (a, _), rows in runs.items() if a == algo]
        accs = [r["test_acc"] for r in finals]
        spread = f" +- {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        epochs = [s for (a, _), rows in runs.items() if a == algo for s in epoch_seconds(rows)]
        walls = [r["wall_seconds"] for r in finals]
        print(f"{algo} | {statistics.mean(accs):.2f}{spread} ({len(accs)} seeds) | {PUBLISHED.get(algo, '-')} | {OPTIMUM} | "
              f"{statistics.mean(walls) / 60:.1f} min | {statistics.median(epochs):.1f} s")


def smoke(args, storage: str) -> None:
    epochs = str(args.smoke_epochs)
    alone_wall = run_experiment(["--algo", "gdas", "--seeds", "1", "--search-epochs", epochs] + common_args(args, storage, "alone"))
    alone = searches(os.path.join(storage, "alone", "results.jsonl"))[("gdas", 0)]
    alone_epoch = statistics.median(epoch_seconds(alone)[1:] or epoch_seconds(alone))
    packed_wall = run_experiment(
        ["--algo", "gdas,darts-v1", "--seeds", "2", "--search-epochs", epochs] + common_args(args, storage, "packed")
    )
    packed = searches(os.path.join(storage, "packed", "results.jsonl"))
    print(f"\nsmoke: {epochs} epochs{f' of {args.search_batches} steps' if args.search_batches else ''}, "
          f"--gpus-per-trial {args.gpus_per_trial}")
    print(f"gdas alone: {alone_epoch:.1f} s per epoch ({alone_wall:.0f} s wall with Ray's start and data loading)")
    print("run | epoch times (s) | derived architecture | acc200")
    for (algo, seed), rows in sorted(packed.items()):
        times = ", ".join(f"{s:.1f}" for s in epoch_seconds(rows))
        print(f"{algo} seed {seed} | {times} | {rows[-1]['arch']} | {rows[-1]['test_acc']:.2f}")
    search_epochs = sum(len(rows) for rows in packed.values())
    packed_epoch = statistics.median(s for rows in packed.values() for s in epoch_seconds(rows))
    print(f"packed: {search_epochs} search epochs in {packed_wall:.0f} s wall = {search_epochs / packed_wall * 3600:.0f} epochs/h; "
          f"alone: {len(alone)} in {alone_wall:.0f} s = {len(alone) / alone_wall * 3600:.0f} epochs/h (walls include Ray's "
          f"start and data loading); median epoch {packed_epoch:.1f} s packed vs {alone_epoch:.1f} s alone")

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="gdas,darts-v1,darts-v2,setn,enas,rsps")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--benchmark", default=DEFAULT_TABLE, help="the NATS-Bench CSV table (acc200 per architecture)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="default: 0.25 on a GPU, none on a CPU")
    p.add_argument("--search-batches", type=int, default=None, help="steps per epoch (default: a pass over 25k images)")
    p.add_argument("--smoke", action="store_true", help="a few epochs of gdas alone and gdas + darts-v1 packed 4 to a GPU")
    p.add_argument("--smoke-epochs", type=int, default=3)
    p.add_argument("--storage", default=None, help="where the experiments go (default: a temporary folder)")
    args = p.parse_args()
    args.benchmark = require(args.benchmark)
    if not os.path.exists(args.data_dir):
        print(f"CIFAR-10 {args.data_dir} not found: pass --data-dir", file=sys.stderr)
        sys.exit(2)
    import torch

    gpu = torch.cuda.is_available()
    if args.gpus_per_trial is None and gpu:
        args.gpus_per_trial = 0.25
    print(f"device: {torch.cuda.get_device_name() if gpu else f'CPU ({os.cpu_count()} cores)'}", flush=True)
    storage = args.storage or tempfile.mkdtemp(prefix="reproduce-ws-")
    (smoke if args.smoke else protocol)(args, storage)


if __name__ == "__main__":
    main()
