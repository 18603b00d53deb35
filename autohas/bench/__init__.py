"""Tabular benchmarks: `open_benchmark(path, space)` picks the reader from what `path` is."""
from __future__ import annotations

import os
from functools import lru_cache

from autohas.bench.base import DATASETS, Benchmark, Cost, Evaluation
from autohas.bench.csv_table import CsvTableBenchmark
from autohas.bench.nats_official import OFFICIAL_FOLDERS, NatsOfficialBenchmark
from autohas.errors import AutohasError
from autohas.spaces import get_space


def default_benchmark_path() -> str:
    """Where the official API looks: $AUTOHAS_BENCHMARK, else $TORCH_HOME, else ~/.torch."""
    return os.environ.get("AUTOHAS_BENCHMARK") or os.environ.get("TORCH_HOME") or os.path.expanduser("~/.torch")


def resolve_benchmark_path(path: str, space_name: str) -> str:
    """The concrete file or official folder that `path` names for this space, or a clear error."""
    if not os.path.exists(path):
        raise AutohasError(f"benchmark not found: {path}")
    if os.path.isfile(path):
        if not path.endswith(".csv"):
            raise AutohasError(f"benchmark {path} is neither a .csv table nor a NATS-Bench folder")
        return os.path.abspath(path)
    folder = OFFICIAL_FOLDERS.get(space_name)
    if os.path.isfile(os.path.join(path, "meta.pickle.pbz2")):
        name = os.path.basename(os.path.normpath(path))
        other = [s for s, f in OFFICIAL_FOLDERS.items() if f == name and s != space_name]
        if other:
            raise AutohasError(f"benchmark {path} holds {other[0]}, not {space_name}")
        return os.path.abspath(path)
    if folder and os.path.isdir(os.path.join(path, folder)):
        return os.path.abspath(os.path.join(path, folder))
    raise AutohasError(f"benchmark {path} has no {folder or space_name} folder for {space_name}")


@lru_cache(maxsize=8)
def _open(path: str, space_name: str, mtime: float) -> Benchmark:
    space = get_space(space_name)
    if os.path.isfile(path):
        return CsvTableBenchmark(path, space)
    return NatsOfficialBenchmark(path, space)


def open_benchmark(path: str, space_name: str) -> Benchmark:
    """Open (and cache per process) the benchmark at `path` for `space_name`."""
    resolved = resolve_benchmark_path(path, space_name)
    return _open(resolved, space_name, os.path.getmtime(resolved))


__all__ = ["DATASETS", "Benchmark", "Cost", "Evaluation", "default_benchmark_path", "open_benchmark", "resolve_benchmark_path"]
