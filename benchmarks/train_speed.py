"""Training speed and fidelity of one NATS network on CIFAR-10 (50,000 training images).

Prints the seconds per epoch of tss index 11472 (the ResNet-like cell) trained with the
H0 recipe, for one trial alone and for `--packed` trials sharing one GPU as Ray Tune
trials of 1/packed GPU each (aggregate images/s and its ratio to one trial alone);
with `--full`, trains it for the whole 12-epoch H0 schedule on all 50,000 training
images and prints its accuracy on the 10,000 test images (the benchmark's acc12 for
this cell: 87.95 %); on 2 CPU cores that took 41 minutes, and each epoch's end is printed. Without
a GPU the epoch timing uses `--subset` images and extrapolates to the 50,000 (and says so).

    python benchmarks/train_speed.py --data-dir ../shared/data/cifar10-jpeg.tar.gz [--full]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from common import ROOT, start_ray  # noqa: F401  (puts the checkout on sys.path)
from autohas.trainables.gpu_memory import release_device_memory

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar.gz")
TRAIN_IMAGES = 50000


def full_cifar10(data_dir: str, subset: int | None = None):
    """CIFAR-10 as NATS-Bench's `cifar10` key trains it: all 50k training images, the 10k test images."""
    import torch

    from autohas.data import Split, Splits, load_splits

    splits = load_splits("cifar10", data_dir=data_dir)
    images = torch.cat([splits.train.images, splits.valid.images])
    labels = torch.cat([splits.train.labels, splits.valid.labels])
    if subset:
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:subset]
        images, labels = images[keep], labels[keep]
    return Splits(spec=splits.spec, train=Split(images, labels), valid=splits.test, test=splits.test)


def new_training(data_dir: str, arch_index: int, seed: int, gpu: bool, threads: int, subset: int | None = None):
    from autohas.spaces import get_space
    from autohas.trainables.train import Training, TrainSetup

    arch = get_space("nats-tss").index_to_arch(arch_index)
    setup = TrainSetup(space="nats-tss", dataset="cifar10", data_dir=data_dir, budget=12, seed=seed, algo="speed", threads=threads, gpu=gpu)
    return Training(setup, arch, seed, splits=full_cifar10(data_dir, subset))


def epoch_seconds(training, epochs: int) -> list[float]:
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        training.train_epoch()
        times.append(time.perf_counter() - start)
    return times


def packed_trial(config: dict, data_dir: str, arch_index: int, epochs: int, subset: int | None) -> None:
    """One of the packed Ray Tune trials: train and report each epoch's start and end time."""
    import torch
    from ray import tune

    gpu = torch.cuda.is_available()
    training = new_training(data_dir, arch_index, config["seed"], gpu, threads=1, subset=subset)
    for epoch in range(1, epochs + 1):
        start = time.time()
        training.train_epoch()
        tune.report({"epoch": epoch, "start": start, "end": time.time()})


def run_packed(args, gpu: bool) -> tuple[float, list[float]]:
    """Aggregate images/s of `args.packed` concurrent trials over epochs 2..E (epoch 1 warms up)."""
    import ray
    from ray import tune

    cpus = max(1.0, (ray.cluster_resources().get("CPU", 1.0) - 1) / args.packed)
    resources = {"cpu": cpus, "gpu": 1.0 / args.packed} if gpu else {"cpu": cpus}
    trainable = tune.with_resources(
        tune.with_parameters(packed_trial, data_dir=args.data_dir, arch_index=args.arch_index, epochs=args.epochs, subset=args.subset),
        resources,
    )
    tuner = tune.Tuner(
        trainable,
        param_space={"seed": tune.grid_search(list(range(args.packed)))},
        run_config=tune.RunConfig(storage_path=os.path.abspath(args.storage), name="train-speed", verbose=0),
    )
    results = tuner.fit()
    if results.errors:
        raise SystemExit(f"packed trials failed: {str(results.errors[0]).strip().splitlines()[-1]}")
    frames = [r.metrics_dataframe for r in results]
    steady = [f[f["epoch"] >= 2] for f in frames]
    window = max(f["end"].max() for f in steady) - min(f["start"].min() for f in steady)
    images = sum(len(f) for f in steady) * (args.subset or TRAIN_IMAGES)
    per_epoch = [float(e - s) for f in steady for s, e in zip(f["start"], f["end"])]
    return images / window, per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="CIFAR-10 (torchvision folder, or image folder / .tar.gz)")
    parser.add_argument("--arch-index", type=int, default=11472, help="nats-tss index (11472: the ResNet-like cell)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per trial (the first is warm-up)")
    parser.add_argument("--packed", type=int, default=4, help="trials sharing one GPU")
    parser.add_argument("--subset", type=int, help="train on this many images (default: all 50,000 on GPU, 2,560 on CPU)")
    parser.add_argument("--full", action="store_true", help="also train the full 12-epoch H0 schedule and test it")
    parser.add_argument("--storage", default="/tmp/autohas-train-speed", help="Ray Tune folder of the packed trials")
    args = parser.parse_args()
    args.data_dir = os.path.abspath(args.data_dir)  # Ray runs each trial in a folder of its own
    import torch

    gpu = torch.cuda.is_available()
    if not gpu and args.subset is None:
        args.subset = 2560
    scale = TRAIN_IMAGES / (args.subset or TRAIN_IMAGES)
    device = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    training = new_training(args.data_dir, args.arch_index, 0, gpu, threads=torch.get_num_threads(), subset=args.subset)
    print(f"device: {device}; tss index {args.arch_index}; batch 256; channels_last: {gpu}; bf16 autocast: {training.bf16}")
    if args.subset:
        print(f"timing {args.subset} images per epoch, extrapolated x{scale:.1f} to 50,000")
    alone = epoch_seconds(training, args.epochs)[1:] or [float("nan")]
    del training  # its data and weights must not hold the GPU while the packed trials or the full run time it
    release_device_memory()
    alone_epoch = statistics.fmean(alone) * scale
    alone_rate = TRAIN_IMAGES / alone_epoch
    print(f"alone: {alone_epoch:.2f} s per 50k-image epoch ({alone_rate:.0f} images/s)")

    if args.packed > 1:
        start_ray()
        rate, per_epoch = run_packed(args, gpu)
        print(
            f"packed x{args.packed}{' at ' + format(1 / args.packed, '.2f') + ' GPU each' if gpu else ' (CPU)'}: "
            f"{statistics.fmean(per_epoch) * scale:.2f} s per epoch per trial, aggregate {rate:.0f} images/s, "
            f"{rate / alone_rate:.2f}x one trial alone"
        )

    if args.full:
        if not gpu:
            print(f"full 12-epoch run on the CPU: about {12 * alone_epoch / 3600:.1f} h", flush=True)
        training = new_training(args.data_dir, args.arch_index, 0, gpu, threads=torch.get_num_threads())
        start = time.perf_counter()
        for epoch in range(1, 13):
            loss = training.train_epoch()
            print(f"  epoch {epoch}/12: training loss {loss:.3f}, {time.perf_counter() - start:.0f} s so far", flush=True)
        seconds = time.perf_counter() - start
        print(f"full H0 (12 epochs, 50k train): test accuracy {training.accuracy(training.test):.2f} % "
              f"(benchmark acc12 87.95 %), {seconds:.0f} s")


if __name__ == "__main__":
    main()
