"""A search space as pure data: named decisions, each with a finite list of choices.

Searchers and trainables depend on this class only, never on each other: a searcher
proposes architectures (official strings), a trainable turns a Tune config back into one.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from autohas.errors import AutohasError

Genotype = tuple  # one chosen value per decision, in decision order


@dataclass(frozen=True)
class Decision:
    """One categorical decision of a space (an edge's operation, a layer's width)."""

    name: str
    choices: tuple


class Space(ABC):
    """Base class: subclasses define the decisions and the official string/index maps.

    A user's own space subclasses this and is registered with `autohas.spaces.register_space`:
    every searcher proposes, saves and restores it through the registry.
    """

    name: str = ""
    has_index: bool = True
    summary: str = ""  # a few words for --help, after the name
    tabular: bool = True  # a tabular benchmark of `architecture_space` can score its candidates
    hyperparameter_names: tuple[str, ...] = ()  # the training hyperparameters its candidates set (Recipe fields)

    @property
    def architecture_space(self) -> str:
        """The space whose networks and benchmarks a candidate's architecture belongs to (itself, or
        e.g. nats-tss for `has`, whose candidates are nats-tss cells plus training hyperparameters)."""
        return self.name

    def architecture(self, arch: str) -> str:
        """The network part of a candidate: an architecture of `architecture_space`."""
        return arch

    def hyperparameters(self, arch: str) -> dict[str, float]:
        """The training hyperparameters a candidate sets ({} for pure architecture spaces)."""
        return {}

    def __init__(self, decisions: Sequence[Decision]):
        self.decisions: tuple[Decision, ...] = tuple(decisions)

    # -- size and Tune ------------------------------------------------------------------
    @property
    def size(self) -> int:
        return math.prod(len(d.choices) for d in self.decisions)

    def param_space(self) -> dict[str, Any]:
        """The space as a Tune param space (one `tune.choice` per decision)."""
        from ray import tune

        return {d.name: tune.choice(list(d.choices)) for d in self.decisions}

    # -- conversions ----------------------------------------------------------------------
    def config_to_arch(self, config: dict) -> str:
        """A Tune config (decision name -> choice) to the official architecture string."""
        try:
            genotype = tuple(_plain(config[d.name]) for d in self.decisions)
        except KeyError as exc:
            raise AutohasError(f"config for {self.name} lacks decision {exc.args[0]!r}") from None
        self._check(genotype)
        return self.encode(genotype)

    def arch_to_config(self, arch: str) -> dict:
        return {d.name: v for d, v in zip(self.decisions, self.decode(arch))}

    @abstractmethod
    def arch_to_index(self, arch: str) -> int:
        """The official benchmark index of an architecture string."""

    @abstractmethod
    def index_to_arch(self, index: int) -> str:
        """The architecture string at an official index."""

    @abstractmethod
    def encode(self, genotype: Genotype) -> str:
        """A genotype to the official string (validated)."""

    @abstractmethod
    def decode(self, arch: str) -> Genotype:
        """An official string to its genotype; a clear error if malformed."""

    def _check(self, genotype: Genotype) -> None:
        if len(genotype) != len(self.decisions):
            raise AutohasError(f"{self.name} expects {len(self.decisions)} decisions, got {len(genotype)}")
        for d, v in zip(self.decisions, genotype):
            if v not in d.choices:
                raise AutohasError(f"{self.name}: {v!r} is not a choice of {d.name} {list(d.choices)}")

    def neighbours(self, arch: str) -> list[str]:
        """Every candidate that differs from `arch` in exactly one decision, in decision then choice
        order (the GP bandit's candidate pool, local search)."""
        genotype = self.decode(arch)
        found = []
        for position, decision in enumerate(self.decisions):
            for choice in decision.choices:
                if choice != genotype[position]:
                    found.append(self.encode(genotype[:position] + (choice,) + genotype[position + 1 :]))
        return found

    # -- sampling -------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        """A uniformly random architecture."""
        return self.encode(tuple(d.choices[int(rng.integers(len(d.choices)))] for d in self.decisions))

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """Change exactly one decision, chosen uniformly, to a different value (the NATS spaces
        mutate as the reference's REA does: see theirs). The one place REA's mutation lives."""
        genotype = list(self.decode(arch))
        i = int(rng.integers(len(self.decisions)))
        others = [c for c in self.decisions[i].choices if c != genotype[i]]
        genotype[i] = others[int(rng.integers(len(others)))]
        return self.encode(tuple(genotype))


def _plain(value: Any) -> Any:
    """Tune searchers may hand back numpy scalars (`np.int64`, `np.str_`): cast them."""
    if isinstance(value, np.generic):
        return value.item()
    return value
