"""Random search: every architecture uniformly at random (the NATS-Bench RANDOM baseline)."""
from __future__ import annotations

from autohas.searchers.base import SpaceSearcher


class RandomSearch(SpaceSearcher):
    def propose(self) -> str:
        return self.space.sample(self.rng)
