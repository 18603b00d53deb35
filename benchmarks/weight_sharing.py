"""Weight-sharing search on the real CIFAR-10: derived architectures, their benchmark accuracy, cost.

Runs each method (and selection) of `--runs` with the search loop on cifar10-valid
(25k train / 25k valid of the shared CIFAR-10), and after every epoch prints the derived
architecture, its 200-epoch test accuracy from the NATS-Bench table (what NAS-Bench-201
reports for weight-sharing methods), the epoch's seconds and the search cost so far. At
the end: one line per run next to the published numbers (search on CIFAR-10, NAS-Bench-201
/ OStr-DARTS; optimum 94.37).

On a GPU run the protocol (`--epochs 100`). Without one, `--steps` limits the steps per
epoch and `--eval-batches` the validation batches, and the output says how far that is
from the protocol.

    python benchmarks/weight_sharing.py --runs gdas,darts-v1,darts-v1:ostr --epochs 100
    python benchmarks/weight_sharing.py --epochs 2 --steps 30 --eval-batches 4   # a CPU taste
    python benchmarks/weight_sharing.py --runs darts-v1,sanas-darts,gdas,autohas --retrain-epochs 12

With `--retrain-epochs E` (default: 12 for autohas / autohas-hp, none for the others) the final
architecture is then re-trained from scratch with H0 (AutoHAS: its derived learning-rate schedule
and weight decay) and the last lines are the re-trained network's measured test accuracy.

The size-space methods (tas, mask-gumbel, mask-sample) search nats-sss widths; with
`--sss-benchmark` (an official NATS-sss folder) their derived widths are looked up, else they
are re-trained (default 12 epochs) and the per-epoch accuracy is the supernet's on the test split.

    python benchmarks/weight_sharing.py --runs tas,mask-gumbel,mask-sample --epochs 100 [--warmup-ratio 0.25]
"""
from __future__ import annotations

import argparse
import os

from common import DEFAULT_TABLE, ROOT, require

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar.gz")
# NAS-Bench-201 Table (search on CIFAR-10, test accuracy on CIFAR-10), and OStr-DARTS (S3 Table I).
PUBLISHED = {"gdas": "93.61 +- 0.09", "darts-v1": "54.30", "darts-v2": "54.30", "setn": "87.64", "enas": "53.89 +- 0.58",
             "darts-v1:ostr": "94.36",
             # SANAS and LeaSE publish on the DARTS space only; AutoHAS: thesis Table 4.5 (CIFAR-10, re-trained, its own setup)
             "autohas": "93.7 +- 0.3 (re-trained)", "autohas-hp": "93.9 +- 0.1 (re-trained)"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="gdas,darts-v1,darts-v1:ostr", help="method[:selection], comma-separated")
    p.add_argument("--data-dir", default=DEFAULT_DATA)
    p.add_argument("--benchmark", default=DEFAULT_TABLE, help="the NATS-Bench CSV table (acc200 per architecture)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--steps", type=int, default=None, help="search steps per epoch (default: a pass over 25k images)")
    p.add_argument("--eval-batches", type=int, default=None, help="validation batches of 512 per epoch (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retrain-epochs", type=int, default=None,
                   help="re-train the final architecture (default: 12 for autohas, and for sss methods without --sss-benchmark)")
    p.add_argument("--sss-benchmark", default=None, help="an official NATS-sss folder to look the sss methods' widths up in")
    p.add_argument("--warmup-ratio", type=float, default=0.0, help="sss methods: the fraction of epochs training the widest network alone")
    args = p.parse_args()

    import torch

    from autohas.trainables.weight_sharing import HAS_METHODS, SIZE_METHODS
    from autohas.trainables.weight_sharing.search import SearchRecipe, SearchSetup, method_settings, search_results

    table = require(args.benchmark)
    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device}; data: {args.data_dir}; table: {table}")
    if args.steps or args.eval_batches or args.epochs < 100:
        print(f"NOT the protocol (100 epochs of 390 steps): {args.epochs} epochs of {args.steps or 390} steps, "
              f"validation on {'all' if args.eval_batches is None else args.eval_batches * 512} images")
    summary = []
    for run in args.runs.split(","):
        algo, _, select = run.partition(":")
        recipe = SearchRecipe(epochs=args.epochs, steps_per_epoch=args.steps, eval_batches=args.eval_batches,
                              retrain_epochs=args.retrain_epochs)
        space = "has" if algo in HAS_METHODS else "nats-sss" if algo in SIZE_METHODS else "nats-tss"
        bench = (args.sss_benchmark and require(args.sss_benchmark)) if space == "nats-sss" else table
        setup = SearchSetup(space, "cifar10", args.data_dir, algo, args.seed, select=select or None,
                            benchmark=bench, recipe=recipe, settings=method_settings(algo, warmup_ratio=args.warmup_ratio),
                            threads=os.cpu_count() or 1, gpu=gpu)
        last = None
        before = 0.0
        searched = None
        for result, _ in search_results(setup, run):
            retrained = "retrain_epochs" in result["hparams"]
            searched = searched if retrained else result
            what = "re-trained: test" if retrained else "acc200" if bench else "supernet test"
            print(f"{run} epoch {result['epoch']:3d}: {result['arch']} {what} {result['test_acc']:.2f} "
                  f"valid {result['valid_acc']:.2f} epoch {result['trial_sim_seconds'] - before:.1f} s "
                  f"cost {result['trial_sim_seconds']:.0f} s {result['hparams'] or ''}", flush=True)
            before = result["trial_sim_seconds"]
            last = result
        summary.append((run, searched, last if last is not searched else None))
    print("\nrun | derived architecture | acc200 (table; sss without a benchmark: supernet test) | re-trained test acc | "
          "published | search cost | total cost")
    for run, searched, retrained in summary:
        again = f"{retrained['test_acc']:.2f} ({retrained['hparams']['retrain_epochs']} epochs)" if retrained else "-"
        total = retrained or searched
        print(f"{run} | {searched['arch']} | {searched['test_acc']:.2f} | {again} | {PUBLISHED.get(run, '-')} | "
              f"{searched['trial_sim_seconds']:.0f} s over {searched['epoch']} epochs | {total['trial_sim_seconds']:.0f} s")


if __name__ == "__main__":
    main()
