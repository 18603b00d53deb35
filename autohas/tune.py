"""The command line: `python -m autohas.tune --algo rea --space nats-tss ...`.

Options come from three places, later ones winning: built-in defaults, `--config
FILE.yaml`, the command line. Bad input ends with one line on stderr and exit 2;
an interrupted experiment ends with exit 130 and continues with `--resume`.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, fields
from typing import Any, Sequence

from autohas.errors import AutohasError
from autohas.spaces.has import NAME as HAS
from autohas.spaces.has import arch_space
from autohas.results import RESULTS_FILE

# NATS-Bench multi-trial budgets (simulated seconds), from the official scripts.
DEFAULT_TIME_BUDGETS = {
    "nats-tss": {"cifar10": 20000, "cifar100": 40000, "ImageNet16-120": 120000},
    "nats-sss": {"cifar10": 20000, "cifar100": 40000, "ImageNet16-120": 60000},
}
EXPERIMENT_FILE = "experiment.yaml"
# Options that define what an experiment measures: a resumed one must keep them.
# Small enough for the offline default to finish in about 3 minutes on 2 CPU cores.
TRAIN_TIME_BUDGETS = {"digits": 150}  # CPU seconds of training on a CPU (about two of BOHB's brackets)
FIXED_ON_RESUME = (
    "space", "dataset", "benchmark", "time_budget", "num_samples", "concurrency", "seed_mode",
    "evaluate", "data_dir", "epochs", "cpus_per_trial", "gpus_per_trial", "select", "search_epochs", "search_batches", "retrain_epochs",
    "warmup_ratio", "flops_target",
)
MODES = ("simulate", "tune")
EVALUATIONS = ("tabular", "train")


@dataclass
class Options:
    algo: list[str]
    space: str
    dataset: str | None = None  # None: cifar10 (tabular) / digits (train)
    benchmark: str | None = None
    time_budget: float | None = None
    num_samples: int | None = None
    seed: int = 0
    seeds: int = 1
    concurrency: int | None = None  # None: 1 (tabular) / as many as the trial resources fit (train)
    seed_mode: str = "sample"
    mode: str | None = None  # "simulate" or "tune"; None: simulate when several seeds
    storage: str = "results"
    name: str | None = None
    evaluate: str | None = None  # None: tabular when a benchmark is given, else train
    data_dir: str | None = None
    epochs: int | None = None  # train: None = 12 (H0)
    cpus_per_trial: float | None = None
    gpus_per_trial: float = 0.0
    select: str | None = None  # weight sharing: selection criterion (None: each method's default)
    search_epochs: int | None = None  # weight sharing: None = 100 (NATS-Bench)
    search_batches: int | None = None  # weight sharing: steps per epoch; None = one pass over the training split
    retrain_epochs: int | None = None  # weight sharing: re-train the final architecture (None: each method's default)
    warmup_ratio: float | None = None  # nats-sss weight sharing: fraction of epochs training the widest network alone (None: 0)
    flops_target: float | None = None  # tas: target MFLOPs of TAS' cost loss (None: no cost term)
    max_failures: int = 2  # retries of a failed trial (lost node, out of memory), from its last checkpoint
    address: str | None = None  # a running Ray cluster; None: $RAY_ADDRESS, else a local Ray
    resume: bool = False
    overwrite: bool = False


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise AutohasError(message)


def build_parser() -> argparse.ArgumentParser:
    from autohas.spaces import SPACE_NAMES
    from searchers import ALGORITHMS
    from trainables.weight_sharing import METHOD_NAMES, SELECTION_NAMES

    p = _Parser(
        prog="python -m autohas.tune",
        description="Run NAS/HPO searchers with Ray Tune and write results in the common schema.",
        argument_default=argparse.SUPPRESS,
        epilog=f"searchers: {', '.join(ALGORITHMS)}; weight-sharing methods: {', '.join(METHOD_NAMES)}; "
        f"spaces: {', '.join(SPACE_NAMES)}, {HAS} (architecture x hyperparameters, weight-sharing methods only). "
        "Results: <storage>/<name>/results.jsonl (one JSON record per reported step).",
    )
    p.add_argument("--algo", help=f"searchers and/or weight-sharing methods, comma-separated: {', '.join(ALGORITHMS + METHOD_NAMES)}")
    p.add_argument("--space", help=f"search space: {', '.join(SPACE_NAMES)}, or {HAS} for weight-sharing methods (autohas needs it)")
    p.add_argument(
        "--dataset",
        help="tabular: cifar10 | cifar100 | ImageNet16-120 (default cifar10); train: those, fashion-mnist, "
        "digits or imagefolder (default digits)",
    )
    p.add_argument(
        "--benchmark",
        help="a NATS-Bench CSV table, an official '-simple' folder, or a folder holding one "
        "(default: $AUTOHAS_BENCHMARK, else $TORCH_HOME, else ~/.torch)",
    )
    p.add_argument(
        "--evaluate",
        choices=EVALUATIONS,
        help="tabular: look candidates up in the benchmark; train: train each candidate for real "
        "(default: tabular when --benchmark or $AUTOHAS_BENCHMARK is given, else train)",
    )
    p.add_argument("--data-dir", help="train: the dataset's files (a folder, or a .tar.gz of class folders)")
    p.add_argument("--epochs", type=int, help="train: length of the training schedule in epochs (default 12, NATS-Bench H0)")
    p.add_argument(
        "--select",
        help=f"weight sharing: how the architecture is derived: {', '.join(SELECTION_NAMES)} "
        "(default: alpha for darts-v1/v2 and gdas, sampled for rsps, setn and enas)",
    )
    p.add_argument("--search-epochs", type=int, help="weight sharing: epochs of supernet search (default 100, NATS-Bench)")
    p.add_argument(
        "--search-batches", type=int, help="weight sharing: search steps per epoch, for quick runs (default: one pass over the training split)"
    )
    p.add_argument(
        "--retrain-epochs",
        type=int,
        help="weight sharing: re-train each final architecture from scratch for this many epochs with H0 "
        "(and AutoHAS' derived hyperparameters); default 12 for autohas and autohas-hp, and for tas, mask-gumbel "
        "and mask-sample without a benchmark; 0 (none) for the others",
    )
    p.add_argument(
        "--warmup-ratio",
        type=float,
        help="nats-sss weight sharing: the first fraction of the search epochs trains the widest network alone "
        "(shared weights only; NATS-Bench's warm-up); default 0",
    )
    p.add_argument(
        "--flops-target",
        type=float,
        help="tas: add TAS' cost loss toward this many MFLOPs (lambda 2, tolerance 5%%); default none, as NATS-Bench",
    )
    p.add_argument("--cpus-per-trial", type=float, help="CPUs each trial reserves (default: the machine's, shared by --concurrency)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs each trial reserves, e.g. 0.25 packs four trials on one GPU")
    p.add_argument(
        "--time-budget",
        type=float,
        help="training seconds per run: simulated (tabular; default NATS-Bench's) or measured (train)",
    )
    p.add_argument("--num-samples", type=int, help="at most this many trials per run")
    p.add_argument("--seed", type=int, help="first seed (default 0)")
    p.add_argument("--seeds", type=int, help="number of seeds: runs seeds S..S+K-1 (default 1)")
    p.add_argument("--concurrency", type=int, help="trials at once per run (default 1; train: as many as the resources fit)")
    p.add_argument("--seed-mode", choices=("sample", "mean"), help="benchmark runs: one per evaluation (default) or their mean")
    p.add_argument(
        "--mode",
        choices=MODES,
        help="simulate: a simulated-clock driver, seeds in parallel (default with --seeds > 1); "
        "tune: every trial a Ray Tune trial (default for one seed)",
    )
    p.add_argument(
        "--storage",
        help="where experiments go: a folder (default ./results) or a URI Ray Tune's storage accepts, e.g. s3://bucket/autohas; "
        "on a cluster it must be reachable from every node (object storage or a shared file system)",
    )
    p.add_argument(
        "--address",
        help="the Ray cluster to run on, e.g. 10.0.0.1:6379 (default: $RAY_ADDRESS, which `ray job submit` sets, else a new local Ray)",
    )
    p.add_argument(
        "--max-failures",
        type=int,
        help="retry a failed trial (a lost node, a crash, out of GPU memory) this many times from its last checkpoint (default 2)",
    )
    p.add_argument("--name", help="experiment name (default <space>-<dataset>)")
    p.add_argument("--config", help="YAML file with any of these options (the command line wins)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted experiment")
    p.add_argument("--overwrite", action="store_true", help="delete an existing experiment of this name first")
    return p


def _read_yaml(path: str) -> dict:
    import yaml

    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise AutohasError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where else ""
        raise AutohasError(f"malformed YAML in {path}{at}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AutohasError(f"config {path} must be a mapping of option: value")
    known = {f.name for f in fields(Options)}
    options = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise AutohasError(f"config {path}: unknown option {key!r}")
        options[name] = value
    return options


def _as_algos(value: Any) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    algos = [str(a).strip() for a in items if str(a).strip()]
    if not algos:
        raise AutohasError("--algo is empty")
    return algos


def _whole(name: str, value: Any) -> int:
    """An integer option's value; a YAML 2.7 is an error, not a silent 2."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{name.replace('_', '-')} must be a whole number, not {value!r}")
    return int(value)


def parse_options(argv: Sequence[str]) -> Options:
    """Defaults < --config YAML < command line, validated (AutohasError on bad input)."""
    given = vars(build_parser().parse_args(list(argv)))
    merged: dict[str, Any] = {}
    if "config" in given:
        merged.update(_read_yaml(given.pop("config")))
    merged.update(given)
    for required in ("algo", "space"):
        if required not in merged:
            raise AutohasError(f"--{required} is required (on the command line or in --config)")
    merged["algo"] = _as_algos(merged["algo"])
    for name in ("space", "dataset", "benchmark", "storage", "name", "seed_mode", "mode", "evaluate", "data_dir", "select", "address"):
        if merged.get(name) is not None and not isinstance(merged[name], str):
            raise AutohasError(f"option {name.replace('_', '-')} must be a single value, not {merged[name]!r}")
    if isinstance(merged.get("time_budget"), dict):  # a preset: one budget per dataset
        budgets = merged["time_budget"]
        dataset = merged.get("dataset") or ("digits" if _default_evaluate(merged.get("evaluate"), merged.get("benchmark")) == "train" else "cifar10")
        if dataset not in budgets:
            raise AutohasError(f"the config's time-budget names no budget for dataset {dataset!r}")
        merged["time_budget"] = budgets[dataset]
    try:
        options = Options(**merged)
        for name in ("seed", "seeds", "num_samples", "concurrency", "epochs", "search_epochs", "search_batches", "retrain_epochs", "max_failures"):
            if getattr(options, name) is not None:
                setattr(options, name, _whole(name, getattr(options, name)))
        for name in ("time_budget", "cpus_per_trial", "warmup_ratio", "flops_target"):
            if getattr(options, name) is not None:
                setattr(options, name, float(getattr(options, name)))
        options.gpus_per_trial = float(options.gpus_per_trial)
    except (TypeError, ValueError) as exc:
        raise AutohasError(f"bad option value: {exc}") from None
    return validate(options)


def validate(options: Options) -> Options:
    from autohas.runner import is_weight_sharing
    from autohas.spaces import get_space

    if options.space != HAS:
        get_space(options.space)
    from searchers import ALGORITHMS

    for algo in options.algo:
        if algo not in ALGORITHMS and not is_weight_sharing(algo):
            raise AutohasError(
                f"unknown algorithm {algo!r}; choose from: {', '.join(ALGORITHMS)} (searchers), "
                f"{', '.join(_method_names())} (weight-sharing methods)"
            )
    if len(set(options.algo)) != len(options.algo):
        raise AutohasError(f"--algo names an algorithm twice: {','.join(options.algo)}")
    options.evaluate = _default_evaluate(options.evaluate, options.benchmark)
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
    _validate_weight_sharing(options)
    if options.evaluate == "train":
        _validate_training(options)
    else:
        _validate_tabular(options)
    if options.mode not in MODES:
        raise AutohasError(f"--mode must be one of {', '.join(MODES)}, not {options.mode!r}")
    if options.max_failures < 0:
        raise AutohasError("--max-failures must be 0 (no retries) or more")
    from autohas.storage import open_storage

    options.storage = open_storage(options.storage).location  # a folder made absolute, or the URI
    options.name = options.name or f"{options.space}-{options.dataset}"
    if os.sep in options.name or options.name in ("", ".", ".."):
        raise AutohasError(f"--name must be a plain folder name, not {options.name!r}")
    return options


def _default_evaluate(evaluate: str | None, benchmark: str | None) -> str:
    """tabular when a benchmark is given (option or $AUTOHAS_BENCHMARK), else train."""
    if evaluate is not None:
        return evaluate
    return "tabular" if benchmark or os.environ.get("AUTOHAS_BENCHMARK") else "train"


def _validate_resources(options: Options) -> None:
    gpus, cpus = options.gpus_per_trial, options.cpus_per_trial
    if not (math.isfinite(gpus) and (gpus == 0 or gpus >= 0.01)) or (gpus > 1 and gpus != int(gpus)):
        raise AutohasError("--gpus-per-trial must be a fraction in [0.01, 1] or a whole number of GPUs")
    if cpus is not None and not (math.isfinite(cpus) and cpus >= 0.01):
        raise AutohasError("--cpus-per-trial must be a number of CPUs, at least 0.01")


def _weight_sharing_algos(options: Options) -> list[str]:
    from autohas.runner import is_weight_sharing

    return [a for a in options.algo if is_weight_sharing(a)]


def _validate_weight_sharing(options: Options) -> None:
    """Weight-sharing methods: the space each of them searches, a selection each can use, at least one epoch."""
    methods = _weight_sharing_algos(options)
    if not methods:
        for name in ("select", "search_epochs", "search_batches", "retrain_epochs", "warmup_ratio", "flops_target"):
            if getattr(options, name) is not None:
                raise AutohasError(f"--{name.replace('_', '-')} is for weight-sharing methods ({', '.join(_method_names())})")
        return
    from trainables.weight_sharing import HAS_METHODS, SIZE_METHODS
    from trainables.weight_sharing.search import check_method

    size, topology = [a for a in methods if a in SIZE_METHODS], [a for a in methods if a not in SIZE_METHODS]
    if options.space == "nats-sss" and topology:
        raise AutohasError(f"{', '.join(topology)} search nats-tss or {HAS}; on nats-sss use {', '.join(SIZE_METHODS)}")
    if options.space != "nats-sss" and size:
        raise AutohasError(f"{', '.join(size)} search nats-sss widths, not {options.space}")
    if options.warmup_ratio is not None and not (size and 0 <= options.warmup_ratio < 1):
        raise AutohasError(f"--warmup-ratio is a fraction in [0, 1) of the search epochs of {', '.join(SIZE_METHODS)}")
    if options.flops_target is not None and not ("tas" in methods and options.flops_target > 0):
        raise AutohasError("--flops-target is tas' target in MFLOPs, a number above 0")
    if options.space == HAS and len(methods) < len(options.algo):
        others = ", ".join(a for a in options.algo if a not in methods)
        raise AutohasError(f"the {HAS} space is for weight-sharing methods; {others} search nats-tss or nats-sss")
    needs_hp = [a for a in methods if a in HAS_METHODS]
    if needs_hp and options.space != HAS:
        raise AutohasError(f"{', '.join(needs_hp)} search hyperparameters too: use --space {HAS}")

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


def _searches_black_box(options: Options) -> bool:
    """Whether any algorithm is a black-box searcher (the time budget is theirs; searches run for epochs)."""
    return len(_weight_sharing_algos(options)) < len(options.algo)


def _method_names() -> tuple[str, ...]:
    from trainables.weight_sharing import METHOD_NAMES

    return METHOD_NAMES


def _load_training_data(options: Options) -> None:
    """Check --data-dir and decode the dataset once in the driver: bad sources fail here, in one line."""
    if options.data_dir is not None:
        if not os.path.exists(options.data_dir):
            raise AutohasError(f"--data-dir {options.data_dir} does not exist")
        options.data_dir = os.path.abspath(options.data_dir)
    from autohas.data import load_splits

    load_splits(options.dataset, data_dir=options.data_dir)  # trials read the cache


def _validate_tabular(options: Options) -> None:
    """A benchmark lookup: a benchmark for the space that has the dataset (and its data, for weight sharing)."""
    from autohas.bench import DATASETS, default_benchmark_path, open_benchmark

    for name in ("data_dir", "epochs"):
        if name == "data_dir" and _weight_sharing_algos(options):
            continue  # the supernet trains on real data; the benchmark only scores derived architectures
        if getattr(options, name) is not None:
            raise AutohasError(f"--{name.replace('_', '-')} is for --evaluate train (a tabular benchmark has fixed data and schedules)")
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
    bench = open_benchmark(options.benchmark, arch_space(options.space))
    bench.check_dataset(options.dataset)
    options.benchmark = os.path.abspath(options.benchmark)
    if options.time_budget is None and options.num_samples is None and _searches_black_box(options):
        options.time_budget = float(DEFAULT_TIME_BUDGETS[options.space][options.dataset])
    if _weight_sharing_algos(options):
        _load_training_data(options)


def _validate_training(options: Options) -> None:
    """Real training: a known dataset, Ray Tune trials, a schedule of at least one epoch."""
    from autohas.data import TRAIN_DATASETS

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
    if options.time_budget is None and options.num_samples is None and _searches_black_box(options):
        budgets = DEFAULT_TIME_BUDGETS[options.space]
        options.time_budget = float(TRAIN_TIME_BUDGETS.get(options.dataset, budgets.get(options.dataset, budgets["cifar10"])))


def _experiment_record(options: Options) -> dict:
    from autohas.storage import redact

    record = {f.name: getattr(options, f.name) for f in fields(Options) if f.name not in ("resume", "overwrite", "address")}
    record["storage"] = redact(options.storage)  # a URI's query may hold credentials
    return record


def prepare_experiment(options: Options) -> str:
    """Create (or check, on --resume) the experiment folder; it keeps its options in experiment.yaml.

    With remote storage the folder is the local copy of the experiment, fetched from the storage first.
    """
    import yaml

    from autohas.storage import open_storage

    store = open_storage(options.storage)
    store.pull(options.name)
    folder = store.local_dir(options.name)
    saved_path = os.path.join(folder, EXPERIMENT_FILE)
    exists = os.path.isdir(folder) and bool(os.listdir(folder))
    ours = os.path.exists(saved_path) or os.path.exists(os.path.join(folder, RESULTS_FILE))
    if exists and not ours:
        raise AutohasError(f"{folder} exists and is not an autohas experiment: choose another --storage or --name")
    if exists and options.overwrite:
        store.delete(options.name)
        exists = False
    if exists and not options.resume:
        raise AutohasError(f"{folder} already holds an experiment: add --resume to continue it, --overwrite to replace it, or choose another --name")
    if options.resume and os.path.exists(saved_path):
        saved = _read_yaml(saved_path)
        for key in FIXED_ON_RESUME:
            if key in saved and saved[key] != getattr(options, key):
                raise AutohasError(f"cannot resume {folder} with --{key.replace('_', '-')} {getattr(options, key)}: it was started with {saved[key]}")
        algos = list(saved.get("algo", []))
        options.algo = algos + [a for a in options.algo if a not in algos]
    try:
        os.makedirs(folder, exist_ok=True)
        with open(saved_path, "w") as handle:
            yaml.safe_dump(_experiment_record(options), handle, sort_keys=False)
        open(os.path.join(folder, RESULTS_FILE), "a").close()
    except OSError as exc:
        raise AutohasError(f"cannot write the experiment folder {folder}: {exc.strerror}") from None
    _write_protocol(folder, options)
    store.push(options.name)
    return folder


def _write_protocol(folder: str, options: Options) -> None:
    """What the report states about how the numbers were obtained."""
    import json

    from autohas.results import PROTOCOL_FILE

    protocol = {
        "space": options.space,
        "dataset": options.dataset,
        "evaluate": options.evaluate,
        "time_budget": options.time_budget,
        "num_samples": options.num_samples,
        "concurrency": options.concurrency,
    }
    from autohas.data import split_note

    if options.evaluate == "train":
        from trainables.train import recipe_for

        protocol.update(
            benchmark=f"none: every candidate trained for real on {options.dataset} ({split_note(options.dataset)})",
            signal=f"validation accuracy after epoch e of the {options.epochs}-epoch NATS-Bench H0 schedule "
            f"(batch {recipe_for(options.dataset).batch_size}); test accuracy measured on the test split",
            clock="measured training + validation seconds (CPU seconds of the trial on a CPU, wall seconds on a GPU)",
            seed_mode="one training run per evaluation",
        )
    else:
        from autohas.bench import open_benchmark

        bench = open_benchmark(options.benchmark, arch_space(options.space))
        protocol.update(benchmark=bench.source, signal=bench.signal, clock="simulated", seed_mode=options.seed_mode)
    methods = _weight_sharing_algos(options)
    if methods:
        from trainables.weight_sharing.search import describe_searches

        looked_up = options.evaluate == "tabular"
        protocol["weight_sharing"] = describe_searches(
            methods, options.dataset, options.search_epochs, options.select, looked_up, options.retrain_epochs,
            options.space, options.warmup_ratio or 0.0, options.flops_target,
        )
        if not _searches_black_box(options):  # the experiment's numbers are the searches' alone
            protocol.update(
                benchmark=protocol["benchmark"] if looked_up else f"none ({options.dataset}: {split_note(options.dataset)})",
                signal="accuracy of the architecture derived each epoch, inside the supernet, on the validation split",
                clock="measured search seconds",
                seed_mode="one search per seed",
            )
    with open(os.path.join(folder, PROTOCOL_FILE), "w") as handle:
        json.dump(protocol, handle, indent=1)


def _start_ray(address: str | None = None) -> bool:
    """Connect to the cluster at `address` (or $RAY_ADDRESS), else start a small local Ray,
    unless this process is already connected; True if we connected."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        else:
            # Ray's default worker niceness (15) starves the trials beside any busy process: a local
            # run's workers share the machine fairly instead; and torch's OpenMP threads wait passively,
            # else beside other work they spin (measured: a 2-thread digits epoch 6x slower)
            os.environ.setdefault("RAY_worker_niceness", "0")
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise AutohasError(f"cannot connect to {where}: {str(exc).strip().splitlines()[0]}") from None
    return True


def _specs(options: Options, folder: str) -> list:
    from autohas.runner import RunSpec, is_weight_sharing
    from autohas.storage import is_uri

    return [
        RunSpec(
            algo=algo,
            seed=seed,
            space=options.space,
            dataset=options.dataset,
            benchmark=options.benchmark or "",
            experiment_dir=folder,
            time_budget=options.time_budget,
            num_samples=options.num_samples,
            # searches run as many at once as their resources fit; --concurrency is the searchers'
            concurrency=None if is_weight_sharing(algo) else options.concurrency,
            seed_mode=options.seed_mode,
            evaluate=options.evaluate,
            data_dir=options.data_dir,
            epochs=options.epochs or 12,
            cpus_per_trial=options.cpus_per_trial,
            gpus_per_trial=options.gpus_per_trial,
            select=options.select,
            search_epochs=options.search_epochs or 100,
            search_batches=options.search_batches,
            retrain_epochs=options.retrain_epochs,
            warmup_ratio=options.warmup_ratio or 0.0,
            flops_target=options.flops_target,
            storage_uri=options.storage if is_uri(options.storage) else None,
            max_failures=options.max_failures,
        )
        for algo in options.algo
        for seed in range(options.seed, options.seed + options.seeds)
    ]


def _print_outcomes(outcomes: list) -> None:
    """One line per run, or per algorithm when there are many seeds."""
    import statistics

    if len(outcomes) <= 10:
        for o in outcomes:
            best = f"{o.best_test_acc:.2f}" if o.best_test_acc is not None else "-"
            print(
                f"{o.algo} seed {o.seed}: {o.trials} trials, {o.sim_seconds:.0f} {'simulated' if o.simulated else 'training'} s, "
                f"{o.wall_seconds:.1f} s wall; best test acc {best} {o.best_arch or ''}",
                flush=True,
            )
        return
    for algo in dict.fromkeys(o.algo for o in outcomes):
        mine = [o for o in outcomes if o.algo == algo]
        accs = [o.best_test_acc for o in mine if o.best_test_acc is not None]
        spread = f"{statistics.fmean(accs):.2f} +- {statistics.pstdev(accs):.2f}" if accs else "-"
        trials = statistics.fmean(o.trials for o in mine)
        print(f"{algo}: {len(mine)} runs, final test acc {spread}, {trials:.0f} trials per run", flush=True)


def run(options: Options) -> int:
    """Run every (algorithm, seed) of the experiment; the process exit code."""
    from autohas.report import write_report
    from autohas.runner import execute, execute_weight_sharing, trial_resources
    from autohas.simulate import simulate_experiment
    from autohas.storage import open_storage

    store = open_storage(options.storage)
    started = _start_ray(options.address)
    status = 0
    folder = None
    try:
        # resources the cluster cannot give fail now, before the experiment folder exists
        trial_resources(_specs(options, store.local_dir(options.name))[0])
        folder = prepare_experiment(options)
        specs = _specs(options, folder)
        searches = [s for s in specs if s.weight_sharing]
        specs_bb = [s for s in specs if not s.weight_sharing]
        outcomes = []
        if specs_bb and options.mode == "simulate":
            outcomes = simulate_experiment(specs_bb, resume=options.resume)
        else:
            for spec in specs_bb:
                outcome = execute(spec, resume=options.resume)
                outcomes.append(outcome)
                store.push(options.name)
                if not outcome.finished:
                    break
        if searches and all(o.finished for o in outcomes) and len(outcomes) == len(specs_bb):
            outcomes += execute_weight_sharing(searches, resume=options.resume)
        _print_outcomes(outcomes)
        for o in outcomes:
            if o.errored:
                print(f"warning: {o.errored} trial(s) of {o.algo} seed {o.seed} failed: {o.error}", file=sys.stderr)
                status = 1
        if status == 0 and (len(outcomes) < len(specs) or not all(o.finished for o in outcomes)):
            print(f"interrupted: continue with the same command plus --resume ({store.describe(options.name)})", file=sys.stderr)
            return 130
    finally:
        if folder is not None:  # what was done is in the storage, also after an interruption
            store.push(options.name)
        if started:
            import ray

            ray.shutdown()
    print(f"results: {store.describe(options.name, RESULTS_FILE)}")
    try:
        report = write_report([folder])
        store.push(options.name)
        print(f"report: {store.describe(options.name, os.path.relpath(report, folder))}")
    except AutohasError as exc:  # e.g. no result fit in the budget
        print(f"report: not written ({exc})")
    if store.remote:
        print(f"local copy: {folder}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(parse_options(sys.argv[1:] if argv is None else argv))
    except AutohasError as exc:
        print(f"autohas.tune: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: continue with the same command plus --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
