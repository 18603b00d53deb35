"""Train trainable: trains one candidate network on real data with the NATS-Bench H0 recipe.

The learning-rate schedule spans the whole schedule (`epochs`, 12 for H0) even when
a trial reports only up to a smaller budget, so that "b epochs" means epoch b of the
12-epoch run, as in the benchmark, and a trial that HyperBand pauses at epoch 3 and
resumes later continues the same run. After every epoch the trial reports the schema
(validation accuracy = the search signal; test accuracy on the test split, never
shown to a searcher) and saves a checkpoint (weights, optimiser, data-order RNG,
seconds spent), from which it resumes exactly.

Cost: `trial_sim_seconds` is the trial's measured training + validation seconds
(test evaluation excluded: it is reporting, not search), which is what a time budget
limits in train mode: on a GPU wall seconds; on a CPU the CPU seconds of the trial's
process, which other work on a shared machine does not inflate (its wall seconds do:
the budget would buy a fraction of the training and the search end near chance).

Latency: with a latency table each result carries the architecture's latency on the table's device;
with `--device local-cpu` / `local-gpu` the trial measures its network before it trains (kept per
architecture in the experiment: trainables/measured_latency.py).
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import nn

from autohas import schema
from autohas.latency import LOCAL_DEVICES, latencies
from autohas.spaces import get_space
from autohas.trainables.device import cached_splits, prepare_trial

CHECKPOINT_FILE = "training.pt"


@dataclass(frozen=True)
class Recipe:
    """Training hyperparameters: NATS-Bench H0 (Table 5.2) by default."""

    epochs: int = 12  # the length of the cosine schedule
    batch_size: int = 256
    lr: float = 0.1  # cosine from lr to 0 over `epochs`, stepped per epoch (xautodl's CosineAnnealingLR)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    eval_batch_size: int = 512
    lr_schedule: tuple[float, ...] | None = None  # instead of the cosine: values over the run, interpolated (AutoHAS)

    def lr_at(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """The learning rate of step `step` (0-based) of epoch `epoch`: the cosine at the epoch (the
        benchmark's schedule: constant within an epoch), or the given schedule at that point of the run."""
        if self.lr_schedule is None:
            return cosine_lr(self.lr, epoch, self.epochs)
        points = len(self.lr_schedule)
        total_steps = self.epochs * steps_per_epoch
        where = min(epoch * steps_per_epoch + step, total_steps) / max(1, total_steps) * (points - 1)
        return float(np.interp(where, np.arange(points), self.lr_schedule))


# Batch sizes that differ from H0's 256: scikit-learn's digits has 898 training images,
# which at 256 would give 4 steps per epoch and nothing learnt after one or two epochs
# (useless low fidelities for BOHB); 64 gives 15 steps per epoch.
DATASET_BATCH_SIZES = {"digits": 64}


def recipe_for(dataset: str, epochs: int = 12) -> Recipe:
    """H0 with a `epochs`-epoch schedule, with the batch size adapted where a dataset is tiny."""
    return Recipe(epochs=epochs, batch_size=DATASET_BATCH_SIZES.get(dataset, Recipe.batch_size))


@dataclass(frozen=True)
class TrainSetup:
    """Everything a train trial needs besides the architecture (passed via with_parameters)."""

    space: str
    dataset: str
    data_dir: str | None
    budget: int  # epochs to report up to (<= recipe.epochs)
    seed: int  # the run's seed
    algo: str
    recipe: Recipe = field(default_factory=Recipe)
    threads: int = 1  # CPU threads per trial
    gpu: bool = False  # train on the trial's GPU (Ray assigns it via CUDA_VISIBLE_DEVICES)
    cache_dir: str | None = None
    latency_table: str | None = None  # hardware-aware search: results carry latency_ms on `device` from this table
    device: str | None = None  # a table's device, or local-cpu / local-gpu: measured (trainables/measured_latency.py)
    latency_batch: int = 1  # local-*: inputs per timed forward
    latency_cache: str | None = None  # local-*: the experiment folder whose latency/ keeps measurements (None: none kept)


def trial_seed(run_seed: int, arch_index: int) -> int:
    """Initialisation and data-order seed of one evaluation: fixed per (run seed, architecture)."""
    return int(np.random.default_rng([run_seed, arch_index, 7]).integers(2**31))


def cosine_lr(base: float, step: int, total_steps: int) -> float:
    """Cosine annealing from `base` to 0 over `total_steps` (steps or epochs), evaluated at `step` (0-based)."""
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


class Training:
    """One candidate's training run: model, optimiser, data order; save/restore per epoch."""

    def __init__(self, setup: TrainSetup, arch: str, seed: int, splits=None):
        from autohas.data import Batches
        from autohas.models import build_network

        space = get_space(setup.space)
        self.setup = setup
        # a candidate of a space with hyperparameters (has) trains with its own learning rate and weight decay
        self.recipe = dataclasses.replace(setup.recipe, **space.hyperparameters(arch))
        self.device, splits = prepare_trial(setup, seed, splits, load=cached_splits)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
        # bf16 autocast only where cuDNN has bf16 kernels (compute capability 8.0+, e.g. A100, A10G,
        # H100); on older GPUs (T4, V100) bf16 convolutions fall back to slow kernels, so train in fp32.
        self.bf16 = self.device.type == "cuda" and torch.cuda.get_device_capability(self.device)[0] >= 8
        self.spec = splits.spec
        self.model = build_network(space.architecture_space, space.architecture(arch), splits.spec.num_classes).to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        r = self.recipe
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay, nesterov=r.nesterov
        )
        self.train = Batches(splits.train, splits.spec, r.batch_size, self.device, augment=True, shuffle=True, seed=seed)
        self.valid = Batches(splits.valid, splits.spec, r.eval_batch_size, self.device)
        self.test = Batches(splits.test, splits.spec, r.eval_batch_size, self.device)
        self.loss = nn.CrossEntropyLoss()
        self.epoch = 0
        self.seconds = 0.0  # training + validation seconds so far, over all attempts
        self.wall = 0.0  # all seconds of the trial so far (test evaluation included), over all attempts

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

    def train_epoch(self) -> float:
        """One epoch of SGD on the train split; the mean training loss."""
        self.model.train()
        steps_per_epoch = len(self.train)
        losses = []
        for step, (x, y) in enumerate(self.train):
            for group in self.optimizer.param_groups:
                group["lr"] = self.recipe.lr_at(self.epoch, step, steps_per_epoch)
            with self._autocast():
                loss = self.loss(self.model(self._inputs(x)), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(loss.detach())
        self.epoch += 1
        return float(torch.stack(losses).mean()) if losses else float("nan")

    @torch.no_grad()
    def accuracy(self, batches) -> float:
        """Top-1 accuracy (%) on a split, with BN in inference mode, outside autocast (float32 weights and
        activations as the benchmark measured it; cuDNN may still use TF32 convolutions on Ampere and later)."""
        self.model.eval()
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        count = 0
        for x, y in batches:
            logits = self.model(self._inputs(x))
            correct += (logits.argmax(dim=1) == y).sum()
            count += y.numel()
        return 100.0 * float(correct) / max(1, count)

    def state(self) -> dict:
        return {
            "epoch": self.epoch,
            "seconds": self.seconds,
            "wall": self.wall,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "train_order": self.train.get_state(),
        }

    def load(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.train.set_state(state["train_order"])
        self.epoch = int(state["epoch"])
        self.seconds = float(state["seconds"])
        self.wall = float(state["wall"])


def train_results(
    setup: TrainSetup, config: dict, trial_id: str, state: dict | None = None, splits=None
) -> Iterator[tuple[dict, Training]]:
    """Train one configuration epoch by epoch up to the budget; yields (schema result, training).

    With `state` (a checkpoint of this configuration) training continues after its epoch. `splits`
    (autohas.data.Splits): the data instead of `setup`'s dataset (benchmarks time it on a subset).
    """
    from autohas.models import count_flops, count_params

    since = time.perf_counter()
    space = get_space(setup.space)
    arch = space.config_to_arch(config)
    index = space.arch_to_index(arch)
    latency = None if setup.latency_table is None else latencies(setup.latency_table, setup.device, setup.space)[index]
    training = Training(setup, arch, trial_seed(setup.seed, index), splits=splits)
    if setup.device in LOCAL_DEVICES:  # before training: the same number whatever epoch the trial starts at
        from autohas.trainables.measured_latency import trial_latency

        latency = trial_latency(setup, training, arch)
    if state is not None:
        training.load(state)
    size = training.spec.image_size
    params = count_params(training.model)
    flops = count_flops(training.model, (1, 3, size, size))
    clock = time.perf_counter if training.device.type == "cuda" else time.process_time
    while training.epoch < setup.budget:
        began = clock()
        training.train_epoch()
        valid_acc = training.accuracy(training.valid)
        training.seconds += clock() - began
        test_acc = training.accuracy(training.test)
        training.wall += time.perf_counter() - since
        since = time.perf_counter()
        result = schema.epoch_result(
            setup,
            trial_id,
            arch,
            index,
            training.epoch,
            valid_acc=valid_acc,
            test_acc=test_acc,
            trial_sim_seconds=training.seconds,
            wall_seconds=training.wall,
            params=params,
            flops=flops,
            latency_ms=latency,
            hparams=space.hyperparameters(arch),
        )
        yield result, training


def restore_state() -> dict | None:
    """The state saved with this trial's latest Tune checkpoint (None for a fresh trial)."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location="cpu", weights_only=False)


def write_checkpoint(folder: str, state: dict) -> None:
    """The checkpoint's file: `state` saved into `folder`."""
    torch.save(state, os.path.join(folder, CHECKPOINT_FILE))


def report_with_state(result: dict, state: dict) -> None:
    """Report one schema result to Tune together with a checkpoint holding `state`."""
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        write_checkpoint(folder, state)
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))


def train_trainable(config: dict, setup: TrainSetup) -> None:
    """The Ray Tune function trainable: trains, reporting each epoch with a checkpoint."""
    from ray import tune

    from autohas.trainables.gpu_memory import out_of_memory_explained

    trial_id = tune.get_context().get_trial_id()
    with out_of_memory_explained():
        for result, training in train_results(setup, config, trial_id, state=restore_state()):
            report_with_state(result, training.state())
