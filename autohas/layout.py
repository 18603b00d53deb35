"""The experiment folder's layout: every file name and marker, and the small files the driver keeps.

    <storage>/<name>/experiment.yaml      the options the experiment was started with
                     protocol.json        how its numbers were obtained (for the report)
                     driver.log           Tune's log: failed trials' tracebacks, retries
                     results.jsonl        one schema record per reported step, all runs
                     <algo>-seed<S>/      one run: Tune's folder, run.json, search-finished,
                                          saliency.npz (SANAS / LeaSE maps, as arrays)
                     weight-sharing/      the one Tune experiment of the weight-sharing runs
                     saliency/            the report's drawings of those maps (<algo>-seed<S>.png)
                     latency/             measured latencies (--device local-*), one JSON file per
                                          architecture, device and batch: trials reuse them

Core and Ray-free: searchers, trainables, the runner and the report all name files through here.
"""
from __future__ import annotations

import json
import os

EXPERIMENT_FILE = "experiment.yaml"
PROTOCOL_FILE = "protocol.json"
RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
DRIVER_LOG = "driver.log"  # Tune's own log of the experiment (failed trials' tracebacks)
FINISHED_MARKER = "search-finished"
WEIGHT_SHARING_DIR = "weight-sharing"
SALIENCY_DIR = "saliency"
SALIENCY_ARRAYS = "saliency.npz"
LATENCY_DIR = "latency"



def run_name(algo: str, seed: int) -> str:
    """The folder name of one run (one algorithm x seed)."""
    return f"{algo}-seed{seed}"


def mark_finished(run_dir: str | os.PathLike, seal: dict | None = None) -> None:
    """Leave the marker that says a run's search is over (a resumed experiment skips the run); with
    `seal` (autohas.records.seal: the run's record count and digest) the marker keeps it, so that a
    reader can tell a finished run that lost records."""
    folder = os.fspath(run_dir)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, FINISHED_MARKER)
    if seal is None:
        open(path, "a").close()
        return
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(seal, handle)
    os.replace(temporary, path)


def read_seal(run_dir: str | os.PathLike) -> dict | None:
    """A run's finished marker: None when not finished, {} when finished but not sealed yet."""
    path = os.path.join(os.fspath(run_dir), FINISHED_MARKER)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            text = handle.read().strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def unmark_finished(run_dir: str | os.PathLike) -> None:
    """Undo `mark_finished`: the run is evaluated again (a repair of lost records)."""
    path = os.path.join(os.fspath(run_dir), FINISHED_MARKER)
    if os.path.exists(path):
        os.remove(path)


def is_finished(run_dir: str | os.PathLike) -> bool:
    return os.path.exists(os.path.join(os.fspath(run_dir), FINISHED_MARKER))


def read_run(run_dir: str) -> dict:
    """How a run was executed (`mode`) and its wall seconds over all attempts; {} if not recorded."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


def record_run(run_dir: str, algo: str, seed: int, mode: str, wall_seconds: float) -> None:
    """Keep how a run was executed and its wall time (added up over resumed attempts)."""
    os.makedirs(run_dir, exist_ok=True)
    before = float(read_run(run_dir).get("wall_seconds", 0.0))
    with open(os.path.join(run_dir, RUN_FILE), "w") as handle:
        json.dump({"algo": algo, "seed": seed, "mode": mode, "wall_seconds": before + wall_seconds}, handle)


def saliency_arrays(experiment_dir: str, algo: str, seed: int) -> str:
    """Where a SANAS / LeaSE run's saliency maps are kept as arrays, for the report to draw."""
    return os.path.join(experiment_dir, run_name(algo, seed), SALIENCY_ARRAYS)


def saliency_figure(experiment_dir: str, run: str) -> str:
    """Where the report draws the saliency maps of run folder `run`."""
    return os.path.join(experiment_dir, SALIENCY_DIR, run + ".png")


def measured_latency_file(experiment_dir: str, space: str, arch_index: int, device: str, batch: int) -> str:
    """Where the measured latency of architecture `arch_index` of `space` on `device` at `batch` is kept:
    one file per key, so that concurrent trials never write the same file unless they measure the same."""
    return os.path.join(experiment_dir, LATENCY_DIR, f"{space}-{arch_index}-{device}-batch{batch}.json")


def read_measured_latency(path: str, key: dict) -> dict | None:
    """The measurement kept at `path` if it is one of `key` (every item equal, the measuring machine's
    description among them), else None (absent, unreadable, or measured for something else or on another
    machine: measured again)."""
    try:
        with open(path) as handle:
            entry = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in key.items()):
        return None
    latency = entry.get("latency_ms")
    return entry if isinstance(latency, (int, float)) and latency > 0 else None


def write_measured_latency(path: str, entry: dict) -> None:
    """Keep a measurement: written to a temporary file of its own and renamed over `path` (atomic), so a
    reader never sees half a file, whichever of two trials measuring the same architecture finishes last."""
    import tempfile

    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(entry, out)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def measured_latencies(experiment_dir: str) -> list[dict]:
    """Every measurement kept in the experiment (for the protocol: which machines measured)."""
    folder = os.path.join(experiment_dir, LATENCY_DIR)
    if not os.path.isdir(folder):
        return []
    entries = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            entry = read_measured_latency(os.path.join(folder, name), {})
            if entry is not None:
                entries.append(entry)
    return entries
