"""Ray Tune's own search algorithms, behind autohas's registry: `tpe` = Tune's `OptunaSearch` with
optuna's `TPESampler`; `nsga2` = the same with optuna's `NSGAIISampler`.

Under two objectives (--objectives accuracy,latency) the OptunaSearch gets metric
[valid_acc, latency_ms] and mode [max, min]: optuna's study has two directions, NSGA-II sorts by
non-dominated rank and crowding distance, and TPE is optuna's multi-objective TPE. That metric is the
searcher's own: Tune's single metric (TuneConfig's, for its own bookkeeping) does not replace it.

The Tune searcher is built by Tune (`ray.tune.search.create_searcher`) over the space's Tune
`param_space`, and wrapped so that it behaves as autohas's own searchers do in both modes:
seeded, deterministic, resumable (its state saved and restored whole), and reporting
intermediate results by epoch (the simulated-clock driver has no `training_iteration`, and a
resumed Tune trial counts its iterations anew).
"""
from __future__ import annotations

import logging
import os
import pickle
import tempfile
from typing import Any

from ray.tune.search import Searcher, create_searcher

from autohas.errors import AutohasError
from autohas.schema import LATENCY, METRIC, MODE
from autohas.spaces import Space, get_space

# optuna 5's TPESampler defaults, pinned so that another optuna cannot change them unnoticed: 10
# random starts (as REA's first population and gp's random starts), 24 candidates for the expected
# improvement, multivariate TPE (one joint density over all decisions: a cell's operations interact),
# and the constant liar (trials in flight count as bad ones, so that concurrent trials differ).
TPE_SETTINGS: dict[str, Any] = {"n_startup_trials": 10, "n_ei_candidates": 24, "multivariate": True, "constant_liar": True}
# optuna 5's NSGAIISampler defaults, pinned likewise: a population of 50 per generation, uniform crossover
# with probability 0.9 (each decision swapped with probability 0.5), mutation probability 1 / decisions
NSGA2_SETTINGS: dict[str, Any] = {"population_size": 50, "crossover_prob": 0.9, "swapping_prob": 0.5}


def _objectives_text(objectives: tuple[str, ...]) -> str:
    return "; two objectives: maximise valid_acc, minimise latency_ms" if len(objectives) > 1 else ""


def describe_tpe(settings: dict[str, Any] | None = None, objectives: tuple[str, ...] = ("accuracy",)) -> str:
    """One line on the settings of `tpe`, for the protocol."""
    s = {**TPE_SETTINGS, **(settings or {})}
    return (f"Ray Tune's OptunaSearch with optuna's TPESampler (seeded with the run's seed): {s['n_startup_trials']} random "
            f"starts, {s['n_ei_candidates']} expected-improvement candidates, "
            f"{'multivariate' if s['multivariate'] else 'independent'} TPE"
            f"{', constant liar' if s['constant_liar'] else ''}; every decision categorical" + _objectives_text(objectives))


def describe_nsga2(settings: dict[str, Any] | None = None, objectives: tuple[str, ...] = ("accuracy",)) -> str:
    """One line on the settings of `nsga2`, for the protocol."""
    s = {**NSGA2_SETTINGS, **(settings or {})}
    return (f"Ray Tune's OptunaSearch with optuna's NSGAIISampler (seeded with the run's seed): population {s['population_size']}, "
            f"uniform crossover (probability {s['crossover_prob']:g}, swapping {s['swapping_prob']:g}), mutation probability "
            f"1 / decisions; every decision categorical" + _objectives_text(objectives))


def metric_and_mode(objectives: tuple[str, ...]) -> tuple[Any, Any]:
    """OptunaSearch's metric and mode for `objectives`: one, or [signal, latency_ms] and [max, min]."""
    if len(objectives) == 1:
        return METRIC, MODE
    return [METRIC, LATENCY], [MODE, "min"]


class TuneSearcher(Searcher):
    """A searcher made by Tune's `create_searcher`, with the space already set and autohas's metric and
    mode (`set_search_properties` makes it again for Tune's, before its first trial)."""

    def __init__(self, space: Space, tune_name: str, metric: Any = METRIC, mode: Any = MODE, **tune_kwargs: Any):
        super().__init__(metric=metric, mode=mode)
        self.multi_objective = isinstance(metric, list)  # its own metrics, whatever Tune's single one is
        self.space_name = space.name
        self.tune_name = tune_name
        self.tune_kwargs = tune_kwargs
        self.suggested = 0
        self.inner = self._build(space.param_space())

    def _build(self, param_space: dict) -> Searcher:
        inner = create_searcher(self.tune_name, metric=self._metric, mode=self._mode, **self.tune_kwargs)
        # Tune's own route from a param_space to the searcher's space (what Tuner(param_space=...) does)
        inner.set_search_properties(self._metric, self._mode, param_space)
        return inner

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        """Tune's metric and mode (before the first trial: the study's direction is fixed then), and a
        param_space that searches only the space's own decisions (`check_param_space`)."""
        from autohas.searchers.base import check_param_space

        space = get_space(self.space_name)
        check_param_space(space, config)
        if self.multi_objective:  # Tune's metric is one of them; the searcher keeps both
            return True
        wanted = (metric or self._metric, mode or self._mode)
        if wanted != (self._metric, self._mode):
            if self.suggested:
                raise AutohasError(f"{self.tune_name} searcher: metric and mode are fixed once it has suggested a trial")
            self._metric, self._mode = wanted
            self.inner = self._build(space.param_space())
        return True

    def suggest(self, trial_id: str) -> dict | None:
        config = self.inner.suggest(trial_id)
        if isinstance(config, dict):
            self.suggested += 1
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if "epoch" in result:  # the step of an intermediate value: the epoch, in both modes
            result = {**result, "training_iteration": result["epoch"]}
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, result, error=error)

    def save(self, checkpoint_path: str) -> None:
        """One file (Tune keeps only the file it names): this wrapper's state and the Tune searcher's own save."""
        with tempfile.TemporaryDirectory() as folder:
            inner = os.path.join(folder, "searcher.pkl")
            self.inner.save(inner)
            with open(inner, "rb") as handle:
                saved = handle.read()
        with open(checkpoint_path, "wb") as handle:
            pickle.dump({"own": {k: v for k, v in self.__dict__.items() if k != "inner"}, "inner": saved}, handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            state = pickle.load(handle)
        self.__dict__.update(state["own"])
        with tempfile.TemporaryDirectory() as folder:
            inner = os.path.join(folder, "searcher.pkl")
            with open(inner, "wb") as handle:
                handle.write(state["inner"])
            self.inner.restore(inner)


def tpe(space: Space, seed: int, objectives: tuple[str, ...] = ("accuracy",), **settings: Any) -> TuneSearcher:
    """`tpe`: Tune's OptunaSearch with a TPESampler seeded with `seed` (TPE_SETTINGS, overridden by `settings`);
    with two objectives optuna's multi-objective TPE."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)  # optuna logs every trial at INFO
    sampler = optuna.samplers.TPESampler(seed=seed, **{**TPE_SETTINGS, **settings})
    metric, mode = metric_and_mode(tuple(objectives))
    return TuneSearcher(space, "optuna", metric=metric, mode=mode, sampler=sampler)


def nsga2(space: Space, seed: int, objectives: tuple[str, ...] = ("accuracy",), **settings: Any) -> TuneSearcher:
    """`nsga2`: Tune's OptunaSearch with an NSGAIISampler seeded with `seed` (NSGA2_SETTINGS, overridden by
    `settings`); with one objective a plain genetic algorithm on the search signal."""
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    from autohas.searchers.optuna_samplers import PicklableNSGAIISampler

    sampler = PicklableNSGAIISampler(seed=seed, **{**NSGA2_SETTINGS, **settings})
    metric, mode = metric_and_mode(tuple(objectives))
    return TuneSearcher(space, "optuna", metric=metric, mode=mode, sampler=sampler)
