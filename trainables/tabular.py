"""Tabular trainable: "trains" one architecture by looking its numbers up in a benchmark.

It reports the benchmark's search signal at the epochs where an evaluation of the
official protocol ends (`evaluations`: the budget; for BOHB also its lower rungs), and
never sleeps. Each evaluation is charged from scratch, as the official scripts'
`simulate_train_eval(arch, iepoch=budget - 1)` is: a trial resumed after a pause (a BOHB
promotion from 4 to 12 epochs) pays the 12-epoch time again, on top of what it paid
before; `trial_sim_seconds` is the trial's total so far. A checkpoint after each result
(epoch and amount paid) lets a paused or interrupted trial resume exactly.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np
from ray import tune

from autohas import schema
from autohas.bench import Benchmark, Cost, open_benchmark, resolve_benchmark_path
from autohas.latency import latencies
from autohas.spaces import Space

SEED_MODES = ("sample", "mean")


@dataclass(frozen=True)
class TabularSetup:
    """Everything a tabular trial needs besides the architecture (passed via with_parameters)."""

    benchmark: str  # resolved path of the CSV table or official folder
    space: str
    dataset: str
    budget: int  # epochs of the search schedule to report up to
    seed: int  # the run's seed
    algo: str
    seed_mode: str = "sample"  # "sample": one benchmark run per (seed, arch); "mean": average of runs
    checkpoint: bool = True
    evaluations: tuple[int, ...] | None = None  # epochs where an evaluation ends; None: the budget's alone
    latency_table: str | None = None  # hardware-aware search: results carry latency_ms on `device` from this table
    device: str | None = None

    def report_epochs(self, bench) -> list[int]:
        """The epochs this trial reports: where its evaluations end, up to the budget."""
        epochs = bench.epochs_up_to(self.budget)
        ends = set(self.evaluations) if self.evaluations is not None else {epochs[-1]}
        return [e for e in epochs if e in ends]


def benchmark_seed(run_seed: int, arch_index: int) -> int:
    """Which of the benchmark's training runs an evaluation reads: random, yet fixed per run seed."""
    return int(np.random.default_rng([run_seed, arch_index]).integers(2**31))


def _restored() -> tuple[int, float]:
    """(epoch, simulated seconds paid) of the trial's last checkpoint; (0, 0) for a fresh trial."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0, 0.0
    with checkpoint.as_directory() as folder:
        with open(os.path.join(folder, "state.json")) as handle:
            state = json.load(handle)
    return int(state["epoch"]), float(state.get("paid", 0.0))


@lru_cache(maxsize=1 << 16)
def _arch_of(space: Space, choices: tuple, kinds: tuple) -> str:
    """The architecture of the decisions' `choices` (`kinds`, their types, keep 8 and 8.0 apart)."""
    return space.config_to_arch({d.name: choice for d, choice in zip(space.decisions, choices)})


def config_arch(space: Space, config: dict) -> str:
    """`space.config_to_arch(config)`, remembered per process by the decisions' values and types."""
    try:
        choices = tuple([config[d.name] for d in space.decisions])
        return _arch_of(space, choices, tuple(map(type, choices)))
    except (KeyError, TypeError):  # a missing decision, an unhashable value: as config_to_arch says
        return space.config_to_arch(config)


@lru_cache(maxsize=1 << 16)
def _candidate(bench: Benchmark, dataset: str, arch: str) -> tuple[int, float, Cost]:
    """(official index, reported accuracy, cost) of an architecture: the same for every evaluation of it,
    looked up once per process (a search asks for the same architectures again and again)."""
    return bench.space.arch_to_index(arch), bench.test_acc(arch, dataset), bench.cost(arch, dataset)


def tabular_results(setup: TabularSetup, config: dict, trial_id: str, done: int = 0, paid: float = 0.0,
                    bench: Benchmark | None = None) -> Iterator[dict]:
    """The schema results of one trial after epoch `done`, having paid `paid` simulated seconds so far.

    The results after `done` are one new evaluation, charged from scratch on top of `paid`.
    Shared by the Ray trainable and the simulated-clock driver, so both report exactly the
    same numbers. `bench`: the benchmark `setup` names, when the caller has it open.
    """
    start = time.perf_counter()
    if bench is None:
        bench = open_benchmark(setup.benchmark, setup.space)
    arch = config_arch(bench.space, config)
    index, test_acc, cost = _candidate(bench, setup.dataset, arch)
    # which of the benchmark's runs this evaluation reads (only where it has several)
    seed = None if setup.seed_mode == "mean" or not bench.seeded else benchmark_seed(setup.seed, index)
    latency = None if setup.latency_table is None else latencies(setup.latency_table, setup.device, bench.space.name)[index]
    for epoch in setup.report_epochs(bench):
        if epoch <= done:
            continue
        evaluation = bench.evaluate(arch, setup.dataset, epoch, seed)
        yield schema.epoch_result(
            setup,
            trial_id,
            arch,
            index,
            epoch,
            valid_acc=evaluation.valid_acc,
            test_acc=test_acc,
            trial_sim_seconds=paid + evaluation.sim_seconds,
            wall_seconds=time.perf_counter() - start,
            params=cost.params,
            flops=cost.flops,
            latency_ms=latency,
        )


def trainable_for(benchmark: str, dataset: str = "cifar10", space: str = "nats-tss", budget: int | None = None,
                  seed: int = 0, seed_mode: str = "sample", label: str = "tune") -> Callable[[dict], None]:
    """The tabular trainable for a user's own `tune.Tuner`: it scores a config of `space` (its decision
    names, as `Space.param_space()` or an autohas searcher gives them) on `benchmark` (a NATS-Bench CSV
    table or official folder) for `dataset`, and reports autohas's schema result (`valid_acc` the search
    signal, `test_acc`, `arch`, `trial_sim_seconds`, ...) once, after `budget` epochs (the benchmark's
    default, 12 for NATS-Bench). `seed` picks which of the benchmark's runs each architecture reads
    (`seed_mode="mean"`: their average); `label` is the `algo` its results carry. Bad arguments fail here,
    in one line, not in a trial."""
    from autohas.errors import AutohasError
    from autohas.spaces import get_space

    if seed_mode not in SEED_MODES:
        raise AutohasError(f"seed_mode must be one of {', '.join(SEED_MODES)}, not {seed_mode!r}")
    the_space = get_space(space)
    if not the_space.tabular:
        raise AutohasError(f"{the_space.name} has no tabular benchmark (its hyperparameters change the numbers)")
    bench = open_benchmark(benchmark, the_space.name)
    bench.check_dataset(dataset)
    bench.check_complete()
    budget = budget or bench.default_budget
    bench.epochs_up_to(budget)  # a budget below the first fidelity, or one reaching a test accuracy: refused
    setup = TabularSetup(benchmark=resolve_benchmark_path(benchmark, the_space.name), space=the_space.name, dataset=dataset,
                         budget=budget, seed=seed, algo=label, seed_mode=seed_mode)
    return tune.with_parameters(tabular_trainable, setup=setup)


def tabular_trainable(config: dict, setup: TabularSetup) -> None:
    """The Ray Tune function trainable: reports each result, with a checkpoint of its epoch."""
    trial_id = tune.get_context().get_trial_id()
    done, paid = _restored()
    for result in tabular_results(setup, config, trial_id, done=done, paid=paid):
        if setup.checkpoint:
            with tempfile.TemporaryDirectory() as folder:
                with open(os.path.join(folder, "state.json"), "w") as handle:
                    json.dump({"epoch": result["epoch"], "paid": result["trial_sim_seconds"]}, handle)
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(result)
