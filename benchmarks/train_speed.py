"""Training speed and fidelity of one NATS network on CIFAR-10, and autohas' overhead over plain PyTorch.

1. autohas / plain: in one process, epochs of tss index 11472 (the ResNet-like cell) through the train
   trainable's own loop (`train_results`: train, validate, test, the schema result, then the epoch's
   checkpoint file) alternate with epochs of a minimal plain PyTorch loop doing the same work on the
   same in-memory uint8 tensors (same network, batch 256, Nesterov SGD with the cosine schedule,
   random crop with padding 4 and flip, normalisation, validation and test passes); prints the median
   epoch times and the median of the epochs' ratios autohas / plain, whole epoch and training part
   alone (target: <= 1.10).
   The splits are the trainable's `cifar10` ones (25k train, 25k valid, 10k test); `--smoke` (and, by
   default, a CPU) times `--batches` batches of 256 per epoch with valid and test cut in proportion,
   `--full` whole epochs. On a CPU the ratio is of CPU seconds (wall seconds printed too).
2. On a GPU: the plain loop's epoch eager, with torch.compile and with CUDA graphs; on a CPU skipped.
3. Not with `--smoke`: the seconds per 50k-image epoch of one trial alone (the NATS `cifar10` key's
   50k training images) and of `--packed` trials sharing one GPU as Ray Tune trials of 1/packed GPU
   each (aggregate images/s and its ratio to one trial alone; on a CPU only when `--packed` is given).
   Without a GPU the epoch timing uses `--subset` images and extrapolates to the 50,000 (and says so).
4. With `--full`: the whole 12-epoch H0 schedule on all 50,000 training images and its accuracy on the
   10,000 test images (the benchmark's acc12 for this cell: 87.95 %); on 2 CPU cores that took
   41 minutes, and each epoch's end is printed.

    python benchmarks/train_speed.py --data-dir ../shared/data/cifar10-jpeg.tar.gz --smoke
    python benchmarks/train_speed.py --data-dir ../shared/data/cifar10-jpeg.tar.gz [--full]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from common import ROOT, start_ray  # noqa: F401  (puts the checkout on sys.path)
from autohas.trainables.gpu_memory import release_device_memory

DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "cifar10-jpeg.tar.gz")
TRAIN_IMAGES = 50000
SMOKE_BATCHES = 8  # batches of 256 per compared epoch with --smoke and, by default, on a CPU


def full_cifar10(data_dir: str, subset: int | None = None):
    """CIFAR-10 as NATS-Bench's `cifar10` key trains it: all 50k training images, the 10k test images."""
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


# ---------------------------------------------------------------------------------------------
# autohas's train trainable against a plain PyTorch loop, in one process.


def trainable_splits(data_dir: str, batches: int | None, batch_size: int):
    """The splits the train trainable uses for `cifar10` (NATS-Bench's cifar10-valid: 25k train, 25k
    valid, 10k test); with `batches`, `batches` x `batch_size` training images drawn at random (seed 0;
    the splits are ordered by class) and valid and test cut in the same proportion, so a short epoch is
    a scaled-down whole one."""
    from autohas.data import Split, Splits, load_splits

    splits = load_splits("cifar10", data_dir=data_dir)
    if not batches:
        return splits
    scale = batches * batch_size / len(splits.train)

    generator = torch.Generator().manual_seed(0)

    def sample(split, count):
        keep = torch.randperm(len(split), generator=generator)[: max(1, min(len(split), int(round(count))))]
        return Split(split.images[keep], split.labels[keep])

    return Splits(
        spec=splits.spec,
        train=sample(splits.train, batches * batch_size),
        valid=sample(splits.valid, scale * len(splits.valid)),
        test=sample(splits.test, scale * len(splits.test)),
    )


def clocks() -> tuple[float, float]:
    """(wall, CPU) seconds now; CPU seconds are the process' own, which other work on the machine does not add to."""
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


class TimedTrainEpoch:
    """Times `Training.train_epoch` (the training part of each trainable epoch) while installed."""

    def __init__(self):
        from autohas.trainables.train import Training

        self.cls, self.original, self.seconds = Training, Training.train_epoch, []

    def __enter__(self):
        original, seconds = self.original, self.seconds

        def timed(training):
            start = clocks()
            try:
                return original(training)
            finally:
                seconds.append(since(start))

        self.cls.train_epoch = timed
        return self

    def __exit__(self, *exc):
        self.cls.train_epoch = self.original


def autohas_epochs(splits, arch_index: int, seed: int, gpu: bool, threads: int, epochs: int):
    """The train trainable's epochs (`train_results`: train, validate, test, the schema result) each
    followed by its checkpoint's file, as `report_with_state` writes it (Tune's own report is Ray's).
    A generator: each `next()` runs one epoch."""
    from autohas.spaces import get_space
    from autohas.trainables.train import Recipe, TrainSetup, train_results, write_checkpoint

    space = get_space("nats-tss")
    config = space.arch_to_config(space.index_to_arch(arch_index))
    setup = TrainSetup(
        space="nats-tss", dataset="cifar10", data_dir=None, budget=epochs, seed=seed, algo="speed",
        recipe=Recipe(), threads=threads, gpu=gpu,
    )
    for _, training in train_results(setup, config, "speed", splits=splits):
        with tempfile.TemporaryDirectory() as folder:
            write_checkpoint(folder, training.state())
        yield training


class PlainLoop:
    """A minimal plain PyTorch loop: the same network, recipe (Nesterov SGD 0.1, momentum 0.9, weight
    decay 5e-4, cosine over 12 epochs stepped per epoch, batch 256), augmentation (random crop after
    zero padding 4, horizontal flip, per-image), normalisation and per-epoch validation and test
    passes (batch 512), over the same in-memory uint8 tensors. On a GPU, channels_last and bf16
    autocast where the trainable uses them (compute capability 8.0+). `compile`: None (eager),
    or a torch.compile mode ("default"; "reduce-overhead" = CUDA graphs)."""

    def __init__(self, splits, arch_index: int, seed: int, device: torch.device, compile: str | None = None):
        from autohas.models import build_network
        from autohas.spaces import get_space

        space = get_space("nats-tss")
        torch.manual_seed(seed)
        self.device = device
        self.cuda = device.type == "cuda"
        self.bf16 = self.cuda and torch.cuda.get_device_capability(device)[0] >= 8
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # fixed input shapes (the trainable sets it too)
        self.model = build_network(space.architecture_space, space.architecture(space.index_to_arch(arch_index)), splits.spec.num_classes)
        self.model = self.model.to(device, memory_format=torch.channels_last if self.cuda else torch.preserve_format)
        self.forward = self.model if compile is None else torch.compile(self.model, mode=compile)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=12)
        self.criterion = nn.CrossEntropyLoss()
        self.train_x, self.train_y = splits.train.images.to(device), splits.train.labels.to(device)
        self.eval_sets = [(s.images.to(device), s.labels.to(device)) for s in (splits.valid, splits.test)]
        self.mean = torch.tensor(splits.spec.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(splits.spec.std, device=device).view(1, 3, 1, 1) * 255
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.train_seconds: list[tuple[float, float]] = []  # (wall, CPU) of each epoch's training part

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.cuda else x

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        n, size, g = x.shape[0], x.shape[-1], self.generator
        padded = F.pad(x, (4, 4, 4, 4))
        top = torch.randint(0, 9, (n, 1), generator=g, device=self.device)
        left = torch.randint(0, 9, (n, 1), generator=g, device=self.device)
        flip = torch.rand(n, 1, generator=g, device=self.device) < 0.5
        span = torch.arange(size, device=self.device)
        rows = top + span
        columns = left + torch.where(flip, size - 1 - span, span)
        images = torch.arange(n, device=self.device).view(n, 1, 1, 1)
        channels = torch.arange(3, device=self.device).view(1, 3, 1, 1)
        return padded[images, channels, rows.view(n, 1, size, 1), columns.view(n, 1, 1, size)]

    def epoch(self) -> float:
        """One epoch: train, then top-1 accuracy on valid and test; the mean training loss."""
        start = clocks()
        self.model.train()
        order = torch.randperm(len(self.train_y), generator=self.generator, device=self.device)
        total = torch.zeros((), device=self.device)
        steps = 0
        for i in range(0, len(order), 256):
            index = order[i : i + 256]
            x, y = self.inputs(self.augment(self.train_x[index])), self.train_y[index]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.criterion(self.forward(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
            steps += 1
        self.schedule.step()
        mean_loss = float(total) / steps  # float(): waits for the GPU
        self.train_seconds.append(since(start))
        self.model.eval()
        self.accuracies = [self.accuracy(images, labels) for images, labels in self.eval_sets]
        return mean_loss

    @torch.no_grad()
    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        for i in range(0, len(labels), 512):
            correct += (self.forward(self.inputs(images[i : i + 512])).argmax(1) == labels[i : i + 512]).sum()
        return 100.0 * float(correct) / len(labels)


def compare_with_plain(args, gpu: bool) -> float:
    """Alternate plain and autohas epochs of the same work (epoch 1 of each is warm-up) and print the
    median times and the median of the epochs' ratios autohas / plain (each epoch's two ran side by
    side, under the same load), for the whole epoch and for its training part; returns the whole
    epoch's ratio: of wall seconds on a GPU, of the process' CPU seconds on a CPU (they do not count
    what other processes on a shared machine take away; wall seconds there are printed too)."""
    device = torch.device("cuda" if gpu else "cpu")
    splits = trainable_splits(args.data_dir, args.batches, 256)
    size = "whole epochs" if not args.batches else f"{args.batches} batches of 256 per epoch"
    print(
        f"autohas train trainable vs a plain PyTorch loop, in one process, {args.threads} thread(s): an epoch = "
        f"{len(splits.train)} train / {len(splits.valid)} valid / {len(splits.test)} test images ({size}); "
        f"{args.repeats} timed epochs each after one warm-up, alternated plain, autohas, autohas, plain, ...",
        flush=True,
    )
    from autohas.trainables.train import trial_seed

    plain = PlainLoop(splits, args.arch_index, trial_seed(0, args.arch_index), device)  # the trainable's initial weights
    timer = TimedTrainEpoch()
    plain_epoch, autohas_epoch = [], []
    with timer:
        autohas = autohas_epochs(splits, args.arch_index, 0, gpu, args.threads, args.repeats + 1)
        sides = [(plain.epoch, plain_epoch), (lambda: next(autohas), autohas_epoch)]
        for epoch in range(args.repeats + 1):
            # plain first in even epochs, autohas first in odd ones (ABBA): a machine whose load drifts
            # during the run then slows neither side more than the other
            for run, seconds in sides if epoch % 2 == 0 else sides[::-1]:
                start = clocks()
                run()
                seconds.append(since(start))
            print(
                f"  epoch {epoch + 1}{' (warm-up; set-up included)' if epoch == 0 else ''}, "
                f"{'plain first' if epoch % 2 == 0 else 'autohas first'}: "
                f"plain {plain_epoch[-1][0]:.2f} s (training {plain.train_seconds[-1][0]:.2f} s), "
                f"autohas {autohas_epoch[-1][0]:.2f} s (training {timer.seconds[-1][0]:.2f} s)"
                + ("" if gpu else f"; CPU s: plain {plain_epoch[-1][1]:.2f}, autohas {autohas_epoch[-1][1]:.2f}"),
                flush=True,
            )
        autohas.close()

    def median(values, clock):  # of the timed epochs (the first is warm-up); clock 0: wall, 1: CPU
        return statistics.median(v[clock] for v in values[1:])

    def paired(mine, theirs, clock):  # the median of each epoch's ratio: the two ran side by side, under one load
        return statistics.median(a[clock] / p[clock] for a, p in zip(mine[1:], theirs[1:]))

    ratios = []
    for part, mine, theirs in (
        ("whole epoch (train + valid + test passes; autohas also builds its result and writes its checkpoint)", autohas_epoch, plain_epoch),
        ("training part alone", timer.seconds, plain.train_seconds),
    ):
        wall, cpu = paired(mine, theirs, 0), paired(mine, theirs, 1)
        ratios.append(wall if gpu else cpu)
        print(f"{part}: median wall plain {median(theirs, 0):.2f} s, autohas {median(mine, 0):.2f} s, "
              f"median ratio autohas / plain {wall:.3f}"
              + ("" if gpu else f"; CPU seconds: plain {median(theirs, 1):.2f}, autohas {median(mine, 1):.2f}, median ratio {cpu:.3f}"))
    print(f"autohas / plain, whole epoch: {ratios[0]:.3f} (median of the epochs' ratios of {'wall' if gpu else 'CPU'} seconds); "
          f"target <= 1.10: {'met' if ratios[0] <= 1.10 else 'NOT met'}", flush=True)
    return ratios[0]


def compiled_epochs(args, device: torch.device) -> None:
    """The plain loop's training part eager, with torch.compile, and with torch.compile's CUDA graphs
    (mode "reduce-overhead"), each on a fresh network; a mode that fails is one line."""
    splits = trainable_splits(args.data_dir, args.batches, 256)
    names = {None: "eager", "default": "torch.compile", "reduce-overhead": "torch.compile + CUDA graphs (reduce-overhead)"}
    for mode, name in names.items():
        try:
            loop = PlainLoop(splits, args.arch_index, 0, device, compile=mode)
            for _ in range(args.repeats + 1):
                loop.epoch()
        except Exception as exc:  # noqa: BLE001 - a backend missing here is a line of the report, not the end of it
            print(f"plain loop, {name}: failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})")
        else:
            wall = [seconds for seconds, _ in loop.train_seconds]
            print(f"plain loop, {name}: training part {statistics.median(wall[1:]):.2f} s per epoch "
                  f"(first epoch, compilation included: {wall[0]:.2f} s)", flush=True)
        loop = None
        torch._dynamo.reset()
        release_device_memory()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="CIFAR-10 (torchvision folder, or image folder / .tar.gz)")
    parser.add_argument("--arch-index", type=int, default=11472, help="nats-tss index (11472: the ResNet-like cell)")
    parser.add_argument("--smoke", action="store_true",
                        help="only the autohas / plain comparison (and on a GPU torch.compile), on --batches batches per epoch")
    parser.add_argument("--full", action="store_true",
                        help="the comparison on whole epochs, and the full 12-epoch H0 run on 50k images, tested")
    parser.add_argument("--batches", type=int,
                        help=f"batches of 256 per compared epoch (default: {SMOKE_BATCHES} with --smoke or on a CPU, else whole epochs)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each side in the comparison, after one warm-up")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's, here %d)" % torch.get_num_threads())
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed per trial alone and packed (the first is warm-up)")
    parser.add_argument("--packed", type=int, help="trials sharing one GPU (default 4; on a CPU only when given: N CPU trials)")
    parser.add_argument("--subset", type=int, help="train on this many images (default: all 50,000 on GPU, 2,560 on CPU)")
    parser.add_argument("--storage", default="/tmp/autohas-train-speed", help="Ray Tune folder of the packed trials")
    args = parser.parse_args()
    if args.smoke and args.full:
        parser.error("--smoke and --full exclude each other")
    if not 1 <= args.repeats <= 11:
        parser.error("--repeats must be 1..11 (the warm-up and the timed epochs lie within the 12-epoch schedule)")
    args.data_dir = os.path.abspath(args.data_dir)  # Ray runs each trial in a folder of its own
    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)

    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if gpu else f"CPU ({args.threads} threads)"
    if args.batches is None and (args.smoke or (not gpu and not args.full)):
        args.batches = SMOKE_BATCHES
    print(f"device: {device}; tss index {args.arch_index}; batch 256; channels_last and bf16 autocast: "
          f"{gpu and torch.cuda.get_device_capability()[0] >= 8}", flush=True)

    compare_with_plain(args, gpu)
    if gpu:
        compiled_epochs(args, torch.device("cuda"))
    else:
        print("torch.compile / CUDA graphs epoch times: need CUDA, skipped (no GPU here)")
    if args.smoke:
        if not gpu:
            print(f"trials packed at {1 / (args.packed or 4):.2f} GPU: need CUDA, skipped (and --smoke)")
        return

    if not gpu and args.subset is None:
        args.subset = 2560
    scale = TRAIN_IMAGES / (args.subset or TRAIN_IMAGES)
    training = new_training(args.data_dir, args.arch_index, 0, gpu, threads=args.threads, subset=args.subset)
    if args.subset:
        print(f"alone: timing {args.subset} images per epoch, extrapolated x{scale:.1f} to 50,000")
    alone = epoch_seconds(training, args.epochs)[1:] or [float("nan")]
    del training  # its data and weights must not hold the GPU while the packed trials or the full run time it
    release_device_memory()
    alone_epoch = statistics.fmean(alone) * scale
    alone_rate = TRAIN_IMAGES / alone_epoch
    print(f"alone: {alone_epoch:.2f} s per 50k-image epoch ({alone_rate:.0f} images/s)")

    packed = args.packed if args.packed is not None else (4 if gpu else 1)
    if not gpu and args.packed is None:
        print("4 trials packed at 0.25 GPU: need CUDA, skipped (--packed N packs N CPU trials)")
    if packed > 1:
        args.packed = packed
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
        training = new_training(args.data_dir, args.arch_index, 0, gpu, threads=args.threads)
        start = time.perf_counter()
        for epoch in range(1, 13):
            loss = training.train_epoch()
            print(f"  epoch {epoch}/12: training loss {loss:.3f}, {time.perf_counter() - start:.0f} s so far", flush=True)
        seconds = time.perf_counter() - start
        print(f"full H0 (12 epochs, 50k train): test accuracy {training.accuracy(training.test):.2f} % "
              f"(benchmark acc12 87.95 %), {seconds:.0f} s")


if __name__ == "__main__":
    main()
