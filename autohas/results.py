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

from autohas.schema import RECORD_KEYS, TRIAL_KEYS, to_record

RESULTS_FILE = "results.jsonl"
PROTOCOL_FILE = "protocol.json"  # how an experiment's numbers were obtained, for the report


class RunLedger:
    """Simulated clock + incumbent of one run, fed trial results in arrival order.

    Clock: the sum over trials of each trial's cumulative simulated cost. A result
    that would push the clock past the time budget finished after the budget and is
    not counted. Incumbent: the best search signal among evaluations that trained
    for the most epochs seen so far (as hpbandster picks its incumbent), so that a
    low-budget evaluation never outranks a complete one; or, with `latest`, the
    architecture of the latest result (a weight-sharing search's answer is what it
    derives now, not its best-looking epoch).
    """

    def __init__(self, time_budget: float | None = None, latest: bool = False):
        self.time_budget = time_budget
        self.latest = latest
        self.trial_cost: dict[str, float] = {}
        self.best_key: tuple[float, float] | None = None
        self.best_arch: str | None = None
        self.best_test_acc: float | None = None

    @property
    def clock(self) -> float:
        return sum(self.trial_cost.values())

    def add(self, result: dict) -> dict | None:
        """The completed record for `result`, or None when it lies beyond the budget."""
        trial, cost = result["trial_id"], float(result.get("trial_sim_seconds") or 0.0)
        before = self.trial_cost.get(trial, 0.0)
        clock = self.clock - before + max(before, cost)
        if self.time_budget is not None and clock > self.time_budget:
            return None
        self.trial_cost[trial] = max(before, cost)
        if self.latest:
            self.best_arch, self.best_test_acc = result["arch"], result.get("test_acc")
        elif result.get("valid_acc") is not None:
            key = (float(result["epoch"]), float(result["valid_acc"]))
            if self.best_key is None or key > self.best_key:
                self.best_key, self.best_arch, self.best_test_acc = key, result["arch"], result.get("test_acc")
        return to_record(result, self.clock, self.best_arch, self.best_test_acc)


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
        if record is None:
            return
        self.written.add((trial.trial_id, int(fields["epoch"])))
        with open(self.path, "a") as handle:
            handle.write(json.dumps({k: record[k] for k in RECORD_KEYS}) + "\n")

    def __getstate__(self) -> dict:
        # Tune pickles callbacks with the experiment; the ledgers are rebuilt from the file.
        return {"path": self.path, "runs": self.runs, "time_budget": self.time_budget, "latest": self.latest, "_ready": False}
