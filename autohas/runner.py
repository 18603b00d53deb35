"""One run = one searcher with one seed against one trainable, as one Ray Tune experiment.

An experiment `<storage>/<name>/` holds one Tune folder per run (`<algo>-seed<S>/`)
and one `results.jsonl` shared by all of them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from autohas.results import RESULTS_FILE, ResultWriter, read_records
from autohas.schema import METRIC, MODE

FINISHED_MARKER = "search-finished"


@dataclass(frozen=True)
class RunSpec:
    algo: str
    seed: int
    space: str
    dataset: str
    benchmark: str  # resolved path
    experiment_dir: str
    time_budget: float | None
    num_samples: int | None
    concurrency: int = 1
    budget_epochs: int | None = None  # epochs per evaluation; None = the benchmark's default
    seed_mode: str = "sample"

    @property
    def name(self) -> str:
        return f"{self.algo}-seed{self.seed}"

    @property
    def run_dir(self) -> str:
        return os.path.join(self.experiment_dir, self.name)

    @property
    def results_path(self) -> str:
        return os.path.join(self.experiment_dir, RESULTS_FILE)


@dataclass(frozen=True)
class RunOutcome:
    algo: str
    seed: int
    finished: bool
    trials: int
    errored: int
    best_arch: str | None
    best_test_acc: float | None
    sim_seconds: float
    wall_seconds: float


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def _trainable(spec: RunSpec):
    from ray import tune

    from autohas.bench import open_benchmark
    from trainables.tabular import TabularSetup, tabular_trainable

    bench = open_benchmark(spec.benchmark, spec.space)
    setup = TabularSetup(
        benchmark=spec.benchmark,
        space=spec.space,
        dataset=spec.dataset,
        budget=spec.budget_epochs or bench.default_budget,
        seed=spec.seed,
        algo=spec.algo,
        seed_mode=spec.seed_mode,
    )
    resources = {"cpu": 1.0 / max(1, spec.concurrency)}
    return tune.with_resources(tune.with_parameters(tabular_trainable, setup=setup), resources)


def _new_tuner(spec: RunSpec):
    from ray import tune

    import searchers
    from autohas.spaces import get_space
    from searchers.limits import LimitedSearcher

    searcher = LimitedSearcher(
        searchers.create(spec.algo, get_space(spec.space), spec.seed),
        time_budget=spec.time_budget,
        max_trials=spec.num_samples,
        max_concurrent=spec.concurrency,
        finished_marker=os.path.join(spec.run_dir, FINISHED_MARKER),
    )
    return tune.Tuner(
        _trainable(spec),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            metric=METRIC,
            mode=MODE,
            num_samples=-1,
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.experiment_dir,
            verbose=0,
            callbacks=[ResultWriter(spec.results_path, spec.algo, spec.seed, spec.time_budget)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def is_finished(spec: RunSpec) -> bool:
    return os.path.exists(os.path.join(spec.run_dir, FINISHED_MARKER))


def execute(spec: RunSpec, resume: bool = False) -> RunOutcome:
    """Run (or, with `resume`, continue) one run and summarise it from results.jsonl."""
    from ray import tune

    os.makedirs(spec.run_dir, exist_ok=True)
    start = time.perf_counter()
    if resume and tune.Tuner.can_restore(spec.run_dir):
        if not is_finished(spec):
            tuner = tune.Tuner.restore(spec.run_dir, trainable=_trainable(spec), resume_errored=True)
            grid = tuner.fit()
        else:
            grid = None
    else:
        grid = _new_tuner(spec).fit()
    wall = time.perf_counter() - start
    errored = len(grid.errors) if grid is not None else 0
    return summarise(spec, wall, errored)


def summarise(spec: RunSpec, wall_seconds: float, errored: int = 0) -> RunOutcome:
    records = [r for r in read_records(spec.results_path) if r.get("algo") == spec.algo and r.get("seed") == spec.seed]
    last = records[-1] if records else {}
    return RunOutcome(
        algo=spec.algo,
        seed=spec.seed,
        finished=is_finished(spec),
        trials=len({r["trial_id"] for r in records}),
        errored=errored,
        best_arch=last.get("best_arch"),
        best_test_acc=last.get("best_test_acc"),
        sim_seconds=float(last.get("sim_seconds") or 0.0),
        wall_seconds=wall_seconds,
    )
