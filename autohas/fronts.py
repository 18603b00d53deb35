"""Pareto fronts of a multi-objective search (--objectives accuracy,latency): a run's front, the
benchmark's true front, and the hypervolume reference point both are measured against.

Accuracy is the one the records report (`test_acc`, the benchmark's reported accuracy, as the
incumbent's `best_test_acc`), latency the record's `latency_ms` on the experiment's device. A run's
front is the non-dominated set of every architecture it evaluated (each once); the true front is the
non-dominated set of every architecture of the table (with a latency limit, of the feasible ones),
computed exactly from the tabular benchmark and the latency table. The reference point is the worst
accuracy and the slowest latency over those same architectures, so the true front's hypervolume is
the most any run can reach, and every evaluated point lies inside (or on) the reference box.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from autohas.errors import AutohasError
from autohas.pareto import hypervolume_2d, pareto_front
from autohas.schema import LATENCY

if TYPE_CHECKING:
    from autohas.bench import Benchmark


def table_accuracies(bench: Benchmark, dataset: str) -> np.ndarray | None:
    """The reported accuracy of every architecture by official index (NaN where the table has no row),
    where that is cheap: a CSV table (about 0.2 s for 15,625); None for the official files (minutes)."""
    from autohas.bench.csv_table import CsvTableBenchmark

    if not isinstance(bench, CsvTableBenchmark) or dataset not in bench.datasets:
        return None
    values = np.full(bench.space.size, np.nan)
    for index in range(bench.space.size):
        try:
            values[index] = bench.test_acc(bench.space.index_to_arch(index), dataset)
        except AutohasError:  # no row for it
            continue
    return values


def reference_point(accuracy: np.ndarray, latency: np.ndarray) -> tuple[float, float]:
    """(worst accuracy, slowest latency) of the architectures given: the hypervolume's reference point."""
    return float(np.min(accuracy)), float(np.max(latency))


def true_front(bench: Benchmark, dataset: str, latency: np.ndarray, limit: float | None = None) -> dict | None:
    """The benchmark's accuracy-vs-latency front on `dataset` (within `limit` ms, if given): its points
    fastest first (index, arch, test_acc, latency_ms), the reference point (`reference_point` of the same
    architectures) and the front's hypervolume against it; None where the accuracies are not cheap."""
    accuracy = table_accuracies(bench, dataset)
    if accuracy is None:
        return None
    considered = np.flatnonzero(~np.isnan(accuracy) & ((latency <= limit) if limit is not None else True))
    if not len(considered):
        return None
    acc, lat = accuracy[considered], np.asarray(latency, dtype=float)[considered]
    front = considered[pareto_front(acc, lat)]
    reference = reference_point(acc, lat)
    points = [{"index": int(i), "arch": bench.space.index_to_arch(int(i)), "test_acc": float(accuracy[i]),
               LATENCY: float(latency[i])} for i in front]
    return {"points": points, "reference": list(reference), "architectures": int(len(considered)), "limit_ms": limit,
            "hypervolume": hypervolume_2d([p["test_acc"] for p in points], [p[LATENCY] for p in points], reference)}


def records_front(records: Sequence[dict]) -> list[dict]:
    """The run's front: of the architectures its records evaluated (each once; records without an accuracy
    or a latency left out), those no other dominates, fastest first, as {arch, arch_index, test_acc, latency_ms}."""
    seen: dict[str, dict] = {}
    for r in records:
        if r.get("test_acc") is None or r.get(LATENCY) is None or r["arch"] in seen:
            continue
        seen[r["arch"]] = {"arch": r["arch"], "arch_index": r.get("arch_index"), "test_acc": float(r["test_acc"]),
                           LATENCY: float(r[LATENCY])}
    points = list(seen.values())
    if not points:
        return []
    order = pareto_front([p["test_acc"] for p in points], [p[LATENCY] for p in points])
    return [points[i] for i in order]


def front_hypervolume(front: Sequence[dict], reference: Sequence[float]) -> float:
    """The hypervolume (accuracy % x ms) a front dominates within the reference point's box."""
    return hypervolume_2d([p["test_acc"] for p in front], [p[LATENCY] for p in front], (reference[0], reference[1]))
