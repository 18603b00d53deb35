"""A searcher around another searcher, as Tune saves and restores it.

Tune's SearchGenerator saves a wrapper by its `searcher` attribute: the wrapper pickles its own
state (everything but the inner searcher) and the inner searcher saves itself beside it. The
experiment's limits (limits.py) and constrained search (feasible.py) are such wrappers.
"""
from __future__ import annotations

import pickle

from ray.tune.search import Searcher


class WrappingSearcher(Searcher):
    """`searcher` inside: its metric and mode, Tune's search properties passed on, state saved in two parts."""

    def __init__(self, searcher: Searcher):
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher  # the name Tune's SearchGenerator saves wrappers by

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def get_state(self) -> dict:
        """This wrapper's own state (the inner searcher is saved separately)."""
        return {k: v for k, v in self.__dict__.items() if k != "searcher"}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.get_state(), handle)
        self.searcher.save(checkpoint_path + ".inner")

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.set_state(pickle.load(handle))
        self.searcher.restore(checkpoint_path + ".inner")
