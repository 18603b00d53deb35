"""Base class of autohas's own Tune searchers: they propose architectures of a Space.

Subclasses implement `propose()` (an official architecture string, or None for "not
now") and optionally `observe(arch, score)`. The base class turns them into Tune's
Searcher protocol, keeps them deterministic for a seed (one numpy Generator), and
saves/restores their state so that `Tuner.restore` continues a search exactly.
"""
from __future__ import annotations

import pickle
from abc import abstractmethod

import numpy as np
from ray.tune.search import Searcher

from autohas.schema import METRIC, MODE
from autohas.spaces import Space, get_space


class SpaceSearcher(Searcher):
    def __init__(self, space: Space, seed: int, metric: str = METRIC, mode: str = MODE):
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.pending: dict[str, str] = {}  # trial id -> architecture proposed for it

    # -- what subclasses write -------------------------------------------------------------
    @abstractmethod
    def propose(self) -> str | None:
        """The next architecture to evaluate, or None if nothing can be proposed now."""

    def observe(self, arch: str, score: float) -> None:
        """A finished evaluation (`score` is larger-is-better whatever the mode)."""

    # -- Tune's protocol -------------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def suggest(self, trial_id: str) -> dict | None:
        arch = self.propose()
        if arch is None:
            return None
        self.pending[trial_id] = arch
        return self.space.arch_to_config(arch)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        arch = self.pending.pop(trial_id, None)
        if arch is None or error or not result or result.get(self.metric) is None:
            return
        score = float(result[self.metric])
        self.observe(arch, score if self.mode == "max" else -score)

    # -- state -----------------------------------------------------------------------------
    def get_state(self) -> dict:
        state = dict(self.__dict__)
        state["space"] = self.space.name  # the space object is rebuilt, not pickled
        return state

    def set_state(self, state: dict) -> None:
        state = dict(state)
        state["space"] = get_space(state["space"])
        self.__dict__.update(state)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.get_state(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.set_state(pickle.load(handle))
