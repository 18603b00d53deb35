"""Regularized (aging) evolution, REA (Real et al. 2019), with the NATS-Bench settings.

The first `population_size` proposals are random. After that each child is a
mutation (one decision changed to a different value) of the best of
`sample_size` members drawn with replacement from the population; every finished
child joins the population and the oldest member leaves it.
"""
from __future__ import annotations

from collections import deque

from autohas.spaces import Space
from autohas.searchers.base import SpaceSearcher


class RegularizedEvolution(SpaceSearcher):
    def __init__(self, space: Space, seed: int, population_size: int = 10, sample_size: int = 3, **kwargs):
        super().__init__(space, seed, **kwargs)
        if population_size < 1 or sample_size < 1:
            raise ValueError("population_size and sample_size must be positive")
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque[tuple[str, float]] = deque()  # (arch, score), oldest first
        self.num_proposed = 0

    def propose(self) -> str:
        if self.num_proposed < self.population_size or not self.population:
            arch = self.space.sample(self.rng)
        else:
            drawn = self.rng.integers(len(self.population), size=self.sample_size)
            parent = max((self.population[i] for i in drawn), key=lambda member: member[1])
            arch = self.space.mutate(parent[0], self.rng)
        self.num_proposed += 1
        return arch

    def observe(self, arch: str, score: float) -> None:
        self.population.append((arch, score))
        if len(self.population) > self.population_size:
            self.population.popleft()
