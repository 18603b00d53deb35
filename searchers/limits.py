"""The experiment's limits around any searcher: simulated time budget, trial count,
concurrency; and the rule that searchers never see test accuracies.

Concurrency is limited here by refusing suggestions while `max_concurrent` trials
are live. With a scheduler that pauses trials (HyperBand for BOHB) that would keep
Tune from queueing the next trial and starve its brackets, so there the limit is
None and trial resources bound the concurrency instead.

The NATS-Bench protocol: no new trial starts once the trials so far have used the
simulated time budget (the sum of their simulated training costs), as the official loops'
`while total_time < budget`. BOHB's official script instead runs a fixed number of
iterations whatever the budget and reads the number at the budget off the two evaluations
nearest it; with `settle_past_budget` the search goes on past the budget until no later
evaluation can be one of those two (the equivalent, without the 300 iterations).
"""
from __future__ import annotations

from typing import Callable

from ray.tune.search import Searcher

from autohas.records import budget_settled
from autohas.schema import for_searcher
from autohas.searchers.wrapping import WrappingSearcher


class LimitedSearcher(WrappingSearcher):
    def __init__(
        self,
        searcher: Searcher,
        time_budget: float | None = None,
        max_trials: int | None = None,
        max_concurrent: int | None = 1,
        cost_key: str = "trial_sim_seconds",
        on_finished: Callable[[], None] | None = None,
        max_errors_in_row: int = 3,
        settle_past_budget: bool = False,
    ):
        super().__init__(searcher)
        self.time_budget = time_budget
        self.max_trials = max_trials
        self.max_concurrent = None if max_concurrent is None else max(1, int(max_concurrent))
        self.cost_key = cost_key
        self.on_finished = on_finished  # called once the search is over (the driver marks the run; no file I/O here)
        self.trial_cost: dict[str, float] = {}
        self.live: set[str] = set()  # suggested and not paused or finished
        self.paused: set[str] = set()  # paused by a scheduler (HyperBand): not counted as running
        self.num_started = 0
        self.max_errors_in_row = max_errors_in_row
        self.errors_in_row = 0  # trials that failed one after another: the evaluation itself is broken
        self.settle_past_budget = settle_past_budget
        self.clock_marks: list[float] = []  # the clock after each result, in arrival order

    @property
    def used_seconds(self) -> float:
        return sum(self.trial_cost.values())

    @property
    def failing(self) -> bool:
        return self.errors_in_row >= self.max_errors_in_row

    def exhausted(self) -> bool:
        if self.failing:
            return True
        if self.budget_over():
            return True
        return self.max_trials is not None and self.num_started >= self.max_trials

    def budget_over(self) -> bool:
        """Whether the time budget ends the search now (see the module's docstring)."""
        if self.time_budget is None or self.used_seconds < self.time_budget:
            return False
        return not self.settle_past_budget or budget_settled(self.clock_marks, self.used_seconds, self.time_budget)

    def _mark_if_over(self) -> None:
        """Say the search is over once nothing more will run: budget spent and no trial live."""
        if self.on_finished is not None and self.exhausted() and not self.failing and not self.live and not self.paused:
            self.on_finished()

    def suggest(self, trial_id: str):
        if self.exhausted():
            self._mark_if_over()
            return Searcher.FINISHED
        if self.max_concurrent is not None and len(self.live) >= self.max_concurrent:
            return None
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            self.live.add(trial_id)
            self.num_started += 1
        return config

    def _account(self, trial_id: str, result: dict | None) -> None:
        if result and result.get(self.cost_key) is not None:
            cost, before = float(result[self.cost_key]), self.trial_cost.get(trial_id)
            if before is None or cost > before:  # a new result (a trial's last one also comes with its completion)
                self.trial_cost[trial_id] = cost
                self.clock_marks.append(self.used_seconds)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._account(trial_id, result)
        self.searcher.on_trial_result(trial_id, for_searcher(result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._account(trial_id, result)
        self.errors_in_row = self.errors_in_row + 1 if error else 0
        self.live.discard(trial_id)
        self.paused.discard(trial_id)
        self.searcher.on_trial_complete(trial_id, for_searcher(result) if result else result, error=error)
        self._mark_if_over()

    def on_pause(self, trial_id: str) -> None:
        """Called by HyperBandForBOHB (through Tune) when it pauses a trial."""
        self.live.discard(trial_id)
        self.paused.add(trial_id)
        if hasattr(self.searcher, "on_pause"):
            self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.paused.discard(trial_id)
        self.live.add(trial_id)
        if hasattr(self.searcher, "on_unpause"):
            self.searcher.on_unpause(trial_id)
