"""Searcher registry: `create(name, space, seed)` builds a Ray Tune Searcher by name."""
from __future__ import annotations

from typing import Any

from autohas.errors import AutohasError
from autohas.spaces import Space

# name -> (module, class); imported on use so that `--help` and bad input stay fast.
_REGISTRY = {
    "random": ("autohas.searchers.random_search", "RandomSearch"),
    "rea": ("autohas.searchers.rea", "RegularizedEvolution"),
    "reinforce": ("autohas.searchers.reinforce", "Reinforce"),
    "gp": ("autohas.searchers.gp_bandit", "GaussianProcessBandit"),
    "bohb": ("autohas.searchers.bohb", "SeededBOHB"),
}
ALGORITHMS: tuple[str, ...] = tuple(_REGISTRY)


def check_algorithm(name: str) -> None:
    if name not in _REGISTRY:
        raise AutohasError(f"unknown algorithm {name!r}; choose from: {', '.join(ALGORITHMS)}")


def create(name: str, space: Space, seed: int, **options: Any):
    """A fresh, seeded searcher `name` over `space`."""
    check_algorithm(name)
    import importlib

    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)(space, seed, **options)


def pauses_trials(name: str) -> bool:
    """Whether the algorithm's scheduler pauses and resumes trials (HyperBand for BOHB)."""
    check_algorithm(name)
    return name == "bohb"


def evaluation_ends(name: str, epochs: list[int]) -> tuple[int, ...]:
    """The epochs (of the benchmark's `epochs`) at which an evaluation of the official protocol ends:
    BOHB's rungs (hpbandster's budgets, 1, 4 and 12 of 12 epochs), the last epoch for the others."""
    if pauses_trials(name):
        from autohas.searchers.bohb import rung_epochs

        return tuple(e for e in rung_epochs(max(epochs), min(epochs)) if e in epochs)
    return (max(epochs),)


def scheduler_for(name: str, epochs: list[int]):
    """The Tune trial scheduler an algorithm needs over the benchmark's `epochs` (None: FIFO)."""
    if pauses_trials(name):
        from autohas.searchers.bohb import bohb_scheduler

        return bohb_scheduler(max(epochs), min(epochs))
    return None
