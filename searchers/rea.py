"""Regularized (aging) evolution, REA (Real et al. 2019), with the NATS-Bench settings.

The first `population_size` proposals are random. After that each child is a
mutation (one decision changed to a different value) of the best of
`sample_size` members drawn with replacement from the population; every finished
child joins the population and the oldest member leaves it.

`ParetoRegularizedEvolution` is the multi-objective variant (--objectives accuracy,latency): the
same population, aging, tournament size and mutation, but each member keeps its latency (the
result's latency_ms) beside its score, and the tournament's winner is the drawn member with the
best non-dominated rank within the current population (NSGA-II's sorting: higher score, lower
latency), ties broken by the larger crowding distance within its front, then by the order drawn.
With one objective `RegularizedEvolution` is the reference's, unchanged.

Under a latency limit (searchers/feasible.py) an infeasible proposal is drawn again and never joins the
population: a random one in the first population, a mutation of a new tournament's winner after. REA
then is the reference's restricted to the feasible architectures (rejection sampling of its draws);
told as a member of score 0, an infeasible child would take one of the ten places, and about every
second one does on pixel3 at 10 ms.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from autohas.errors import AutohasError
from autohas.pareto import crowding_distance, non_dominated_sort
from autohas.schema import INFEASIBLE, LATENCY
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
            parent = self.tournament(drawn)
            arch = self.space.mutate(parent[0], self.rng)
        self.num_proposed += 1
        return arch

    def rejected(self, trial_id: str, result: dict | None) -> bool:
        """Whether `result` is the constrained search's rejection of the trial's proposal; then the proposal
        is forgotten and does not count, so that it is drawn again (see the module's docstring)."""
        if not result or not result.get(INFEASIBLE):
            return False
        if self.pending.pop(trial_id, None) is not None:
            self.num_proposed -= 1
        return True

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if not self.rejected(trial_id, result):
            super().on_trial_complete(trial_id, result, error=error)

    def observe(self, arch: str, score: float) -> None:
        self.observe_member((arch, score))

    def observe_member(self, member: tuple) -> None:
        """A finished child joins the population; the oldest member leaves it."""
        self.population.append(member)
        if len(self.population) > self.population_size:
            self.population.popleft()

    def tournament(self, drawn: np.ndarray) -> tuple:
        """The drawn member with the best score (the first of equals)."""
        return max((self.population[i] for i in drawn), key=lambda member: member[1])


class ParetoRegularizedEvolution(RegularizedEvolution):
    """REA for two objectives: the search signal (maximised) and each result's latency_ms (minimised)."""

    def __init__(self, space: Space, seed: int, population_size: int = 10, sample_size: int = 3, **kwargs):
        super().__init__(space, seed, population_size, sample_size, **kwargs)
        self.population: deque[tuple[str, float, float]] = deque()  # (arch, score, latency ms), oldest first

    def rank_and_crowding(self) -> tuple[np.ndarray, np.ndarray]:
        """Per member of the current population: its non-dominated rank and crowding distance."""
        points = np.array([[score, latency] for _, score, latency in self.population], dtype=float)
        ranks = non_dominated_sort(points, (True, False))
        return ranks, crowding_distance(points, ranks)

    def tournament(self, drawn: np.ndarray) -> tuple:
        """The drawn member of lowest rank, then largest crowding distance (the first drawn of equals)."""
        ranks, crowding = self.rank_and_crowding()
        best = min(drawn, key=lambda i: (ranks[i], -crowding[i]))  # min keeps the first of equals
        return self.population[best]

    def observe_result(self, arch: str, score: float, result: dict) -> None:
        latency = result.get(LATENCY)
        if latency is None or not math.isfinite(float(latency)):
            raise AutohasError(f"rea with two objectives needs each result's {LATENCY} (give --latency-table and --device, "
                               "or --device local-cpu / local-gpu in train mode)")
        self.observe_member((arch, score, float(latency)))
