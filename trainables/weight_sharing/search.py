"""The one weight-sharing search loop, and its Ray Tune trainable.

A search = a supernet, architecture parameters alpha (nats-tss: edges x ops; nats-sss:
layers x widths), a method (how a step updates weights and architecture) and a selection
criterion (how the discrete architecture is derived). Data, optimisers, schedules,
checkpoints and reporting are here, once, for every method.

Every epoch the trainable derives the architecture it would return now and reports it
in the common schema: `valid_acc` is that architecture's accuracy inside the supernet
on the validation split (the method's own signal); `test_acc` is the benchmark's
200-epoch test accuracy of the architecture when a benchmark is given (as NATS-Bench
reports weight-sharing results), else its accuracy inside the supernet on the test split.
`trial_sim_seconds` is the measured search cost (steps, derivation, validation). Without
a benchmark, a method's final architecture can be re-trained from scratch (H0): AutoHAS
and the size-space methods do by default, and the re-trained accuracies are the last results.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterator

import numpy as np
import torch

from autohas import schema
from autohas.trainables.device import cached_splits, prepare_trial
from autohas.trainables.train import report_with_state, restore_state
from autohas.spaces import architecture_space_of
from autohas.trainables.weight_sharing import HAS_METHODS, check_latency_target, retrain_epochs_for
from autohas.trainables.weight_sharing.methods.base import MethodContext
from autohas.trainables.weight_sharing.methods.cost import COST_TOLERANCE, COST_WEIGHT, cost_term, latency_cost
from autohas.trainables.weight_sharing.recipe import SearchRecipe
from autohas.trainables.weight_sharing.registry import METHODS
from autohas.trainables.weight_sharing.selection import SELECTIONS


@dataclass(frozen=True)
class SearchSetup:
    """Everything a weight-sharing trial needs besides its (algo, seed) config."""

    space: str
    dataset: str
    data_dir: str | None
    algo: str
    seed: int
    select: str | None = None  # None: the method's default criterion
    benchmark: str | None = None  # a tabular benchmark to look the derived architecture's test accuracy up in
    recipe: SearchRecipe = field(default_factory=SearchRecipe)
    settings: Any = None  # the method's own Settings (None: its defaults)
    threads: int = 1
    gpu: bool = False
    cache_dir: str | None = None
    latency_table: str | None = None  # hardware-aware search: results carry the derived cell's latency_ms on `device`
    device: str | None = None
    latency_target: float | None = None  # ms: TAS' cost loss toward it on the device's latency (`methods/cost.py`)
    latency_weight: float = COST_WEIGHT  # its lambda (TAS': 2)
    latency_tolerance: float = COST_TOLERANCE  # its t (TAS': 5 %)

    @property
    def selection(self) -> str:
        return self.select or METHODS[self.algo].default_selection

    @property
    def retrain_epochs(self) -> int:
        return retrain_epochs_for(self.algo, self.recipe.retrain_epochs, bool(self.benchmark))

    @property
    def method_settings(self):
        return METHODS[self.algo].Settings() if self.settings is None else self.settings


def method_settings(algo: str, **options):
    """`algo`'s Settings with those of `options` it has (the others belong to other methods)."""
    settings = METHODS[algo].Settings
    return settings(**{name: value for name, value in options.items() if name in settings.names()})


def describe_searches(
    methods: list[str], dataset: str, epochs: int, select: str | None, looked_up: bool, retrain_epochs: int | None = None,
    space: str = "nats-tss", warmup_ratio: float = 0.0, flops_target: float | None = None,
    latency_target: dict | None = None,
) -> str:
    """The protocol of weight-sharing runs, as the report states it."""
    from autohas.trainables.weight_sharing.methods.size import TasSettings

    r, tas = SearchRecipe(), TasSettings()
    selections = ", ".join(f"{m} {select or METHODS[m].default_selection}" for m in methods)
    scored = (
        "the benchmark's 200-epoch test accuracy of the derived architecture"
        if looked_up
        else "the derived architecture's accuracy inside the supernet on the test split (no benchmark given)"
    )
    retrained = [(m, retrain_epochs_for(m, retrain_epochs, looked_up)) for m in methods]
    retrained = [f"{m} {e}" for m, e in retrained if e > 0]
    derived_hparams = " (AutoHAS: with its derived learning-rate schedule and weight decay)" if set(methods) & set(HAS_METHODS) else ""
    retraining = (
        f"; then the final architecture is re-trained from scratch with H0{derived_hparams} for the epochs given "
        f"({', '.join(retrained)}), and the last results are the re-trained network's measured validation and test accuracy"
        if retrained
        else ""
    )
    warmup = f", the first {warmup_ratio:g} of them training the widest network alone" if warmup_ratio > 0 else ""
    if flops_target is not None:
        warmup += f", tas with TAS' cost loss toward {flops_target:g} MFLOPs (lambda {tas.cost_weight:g}, tolerance {tas.cost_tolerance:g})"
    if latency_target is not None:
        t = latency_target
        warmup += (
            f", with a latency target of {t['target_ms']:g} ms on {t['device']} (TAS' cost loss on latency, lambda "
            f"{COST_WEIGHT:g}, tolerance {COST_TOLERANCE:g}, in alpha's update only: E_cost the expected latency of "
            f"softmax(alpha) under the additive per-op model fitted to {t['table']}'s {t['device']} column, R^2 {t['r2']:.3f}; "
            "F_cost the argmax cell's latency in the table)"
        )
    return (
        f"{', '.join(methods)} search a {architecture_space_of(space)} supernet on {dataset} for {epochs} epochs{warmup} (batch {r.batch_size}, "
        f"SGD {r.lr} cosine to {r.lr_min}, BN on batch statistics without affine, alpha by Adam {r.arch_lr}); "
        f"every epoch reports the architecture derived now (selection: {selections}), its accuracy inside the "
        f"supernet on the validation split as the signal; test accuracy: {scored}{retraining}; "
        "clock: measured search (and re-training) seconds"
    )


def check_method(algo: str, select: str | None, space: str | None = None, latency_target: bool = False) -> None:
    """ValueError with a one-line reason when `algo` cannot search `space`, `select` cannot derive its
    architecture, or (`latency_target`) it has no differentiable distribution for a latency target."""
    if algo not in METHODS:
        raise ValueError(f"unknown weight-sharing method {algo!r}; choose from: {', '.join(METHODS)}")
    if space is not None and architecture_space_of(space) != METHODS[algo].space:
        raise ValueError(f"{algo} searches {METHODS[algo].space}, not {space}")
    if latency_target:
        check_latency_target([algo], space or METHODS[algo].space)
    if select is None:
        return
    if select not in SELECTIONS:
        raise ValueError(f"unknown selection {select!r}; choose from: {', '.join(SELECTIONS)}")
    if SELECTIONS[select].needs_alpha and not METHODS[algo].uses_alpha:
        raise ValueError(f"--select {select} needs architecture parameters, which {algo} does not learn (use sampled)")


def cosine_between(high: float, low: float, step: int, total: int) -> float:
    """Cosine annealing from `high` to `low` over `total` steps (or epochs), at `step`."""
    return low + 0.5 * (high - low) * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))


def _subset(split, count: int | None):
    """A fixed random `count` images of `split` (all when None): splits can be stored sorted by class."""
    if count is None or count >= int(split.labels.shape[0]):
        return split
    from autohas.data import Split

    keep = torch.randperm(int(split.labels.shape[0]), generator=torch.Generator().manual_seed(0))[:count]
    return Split(split.images[keep], split.labels[keep])


def _in_context(name: str) -> property:
    """An attribute of the search that is its method context's."""
    return property(lambda self: getattr(self.context, name), lambda self, value: setattr(self.context, name, value))


class SupernetSearch:
    """One search run: supernet, alpha, optimisers, method, selection, data order; save/load per epoch."""

    def __init__(self, setup: SearchSetup, splits=None) -> None:
        from autohas.data import Batches

        check_method(setup.algo, setup.select, setup.space, latency_target=setup.latency_target is not None)
        self.setup, self.recipe = setup, setup.recipe
        seed = setup.seed
        self.device, splits = prepare_trial(setup, seed, splits, load=cached_splits)
        self.spec = splits.spec
        r = self.recipe
        supernet = build_supernet(setup.space, splits.spec.num_classes, r).to(self.device)
        init = torch.randn(supernet.shape, generator=torch.Generator().manual_seed(seed)) * 1e-3
        alpha = torch.nn.Parameter(init.to(self.device))
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        self.context = MethodContext(
            supernet=supernet,
            alpha=alpha,
            w_optimizer=torch.optim.SGD(
                supernet.parameters(), lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay, nesterov=r.nesterov
            ),
            a_optimizer=torch.optim.Adam([alpha], lr=r.arch_lr, betas=r.arch_betas, weight_decay=r.arch_weight_decay, eps=r.arch_eps),
            generator=generator,
            recipe=r,
            spec=splits.spec,
            seed=seed,
            validation_batches=self.controller_batches,
            fixed_validation_images=self.saliency_images,
            normalise=lambda images: self.valid.normalise(images),
            lr=r.lr,
            arch_cost=self.latency_term(),
        )
        bs = r.batch_size
        self.train = Batches(splits.train, splits.spec, bs, self.device, augment=True, shuffle=True, seed=seed, drop_last=True)
        # the architecture's batches: the validation split, augmented like the training split (as NATS-Bench)
        self.arch_batches = Batches(splits.valid, splits.spec, bs, self.device, augment=True, shuffle=True, seed=seed + 1, drop_last=True)
        limit = None if r.eval_batches is None else r.eval_batches * r.eval_batch_size
        self.valid = Batches(_subset(splits.valid, limit), splits.spec, r.eval_batch_size, self.device)
        self.test = Batches(_subset(splits.test, limit), splits.spec, r.eval_batch_size, self.device)
        # shuffled validation batches for candidate selection and ENAS' controller (the reference's valid_loader)
        self.valid_order = Batches(
            _subset(splits.valid, limit), splits.spec, r.eval_batch_size, self.device, shuffle=True, seed=seed + 2
        )
        self.method = METHODS[setup.algo](self.context, setup.method_settings)
        self.selection = SELECTIONS[setup.selection](self)
        self.seconds = 0.0  # search seconds so far (steps, derivation, validation), over all attempts
        self.wall = 0.0
        self.derived: list[int] | None = None  # the architecture derived after the latest epoch

    def latency_term(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """With a latency target: lambda * TAS' L_cost on the device's latency, a function of alpha (else None)."""
        s = self.setup
        if s.latency_target is None:
            return None
        if s.latency_table is None or s.device is None:
            raise ValueError("a latency target needs a latency table and a device")
        return cost_term(latency_cost(s.latency_table, s.device), s.latency_target, s.latency_weight, s.latency_tolerance)

    # what the method shares with the search lives in its context (a method sees only that)
    supernet = _in_context("supernet")
    alpha = _in_context("alpha")
    generator = _in_context("generator")
    w_optimizer = _in_context("w_optimizer")
    a_optimizer = _in_context("a_optimizer")
    epoch = _in_context("epoch")
    lr = _in_context("lr")

    def beta(self) -> torch.Tensor:
        """The mixing weights softmax(alpha) per edge."""
        return self.context.beta()

    @property
    def steps_per_epoch(self) -> int:
        steps = len(self.train)
        return min(steps, self.recipe.steps_per_epoch) if self.recipe.steps_per_epoch else steps

    def set_epoch_lr(self, epoch: int) -> float:
        """Set the weights' learning rate for `epoch` (0-based): the cosine steps per epoch, as the reference's."""
        self.lr = cosine_between(self.recipe.lr, self.recipe.lr_min, epoch, self.recipe.epochs)
        for group in self.w_optimizer.param_groups:
            group["lr"] = self.lr
        return self.lr

    def search_epoch(self) -> float:
        """One epoch of search steps; the mean training loss."""
        self.supernet.train()
        self.method.start_epoch(self.epoch)
        self.selection.start_epoch()
        self.set_epoch_lr(self.epoch)
        arch_batches = iter(self.arch_batches)
        losses = []
        for i, train in enumerate(self.train):
            if i >= self.steps_per_epoch:
                break
            valid = next(arch_batches, None)
            if valid is None:  # the validation split is smaller than the training split: go round again
                arch_batches = iter(self.arch_batches)
                valid = next(arch_batches)
            losses.append(self.method.step(train, valid))
            self.selection.observe(*valid)
        self.epoch += 1
        self.method.end_epoch()
        return float(np.mean(losses)) if losses else float("nan")

    def controller_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled validation batches without end, from a fresh pass (the reference's `iter(valid_loader)`,
        restarted when exhausted)."""
        while True:
            yield from self.valid_order

    def derive(self) -> list[int]:
        """The architecture (op index per edge) the search would return now (networks in evaluation mode)."""
        fixed = self.method.fixed_indices()
        self.supernet.eval()
        self.derived = list(fixed) if fixed is not None else list(self.selection.derive())
        return self.derived

    def saliency_images(self, count: int) -> torch.Tensor:
        """A fixed random `count` validation images (uint8), the same at every epoch and in every run."""
        images = self.valid.images
        keep = torch.randperm(int(images.shape[0]), generator=torch.Generator().manual_seed(1))[:count]
        return images[keep.to(images.device)]

    @torch.no_grad()
    def accuracy(self, batches, indices: list[int]) -> float:
        """Top-1 accuracy (%) of the architecture `indices` inside the supernet (in evaluation mode)."""
        self.supernet.eval()
        correct, count = 0, 0
        for x, y in batches:
            correct += int((self.supernet(x, indices=indices).argmax(dim=1) == y).sum())
            count += int(y.numel())
        return 100.0 * correct / max(1, count)

    def state(self) -> dict:
        return {
            "epoch": self.epoch,
            "seconds": self.seconds,
            "wall": self.wall,
            "supernet": self.supernet.state_dict(),
            "alpha": self.alpha.detach().cpu(),
            "w_optimizer": self.w_optimizer.state_dict(),
            "a_optimizer": self.a_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "method": self.method.state_dict(),
            "train_order": self.train.get_state(),
            "arch_order": self.arch_batches.get_state(),
            "valid_order": self.valid_order.get_state(),
            "derived": self.derived,
        }

    def load(self, state: dict) -> None:
        self.supernet.load_state_dict(state["supernet"])
        with torch.no_grad():
            self.alpha.copy_(state["alpha"].to(self.device))
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.a_optimizer.load_state_dict(state["a_optimizer"])
        self.generator.set_state(state["generator"])
        self.method.load_state_dict(state["method"])
        self.train.set_state(state["train_order"])
        self.arch_batches.set_state(state["arch_order"])
        self.valid_order.set_state(state["valid_order"])
        self.epoch = int(state["epoch"])
        self.seconds = float(state["seconds"])
        self.wall = float(state["wall"])
        self.derived = state.get("derived")


def arch_of(indices: list[int]) -> str:
    """The official nats-tss string of an op index per edge."""
    from autohas.models.supernet import TssSupernet

    return TssSupernet.arch(indices)


def build_supernet(space: str, num_classes: int, recipe: SearchRecipe):
    """The supernet of `space`'s architectures (has: its nats-tss part)."""
    from autohas.models.size_supernet import SssSupernet
    from autohas.models.supernet import TssSupernet

    if architecture_space_of(space) == "nats-sss":
        return SssSupernet(num_classes)
    return TssSupernet(num_classes, recipe.channels, recipe.cells_per_stage)


@lru_cache(maxsize=64)
def _size_of(space: str, arch: str, num_classes: int, image_size: int) -> tuple[float, float]:
    from autohas.models import build_network, count_flops, count_params

    network = build_network(space, arch, num_classes)
    return count_params(network), count_flops(network, (1, 3, image_size, image_size))


def search_results(setup: SearchSetup, trial_id: str, state: dict | None = None) -> Iterator[tuple[dict, dict]]:
    """Search epoch by epoch, then re-train if asked; after each epoch yield (schema result, checkpoint state).

    A search epoch's result is the architecture derived now. A re-training epoch's result
    (epoch = search epochs + re-training epochs) is the derived architecture trained from
    scratch with H0 and the method's derived hyperparameters, its accuracies measured.
    """
    from autohas.spaces import get_space
    from autohas.trainables.gpu_memory import release_device_memory

    space = architecture_space_of(setup.space)
    since = time.perf_counter()
    search = SupernetSearch(setup)
    if state is not None:
        search.load(state)
    bench = None
    if setup.benchmark:
        from autohas.bench import open_benchmark

        bench = open_benchmark(setup.benchmark, architecture_space_of(setup.space))
    table = None
    if setup.latency_table is not None:
        from autohas.latency import latencies

        table = latencies(setup.latency_table, setup.device, space)
    while search.epoch < setup.recipe.epochs:
        began = time.perf_counter()
        search.search_epoch()
        indices = search.derive()
        valid_acc = search.accuracy(search.valid, indices)
        search.seconds += time.perf_counter() - began
        arch = search.supernet.arch(indices)
        test_acc = bench.test_acc(arch, setup.dataset) if bench else search.accuracy(search.test, indices)
        params, flops = _size_of(space, arch, search.spec.num_classes, search.spec.image_size)
        search.wall += time.perf_counter() - since
        since = time.perf_counter()
        index = get_space(space).arch_to_index(arch)
        result = schema.epoch_result(
            setup, trial_id, arch, index, search.epoch,
            valid_acc=valid_acc, test_acc=test_acc, trial_sim_seconds=search.seconds,
            wall_seconds=search.wall, params=params, flops=flops, hparams=search.method.hparams(),
            latency_ms=None if table is None else float(table[index]),
        )
        yield result, search.state()
    if setup.retrain_epochs > 0:
        retrain = None if state is None else state.get("retrain")
        outcome = SearchOutcome.of(search)
        del search, state  # the supernet, its optimisers and data leave the device before re-training
        release_device_memory()
        yield from retrain_results(setup, trial_id, outcome, retrain)


@dataclass(frozen=True)
class SearchOutcome:
    """What re-training needs from a finished search, every tensor on the CPU."""

    arch: str  # the derived architecture
    epoch: int
    seconds: float
    wall: float
    hparams: dict  # the method's derived hyperparameters (schema)
    training_hparams: dict  # what re-training changes in H0
    state: dict  # the search's checkpoint state, saved again with every re-training epoch

    @classmethod
    def of(cls, search: SupernetSearch) -> SearchOutcome:
        if search.derived is None:
            search.derive()
        return cls(
            arch=search.supernet.arch(search.derived), epoch=search.epoch, seconds=search.seconds, wall=search.wall,
            hparams=search.method.hparams(), training_hparams=search.method.training_hparams(),
            state=_on_cpu(search.state()),
        )


def _on_cpu(value):
    """`value` with every tensor in it (nested in dicts, lists and tuples) moved to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_on_cpu(item) for item in value)
    return value


def retrain_results(setup: SearchSetup, trial_id: str, outcome: SearchOutcome, state: dict | None) -> Iterator[tuple[dict, dict]]:
    """Train the search's final architecture from scratch (the train trainable's loop), epoch by epoch.

    The recipe is H0 over `retrain_epochs`, with what the method derived (AutoHAS: its
    learning-rate schedule and weight decay); costs add to the search's.
    """
    from autohas.spaces import get_space
    from autohas.trainables.train import TrainSetup, recipe_for, train_results

    epochs = setup.retrain_epochs
    space = architecture_space_of(setup.space)
    train_setup = TrainSetup(
        space=space, dataset=setup.dataset, data_dir=setup.data_dir, budget=epochs, seed=setup.seed,
        algo=setup.algo, recipe=dataclasses.replace(recipe_for(setup.dataset, epochs), **outcome.training_hparams),
        threads=setup.threads, gpu=setup.gpu, cache_dir=setup.cache_dir,
        latency_table=setup.latency_table, device=setup.device,
    )
    config = get_space(space).arch_to_config(outcome.arch)
    for result, training in train_results(train_setup, config, trial_id, state=state):
        result.update(
            space=setup.space, epoch=outcome.epoch + training.epoch, budget=outcome.epoch + training.epoch,
            trial_sim_seconds=outcome.seconds + result["trial_sim_seconds"],
            wall_seconds=outcome.wall + result["wall_seconds"],
            hparams={**outcome.hparams, "retrain_epochs": training.epoch},
        )
        yield result, {**outcome.state, "retrain": training.state()}


def trial_setup(config: dict, setups: dict[str, SearchSetup]) -> SearchSetup:
    """The setup of one trial (config["run"]: algo and seed): its method's, with its seed."""
    run = config["run"]
    return dataclasses.replace(setups[run["algo"]], seed=int(run["seed"]))


def weight_sharing_trainable(config: dict, setups: dict[str, SearchSetup]) -> None:
    """Ray Tune function trainable: one search (config["run"]: algo and seed), a checkpoint every epoch."""
    from ray import tune

    setup = trial_setup(config, setups)
    from autohas.trainables.gpu_memory import out_of_memory_explained

    trial_id = tune.get_context().get_trial_id()
    with out_of_memory_explained():
        for result, state in search_results(setup, trial_id, state=restore_state()):
            report_with_state(result, state)
