"""Pareto fronts of a multi-objective search (--objectives accuracy,latency): a run's front, the
benchmark's true front, and the hypervolume reference point both are measured against.

Latency is the record's `latency_ms` on the experiment's device. A run's front is chosen as its
incumbent is: by what the search saw, the search signal (`valid_acc`) of each architecture it evaluated
(each once, at the most trained of its records), and the non-dominated set by signal and latency; it is
then reported by the accuracy the records report (`test_acc`, as the incumbent's `best_test_acc`), so
the test accuracy never picks what is reported (a front point may be dominated in test accuracy by
another of the run's points: it is still what the run would deliver). The true front is the
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
from autohas.schema import LATENCY, METRIC

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
    """The run's front: of the architectures its records evaluated (each once, by its most trained record:
    the largest epoch, the later on a tie; records without a signal, a test accuracy or a latency left out),
    those no other dominates in search signal and latency, fastest first, as
    {arch, arch_index, valid_acc, test_acc, latency_ms}."""
    chosen: dict[str, dict] = {}
    for r in records:
        if r.get(METRIC) is None or r.get("test_acc") is None or r.get(LATENCY) is None:
            continue
        if r["arch"] not in chosen or (r.get("epoch") or 0) >= (chosen[r["arch"]].get("epoch") or 0):
            chosen[r["arch"]] = r
    points = [{"arch": r["arch"], "arch_index": r.get("arch_index"), METRIC: float(r[METRIC]), "test_acc": float(r["test_acc"]),
               LATENCY: float(r[LATENCY])} for r in chosen.values()]
    if not points:
        return []
    order = pareto_front([p[METRIC] for p in points], [p[LATENCY] for p in points])
    return [points[i] for i in order]


def front_hypervolume(front: Sequence[dict], reference: Sequence[float]) -> float:
    """The hypervolume (accuracy % x ms) a front dominates within the reference point's box."""
    return hypervolume_2d([p["test_acc"] for p in front], [p[LATENCY] for p in front], (reference[0], reference[1]))
