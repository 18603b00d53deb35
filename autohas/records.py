"""A run's records and their accounting, Ray-free: reading and pruning results.jsonl, the run's
simulated clock and incumbent (`RunLedger`), and the NATS-Bench protocol's reading of a run at its
budget (`value_at_budget`, `budget_settled`). The simulator, the Tune callbacks (autohas.results),
the searchers' limits and the report all count the same way through here.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Iterator

from autohas.schema import to_record

class RunLedger:
    """Simulated clock + incumbent of one run, fed trial results in arrival order.

    Clock: the sum over trials of each trial's cumulative cost. Every result is recorded,
    the one that crosses the time budget included (the official loops run `while total_time
    < budget`); when to stop is the searcher's limit, and the number reported at the budget is
    read off the records afterwards (`value_at_budget`). Incumbent, as the official scripts'
    `max(trajectory)`: the architecture with the best search signal over all evaluations so
    far, of any budget (the first of equals), so its signal never falls; or, with `latest`,
    the architecture of the latest result (a weight-sharing search's answer is what it
    derives now, not its best-looking epoch).
    """

    def __init__(self, time_budget: float | None = None, latest: bool = False):
        self.time_budget = time_budget
        self.latest = latest
        self.trial_cost: dict[str, float] = {}
        self.best_signal: float | None = None
        self.best_arch: str | None = None
        self.best_test_acc: float | None = None

    @property
    def clock(self) -> float:
        return sum(self.trial_cost.values())

    def add(self, result: dict) -> dict:
        """The completed record for `result`."""
        trial, cost = result["trial_id"], float(result.get("trial_sim_seconds") or 0.0)
        self.trial_cost[trial] = max(self.trial_cost.get(trial, 0.0), cost)
        if self.latest:
            self.best_arch, self.best_test_acc = result["arch"], result.get("test_acc")
        elif result.get("valid_acc") is not None:
            signal = float(result["valid_acc"])
            if self.best_signal is None or signal > self.best_signal:
                self.best_signal, self.best_arch, self.best_test_acc = signal, result["arch"], result.get("test_acc")
        return to_record(result, self.clock, self.best_arch, self.best_test_acc)


def value_at_budget(times: list[float], values: list[float], budget: float) -> float:
    """The value at `budget` as NATS-Bench's `draw-table.py` (`query_performance`) reads it off a run:
    the two points whose times are nearest the budget (the earlier of equals first; both may lie
    on one side, then it extrapolates), joined by a straight line. One point: its value."""
    if not times:
        return float("nan")
    order = sorted(range(len(times)), key=lambda i: abs(times[i] - budget))  # stable, as Python's sort
    if len(order) == 1:
        return float(values[order[0]])
    (t1, v1), (t2, v2) = (times[order[0]], values[order[0]]), (times[order[1]], values[order[1]])
    if t1 == t2:  # the official formula divides by zero here; both points say the same time
        return float(v2)
    return float((t2 - budget) / (t2 - t1) * v1 + (budget - t1) / (t2 - t1) * v2)


def budget_settled(clock_marks: list[float], clock: float, time_budget: float) -> bool:
    """Whether, at `clock`, no later evaluation can be one of the two whose clock (`clock_marks`, one
    per evaluation so far) is nearest `time_budget`, the two that decide the number there: later
    evaluations lie farther past it (equals lose to the earlier, as in `value_at_budget`)."""
    distances = sorted(abs(t - time_budget) for t in clock_marks)
    return clock >= time_budget and len(distances) >= 2 and clock - time_budget >= distances[1]


def read_records(path: str) -> Iterator[dict]:
    """Records of a results.jsonl (a torn last line from a crash is skipped)."""
    if not os.path.exists(path):
        return
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def prune_records(path: str, drop: Callable[[dict], bool]) -> int:
    """Rewrite results.jsonl without the records `drop` selects (atomically); how many went."""
    records = list(read_records(path))
    keep = [r for r in records if not drop(r)]
    if len(keep) < len(records):
        temporary = path + ".tmp"
        with open(temporary, "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in keep)
        os.replace(temporary, path)
    return len(records) - len(keep)
