"""Options made valid and complete: every default resolved, every check done before Ray starts.

`parse_options(argv)` = the schema's merge (defaults < --config YAML < command line) and coercion,
then `validate`: the algorithms, the space, the evaluation and what it needs (a benchmark that has
the dataset; training data that decodes), the resources, the weight-sharing methods' options. Bad
input ends as one AutohasError line; nothing here starts Ray or makes a folder.
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

from autohas.errors import AutohasError
from autohas.options import TRAIN, WEIGHT_SHARING, Options, coerce, merge, refuse_where_not_applicable

# NATS-Bench multi-trial budgets (simulated seconds), from the official scripts, per architecture space.
DEFAULT_TIME_BUDGETS = {
    "nats-tss": {"cifar10": 20000, "cifar100": 40000, "ImageNet16-120": 120000},
    "nats-sss": {"cifar10": 20000, "cifar100": 40000, "ImageNet16-120": 60000},
}
# Small enough for the offline default to finish in about 3 minutes on 2 CPU cores.
TRAIN_TIME_BUDGETS = {"digits": 150}  # CPU seconds of training on a CPU (about two of BOHB's brackets)
MODES = ("simulate", "tune")
EVALUATIONS = ("tabular", "train")
# Names NATS-Bench users type, and the canonical ones stored (experiment.yaml, records, folder names).
# cifar10's search signal already comes from NATS-Bench's cifar10-valid split (train 25k / valid 25k).
SPACE_ALIASES = {"tss": "nats-tss", "sss": "nats-sss"}
DATASET_ALIASES = {"cifar10-valid": "cifar10"}


def canonical(values: dict[str, Any]) -> dict[str, Any]:
    """Raw options with the aliases of space and dataset replaced by their canonical names."""
    for key, aliases in (("space", SPACE_ALIASES), ("dataset", DATASET_ALIASES)):
        if isinstance(values.get(key), str):
            values[key] = aliases.get(values[key], values[key])
    return values


def parse_options(argv: Sequence[str]) -> Options:
    """Defaults < --config YAML < command line, validated (AutohasError on bad input)."""
    merged = canonical(merge(argv))
    for required in ("algo", "space"):
        if required not in merged:
            raise AutohasError(f"--{required} is required (on the command line or in --config)")
    if isinstance(merged.get("time_budget"), dict):  # a preset: one budget per dataset
        budgets = merged["time_budget"]
        evaluate = default_evaluate(merged.get("evaluate"), merged.get("benchmark"))
        dataset = merged.get("dataset") or ("digits" if evaluate == "train" else "cifar10")
        if dataset not in budgets:
            raise AutohasError(f"the config's time-budget names no budget for dataset {dataset!r}")
        merged["time_budget"] = budgets[dataset]
    return validate(Options(**coerce(merged)))


def weight_sharing_algos(options: Any) -> list[str]:
    from autohas.trainables.weight_sharing import METHOD_NAMES

    return [a for a in options.algo if a in METHOD_NAMES]


def searches_black_box(options: Any) -> bool:
    """Whether any algorithm is a black-box searcher (the time budget is theirs; searches run for epochs)."""
    return len(weight_sharing_algos(options)) < len(options.algo)


def default_evaluate(evaluate: str | None, benchmark: str | None) -> str:
    """tabular when a benchmark is given (option or $AUTOHAS_BENCHMARK), else train."""
    if evaluate is not None:
        return evaluate
    return "tabular" if benchmark or os.environ.get("AUTOHAS_BENCHMARK") else "train"


def validate(options: Options) -> Options:
    from autohas.searchers import ALGORITHMS
    from autohas.spaces import get_space
    from autohas.trainables.weight_sharing import METHOD_NAMES

    options.space = SPACE_ALIASES.get(options.space, options.space)
    options.dataset = DATASET_ALIASES.get(options.dataset, options.dataset)
    get_space(options.space)
    for algo in options.algo:
        if algo not in ALGORITHMS and algo not in METHOD_NAMES:
            raise AutohasError(
                f"unknown algorithm {algo!r}; choose from: {', '.join(ALGORITHMS)} (searchers), "
                f"{', '.join(METHOD_NAMES)} (weight-sharing methods)"
            )
    if len(set(options.algo)) != len(options.algo):
        raise AutohasError(f"--algo names an algorithm twice: {','.join(options.algo)}")
    options.evaluate = default_evaluate(options.evaluate, options.benchmark)
    if options.evaluate not in EVALUATIONS:
        raise AutohasError(f"--evaluate must be one of {', '.join(EVALUATIONS)}, not {options.evaluate!r}")
    if options.seeds < 1 or (options.concurrency is not None and options.concurrency < 1):
        raise AutohasError("--seeds and --concurrency must be at least 1")
    if options.seed < 0 or options.seed + options.seeds > 2**32:
        raise AutohasError("seeds must lie in 0 .. 2**32-1")
    if options.num_samples is not None and options.num_samples < 1:
        raise AutohasError("--num-samples must be at least 1")
    if options.time_budget is not None and not (math.isfinite(options.time_budget) and options.time_budget > 0):
        raise AutohasError("--time-budget must be a positive number of seconds")
    if options.seed_mode not in ("sample", "mean"):
        raise AutohasError(f"--seed-mode must be sample or mean, not {options.seed_mode!r}")
    _validate_resources(options)
    places = {TRAIN} if options.evaluate == "train" else set()
    if weight_sharing_algos(options):
        places.add(WEIGHT_SHARING)
    refuse_where_not_applicable(options, places)
    _validate_weight_sharing(options)
    _validate_objectives(options)
    _validate_latency(options)
    _validate_scheduler(options)
    if options.evaluate == "train":
        _validate_training(options)
    else:
        _validate_tabular(options)
    _validate_fidelities(options)
    if options.mode not in MODES:
        raise AutohasError(f"--mode must be one of {', '.join(MODES)}, not {options.mode!r}")
    if options.max_failures < 0:
        raise AutohasError("--max-failures must be 0 (no retries) or more")
    if options.resume and options.overwrite:
        raise AutohasError("--resume continues an experiment and --overwrite deletes it: give one of them")
    if not (math.isfinite(options.connect_timeout) and options.connect_timeout > 0):
        raise AutohasError("--connect-timeout must be a positive number of seconds")
    from autohas.storage import open_storage

    options.storage = open_storage(options.storage).location  # a folder made absolute, or the URI
    if options.name is None:
        options.name = f"{options.space}-{options.dataset}"
    if os.sep in options.name or options.name.strip() != options.name or options.name in ("", ".", ".."):
        raise AutohasError(f"--name must be a plain folder name, not {options.name!r}")
    return options


def _validate_resources(options: Options) -> None:
    gpus, cpus = options.gpus_per_trial, options.cpus_per_trial
    if not (math.isfinite(gpus) and (gpus == 0 or gpus >= 0.01)) or (gpus > 1 and gpus != int(gpus)):
        raise AutohasError("--gpus-per-trial must be a fraction in [0.01, 1] or a whole number of GPUs")
    if cpus is not None and not (math.isfinite(cpus) and cpus >= 0.01):
        raise AutohasError("--cpus-per-trial must be a number of CPUs, at least 0.01")


def _validate_weight_sharing(options: Options) -> None:
    """Weight-sharing methods: the space each of them searches, a selection each can use, at least one epoch."""
    methods = weight_sharing_algos(options)
    if not methods:
        return
    from autohas.spaces import get_space
    from autohas.trainables.weight_sharing import HAS_METHODS, SIZE_METHODS

    space = get_space(options.space)
    hyper = "has"  # the space of architectures x hyperparameters AutoHAS searches
    size, topology = [a for a in methods if a in SIZE_METHODS], [a for a in methods if a not in SIZE_METHODS]
    if space.architecture_space == "nats-sss" and topology:
        raise AutohasError(f"{', '.join(topology)} search nats-tss or {hyper}; on nats-sss use {', '.join(SIZE_METHODS)}")
    if space.architecture_space != "nats-sss" and size:
        raise AutohasError(f"{', '.join(size)} search nats-sss widths, not {options.space}")
    if space.architecture_space not in ("nats-tss", "nats-sss"):
        raise AutohasError(f"weight-sharing methods search nats-tss, nats-sss or {hyper}, not {options.space}")
    if options.warmup_ratio is not None and not (size and 0 <= options.warmup_ratio < 1):
        raise AutohasError(f"--warmup-ratio is a fraction in [0, 1) of the search epochs of {', '.join(SIZE_METHODS)}")
    if options.flops_target is not None and not ("tas" in methods and options.flops_target > 0):
        raise AutohasError("--flops-target is tas' target in MFLOPs, a number above 0")
    needs_hp = [a for a in methods if a in HAS_METHODS]
    if needs_hp and options.space != hyper:
        raise AutohasError(f"{', '.join(needs_hp)} search hyperparameters too: use --space {hyper}")
    from autohas.trainables.weight_sharing.search import check_method

    for algo in methods:
        try:
            check_method(algo, options.select, options.space)
        except ValueError as exc:
            raise AutohasError(str(exc)) from None
    options.search_epochs = 100 if options.search_epochs is None else options.search_epochs
    if options.search_epochs < 1 or (options.search_batches is not None and options.search_batches < 1):
        raise AutohasError("--search-epochs and --search-batches must be at least 1")
    if options.retrain_epochs is not None and options.retrain_epochs < 0:
        raise AutohasError("--retrain-epochs must be 0 (no re-training) or more")


def _validate_objectives(options: Options) -> None:
    """--objectives: accuracy alone (default), or accuracy and latency in the canonical order, which needs a
    latency (a table's device, or one measured in train mode: local-cpu / local-gpu), searchers that take
    two objectives, and no trial scheduler."""
    from autohas.latency import LOCAL_DEVICES
    from autohas.searchers import MULTI_OBJECTIVE, canonical_objectives

    options.objectives = list(canonical_objectives(options.objectives))
    if options.objectives == ["accuracy"]:
        return
    flag = f"--objectives {','.join(options.objectives)}"
    measured = options.device in LOCAL_DEVICES and options.latency_table is None  # each trial times its network
    if options.device is None or (options.latency_table is None and not measured):
        raise AutohasError(f"{flag} needs --latency-table PATH and --device NAME (the latency it minimises), or "
                           "--device local-cpu / local-gpu with --evaluate train (a measured one)")
    unsupported = [a for a in options.algo if a not in MULTI_OBJECTIVE]
    if unsupported:
        raise AutohasError(f"{flag}: {', '.join(unsupported)} {'searches' if len(unsupported) == 1 else 'search'} one "
                           f"objective; multi-objective search is for "
                           f"{', '.join(MULTI_OBJECTIVE)}")
    if options.scheduler is not None:
        raise AutohasError(f"{flag} cannot run with --scheduler {options.scheduler}: a trial scheduler stops trials on "
                           "one metric; drop --scheduler")


def _validate_latency(options: Options) -> None:
    """Hardware-aware search: a latency table that covers the space, a device of it, a limit that some
    architecture meets; all read here (tens of milliseconds), so a run never meets a bad table. Or a
    measured latency (--device local-cpu / local-gpu, train mode)."""
    from autohas.latency import LOCAL_DEVICES

    if options.device in LOCAL_DEVICES:
        _validate_measured_latency(options)
        return
    if options.latency_batch is not None:
        raise AutohasError("--latency-batch is for --device local-cpu / local-gpu (a latency table's device names its batch)")
    if options.latency_table is None:
        for name in ("device", "latency_limit", "latency_target"):
            if getattr(options, name) is not None:
                raise AutohasError(f"--{name.replace('_', '-')} needs --latency-table PATH (a CSV of latencies per "
                                   "architecture: arch_index, arch_str, <device>_ms columns)"
                                   + (", or --device local-cpu / local-gpu (train mode: measured)" if name == "device" else ""))
        return
    from autohas.latency import device_names, read_latency
    from autohas.spaces import get_space

    if not os.path.exists(options.latency_table):
        raise AutohasError(f"--latency-table {options.latency_table} does not exist")
    options.latency_table = os.path.abspath(options.latency_table)
    if options.device is None:
        raise AutohasError(f"--latency-table needs --device NAME; choose from: {', '.join(sorted(device_names(options.latency_table)))}")
    limit = options.latency_limit
    methods = weight_sharing_algos(options)
    if limit is not None and methods:
        from autohas.searchers import ALGORITHMS

        raise AutohasError(f"--latency-limit is not supported yet for weight-sharing methods ({', '.join(methods)}): "
                           f"constrained search is for the black-box searchers ({', '.join(ALGORITHMS)})")
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise AutohasError("--latency-limit must be a positive number of milliseconds")
    _validate_latency_target(options, methods)
    space = get_space(options.space)
    latency = read_latency(options.latency_table, options.device, space)
    if limit is not None and float(latency.min()) > limit:
        raise AutohasError(f"no {space.name} architecture runs within {limit:g} ms on {options.device} "
                           f"(fastest: {float(latency.min()):.4g} ms)")
    target = options.latency_target
    if target is not None and float(latency.min()) > target:
        raise AutohasError(f"--latency-target {target:g} ms is below the fastest {space.name} architecture on "
                           f"{options.device} ({float(latency.min()):.4g} ms)")
    if target is not None and target > float(latency.max()):  # TAS' term would push toward the slowest cells all along
        raise AutohasError(f"--latency-target {target:g} ms is above the slowest {space.name} architecture on "
                           f"{options.device} ({float(latency.max()):.4g} ms): every cell meets it, leave it out")


MAX_LATENCY_BATCH = 4096  # inputs per timed forward: more is an allocation failure in every trial, not a measurement


def _validate_latency_target(options: Options, methods: list[str]) -> None:
    """--latency-target: a positive number of ms, for weight-sharing methods with a differentiable
    architecture distribution on nats-tss only (black-box searchers have --latency-limit)."""
    target = options.latency_target
    if target is None:
        return
    if not (math.isfinite(target) and target > 0):
        raise AutohasError("--latency-target must be a positive number of milliseconds")
    black_box = [a for a in options.algo if a not in methods]
    if black_box:
        raise AutohasError(f"--latency-target is a loss term of weight-sharing search; {', '.join(black_box)} "
                           "search black-box: give them --latency-limit MS instead (in an experiment of their own)")
    from autohas.trainables.weight_sharing import check_latency_target

    try:
        check_latency_target(methods, options.space)
    except ValueError as exc:
        raise AutohasError(str(exc)) from None


def _validate_measured_latency(options: Options) -> None:
    """--device local-cpu / local-gpu: each trained network timed on its trial's machine. Nothing to time
    in tabular mode, nothing to look up in a table, known too late for a limit, a GPU to time on."""
    device = options.device
    if options.evaluate != "train":
        raise AutohasError(f"--device {device} measures the networks that --evaluate train builds; a tabular benchmark "
                           "builds none: use --latency-table PATH --device NAME (one of the table's devices)")
    if options.latency_table is not None:
        raise AutohasError(f"--device {device} measures on the trial's machine and reads no table: drop --latency-table, "
                           "or name one of the table's devices")
    if options.latency_limit is not None:
        raise AutohasError(f"--latency-limit cannot be used with --device {device}: a measured latency is known only once "
                           "a trial has built its network, too late to skip an over-limit one; use --latency-table PATH")
    methods = weight_sharing_algos(options)
    if methods:
        raise AutohasError(f"--device {device} measures the candidates that black-box searchers train; the weight-sharing "
                           f"methods ({', '.join(methods)}) are not measured: leave them out or use --latency-table PATH")
    if device == "local-gpu" and not options.gpus_per_trial:
        raise AutohasError("--device local-gpu measures on each trial's GPU: add --gpus-per-trial (e.g. 1)")
    options.latency_batch = 1 if options.latency_batch is None else options.latency_batch
    if not 1 <= options.latency_batch <= MAX_LATENCY_BATCH:
        raise AutohasError(f"--latency-batch must be from 1 to {MAX_LATENCY_BATCH:,} inputs per timed forward")


def evaluation_fidelities(options: Options) -> list[int]:
    """The epochs at which an evaluation of the (validated) experiment reports a search signal."""
    if options.evaluate == "train":
        return list(range(1, options.epochs + 1))
    from autohas.bench import open_benchmark
    from autohas.spaces import get_space

    bench = open_benchmark(options.benchmark, get_space(options.space).architecture_space)
    return bench.epochs_up_to(bench.default_budget)


def _validate_scheduler(options: Options) -> None:
    """--scheduler: one of Tune's, for black-box searchers (bohb has its own); checked before any data loads."""
    if options.scheduler is None:
        return
    from autohas import searchers

    if options.scheduler not in searchers.SCHEDULERS:
        raise AutohasError(f"--scheduler must be one of {', '.join(searchers.SCHEDULERS)}, not {options.scheduler!r}")
    black_box = [a for a in options.algo if a not in weight_sharing_algos(options)]
    if not black_box:
        raise AutohasError(f"--scheduler {options.scheduler} schedules the trials of black-box searchers "
                           f"({', '.join(searchers.ALGORITHMS)}); weight-sharing searches are one trial each")
    for algo in black_box:
        searchers.check_scheduler(algo, options.scheduler)


def _validate_fidelities(options: Options) -> None:
    """A scheduler stops trials at lower fidelities: the evaluation must have several."""
    epochs = evaluation_fidelities(options) if options.scheduler is not None else []
    if len(epochs) == 1:
        where = "--epochs 1" if options.evaluate == "train" else f"the benchmark {os.path.basename(options.benchmark)}"
        raise AutohasError(
            f"--scheduler {options.scheduler} stops trials at fewer epochs, but {where} has one fidelity only "
            f"({epochs[0]} epochs): use the official NATS-Bench files (1..12 epochs) or --evaluate train"
        )


def _load_training_data(options: Options) -> None:
    """Check --data-dir and decode the dataset once in the driver: bad sources fail here, in one line."""
    if options.data_dir is not None:
        if not os.path.exists(options.data_dir):
            raise AutohasError(f"--data-dir {options.data_dir} does not exist")
        options.data_dir = os.path.abspath(options.data_dir)
    from autohas.data import load_splits

    load_splits(options.dataset, data_dir=options.data_dir)  # trials read the cache


def _default_time_budget(options: Options, datasets: dict[str, float]) -> None:
    if options.time_budget is None and options.num_samples is None and searches_black_box(options):
        options.time_budget = float(datasets.get(options.dataset, datasets["cifar10"]))


def _validate_tabular(options: Options) -> None:
    """A benchmark lookup: a benchmark for the space that has the dataset (and its data, for weight sharing)."""
    from autohas.bench import DATASETS, default_benchmark_path, open_benchmark
    from autohas.spaces import get_space

    space = get_space(options.space)
    if not space.tabular:
        raise AutohasError(f"{options.space} has no tabular benchmark (its hyperparameters change the numbers): "
                           "use --evaluate train")
    options.dataset = options.dataset or "cifar10"
    if options.dataset not in DATASETS:
        raise AutohasError(f"unknown dataset {options.dataset!r}; choose from: {', '.join(DATASETS)}")
    if options.mode is None:
        options.mode = "simulate" if options.seeds > 1 else "tune"
    if options.concurrency is None:
        options.concurrency = 1  # the NATS-Bench protocol
    if options.benchmark is None:
        options.benchmark = default_benchmark_path()
        if not os.path.exists(options.benchmark):
            raise AutohasError(f"no --benchmark given and {options.benchmark} does not exist")
    bench = open_benchmark(options.benchmark, space.architecture_space)
    bench.check_dataset(options.dataset)
    bench.check_complete()
    options.benchmark = os.path.abspath(options.benchmark)
    total = bench.total_cost(options.dataset, bench.default_budget)
    if options.time_budget is not None and options.num_samples is None and total is not None and options.time_budget > total:
        raise AutohasError(
            f"--time-budget {options.time_budget:g} s is more than evaluating all {space.size:,} architectures once costs "
            f"on {options.dataset} ({total:,.0f} s): it would never run out; give at most {total:.0f}"
        )
    _default_time_budget(options, DEFAULT_TIME_BUDGETS[space.architecture_space])
    if weight_sharing_algos(options):
        _load_training_data(options)


def _validate_training(options: Options) -> None:
    """Real training: a known dataset, Ray Tune trials, a schedule of at least one epoch."""
    from autohas.data import TRAIN_DATASETS
    from autohas.spaces import get_space

    options.dataset = options.dataset or "digits"
    if options.dataset not in TRAIN_DATASETS:
        raise AutohasError(f"unknown dataset {options.dataset!r} for --evaluate train; choose from: {', '.join(TRAIN_DATASETS)}")
    if options.benchmark is not None:
        raise AutohasError("--benchmark is for --evaluate tabular; --evaluate train trains every candidate")
    if options.mode == "simulate":
        raise AutohasError("--mode simulate needs a tabular benchmark; --evaluate train runs Ray Tune trials")
    options.mode = "tune"
    options.epochs = 12 if options.epochs is None else options.epochs
    if options.epochs < 1:
        raise AutohasError("--epochs must be at least 1")
    _load_training_data(options)
    budgets = DEFAULT_TIME_BUDGETS.get(get_space(options.space).architecture_space, DEFAULT_TIME_BUDGETS["nats-tss"])
    _default_time_budget(options, {**budgets, **TRAIN_TIME_BUDGETS})
