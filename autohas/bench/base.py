"""The one interface every tabular benchmark offers to trainables and the simulator.

A benchmark answers three questions about an architecture on a dataset: the search
signal after `epoch` epochs of the search schedule and the simulated seconds it took
to get there (`evaluate`), the accuracy to report (`test_acc`, never shown to a
searcher), and its size (`cost`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from autohas.errors import AutohasError
from autohas.spaces import Space

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")


@dataclass(frozen=True)
class Evaluation:
    """The search signal of one architecture after `epoch` epochs.

    `sim_seconds` is the simulated cost of obtaining it: training up to `epoch`
    plus one pass over the validation set (the NATS-Bench `simulate_train_eval` cost).
    """

    epoch: int
    valid_acc: float
    sim_seconds: float


@dataclass(frozen=True)
class Cost:
    params: float | None  # millions
    flops: float | None  # millions of multiply-adds
    latency: float | None  # seconds per batch, as recorded by the benchmark


class Benchmark(ABC):
    """A tabular benchmark over one search space."""

    space: Space
    source: str  # human-readable: which files, which format
    signal: str  # human-readable: what the search signal is
    datasets: tuple[str, ...]
    test_fidelities: tuple[int, ...] = ()  # epochs whose only accuracy is a test accuracy: never a search signal
    seeded: bool = True  # evaluate's `seed` picks one of several training runs (False: one run each, seed unused)

    @property
    @abstractmethod
    def fidelities(self) -> tuple[int, ...]:
        """Epoch counts at which a search signal exists, ascending."""

    @property
    def default_budget(self) -> int:
        """Epochs a search evaluation trains for unless told otherwise (NATS-Bench: 12)."""
        return 12 if 12 in self.fidelities else self.fidelities[-1]

    def epochs_up_to(self, budget: int) -> list[int]:
        """The epochs a trainable with this budget reports (every available fidelity <= budget)."""
        epochs = [e for e in self.fidelities if e <= budget]
        if not epochs:
            raise AutohasError(f"budget {budget} is below the smallest fidelity {self.fidelities[0]} of {self.source}")
        leaking = [e for e in epochs if e in self.test_fidelities]
        if leaking:
            raise AutohasError(
                f"budget {budget} would make the search signal the {leaking[0]}-epoch test accuracy of {self.source}; "
                f"searchers never see test accuracies: use a budget below {leaking[0]}"
            )
        return epochs

    @abstractmethod
    def architectures_present(self) -> int:
        """How many of the space's architectures the benchmark has a record of."""

    def check_complete(self) -> None:
        """A benchmark lacking architectures of its space is refused up front (else the first search
        that asks for a missing one fails mid-experiment), with the count of what is there."""
        present, size = self.architectures_present(), self.space.size
        if present < size:
            raise AutohasError(f"{self.source} holds {present:,} of the {size:,} {self.space.name} architectures: "
                               "a search would ask for missing ones; give a complete benchmark")

    def total_cost(self, dataset: str, epoch: int) -> float | None:
        """Simulated seconds of evaluating every architecture once at `epoch` (None: unknown without
        reading every record): a time budget above it could never run out."""
        return None

    def check_dataset(self, dataset: str) -> None:
        if dataset not in self.datasets:
            raise AutohasError(f"dataset {dataset!r} is not in {self.source}; it has: {', '.join(self.datasets)}")

    @abstractmethod
    def evaluate(self, arch: str, dataset: str, epoch: int, seed: int | None = None) -> Evaluation:
        """Search signal after `epoch` epochs; `seed` picks one of the benchmark's runs
        (by position, modulo their number), None averages them."""

    @abstractmethod
    def test_acc(self, arch: str, dataset: str) -> float:
        """The accuracy to report for `arch` (final epoch of the long schedule, seed mean)."""

    @abstractmethod
    def cost(self, arch: str, dataset: str) -> Cost:
        """Params, FLOPs and latency of `arch`, where the benchmark records them."""
