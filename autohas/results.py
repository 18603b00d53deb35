"""results.jsonl: one schema record per reported step, written by the driver.

`RunLedger` is the accounting of one run (one algorithm x seed): the simulated clock
and the incumbent. `ResultWriter` is the Tune callback that completes each trial
result with them and appends it to `<storage>/<name>/results.jsonl`. On resume it
replays the file, so nothing is written twice and the clock continues where it was.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Iterator

from ray.tune import Callback
from ray.tune.stopper import Stopper

from autohas.schema import RECORD_KEYS, TRIAL_KEYS, to_record

RESULTS_FILE = "results.jsonl"
PROTOCOL_FILE = "protocol.json"  # how an experiment's numbers were obtained, for the report


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


class SettledBudgetStopper(Stopper):
    """Ends a run that goes on past its time budget (BOHB, as its official script runs on) once the
    budget is settled (`budget_settled`), stopping the trials HyperBand would otherwise resume.

    Its clock is the ledger's, rebuilt from results.jsonl when a resumed experiment first calls it.
    """

    def __init__(self, path: str, run: tuple[str, int], time_budget: float, finished_marker: str | None = None):
        self.path, self.run, self.time_budget = path, tuple(run), time_budget
        self.finished_marker = finished_marker  # touched once settled: the run's search is over
        self._ledger: RunLedger | None = None
        self._marks: list[float] = []

    def _add(self, trial_id: str, cost: float) -> None:
        if cost > self._ledger.trial_cost.get(trial_id, -1.0):
            self._ledger.trial_cost[trial_id] = cost
            self._marks.append(self._ledger.clock)

    def _prepare(self) -> None:
        self._ledger, self._marks = RunLedger(self.time_budget), []
        for record in read_records(self.path):
            if (record.get("algo"), record.get("seed")) == self.run:
                self._add(record["trial_id"], float(record.get("trial_sim_seconds") or 0.0))

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self._ledger is None:
            self._prepare()
        self._add(trial_id, float(result.get("trial_sim_seconds") or 0.0))
        return False

    def stop_all(self) -> bool:
        settled = self._ledger is not None and budget_settled(self._marks, self._ledger.clock, self.time_budget)
        if settled and self.finished_marker:
            open(self.finished_marker, "a").close()
        return settled

    def __getstate__(self) -> dict:  # pickled with the experiment: rebuilt from the file on resume
        return {**self.__dict__, "_ledger": None, "_marks": []}


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


class ResultWriter(Callback):
    """Tune callback writing the records of some runs (`(algo, seed)` pairs) to a shared results.jsonl.

    A result belongs to the run named by its own `algo` and `seed`; each run has its own ledger.
    """

    def __init__(self, path: str, runs: list[tuple[str, int]], time_budget: float | None, latest: bool = False):
        self.path = path
        self.runs = [tuple(run) for run in runs]
        self.time_budget = time_budget
        self.latest = latest
        self._ready = False

    def _prepare(self) -> None:
        """Replay what an earlier (interrupted) attempt of these runs already wrote."""
        self.ledgers = {run: RunLedger(self.time_budget, self.latest) for run in self.runs}
        self.written: set[tuple[str, int]] = set()
        for record in read_records(self.path):
            ledger = self.ledgers.get((record.get("algo"), record.get("seed")))
            if ledger is not None:
                ledger.add(record)
                self.written.add((record["trial_id"], int(record["epoch"])))
        self._ready = True

    def setup(self, **info) -> None:
        self._prepare()

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if not self._ready:
            self._prepare()
        fields = {k: result.get(k) for k in TRIAL_KEYS}
        fields["trial_id"] = trial.trial_id
        if (trial.trial_id, int(fields["epoch"])) in self.written:
            return
        record = self.ledgers[(fields["algo"], fields["seed"])].add(fields)
        self.written.add((trial.trial_id, int(fields["epoch"])))
        with open(self.path, "a") as handle:
            handle.write(json.dumps({k: record[k] for k in RECORD_KEYS}) + "\n")

    def __getstate__(self) -> dict:
        # Tune pickles callbacks with the experiment; the ledgers are rebuilt from the file.
        return {"path": self.path, "runs": self.runs, "time_budget": self.time_budget, "latest": self.latest, "_ready": False}
