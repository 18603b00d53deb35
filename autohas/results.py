"""The driver's Tune callbacks over results.jsonl: `ResultWriter` completes each trial result into a
schema record (the run's clock and incumbent, from autohas.records' `RunLedger`) and appends it to
`<storage>/<name>/results.jsonl`; on resume it replays the file, so nothing is written twice and the
clock continues where it was. `SettledBudgetStopper` ends a BOHB run once its budget is settled.
"""
from __future__ import annotations

import json
import os

from ray.tune import Callback
from ray.tune.stopper import Stopper

from autohas.layout import PROTOCOL_FILE, RESULTS_FILE, mark_finished
from autohas.records import RunLedger, budget_settled, prune_records, read_records, value_at_budget
from autohas.schema import RECORD_KEYS, TRIAL_KEYS

__all__ = [
    "PROTOCOL_FILE", "RESULTS_FILE", "ResultWriter", "RunLedger", "SettledBudgetStopper",
    "budget_settled", "prune_records", "read_records", "value_at_budget",
]


class SettledBudgetStopper(Stopper):
    """Ends a run that goes on past its time budget (BOHB, as its official script runs on) once the
    budget is settled (`budget_settled`), stopping the trials HyperBand would otherwise resume.

    Its clock is the ledger's, rebuilt from results.jsonl when a resumed experiment first calls it.
    """

    def __init__(self, path: str, run: tuple[str, int], time_budget: float, run_dir: str | os.PathLike | None = None):
        self.path, self.run, self.time_budget = path, tuple(run), time_budget
        self.run_dir = run_dir  # marked finished once settled: the run's search is over
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
        if settled and self.run_dir is not None:
            mark_finished(self.run_dir)
        return settled

    def __getstate__(self) -> dict:  # pickled with the experiment: rebuilt from the file on resume
        return {**self.__dict__, "_ledger": None, "_marks": []}


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
