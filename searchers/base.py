"""Base class of autohas's own Tune searchers: they propose architectures of a Space.

Subclasses implement `propose()` (an official architecture string, or None for "not
now") and optionally `observe(arch, score)`. The base class turns them into Tune's
Searcher protocol, keeps them deterministic for a seed (one numpy Generator), and
saves/restores their state so that `Tuner.restore` continues a search exactly.
"""
from __future__ import annotations

import pickle
from abc import abstractmethod
from typing import Any, Iterable

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.sample import Categorical, Domain

from autohas.errors import AutohasError
from autohas.schema import METRIC, MODE
from autohas.spaces import Space, get_space


def _searches(value: Any) -> bool:
    """Whether a param_space value is (or holds) something Tune would have to search: a sampling
    domain or a grid search; a constant reaches the trainable as it is."""
    if isinstance(value, Domain):
        return True
    if isinstance(value, dict):
        return "grid_search" in value or any(_searches(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_searches(v) for v in value)
    return False


def check_param_space(space: Space, config: dict | None, searcher_keys: Iterable[str] = ()) -> None:
    """Refuse, in one line, a Tune param_space that a searcher of `space` cannot honour: a key it does
    not own that Tune would have to search (Tune merges the searcher's suggestion into the param_space,
    so such a key would reach the trainable as an unresolved Domain object), a decision given as
    anything but its own `tune.choice` (the searcher would silently override it), or a key the searcher
    sets itself (`searcher_keys`). Constants under other keys pass through to the trainable."""
    decisions = {d.name: d for d in space.decisions}
    unresolved, overridden = [], []
    for key, value in (config or {}).items():
        decision = decisions.get(key)
        if decision is not None:
            same = isinstance(value, Categorical) and sorted(map(repr, value.categories)) == sorted(map(repr, decision.choices))
            if not same:
                overridden.append(key)
        elif key in searcher_keys:
            overridden.append(key)
        elif _searches(value):
            unresolved.append(key)
    problems = []
    if unresolved:
        problems.append(f"it does not search {', '.join(map(repr, unresolved))} (Tune would hand the trainable the "
                        "unresolved domain): fix them to constants or search them with a Tune searcher of your own")
    if overridden:
        problems.append(f"it sets {', '.join(map(repr, overridden))} itself: leave them out (or give the space's own "
                        "param_space())")
    if problems:
        raise AutohasError(f"param_space for a searcher of {space.name}: " + "; ".join(problems))


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

    def observe_result(self, arch: str, score: float, result: dict) -> None:
        """A finished evaluation with the whole result, for a searcher that reads more than the signal
        (rea's multi-objective form reads latency_ms); by default `observe`."""
        self.observe(arch, score)

    # -- Tune's protocol -------------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        """Tune's metric and mode, and its param_space (only the space's own decisions may be searched)."""
        check_param_space(self.space, config)
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
        self.observe_result(arch, score if self.mode == "max" else -score, result)

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
