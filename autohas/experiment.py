"""The experiment folder: checked (before Ray starts), created or resumed, its protocol written, its runs
listed as RunSpecs (one per algorithm x seed).

`check_experiment` refuses what cannot go on (a folder that is not an experiment, one that exists
without --resume or --overwrite, a resume that changes an option fixed on resume) without writing;
`create_experiment` then writes it: experiment.yaml (the schema's saved options), an empty
results.jsonl, protocol.json. With remote storage the folder is the local copy, fetched first.
"""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Iterator

from autohas.errors import AutohasError
from autohas.latency import LOCAL_DEVICES
from autohas.layout import EXPERIMENT_FILE, PROTOCOL_FILE, RESULTS_FILE
from autohas.options import UNRECORDED, Options, declared, fixed_on_resume, method_options, read_yaml, saved_options
from autohas.validate import searches_black_box, weight_sharing_algos

if TYPE_CHECKING:
    from autohas.bench import Benchmark


def _shown(value: Any) -> str:
    """An option's value as the command line writes it (lists comma-separated, None as none)."""
    return ",".join(map(str, value)) if isinstance(value, list) else "none" if value is None else str(value)


def check_experiment(options: Options) -> str:
    """The experiment's local folder, after refusing what cannot go on; on --resume the saved
    algorithms come first in `options.algo`. Writes nothing (but fetches a remote experiment)."""
    from autohas.storage import open_storage

    store = open_storage(options.storage)
    store.pull(options.name)
    folder = store.local_dir(options.name)
    saved_path = os.path.join(folder, EXPERIMENT_FILE)
    exists = os.path.isdir(folder) and bool(os.listdir(folder))
    ours = os.path.exists(saved_path) or os.path.exists(os.path.join(folder, RESULTS_FILE))
    if exists and not ours:
        raise AutohasError(f"{folder} exists and is not an autohas experiment: choose another --storage or --name")
    if options.resume and not (exists and ours):
        raise AutohasError(f"nothing to resume at {folder}: no experiment of that --name and --storage (drop --resume to start it)")
    if exists and not options.resume and not options.overwrite:
        raise AutohasError(f"{folder} already holds an experiment: add --resume to continue it, --overwrite to replace it, or choose another --name")
    if exists and options.resume and not options.overwrite and os.path.exists(saved_path):
        saved = read_yaml(saved_path)
        for key in fixed_on_resume():
            current, option = getattr(options, key), declared()[key]
            if key in saved and saved[key] != current:
                raise AutohasError(f"cannot resume {folder} with {option.flag} {_shown(current)}: it was started with {_shown(saved[key])}")
            if key not in saved and option.absent_means is not UNRECORDED and current not in (None, option.absent_means):
                raise AutohasError(f"cannot resume {folder} with {option.flag} {_shown(current)}: it was started by an "
                                   f"autohas without {option.flag}, so with {_shown(option.absent_means)}")
        algos = list(saved.get("algo", []))
        options.algo = algos + [a for a in options.algo if a not in algos]
    return folder


@contextlib.contextmanager
def driver_lock(options: Options) -> Iterator[None]:
    """One driver per experiment on this machine: a second one on the same experiment refuses at once
    (two would interleave records and Tune state). The lock is a file in the machine's temporary
    folder named after the experiment's (local) folder: the storage is not touched."""
    import fcntl
    import hashlib
    import tempfile

    from autohas.storage import open_storage

    folder = os.path.abspath(open_storage(options.storage).local_dir(options.name))
    locks = os.path.join(tempfile.gettempdir(), "autohas-locks")
    os.makedirs(locks, exist_ok=True)
    path = os.path.join(locks, hashlib.sha256(folder.encode()).hexdigest()[:24] + ".lock")
    try:
        handle = open(path, "a+")
    except OSError as exc:
        raise AutohasError(f"cannot lock the experiment {folder}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise AutohasError(f"another autohas driver ({owner}) is running the experiment {folder}: wait for it, or stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    try:
        yield
    finally:
        handle.close()  # closing releases the lock


def create_experiment(options: Options) -> str:
    """Create (or, on --resume, keep) the experiment folder checked by `check_experiment`; its path."""
    import yaml

    from autohas.storage import open_storage, redact

    store = open_storage(options.storage)
    folder = store.local_dir(options.name)
    if options.overwrite and os.path.isdir(folder) and os.listdir(folder):
        store.delete(options.name)
    record = saved_options(options)
    record["storage"] = redact(options.storage)  # a URI's query may hold credentials
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, EXPERIMENT_FILE), "w") as handle:
            yaml.safe_dump(record, handle, sort_keys=False)
        open(os.path.join(folder, RESULTS_FILE), "a").close()
    except OSError as exc:
        raise AutohasError(f"cannot write the experiment folder {folder}: {exc.strerror}") from None
    write_protocol(folder, options)
    store.push(options.name)
    return folder


def write_protocol(folder: str, options: Options) -> None:
    """What the report states about how the numbers were obtained."""
    from autohas.spaces import get_space

    protocol = {
        "space": options.space,
        "dataset": options.dataset,
        "evaluate": options.evaluate,
        "time_budget": options.time_budget,
        "num_samples": options.num_samples,
        "concurrency": options.concurrency,
    }
    if options.evaluate == "train":
        from autohas.data import split_note
        from autohas.trainables.train import recipe_for

        hyper = get_space(options.space).hyperparameter_names
        tuned = f"; {', '.join(hyper).replace('_', ' ')} as the candidate sets them" if hyper else ""
        protocol.update(
            benchmark=f"none: every candidate trained for real on {options.dataset} ({split_note(options.dataset)})",
            signal=f"validation accuracy after epoch e of the {options.epochs}-epoch NATS-Bench H0 schedule "
            f"(batch {recipe_for(options.dataset).batch_size}{tuned}); test accuracy measured on the test split",
            clock="measured training + validation seconds (CPU seconds of the trial on a CPU, wall seconds on a GPU)",
            seed_mode="one training run per evaluation",
        )
    else:
        from autohas.bench import open_benchmark

        bench = open_benchmark(options.benchmark, get_space(options.space).architecture_space)
        protocol.update(benchmark=bench.source, signal=bench.signal, clock="simulated", seed_mode=options.seed_mode)
        protocol["optimum"] = optimum_of(bench, options.dataset, *_latencies(options))
        from autohas.searchers import is_multi_objective

        if is_multi_objective(options.objectives):
            from autohas.fronts import true_front

            protocol["true_front"] = true_front(bench, options.dataset, *_latencies(options))
    if options.latency_table is not None:
        protocol["latency"] = latency_protocol(options)
    elif options.device in LOCAL_DEVICES:
        protocol["latency"] = measured_latency_protocol(options.device, options.latency_batch, measuring_machines(folder))
    from autohas import searchers
    from autohas.validate import evaluation_fidelities

    black_box = [a for a in options.algo if a not in weight_sharing_algos(options)]
    objectives = tuple(options.objectives or ("accuracy",))
    protocol["objectives"] = list(objectives)
    protocol["searchers"] = {algo: searchers.describe(algo, objectives) for algo in black_box}
    protocol["scheduler"] = searchers.describe_scheduler(options.scheduler, evaluation_fidelities(options)) if options.scheduler else None
    methods = weight_sharing_algos(options)
    if methods:
        from autohas.trainables.weight_sharing.search import describe_searches

        looked_up = options.evaluate == "tabular"
        settings = method_options(options)
        protocol["weight_sharing"] = describe_searches(
            methods, options.dataset, options.search_epochs, options.select, looked_up, options.retrain_epochs,
            options.space, settings.get("warmup_ratio") or 0.0, settings.get("flops_target"),
            _latency_target(protocol.get("latency")),
        )
        from autohas.data import split_note

        if not searches_black_box(options):  # the experiment's numbers are the searches' alone
            protocol.update(
                benchmark=protocol["benchmark"] if looked_up else f"none ({options.dataset}: {split_note(options.dataset)})",
                signal="accuracy of the architecture derived each epoch, inside the supernet, on the validation split",
                clock="measured search seconds",
                seed_mode="one search per seed",
            )
    with open(os.path.join(folder, PROTOCOL_FILE), "w") as handle:
        json.dump(protocol, handle, indent=1)


def _latencies(options: Options) -> tuple:
    """(latency of every architecture, limit) of a hardware-aware experiment, else (None, None)."""
    if options.latency_table is None:
        return None, None
    from autohas.latency import latencies
    from autohas.spaces import get_space

    return latencies(options.latency_table, options.device, get_space(options.space).name), options.latency_limit


def latency_protocol(options: Options) -> dict:
    """What the report says of a hardware-aware experiment: the table's file name (never a path of this
    machine), the device, the limit and how many architectures meet it; with a latency target, the
    target and the R^2 of the additive model the weight-sharing searches differentiate."""
    values, limit = _latencies(options)
    feasible = int((values <= limit).sum()) if limit is not None else len(values)
    protocol = {"table": os.path.basename(options.latency_table), "device": options.device, "limit_ms": limit,
                "feasible": feasible, "architectures": len(values), "fastest_ms": float(values.min())}
    if options.latency_target is not None:  # weight sharing toward a latency: the additive model it differentiates
        from autohas.latency import fit_additive_model
        from autohas.spaces import get_space

        model = fit_additive_model(get_space(options.space), values)
        protocol.update(target_ms=options.latency_target, model_r2=model.r2, model_heldout_r2=model.heldout_r2)
    return protocol


def _latency_target(latency: dict | None) -> dict | None:
    """What the weight-sharing protocol says of a latency target (None without one)."""
    if not latency or latency.get("target_ms") is None:
        return None
    return {key: latency[key] for key in ("target_ms", "device", "table")} | {"r2": latency["model_r2"]}


def measured_latency_protocol(device: str, batch: int, machines: list[str]) -> dict:
    """What the report says of measured latencies (--device local-*): how they were measured and on which
    machines (those of the measurements kept so far; none before the first trial)."""
    from autohas.models.latency_measure import REPEATS, WARMUP

    where = "; ".join(machines) if machines else "the machine of each trial"
    return {"table": None, "device": device, "limit_ms": None, "batch": batch, "warmup": WARMUP, "repeats": REPEATS,
            "machines": machines,
            "measured": f"measured on {device} ({where}), batch {batch}, median of {REPEATS} after {WARMUP} warm-up "
                        "forwards, before training"}


def measuring_machines(folder: str) -> list[str]:
    """The machines (CPU model and torch threads, or GPU) whose measurements the experiment keeps."""
    from autohas.layout import measured_latencies

    return list(dict.fromkeys(str(e.get("machine")) for e in measured_latencies(folder) if e.get("machine")))


def note_measuring_machines(folder: str) -> None:
    """After the runs: protocol.json names the machines that measured the latencies (trials may run on
    other machines than the driver, so only their measurements can say)."""
    path = os.path.join(folder, PROTOCOL_FILE)
    try:
        with open(path) as handle:
            protocol = json.load(handle)
    except (OSError, ValueError):
        return
    latency = protocol.get("latency")
    if not latency or "measured" not in latency:
        return
    protocol["latency"] = measured_latency_protocol(latency["device"], latency["batch"], measuring_machines(folder))
    temporary = path + ".tmp"
    try:  # whole or not at all: the runs are over, a storage fault here is no reason for a traceback
        with open(temporary, "w") as handle:
            json.dump(protocol, handle, indent=1)
        os.replace(temporary, path)
    except OSError:
        return


def optimum_of(bench: Benchmark, dataset: str, latency=None, limit: float | None = None) -> dict | None:
    """The best reported accuracy of any architecture on `dataset`, with its index and string (the
    report's optimum line and regret), where that is cheap: a CSV table holds every architecture in
    memory (about 0.2 s for 15,625); the official files would need every record read (minutes), so
    there it stays unknown (None). With `latency` (ms by official index) the optimum says its latency,
    and with `limit` it is the best FEASIBLE architecture: the one a constrained search can find."""
    from autohas.bench.csv_table import CsvTableBenchmark

    if not isinstance(bench, CsvTableBenchmark) or dataset not in bench.datasets:
        return None
    best = None
    for index in range(bench.space.size):
        if limit is not None and latency[index] > limit:
            continue
        arch = bench.space.index_to_arch(index)
        try:
            value = bench.test_acc(arch, dataset)
        except AutohasError:  # no row for it
            continue
        if value == value and (best is None or value > best["test_acc"]):  # the first of equals
            best = {"test_acc": value, "index": index, "arch": arch}
    if best is not None and latency is not None:
        best["latency_ms"] = float(latency[best["index"]])
        if limit is not None:
            best["limit_ms"] = limit
    return best


def run_specs(options: Options, folder: str) -> list:
    """One RunSpec per (algorithm, seed): every RunSpec field named as an option takes its value."""
    from autohas.runner import RunSpec
    from autohas.storage import is_uri
    from autohas.trainables.weight_sharing import METHOD_NAMES

    shared = {f.name: getattr(options, f.name) for f in fields(RunSpec) if f.name in declared()}
    shared.update(
        benchmark=options.benchmark or "",
        epochs=options.epochs or 12,
        search_epochs=options.search_epochs or 100,
        method_options={k: v for k, v in method_options(options).items() if v is not None},
        objectives=tuple(options.objectives or ("accuracy",)),
        storage_uri=options.storage if is_uri(options.storage) else None,
        experiment_dir=folder,
    )
    return [
        # searches run as many at once as their resources fit; --concurrency is the searchers'
        RunSpec(**{**shared, "algo": algo, "seed": seed, "concurrency": None if algo in METHOD_NAMES else options.concurrency})
        for algo in options.algo
        for seed in range(options.seed, options.seed + options.seeds)
    ]


def _probe(address: str, timeout: float) -> None:
    """Give up on a cluster address nothing answers at within `timeout` seconds (ray.init would
    retry for minutes): one line. `auto` (this node's own cluster) is left to Ray."""
    import socket
    from urllib.parse import urlsplit

    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None:
        raise AutohasError(f"--address {address} is not HOST:PORT (or auto)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise AutohasError(f"cannot connect to the Ray cluster at {address}: {reason} (waited up to {timeout:g} s)") from None


def start_ray(address: str | None = None, timeout: float = 30.0) -> bool:
    """Connect to the cluster at `address` (or $RAY_ADDRESS; nothing answering within `timeout`
    seconds is one line), else start a small local Ray, unless this process is already connected;
    True if we connected."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    import ray

    if ray.is_initialized():
        return False
    if address:
        _probe(address, timeout)
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
