"""Pareto dominance for multi-objective search (accuracy vs latency, issue 21), in numpy alone.

Conventions: `points` is [n, k], one row per candidate, one column per objective, and
`maximize[j]` says which way objective j is better. Point a dominates b when a is at least as
good in every objective and better in one; so equal points never dominate each other and every
copy of a non-dominated point is kept (a front may list one architecture twice; callers that
want it once deduplicate first). Non-finite values are refused: a NaN compares false both ways
and would silently join the front.

Two objectives, the common case, are handled by sorting (O(n log n)): the true front of all
15,625 nats-tss cells, or a hypervolume per seed, costs milliseconds. More objectives fall back
on pairwise comparison in blocks (O(n^2 k)), fine for a population.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from autohas.errors import AutohasError

_BLOCK_CELLS = 1 << 22  # pairwise comparisons held in memory at once (k > 2)


def _oriented(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """The points as float64 [n, k] with every objective to be maximised (minimised ones negated)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1:
        p = p.reshape(-1, 1) if len(maximize) == 1 else p.reshape(1, -1)
    directions = np.asarray(list(maximize), dtype=bool)
    if p.ndim != 2 or directions.ndim != 1 or p.shape[1] != len(directions) or not len(directions):
        raise AutohasError(f"pareto: points of shape {np.shape(points)} do not match {len(directions)} objective directions")
    if not np.isfinite(p).all():
        raise AutohasError("pareto: every objective value must be a finite number")
    return np.where(directions, p, -p)


def _front_2d(p: np.ndarray) -> np.ndarray:
    """Non-dominated mask of [n, 2] points, both maximised: sort by the first objective; a point is
    dominated by one with a strictly larger first objective and at least its second, or by one with
    the same first objective and a strictly larger second."""
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((-p[:, 1], -p[:, 0]))  # first objective descending
    a, b = p[order, 0], p[order, 1]
    starts = np.flatnonzero(np.r_[True, a[1:] != a[:-1]])  # groups of equal first objective
    group_max = np.maximum.reduceat(b, starts)
    best_before = np.r_[-np.inf, np.maximum.accumulate(group_max)[:-1]]  # over strictly larger first objectives
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    keep = (b > best_before[group]) & (b >= group_max[group])
    mask = np.empty(n, dtype=bool)
    mask[order] = keep
    return mask


def _front_pairwise(p: np.ndarray) -> np.ndarray:
    n = len(p)
    mask = np.ones(n, dtype=bool)
    block = max(1, _BLOCK_CELLS // max(1, n * p.shape[1]))
    for start in range(0, n, block):
        rows = p[start:start + block, None, :]  # the points asked about
        at_least = (p[None, :, :] >= rows).all(axis=2)
        better = (p[None, :, :] > rows).any(axis=2)
        mask[start:start + block] = ~(at_least & better).any(axis=1)
    return mask


def _non_dominated(p: np.ndarray) -> np.ndarray:
    if p.shape[1] == 1:
        return p[:, 0] == p[:, 0].max() if len(p) else np.zeros(0, dtype=bool)
    return _front_2d(p) if p.shape[1] == 2 else _front_pairwise(p)


def non_dominated(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (every copy of a duplicate kept)."""
    return _non_dominated(_oriented(points, maximize))


def pareto_front(accuracy: Sequence[float] | np.ndarray, latency: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices of the accuracy-vs-latency front (higher accuracy, lower latency), fastest first
    (equal latencies on a front are duplicates; they follow in index order)."""
    acc, lat = np.asarray(accuracy, dtype=np.float64).ravel(), np.asarray(latency, dtype=np.float64).ravel()
    if acc.shape != lat.shape:
        raise AutohasError(f"pareto: {len(acc)} accuracies but {len(lat)} latencies")
    front = np.flatnonzero(non_dominated(np.column_stack([acc, lat]), (True, False)))
    return front[np.lexsort((front, lat[front]))]


def non_dominated_sort(points: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Front rank of each point (NSGA-II): 0 for the non-dominated, 1 for those non-dominated once
    rank 0 is removed, and so on; peeled one front at a time."""
    p = _oriented(points, maximize)
    ranks = np.full(len(p), -1, dtype=np.int64)
    left = np.arange(len(p))
    rank = 0
    while len(left):
        front = _non_dominated(p[left])
        ranks[left[front]] = rank
        left = left[~front]
        rank += 1
    return ranks


def crowding_distance(points: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance within each front: per objective, the gap between a point's two
    neighbours along that objective divided by the front's range, summed; the front's extreme points
    (and every point of a front of one or two) are infinitely far. Ties are ordered by position, so of
    equal extreme points one is infinite; an objective constant over the front adds nothing. The
    direction of an objective does not matter here."""
    p = np.asarray(points, dtype=np.float64)
    p = p.reshape(-1, 1) if p.ndim == 1 else p
    r = np.asarray(ranks).ravel()
    if p.ndim != 2 or len(r) != len(p):
        raise AutohasError(f"pareto: {len(r)} ranks for {len(p)} points")
    if not np.isfinite(p).all():
        raise AutohasError("pareto: every objective value must be a finite number")
    distance = np.zeros(len(p))
    for rank in np.unique(r):
        members = np.flatnonzero(r == rank)
        if len(members) <= 2:
            distance[members] = np.inf
            continue
        for j in range(p.shape[1]):
            values = p[members, j]
            order = np.argsort(values, kind="stable")
            ordered = members[order]
            distance[ordered[[0, -1]]] = np.inf
            spread = values[order[-1]] - values[order[0]]
            if spread > 0:
                distance[ordered[1:-1]] += (values[order[2:]] - values[order[:-2]]) / spread
    return distance


def hypervolume_2d(accuracy: Sequence[float] | np.ndarray, latency: Sequence[float] | np.ndarray,
                   reference: tuple[float, float]) -> float:
    """Area (accuracy units x latency units) of the region the points dominate, bounded by the
    reference point (acc_ref, lat_ref): the union of the boxes [acc_ref, acc] x [lat, lat_ref].
    A point not strictly better than the reference in both objectives adds nothing. Exact, by one
    sweep over the points in latency order (O(n log n)); 0 for no points."""
    acc, lat = np.asarray(accuracy, dtype=np.float64).ravel(), np.asarray(latency, dtype=np.float64).ravel()
    acc_ref, lat_ref = (float(v) for v in reference)
    if acc.shape != lat.shape:
        raise AutohasError(f"hypervolume: {len(acc)} accuracies but {len(lat)} latencies")
    if not (np.isfinite(acc).all() and np.isfinite(lat).all() and np.isfinite([acc_ref, lat_ref]).all()):
        raise AutohasError("hypervolume: accuracies, latencies and the reference point must be finite numbers")
    inside = (acc > acc_ref) & (lat < lat_ref)
    acc, lat = acc[inside], lat[inside]
    if not len(acc):
        return 0.0
    order = np.argsort(lat, kind="stable")
    lat = lat[order]
    best = np.maximum.accumulate(acc[order])  # the best accuracy at or below each latency
    widths = np.diff(np.r_[lat, lat_ref])  # the latency span over which that accuracy holds
    return float((widths * (best - acc_ref)).sum())


__all__ = ["crowding_distance", "hypervolume_2d", "non_dominated", "non_dominated_sort", "pareto_front"]
