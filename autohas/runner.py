"""One run = one searcher with one seed against one trainable, as one Ray Tune experiment.

An experiment `<storage>/<name>/` holds one Tune folder per run (`<algo>-seed<S>/`)
and one `results.jsonl` shared by all of them.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from functools import partial
from typing import Callable

from autohas import layout, storage
from autohas.errors import AutohasError
from autohas.latency import LOCAL_DEVICES
from autohas.fronts import records_front
from autohas.layout import RESULTS_FILE, WEIGHT_SHARING_DIR
from autohas.records import prune_records, read_records, rewrite, scan, seal
from autohas.results import ResultWriter, SettledBudgetStopper
from autohas.schema import METRIC, MODE
from autohas.state_snapshots import StateSnapshot, restore_snapshot
from autohas.trainables.weight_sharing import METHOD_NAMES, retrain_epochs_for


def is_weight_sharing(algo: str) -> bool:
    """Whether `algo` is a weight-sharing method (a trainable) rather than a black-box searcher."""
    return algo in METHOD_NAMES


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
    concurrency: int | None = 1  # None: as many trials as the trial resources let fit
    budget_epochs: int | None = None  # epochs per evaluation; None = the benchmark's default / the schedule
    seed_mode: str = "sample"
    evaluate: str = "tabular"  # "tabular": benchmark lookup; "train": train each candidate for real
    data_dir: str | None = None  # train: where the dataset's files are
    epochs: int = 12  # train: length of the training schedule (H0: 12)
    cpus_per_trial: float | None = None  # None: the machine's CPUs shared by `concurrency` trials
    gpus_per_trial: float = 0.0
    select: str | None = None  # weight sharing: the selection criterion (None: the method's default)
    search_epochs: int = 100  # weight sharing: epochs of the search
    search_batches: int | None = None  # weight sharing: steps per epoch (None: a pass over the training split)
    retrain_epochs: int | None = None  # weight sharing: re-training epochs after the search (None: the method's default)
    method_options: dict = field(default_factory=dict)  # weight sharing: the options the methods' Settings read (e.g. flops_target)
    storage_uri: str | None = None  # remote storage (s3://...) holding the experiment; None: experiment_dir itself
    max_failures: int = 0  # times Tune retries a failed trial from its last checkpoint
    scheduler: str | None = None  # Tune's trial scheduler of a black-box run (asha, hyperband); None: FIFO (bohb: its own)
    latency_table: str | None = None  # hardware-aware search: the latency table (resolved path); records carry latency_ms
    device: str | None = None  # its device column, or local-cpu / local-gpu: measured in each train trial
    latency_batch: int | None = None  # local-*: inputs per timed forward (None: 1)
    latency_limit: float | None = None  # constrained search: architectures slower than this (ms) are never evaluated
    latency_target: float | None = None  # weight sharing: TAS' cost loss toward this latency (ms) on `device`
    objectives: tuple[str, ...] = ("accuracy",)  # ("accuracy", "latency"): multi-objective search, the run's outcome a Pareto front

    @property
    def tune_experiment(self) -> str:
        """Where Tune keeps this experiment's runs: the experiment folder, or its URI."""
        if self.storage_uri is None:
            return self.experiment_dir
        return storage.join(*self.remote_experiment)

    @property
    def remote_experiment(self) -> tuple[str, str] | None:
        """(storage URI, experiment name) when the experiment lives in remote storage."""
        return None if self.storage_uri is None else (self.storage_uri, os.path.basename(self.experiment_dir))

    def driver_file(self, relative: str) -> str | os.PathLike:
        """A file of the experiment for Tune callbacks and searchers, which Tune pickles with it:
        a path, or for remote storage its place in the local copy of whichever machine resumes."""
        if self.remote_experiment is None:
            return os.path.join(self.experiment_dir, relative)
        return storage.LocalCopyFile(*self.remote_experiment, relative)

    @property
    def tune_run_dir(self) -> str:
        return storage.join(self.tune_experiment, self.name)

    @property
    def weight_sharing(self) -> bool:
        return is_weight_sharing(self.algo)

    @property
    def name(self) -> str:
        return layout.run_name(self.algo, self.seed)

    @property
    def finished(self) -> bool:
        """Whether the run's search is over (its marker is in the run folder)."""
        return layout.is_finished(self.run_dir)

    def mark_finished(self, records: list[dict] | None = None) -> None:
        """Mark the run finished, sealed with its records (those in results.jsonl unless given)."""
        if records is None:
            records = records_by_run(self.results_path).get((self.algo, self.seed), [])
        layout.mark_finished(self.run_dir, seal(records))

    def record_run(self, mode: str, wall_seconds: float) -> None:
        layout.record_run(self.run_dir, self.algo, self.seed, mode, wall_seconds)

    @property
    def marker_callback(self) -> Callable[[], None]:
        """What a searcher or stopper calls once the search is over: marks the run finished (in the
        local copy of whichever machine drives the experiment)."""
        return partial(layout.mark_finished, self.driver_file(self.name))

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
    error: str | None
    best_arch: str | None
    best_test_acc: float | None
    sim_seconds: float
    wall_seconds: float
    simulated: bool = True  # sim_seconds from a benchmark (tabular) or measured (train)
    front: tuple = ()  # two objectives: the run's Pareto front (autohas.fronts.records_front), fastest first


def _trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def tabular_setup(spec: RunSpec):
    """What every evaluation of this run needs besides its configuration."""
    from autohas import searchers
    from autohas.bench import open_benchmark
    from autohas.trainables.tabular import TabularSetup

    bench = open_benchmark(spec.benchmark, spec.space)
    budget = spec.budget_epochs or bench.default_budget
    return TabularSetup(
        benchmark=spec.benchmark,
        space=spec.space,
        dataset=spec.dataset,
        budget=budget,
        seed=spec.seed,
        algo=spec.algo,
        seed_mode=spec.seed_mode,
        evaluations=searchers.evaluation_ends(spec.algo, bench.epochs_up_to(budget), spec.scheduler),
        latency_table=spec.latency_table,
        device=spec.device,
    )


def build_searcher(spec: RunSpec, mark_finished: bool = True, concurrency: int | None = None):
    """The run's searcher inside the experiment's limits (the same object type in both modes); with a
    latency limit, the FeasibleSearcher between them (constrained search, searchers/feasible.py).

    With `mark_finished` the run is marked finished once the search is over.
    """
    from autohas import searchers
    from autohas.spaces import get_space
    from autohas.searchers.limits import LimitedSearcher

    searcher = searchers.create(spec.algo, get_space(spec.space), spec.seed, objectives=spec.objectives)
    if spec.latency_limit is not None:  # constrained search: over-limit proposals never reach the limits below
        from autohas.searchers.feasible import FeasibleSearcher

        searcher = FeasibleSearcher(searcher, spec.space, spec.latency_table, spec.device, spec.latency_limit,
                                    last_epoch=evaluation_epochs(spec)[-1])
    return LimitedSearcher(
        searcher,
        time_budget=spec.time_budget,
        max_trials=spec.num_samples,
        max_concurrent=None if searchers.pauses_trials(spec.algo, spec.scheduler) else (concurrency or spec.concurrency or 1),
        settle_past_budget=searchers.settles_past_budget(spec.algo),
        on_finished=spec.marker_callback if mark_finished else None,
    )


def train_setup(spec: RunSpec, resources: dict):
    """What every training evaluation of this run needs besides its configuration."""
    from autohas.trainables.train import TrainSetup, recipe_for

    return TrainSetup(
        space=spec.space,
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        budget=min(spec.budget_epochs or spec.epochs, spec.epochs),
        seed=spec.seed,
        algo=spec.algo,
        recipe=recipe_for(spec.dataset, spec.epochs),
        threads=max(1, int(resources["cpu"])),
        gpu=resources.get("gpu", 0) > 0,
        cache_dir=os.environ.get("AUTOHAS_DATA_CACHE"),  # else each worker's own default
        latency_table=spec.latency_table,
        device=spec.device,
        latency_batch=spec.latency_batch or 1,
        # measurements are kept in the experiment folder, which with remote storage no trial shares
        latency_cache=spec.experiment_dir if spec.device in LOCAL_DEVICES and spec.storage_uri is None else None,
    )


def evaluation_epochs(spec: RunSpec) -> list[int]:
    """The epochs at which an evaluation of this run reports (its fidelities)."""
    if spec.evaluate == "train":
        return list(range(1, min(spec.budget_epochs or spec.epochs, spec.epochs) + 1))
    from autohas.bench import open_benchmark

    setup = tabular_setup(spec)
    return setup.report_epochs(open_benchmark(spec.benchmark, spec.space))


def build_scheduler(spec: RunSpec):
    """The run's trial scheduler (--scheduler's, or HyperBandForBOHB for bohb), or None for FIFO."""
    from autohas import searchers
    return searchers.scheduler_for(spec.algo, evaluation_epochs(spec), spec.scheduler)


def trial_resources(spec: RunSpec) -> dict:
    """Ray resources of one trial, checked against the cluster (Tune would wait forever otherwise).

    Without `cpus_per_trial`, CPUs per trial are chosen such that only `concurrency`
    trials fit at once (on one node at least).
    """
    import ray

    from autohas import searchers
    cluster = ray.cluster_resources()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    per_node_cpu = max((n.get("CPU", 0.0) for n in nodes), default=cluster.get("CPU", 1.0))
    if spec.gpus_per_trial > 0:
        per_node_gpu = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
        if per_node_gpu <= 0:
            raise AutohasError(
                f"--gpus-per-trial {spec.gpus_per_trial:g} but the Ray cluster has no GPU "
                "(Tune would wait forever): drop the option or connect to a cluster with GPUs"
            )
        if spec.gpus_per_trial > per_node_gpu:
            raise AutohasError(f"--gpus-per-trial {spec.gpus_per_trial:g} but no node has more than {per_node_gpu:g} GPU(s)")
    if spec.cpus_per_trial is not None:
        if spec.cpus_per_trial > per_node_cpu:
            raise AutohasError(f"--cpus-per-trial {spec.cpus_per_trial:g} but no node has more than {per_node_cpu:g} CPU(s)")
        cpu = spec.cpus_per_trial
        if spec.concurrency and not spec.weight_sharing and searchers.pauses_trials(spec.algo, spec.scheduler):
            # with HyperBand the searcher does not gate concurrency (HyperBand must keep queueing): resources do
            cpu = max(cpu, min(per_node_cpu, cluster.get("CPU", 1.0) / spec.concurrency))
    else:
        wanted = spec.concurrency
        if wanted is None:  # as many trials as the GPUs hold, else one
            wanted = int(cluster.get("GPU", 0.0) / spec.gpus_per_trial + 1e-9) if spec.gpus_per_trial > 0 else 1
        cpu = max(0.01, min(per_node_cpu, cluster.get("CPU", 1.0) / max(1, wanted)))
    resources = {"cpu": cpu}
    if spec.gpus_per_trial > 0:
        resources["gpu"] = spec.gpus_per_trial
    return resources


def concurrency_of(spec: RunSpec, resources: dict) -> int:
    """Trials at once: as asked, or (None) as many as fit in the cluster with these resources."""
    if spec.concurrency is not None:
        return spec.concurrency
    import ray

    cluster = ray.cluster_resources()
    fits = [cluster.get("CPU", 1.0) / resources["cpu"]]
    if resources.get("gpu"):
        fits.append(cluster.get("GPU", 0.0) / resources["gpu"])
    return max(1, int(min(fits) + 1e-9))


def _trainable(spec: RunSpec, resources: dict):
    from ray import tune

    if spec.evaluate == "train":
        from autohas.trainables.train import train_trainable

        trainable = tune.with_parameters(train_trainable, setup=train_setup(spec, resources))
    else:
        from autohas.trainables.tabular import tabular_trainable

        trainable = tune.with_parameters(tabular_trainable, setup=tabular_setup(spec))
    return tune.with_resources(trainable, resources)


def _new_tuner(spec: RunSpec, resources: dict):
    from ray import tune

    return tune.Tuner(
        _trainable(spec, resources),
        tune_config=tune.TuneConfig(
            search_alg=build_searcher(spec, concurrency=concurrency_of(spec, resources)),
            scheduler=build_scheduler(spec),
            metric=METRIC,
            mode=MODE,
            num_samples=-1,
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=_run_config(spec, spec.name, ResultWriter(spec.driver_file(RESULTS_FILE), [(spec.algo, spec.seed)], spec.time_budget),
                               run_progress(spec)),
    )


def run_progress(spec: RunSpec):
    """The Tune callback that shows a black-box run's progress on stderr."""
    from autohas.progress import RunProgress

    train = spec.evaluate == "train"
    return RunProgress(spec.algo, spec.seed, spec.time_budget, spec.num_samples, clock_name="training" if train else "simulated",
                       epochs=evaluation_epochs(spec)[-1] if train else None, results_path=spec.driver_file(RESULTS_FILE))


def search_progress(specs: list[RunSpec]):
    """The Tune callback that shows the weight-sharing searches' epochs on stderr."""
    from autohas.progress import SearchProgress

    return SearchProgress({s.algo: (s.search_epochs, retrain_epochs_for(s.algo, s.retrain_epochs, bool(s.benchmark)))
                           for s in specs})


def _run_config(spec: RunSpec, name: str, writer: ResultWriter, progress=None):
    """Tune's run configuration: where it writes, the driver's callbacks (results, progress, state
    snapshots), checkpoints, retries."""
    from functools import partial

    from ray import tune

    from autohas import searchers
    upload = None
    if spec.remote_experiment is not None:  # results.jsonl goes up before the state that counts on it
        upload = partial(storage.push_experiment, *spec.remote_experiment)
    stop = None
    if spec.time_budget is not None and not spec.weight_sharing and searchers.settles_past_budget(spec.algo):
        stop = SettledBudgetStopper(spec.driver_file(RESULTS_FILE), (spec.algo, spec.seed), spec.time_budget,
                                    run_dir=spec.driver_file(spec.name))
    return tune.RunConfig(
        name=name,
        storage_path=spec.tune_experiment,
        stop=stop,
        verbose=0,
        callbacks=[writer, *([progress] if progress is not None else []), StateSnapshot(before_snapshot=upload)],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),  # StateSnapshot prunes
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
    )


def tuner_for(folder: str, results_path: str, runs: list[tuple[str, int]], trainable, new_tuner: Callable[[], object],
              resume: bool, check: Callable[[list], None] | None = None):
    """The one resume protocol of both executors: with `resume`, undo a copy of Tune's state torn
    by a hard kill, drop the records of `runs` that the saved state does not know (written after
    its last snapshot: they are evaluated again) and restore the Tune experiment in `folder`
    (`check` sees its trials first); otherwise, or when there is nothing to restore, drop every
    record of `runs` and start `new_tuner()`."""
    from ray import tune

    runs = [tuple(run) for run in runs]
    if resume:
        restore_snapshot(folder)
    if resume and tune.Tuner.can_restore(folder):
        trials = tune.ExperimentAnalysis(folder).trials
        if check is not None:
            check(trials)
        known = {t.trial_id for t in trials}
        prune_records(results_path, lambda r: (r.get("algo"), r.get("seed")) in runs and r.get("trial_id") not in known)
        return tune.Tuner.restore(folder, trainable=trainable, resume_errored=True)
    prune_records(results_path, lambda r: (r.get("algo"), r.get("seed")) in runs)
    return new_tuner()


def execute(spec: RunSpec, resume: bool = False) -> RunOutcome:
    """Run (or, with `resume`, continue) one run as a Ray Tune experiment."""
    if resume and spec.finished:
        if layout.read_seal(spec.run_dir) == {}:  # marked by the searcher, not sealed before an interruption
            spec.mark_finished()
        return summarise(spec)
    resources = trial_resources(spec)
    os.makedirs(spec.run_dir, exist_ok=True)
    start = time.perf_counter()
    tuner = tuner_for(spec.tune_run_dir, spec.results_path, [(spec.algo, spec.seed)], _trainable(spec, resources),
                      lambda: _new_tuner(spec, resources), resume)
    errors = tuner.fit().errors
    spec.record_run(mode="tune", wall_seconds=time.perf_counter() - start)
    if spec.finished:
        spec.mark_finished()  # sealed with its records
    first = str(errors[0]).strip().splitlines()[-1] if errors else None
    return summarise(spec, errored=len(errors), error=first)


def repair(specs: list[RunSpec]) -> list[str]:
    """Before a resumed experiment goes on: complete results.jsonl (a torn last line or a garbage line
    is dropped, so that new records never join it) and make every damaged black-box run (a record
    number missing, or fewer records than its seal) unfinished and empty, with its Tune state gone, so
    that it is evaluated again (tabular runs are deterministic: the same records come back). One line
    per repair, to print."""
    if not specs:
        return []
    path = specs[0].results_path
    found = scan(path)
    seals = {(s.algo, s.seed): layout.read_seal(s.run_dir) for s in specs}
    notes = [f"repaired: {line}" for _, line in found.damage(seals)]
    if found.torn_last:
        notes.append(f"repaired: the last line of {os.path.basename(path)} was cut short (an interrupted write): dropped")
    damaged = {run for run, _ in found.damage(seals) if run is not None}
    by_run = {(s.algo, s.seed): s for s in specs}
    reset = set()
    for run in sorted(damaged):
        spec = by_run.get(run)
        if spec is None or spec.weight_sharing:
            notes.append(f"cannot repair {run[0]} seed {run[1]} in this command: start a new --name for it")
            continue
        layout.unmark_finished(spec.run_dir)
        if spec.storage_uri is None and os.path.isdir(spec.tune_run_dir):
            import shutil

            shutil.rmtree(spec.tune_run_dir)  # its Tune state knew the lost trials: it starts again
        reset.add(run)
        notes.append(f"repaired: {run[0]} seed {run[1]} is evaluated again")
    if found.torn_last or found.bad_lines or reset:
        rewrite(path, lambda r: (r.get("algo"), r.get("seed")) not in reset)
    return notes


def summarise(spec: RunSpec, errored: int = 0, records: list[dict] | None = None, error: str | None = None) -> RunOutcome:
    """A run's outcome from what is on disk (its records in results.jsonl, and run.json)."""
    if records is None:
        records = records_by_run(spec.results_path).get((spec.algo, spec.seed), [])
    last = records[-1] if records else {}
    return RunOutcome(
        algo=spec.algo,
        seed=spec.seed,
        finished=spec.finished,
        trials=len({r["trial_id"] for r in records}),
        errored=errored,
        error=error,
        best_arch=last.get("best_arch"),
        best_test_acc=last.get("best_test_acc"),
        sim_seconds=float(last.get("sim_seconds") or 0.0),
        wall_seconds=float(layout.read_run(spec.run_dir).get("wall_seconds", 0.0)),
        simulated=spec.evaluate != "train",
        front=tuple(records_front(records)) if len(spec.objectives) > 1 else (),
    )


def records_by_run(results_path: str) -> dict[tuple[str, int], list[dict]]:
    """The records of results.jsonl grouped by (algo, seed), in file order (one read)."""
    runs: dict[tuple[str, int], list[dict]] = {}
    for record in read_records(results_path):
        runs.setdefault((record.get("algo"), record.get("seed")), []).append(record)
    return runs


def search_setups(specs: list[RunSpec], resources: dict) -> dict:
    """Per method of the experiment, what its trials need besides the seed: each method's own
    options travel with its trials (tas' FLOPs target reaches tas whichever method comes first)."""
    return {spec.algo: search_setup(spec, resources) for spec in specs}


def search_setup(spec: RunSpec, resources: dict):
    """What a weight-sharing trial of `spec`'s method needs besides its seed."""
    from autohas.trainables.weight_sharing.search import SearchRecipe, SearchSetup, method_settings

    return SearchSetup(
        space=spec.space,
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        algo=spec.algo,
        seed=spec.seed,
        select=spec.select,
        benchmark=spec.benchmark or None,
        recipe=SearchRecipe(epochs=spec.search_epochs, steps_per_epoch=spec.search_batches, retrain_epochs=spec.retrain_epochs),
        settings=method_settings(spec.algo, **spec.method_options),
        threads=max(1, int(resources["cpu"])),
        gpu=resources.get("gpu", 0) > 0,
        cache_dir=os.environ.get("AUTOHAS_DATA_CACHE"),
        latency_table=spec.latency_table,
        device=spec.device,
        latency_target=spec.latency_target,
    )


def save_saliency_maps(checkpoint, experiment_dir: str, algo: str, seed: int) -> str | None:
    """Keep the saliency maps a SANAS / LeaSE search left in its last checkpoint as arrays
    (`layout.saliency_arrays`; read from the checkpoint, so it works for trials that ran on other
    nodes), for the report to draw; None for methods without maps."""
    import numpy as np
    import torch

    from autohas.trainables.train import CHECKPOINT_FILE

    try:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, CHECKPOINT_FILE), map_location="cpu", weights_only=False)
    except OSError:  # a trial that failed before its first checkpoint: no maps, the error is reported
        return None
    maps = state.get("method", {}).get("maps")
    if not maps:
        return None
    path = layout.saliency_arrays(experiment_dir, algo, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, images=maps["images"].numpy(), saliency=maps["saliency"].float().numpy(), epoch=int(maps["epoch"]))
    return path


def _ws_trial_dirname(trial) -> str:
    run = trial.config["run"]
    return layout.run_name(run["algo"], run["seed"])


def execute_weight_sharing(specs: list[RunSpec], resume: bool = False) -> list[RunOutcome]:
    """Run the weight-sharing runs of an experiment as one Tune experiment, one trial per (algo, seed).

    One experiment lets the runs share the cluster: with `--gpus-per-trial 0.25` four
    searches train on one GPU at once. Each trial checkpoints every epoch; `resume`
    continues the experiment where it stopped.
    """
    from ray import tune

    from autohas.trainables.weight_sharing.search import weight_sharing_trainable

    if resume and all(s.finished for s in specs):
        return [summarise(s) for s in specs]
    first = specs[0]
    folder = storage.join(first.tune_experiment, WEIGHT_SHARING_DIR)
    runs = [(s.algo, s.seed) for s in specs]
    resources = trial_resources(first)
    trainable = tune.with_resources(
        tune.with_parameters(weight_sharing_trainable, setups=search_setups(specs, resources)), resources
    )

    def same_runs(trials: list) -> None:
        started = sorted((t.config["run"]["algo"], int(t.config["run"]["seed"])) for t in trials)
        if started != sorted(runs):
            names = ", ".join(f"{a} seed {s}" for a, s in started)
            raise AutohasError(f"this experiment's weight-sharing runs are {names}: resume them as they were, or start a new --name")

    def new_tuner():
        return tune.Tuner(
            trainable,
            param_space={"run": tune.grid_search([{"algo": a, "seed": s} for a, s in runs])},
            tune_config=tune.TuneConfig(
                max_concurrent_trials=concurrency_of(first, resources),
                trial_dirname_creator=_ws_trial_dirname,
            ),
            run_config=_run_config(first, WEIGHT_SHARING_DIR, ResultWriter(first.driver_file(RESULTS_FILE), runs, None, latest=True),
                                   search_progress(specs)),
        )

    start = time.perf_counter()
    grid = tuner_for(folder, first.results_path, runs, trainable, new_tuner, resume, check=same_runs).fit()
    wall = time.perf_counter() - start
    errors: dict[tuple[str, int], str] = {}
    for result in grid:
        run = (result.config["run"]["algo"], int(result.config["run"]["seed"]))
        if result.error is not None:
            errors[run] = str(result.error).strip().splitlines()[-1]
        if result.checkpoint is not None:
            save_saliency_maps(result.checkpoint, first.experiment_dir, *run)
    outcomes = []
    for spec in specs:
        spec.record_run(mode="tune", wall_seconds=wall)
        error = errors.get((spec.algo, spec.seed))
        done = records_by_run(spec.results_path).get((spec.algo, spec.seed), [])
        if error is None and done and int(done[-1]["epoch"]) >= spec.search_epochs + retrain_epochs_for(spec.algo, spec.retrain_epochs, bool(spec.benchmark)):
            spec.mark_finished(done)
        outcomes.append(summarise(spec, errored=int(error is not None), error=error))
    return outcomes
