"""Constrained search (issue 21): a searcher whose over-limit proposals are never evaluated.

`FeasibleSearcher` sits between the experiment's limits (`LimitedSearcher`) and the raw searcher,
in both modes. Latency is a table lookup by the architecture's official index, so it is known before
anything is evaluated: a proposal over the limit becomes no trial, no record and no cost. The inner
searcher is told at once that it was infeasible, with the worst valid result (the metric at 0.0, the
worst accuracy, at the evaluation's last epoch), and asked again for the same outer trial, so what
Tune or the simulator sees is a feasible proposal or "not now" / "finished" as the inner searcher says.

Every told rejection goes to the inner searcher under an id of its own (`<trial id>#<n>`): Tune's
OptunaSearch keeps a finished id's study trial, so an id is never reused after its completion. The
accepted proposal's inner id is mapped back for every later call of that trial. How each searcher
learns it: random ignores results; rea draws again and never lets the proposal into its population
(both variants: REA restricted to the feasible set, searchers/rea.py); reinforce's policy gradient sees a
negative advantage; gp adds the point with score 0 to its data (it is never proposed again);
bohb's hpbandster registers a loss of 0 at the full budget (its KDE's "bad" set); tpe's optuna
study is told the value 0 (TPE's "below" set). Under two objectives (--objectives accuracy,latency)
the told result carries the proposal's latency too: nsga2's and tpe's studies are told (0, its
latency), so the front of a constrained search lies within the feasible set.

The latency array is never part of the searcher's state (Tune saves and pickles its wrappers): the
searcher keeps the table's path and device, and `autohas.latency.latencies` reads it once per process.
"""
from __future__ import annotations

from ray.tune.search import Searcher

from autohas.errors import AutohasError
from autohas.latency import latencies
from autohas.schema import INFEASIBLE, LATENCY
from autohas.searchers.wrapping import WrappingSearcher
from autohas.spaces import get_space

MAX_REJECTIONS = 10_000  # proposals over the limit in a row before the search gives up
WORST_SIGNAL = 0.0  # the worst valid accuracy (%): what an infeasible proposal scores


class FeasibleSearcher(WrappingSearcher):
    """`searcher` that only proposes architectures whose latency on `device` is at most `limit` ms."""

    def __init__(self, searcher: Searcher, space: str, latency_table: str, device: str, limit: float,
                 last_epoch: int, max_rejections: int = MAX_REJECTIONS):
        super().__init__(searcher)
        self.space = space  # its name: the space object is rebuilt where needed
        self.latency_table = latency_table
        self.device = device
        self.limit = float(limit)
        self.last_epoch = int(last_epoch)
        self.max_rejections = int(max_rejections)
        self.inner_ids: dict[str, str] = {}  # trial id -> the inner searcher's id of its accepted proposal
        self.rejections = 0  # proposals over the limit so far (told to the inner searcher)

    # -- the lookup ------------------------------------------------------------------------
    def latency_of(self, config: dict) -> float:
        """The latency (ms) of a suggested config's architecture (the table is read once per process)."""
        space = get_space(self.space)
        return float(latencies(self.latency_table, self.device, self.space)[space.arch_to_index(space.config_to_arch(config))])

    def _infeasible_result(self, latency: float) -> dict:
        """What the inner searcher is told of an infeasible proposal: the worst accuracy at the full budget
        (autohas's runs maximise valid_acc; the keys are those each searcher reads), and its latency (a
        multi-objective searcher's second objective)."""
        signal = self.metric[0] if isinstance(self.metric, list) else self.metric  # [signal, latency_ms] under two objectives
        return {signal: WORST_SIGNAL, LATENCY: latency, "epoch": self.last_epoch, "budget": self.last_epoch,
                "training_iteration": self.last_epoch, INFEASIBLE: True}

    # -- Tune's protocol -------------------------------------------------------------------
    def suggest(self, trial_id: str):
        for attempt in range(self.max_rejections + 1):
            inner_id = trial_id if attempt == 0 else f"{trial_id}#{attempt}"
            config = self.searcher.suggest(inner_id)
            if not isinstance(config, dict):  # None (not now) or FINISHED
                return config
            latency = self.latency_of(config)
            if latency <= self.limit:
                if inner_id != trial_id:
                    self.inner_ids[trial_id] = inner_id
                return config
            self.rejections += 1
            self.searcher.on_trial_complete(inner_id, result=self._infeasible_result(latency))
        raise AutohasError(
            f"{self.max_rejections:,} proposals in a row ran over {self.limit:g} ms on {self.device}: the searcher "
            f"does not find the feasible architectures; raise --latency-limit"
        )

    def _inner(self, trial_id: str) -> str:
        return self.inner_ids.get(trial_id, trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(self._inner(trial_id), result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(self.inner_ids.pop(trial_id, trial_id), result, error=error)

    def on_pause(self, trial_id: str) -> None:
        if hasattr(self.searcher, "on_pause"):
            self.searcher.on_pause(self._inner(trial_id))

    def on_unpause(self, trial_id: str) -> None:
        if hasattr(self.searcher, "on_unpause"):
            self.searcher.on_unpause(self._inner(trial_id))
