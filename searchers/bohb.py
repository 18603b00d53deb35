"""BOHB = Ray Tune's TuneBOHB (hpbandster + ConfigSpace) with the HyperBandForBOHB scheduler.

hpbandster's BOHB draws its random numbers from numpy's global generator (`np.random.rand`,
`np.random.randint`, ... in its config generator's module), so Tune's `TuneBOHB(seed=...)` alone
is not reproducible. `SeededBOHB` gives every call into hpbandster a numpy RandomState of its own
in place of the global one, as the `np.random` that module sees during the call (nothing is
copied: swapping the global generator's state in and out cost ~0.3 ms a call), so a seed always
gives the same trials, whatever else in the process uses numpy. ConfigSpace samples with its own
seeded RandomState; statsmodels' KDE (normal-reference bandwidths) draws nothing.

Defaults are the NATS-Bench settings: budgets in epochs of the 12-epoch schedule,
eta = 3, num_samples 4, random_fraction 0, bandwidth_factor 3, min_bandwidth 0.3.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import warnings

import numpy as np
from ray.tune.schedulers import HyperBandForBOHB
from ray.tune.schedulers.hyperband import _Bracket
from ray.tune.search.bohb import TuneBOHB
from ray.tune.search.bohb.bohb_search import _BOHBJobWrapper

from autohas.schema import METRIC, MODE
from autohas.spaces import Space

NATS_BOHB = {"num_samples": 4, "random_fraction": 0.0, "bandwidth_factor": 3, "min_bandwidth": 0.3}
ETA = 3


class _NumpyWithRandom:
    """numpy, with `random` replaced by one RandomState."""

    def __init__(self, random_state: np.random.RandomState):
        self.random = random_state

    def __getattr__(self, name: str):
        return getattr(np, name)


class SeededBOHB(TuneBOHB):
    def __init__(self, space: Space, seed: int, **bohb_config):
        self.own_random_state = np.random.RandomState(seed)
        config_space = TuneBOHB.convert_search_space(space.param_space())
        super().__init__(space=config_space, bohb_config={**NATS_BOHB, **bohb_config}, metric=METRIC, mode=MODE, seed=seed)
        # hpbandster logs every model fit at INFO; keep the CLI quiet.
        self.bohber.logger.setLevel(logging.WARNING)

    @contextlib.contextmanager
    def _own_numpy_random(self):
        """hpbandster's config generator module sees `np.random` = this searcher's RandomState."""
        module = sys.modules[type(self.bohber).__module__]
        outside, module.np = module.np, _NumpyWithRandom(self.own_random_state)
        try:
            with warnings.catch_warnings():
                # statsmodels' KDE (inside hpbandster) warns about numpy's legacy global RNG
                warnings.simplefilter("ignore", FutureWarning)
                yield
        finally:
            module.np = outside

    def suggest(self, trial_id: str):
        with self._own_numpy_random():
            return super().suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        with self._own_numpy_random():
            super().on_trial_result(trial_id, result)
        if "budget" in result.get("hyperband_info", {}):
            self._budgets_told()[trial_id] = result["hyperband_info"]["budget"]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell hpbandster the trial's last result, unless it saw it already, then forget the trial.

        Tune (and the simulator, which copies it) skips `on_trial_result` for a result the scheduler
        answers with STOP, which HyperBandForBOHB does at a bracket's last rung and to a trial culled
        at its rung; TuneBOHB's own `on_trial_complete` drops that result, so hpbandster never saw a
        full-budget evaluation (on the one-fidelity CSV table: no result at all, BOHB was random
        search). hpbandster driven directly, as the NATS-Bench script does, registers every budget.
        The budget is the result's epoch (Tune hands over the result without the scheduler's
        `hyperband_info`); at a rung they are equal."""
        if trial_id not in self.trial_to_params:  # TuneBOHB fails on a trial it already forgot
            return
        told = self._budgets_told().pop(trial_id, None)
        if result is not None and not error and METRIC in result and result.get("epoch") not in (None, told):
            job = _BOHBJobWrapper(self._metric_op * result[METRIC], result["epoch"], self.trial_to_params[trial_id])
            with self._own_numpy_random():
                self.bohber.new_result(job)
        super().on_trial_complete(trial_id, result, error)

    def _budgets_told(self) -> dict:
        """trial id -> the budget of the last result hpbandster saw from it (kept in the saved state)."""
        if not hasattr(self, "budgets_told"):  # a state saved before this existed
            self.budgets_told = {}
        return self.budgets_told


class _FullScheduleBracket(_Bracket):
    """A HyperBand bracket whose rungs are max_t / eta^k epochs (rounded), so its last rung is the whole
    schedule. Ray multiplies its truncated first rung instead: max_t 12 and eta 3 give 1, 3, 9, and
    the best trials of the largest bracket would stop at 9 of the 12 epochs."""

    def successive_halving(self, metric: str, metric_op: float):
        kept = super().successive_halving(metric, metric_op)
        self._r = self._cumul_r = max(1, round(self._max_t_attr / self._eta**self._halves))
        return kept


class FullScheduleHyperBandForBOHB(HyperBandForBOHB):
    """HyperBandForBOHB with rungs 12/9 -> 1, 12/3 = 4, 12 (hpbandster's budgets max_budget * eta^-k)."""

    def _create_bracket(self, s: int) -> _FullScheduleBracket:
        # Ray 2.60's private bracket API (the version pyproject pins)
        return _FullScheduleBracket(
            time_attr=self._time_attr, max_trials=self._get_n0(s), init_t_attr=self._get_r0(s),
            max_t_attr=self._max_t_attr, eta=self._eta, s=s, stop_last_trials=self._stop_last_trials,
        )


def rung_epochs(max_epochs: int, min_epochs: int = 1) -> list[int]:
    """hpbandster's budgets max * eta^-k down to min_epochs, as whole epochs (12: 1, 4, 12), ascending."""
    rungs, k = [], 0
    while max_epochs / ETA**k >= min_epochs or not rungs:
        rungs.append(max(1, round(max_epochs / ETA**k)))
        k += 1
    return sorted(set(rungs))


def bohb_scheduler(max_epochs: int, min_epochs: int = 1) -> HyperBandForBOHB:
    """HyperBand brackets over the benchmark's epochs min_epochs..max_epochs, each ending at max_epochs.

    A benchmark with a single fidelity up to the budget (the CSV table: 12 epochs
    only) gets one bracket of one trial at that fidelity, so that BOHB's model sees
    each evaluation at the budget it really had, rather than at rungs no trial can stop at.
    """
    eta = ETA if min_epochs < max_epochs else max_epochs**2 + 1  # the latter: log_eta(max) < 1/2, one bracket
    return FullScheduleHyperBandForBOHB(time_attr="epoch", max_t=max_epochs, reduction_factor=eta, stop_last_trials=True)
