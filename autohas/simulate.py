"""Simulated-clock driver: the same searchers and schedulers as a Tune run, without Ray trials.

Trials are evaluated by the same result generator as the tabular trainable, on
`concurrency` simulated workers; an event queue orders their results by simulated
time, each result arriving once its trial's simulated training cost has elapsed.
The driver calls the searcher and the scheduler exactly as Tune's controller does
(scheduler first, then searcher; a trial that ends or is stopped completes with
its last result; a trial stopped while paused completes without one), so that with
concurrency 1 a seed gives the same trial sequence in both modes. Seeds fan out as
Ray tasks (fast runs of an algorithm several to a task): a cluster runs them in parallel.
"""
from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Iterator

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from autohas.bench import open_benchmark
from autohas.errors import AutohasError
from autohas.layout import mark_finished
from autohas.progress import SimulateProgress
from autohas.records import RunLedger, lines, prune_records, seal
from autohas.runner import RunOutcome, RunSpec, build_scheduler, build_searcher, records_by_run, summarise, tabular_setup
from autohas.schema import METRIC, MODE
from autohas.trainables.tabular import tabular_results


@dataclass(eq=False)
class SimTrial:
    """The part of Tune's Trial that searchers and schedulers look at."""

    trial_id: str
    config: dict
    status: str = Trial.PENDING
    last_result: dict | None = None
    done_epoch: int = 0
    cost: float = 0.0  # simulated seconds spent so far
    results: Iterator[dict] | None = field(default=None, repr=False)
    is_saving: bool = False


class _Controller:
    """The part of Tune's TuneController that schedulers call back."""

    def __init__(self, searcher: Searcher, driver: "SimulatedRun"):
        self.search_alg = SimpleNamespace(searcher=searcher)
        self._driver = driver

    def get_trials(self) -> list[SimTrial]:
        return self._driver.trials

    def stop_trial(self, trial: SimTrial) -> None:
        self._driver.stop(trial)


class SimulatedRun:
    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.setup = tabular_setup(spec)
        self.bench = open_benchmark(self.setup.benchmark, self.setup.space)
        self.searcher = build_searcher(spec, mark_finished=False)
        self.searcher.set_search_properties(METRIC, MODE, {})
        self.scheduler = build_scheduler(spec) or FIFOScheduler()
        self.scheduler.set_search_properties(METRIC, MODE)
        self.controller = _Controller(self.searcher, self)
        self.ledger = RunLedger(spec.time_budget)
        self.trials: list[SimTrial] = []
        self.active: list[SimTrial] = []  # the trials not terminated yet (a few), in order of arrival
        self.records: list[dict] = []
        self.now = 0.0
        self.events: list[tuple[float, int, SimTrial, dict | None]] = []
        self._order = itertools.count()
        self._ids = itertools.count()
        self.search_finished = False

    # -- trial life cycle -----------------------------------------------------------------
    def _running(self) -> list[SimTrial]:
        return [t for t in self.active if t.status == Trial.RUNNING]

    def _add_trial(self) -> bool:
        if self.search_finished or any(t.status == Trial.PENDING for t in self.active):
            return False
        trial_id = f"{self.spec.algo}_{self.spec.seed}_{next(self._ids):05d}"
        config = self.searcher.suggest(trial_id)
        if config is Searcher.FINISHED:
            self.search_finished = True
            return False
        if config is None:
            return False
        trial = SimTrial(trial_id=trial_id, config=config)
        self.trials.append(trial)
        self.active.append(trial)
        self.scheduler.on_trial_add(self.controller, trial)
        return True

    def _start(self, trial: SimTrial) -> None:
        trial.status = Trial.RUNNING
        trial.results = tabular_results(self.setup, trial.config, trial.trial_id, done=trial.done_epoch, paid=trial.cost,
                                        bench=self.bench)
        self._next_event(trial)

    def _next_event(self, trial: SimTrial) -> None:
        result = next(trial.results, None)
        delay = 0.0 if result is None else max(0.0, result["trial_sim_seconds"] - trial.cost)
        heapq.heappush(self.events, (self.now + delay, next(self._order), trial, result))

    def stop(self, trial: SimTrial) -> None:
        """Tune's stop_trial: a paused or pending trial completes without a result."""
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self.controller, trial)
            self.searcher.on_trial_complete(trial.trial_id)
        elif trial.status == Trial.RUNNING:
            self.scheduler.on_trial_complete(self.controller, trial, trial.last_result)
            self.searcher.on_trial_complete(trial.trial_id, result=trial.last_result)
            self.events = [e for e in self.events if e[2] is not trial]
            heapq.heapify(self.events)
        if trial.status != Trial.TERMINATED:
            self.active.remove(trial)
        trial.status = Trial.TERMINATED

    def _on_result(self, trial: SimTrial, result: dict | None) -> None:
        if result is None:  # the trainable returned: Tune stops the trial (no more result calls)
            self.stop(trial)
            return
        decision = self.scheduler.on_trial_result(self.controller, trial, result)
        if decision != TrialScheduler.STOP:
            self.searcher.on_trial_result(trial.trial_id, result)
        trial.cost = result["trial_sim_seconds"]
        trial.done_epoch = result["epoch"]
        trial.last_result = result
        self.records.append(self.ledger.add(result))
        if decision == TrialScheduler.STOP:
            self.stop(trial)
        elif decision == TrialScheduler.PAUSE:
            trial.status = Trial.PAUSED
        else:
            self._next_event(trial)

    # -- the loop -------------------------------------------------------------------------
    def _fill_workers(self) -> None:
        """Tune's step: queue one pending trial from the searcher, then start what the
        scheduler picks while a worker is free."""
        while True:
            self._add_trial()
            if len(self._running()) >= self.spec.concurrency:
                return
            trial = self.scheduler.choose_trial_to_run(self.controller)
            if trial is None:
                return
            self._start(trial)

    def run(self) -> list[dict]:
        while True:
            self._fill_workers()
            if not self.events:
                break
            self.now, _, trial, result = heapq.heappop(self.events)
            self._on_result(trial, result)
            if self.searcher.settle_past_budget and self.searcher.budget_over():
                # the budget is settled: end the run, as SettledBudgetStopper ends a Tune run
                for other in list(self.active):
                    if other.status != Trial.TERMINATED:
                        self.stop(other)
                break
        return self.records


def simulate_run(spec: RunSpec) -> tuple[list[dict], float]:
    """All records of one run, in order, and the wall seconds the simulation took."""
    start = time.perf_counter()
    records = SimulatedRun(spec).run()
    return records, time.perf_counter() - start


def simulate_runs(specs: list[RunSpec]) -> list[tuple[list[dict], str, float]]:
    """Several runs one after another (one Ray task): per run its records, their lines as results.jsonl
    holds them, and the wall seconds its simulation took. A run that fails names itself."""
    done = []
    for spec in specs:
        try:
            records, wall = simulate_run(spec)
        except AutohasError as exc:  # e.g. an architecture the benchmark lacks
            raise AutohasError(f"{spec.name}: {exc}") from None
        done.append((records, lines(records), wall))
    return done


TASK_SECONDS = 0.25  # a task holds as many runs as take about this long (what Ray adds per task: ~1-3 ms)
MOST_RUNS_PER_TASK = 64


class _Batches:
    """The runs still to simulate, handed out a task at a time: a task of one run while an algorithm's
    pace is unknown, then as many of its runs as take about TASK_SECONDS."""

    def __init__(self, specs: list[RunSpec]):
        self.todo = list(reversed(specs))
        self.walls: dict[str, list[float]] = {}

    def learn(self, spec: RunSpec, wall: float) -> None:
        self.walls.setdefault(spec.algo, []).append(wall)

    def next(self) -> list[RunSpec]:
        if not self.todo:
            return []
        algo = self.todo[-1].algo
        walls = self.walls.get(algo)
        size = 1 if not walls else int(min(MOST_RUNS_PER_TASK, max(1, TASK_SECONDS * len(walls) / max(sum(walls), 1e-9))))
        batch = []
        while self.todo and len(batch) < size and self.todo[-1].algo == algo:
            batch.append(self.todo.pop())
        return batch


def simulate_experiment(specs: list[RunSpec], resume: bool = False) -> list[RunOutcome]:
    """Simulate every run not finished yet, as parallel Ray tasks; their outcomes in `specs` order.

    Each run's records are appended to results.jsonl as soon as its task returns, then the run is
    marked finished, so an interruption loses only the runs still in flight. A task simulates one
    or several runs of an algorithm (a fast run is a few milliseconds: a task each would be mostly
    Ray's overhead), and only a few tasks per CPU are queued at a time.
    """
    import ray

    todo = [s for s in specs if not (resume and s.finished)]
    if todo:  # what unfinished runs left behind is simulated again
        again = {(s.algo, s.seed) for s in todo}
        prune_records(todo[0].results_path, lambda r: (r.get("algo"), r.get("seed")) in again)
    task = ray.remote(num_cpus=1)(simulate_runs)
    batches = _Batches(todo)
    queued = 2 * max(1, int(ray.cluster_resources().get("CPU", 1))) if todo else 0
    futures: dict = {}
    outcomes: dict[tuple[str, int], RunOutcome] = {}
    progress = SimulateProgress(total=len(specs), done=len(specs) - len(todo)) if todo else None
    try:
        while True:
            while len(futures) < queued:
                batch = batches.next()
                if not batch:
                    break
                futures[task.remote(batch)] = batch
            if not futures:
                break
            done, _ = ray.wait(list(futures), num_returns=1, timeout=1.0)  # a second at most: the heartbeat
            if not done:
                progress.tick()
                continue
            batch = futures.pop(done[0])
            try:
                results = ray.get(done[0])
            except ray.exceptions.RayTaskError as exc:
                if isinstance(exc.cause, AutohasError):
                    raise AutohasError(str(exc.cause)) from None
                raise
            with open(batch[0].results_path, "a") as handle:
                handle.writelines(text for _, text, _ in results)
            for spec, (records, text, wall) in zip(batch, results):
                batches.learn(spec, wall)
                spec.record_run(mode="simulate", wall_seconds=wall)
                mark_finished(spec.run_dir, seal(records, text))
                outcomes[(spec.algo, spec.seed)] = summarise(spec, records=records)
                progress.run_done(spec.name, records)
    finally:
        if progress is not None:
            progress.close()
    if len(outcomes) < len(specs):  # runs finished before (--resume): their records are on disk
        runs = records_by_run(specs[0].results_path)
        for spec in specs:
            if (spec.algo, spec.seed) not in outcomes:
                outcomes[(spec.algo, spec.seed)] = summarise(spec, records=runs.get((spec.algo, spec.seed), []))
    return [outcomes[(spec.algo, spec.seed)] for spec in specs]
