"""Searcher registry: `create(name, space, seed)` builds a Ray Tune Searcher by name."""
from __future__ import annotations

from typing import Any

from autohas.errors import AutohasError
from autohas.spaces import Space

# name -> (module, class); imported on use so that `--help` and bad input stay fast.
_REGISTRY = {
    "random": ("searchers.random_search", "RandomSearch"),
    "rea": ("searchers.rea", "RegularizedEvolution"),
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
