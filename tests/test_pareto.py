"""Pareto dominance, front ranks, crowding and 2-D hypervolume (autohas.pareto) against hand
computations and against brute-force definitions on random points with ties."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from autohas.errors import AutohasError
from autohas.pareto import crowding_distance, hypervolume_2d, non_dominated, non_dominated_sort, pareto_front

# a small hand-made table: (accuracy %, latency ms); the comments say who dominates whom
TABLE = np.array([
    [90.0, 10.0],  # 0 front
    [85.0, 5.0],   # 1 front
    [80.0, 6.0],   # 2 dominated by 1
    [95.0, 20.0],  # 3 front
    [90.0, 12.0],  # 4 dominated by 0 (same accuracy, slower)
    [85.0, 5.0],   # 5 front: a copy of 1, kept
    [70.0, 3.0],   # 6 front
    [95.0, 25.0],  # 7 dominated by 3
    [60.0, 3.0],   # 8 dominated by 6 (same latency, less accurate)
    [75.0, 7.0],   # 9 dominated by 2 (so by 1 as well)
    [55.0, 30.0],  # 10 dominated by 9 (and most others)
])


def test_the_true_front_of_a_hand_made_table():
    acc, lat = TABLE[:, 0], TABLE[:, 1]
    assert pareto_front(acc, lat).tolist() == [6, 1, 5, 0, 3]  # by latency; the duplicate in index order
    assert np.flatnonzero(non_dominated(TABLE, (True, False))).tolist() == [0, 1, 3, 5, 6]
    # the same table with latency negated and both maximised, or columns swapped: the same front
    assert non_dominated(np.column_stack([acc, -lat]), (True, True)).tolist() == non_dominated(TABLE, (True, False)).tolist()
    assert non_dominated(TABLE[:, ::-1], (False, True)).tolist() == non_dominated(TABLE, (True, False)).tolist()
    # other directions: minimising both, the least accurate (10) and the fastest of the least accurate (8);
    # least accurate and slowest, cell 10 alone
    assert np.flatnonzero(non_dominated(TABLE, (False, False))).tolist() == [8, 10]
    assert np.flatnonzero(non_dominated(TABLE, (False, True))).tolist() == [10]
    assert pareto_front([], []).tolist() == []


def test_non_dominated_sort_ranks_by_hand():
    ranks = non_dominated_sort(TABLE, (True, False))
    #                     0  1  2  3  4  5  6  7  8  9  10
    assert ranks.tolist() == [0, 0, 1, 0, 1, 0, 0, 1, 1, 2, 3]


def test_crowding_distance_by_hand():
    # one front of four (acc up, latency up), a front of two, and a front whose first objective is constant
    points = np.array([[1.0, 1.0], [2.0, 3.0], [4.0, 4.0], [5.0, 9.0], [7.0, 7.0], [8.0, 8.0], [0.0, 0.0], [0.0, 1.0],
                       [0.0, 3.0]])
    ranks = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    distance = crowding_distance(points, ranks)
    # (2, 3): accuracy neighbours 1 and 4 over a range of 4, latency neighbours 1 and 4 over 8
    assert distance[1] == pytest.approx(3 / 4 + 3 / 8)
    # (4, 4): accuracy neighbours 2 and 5, latency 3 and 9
    assert distance[2] == pytest.approx(3 / 4 + 6 / 8)
    assert np.isinf(distance[[0, 3, 4, 5, 6, 8]]).all()
    assert distance[7] == pytest.approx(1.0)  # the constant objective adds nothing; latency 0..3 over 3
    # NSGA-II keeps the wider-spaced point: (4, 4) is the less crowded interior point
    assert distance[2] > distance[1]


def test_hypervolume_by_hand():
    acc = [70.0, 85.0, 90.0, 95.0]
    lat = [3.0, 5.0, 10.0, 20.0]
    # staircase to the reference (50 %, 30 ms): 2 x 20 + 5 x 35 + 10 x 40 + 10 x 45
    assert hypervolume_2d(acc, lat, reference=(50.0, 30.0)) == pytest.approx(1065.0)
    # the whole table: dominated points and the duplicate add nothing
    assert hypervolume_2d(TABLE[:, 0], TABLE[:, 1], reference=(50.0, 30.0)) == pytest.approx(1065.0)
    # points outside the box: below the reference accuracy, slower than the reference, or ON its border
    outside_acc = acc + [40.0, 99.0, 50.0, 99.0]
    outside_lat = lat + [1.0, 31.0, 2.0, 30.0]
    assert hypervolume_2d(outside_acc, outside_lat, reference=(50.0, 30.0)) == pytest.approx(1065.0)
    # a reference at 20 ms leaves (95, 20) out: 2 x 20 + 5 x 35 + 10 x 40
    assert hypervolume_2d(acc, lat, reference=(50.0, 20.0)) == pytest.approx(615.0)
    # two overlapping boxes by inclusion-exclusion: 20 x 10 + 10 x 16 - 10 x 10
    assert hypervolume_2d([90.0, 80.0], [10.0, 4.0], reference=(70.0, 20.0)) == pytest.approx(260.0)
    assert hypervolume_2d([80.0], [10.0], reference=(0.0, 100.0)) == pytest.approx(7200.0)
    assert hypervolume_2d([80.0, 80.0, 80.0], [10.0, 10.0, 10.0], reference=(0.0, 100.0)) == pytest.approx(7200.0)
    assert hypervolume_2d([], [], reference=(0.0, 1.0)) == 0.0
    assert hypervolume_2d([40.0], [1.0], reference=(50.0, 30.0)) == 0.0


def _brute_dominated_by(p: np.ndarray) -> np.ndarray:
    """[i, j] = point j dominates point i, straight from the definition (all maximised)."""
    n = len(p)
    out = np.zeros((n, n), dtype=bool)
    for i, j in itertools.product(range(n), repeat=2):
        out[i, j] = all(p[j] >= p[i]) and any(p[j] > p[i])
    return out


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_random_points_against_the_definition(k, seed):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(40, k)).astype(float)  # a small grid: many ties and duplicates
    maximize = [bool(v) for v in rng.integers(0, 2, size=k)]
    oriented = np.where(maximize, points, -points)
    dominated_by = _brute_dominated_by(oriented)
    assert non_dominated(points, maximize).tolist() == (~dominated_by.any(axis=1)).tolist()
    # rank = the length of the longest chain of dominating points above it
    expected = np.full(len(points), -1)
    for _ in range(len(points)):
        for i in range(len(points)):
            above = expected[dominated_by[i]]
            expected[i] = 0 if not dominated_by[i].any() else (-1 if (above < 0).any() else above.max() + 1)
    ranks = non_dominated_sort(points, maximize)
    assert ranks.tolist() == expected.tolist()
    assert ranks.min() == 0 and set(ranks.tolist()) == set(range(ranks.max() + 1))


@pytest.mark.parametrize("seed", range(3))
def test_hypervolume_equals_the_covered_unit_cells(seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(0, 25, size=30).astype(float)
    lat = rng.integers(0, 25, size=30).astype(float)
    ref = (3.0, 21.0)
    covered = 0
    for a, l in itertools.product(range(3, 25), range(0, 21)):  # the unit cell [a, a+1] x [l, l+1]
        covered += bool(((acc >= a + 1) & (lat <= l)).any())
    assert hypervolume_2d(acc, lat, reference=ref) == pytest.approx(float(covered))
    # only the front matters
    front = pareto_front(acc, lat)
    assert hypervolume_2d(acc[front], lat[front], reference=ref) == pytest.approx(float(covered))


def test_a_large_front_matches_pairwise_comparison():
    rng = np.random.default_rng(7)
    acc = np.round(rng.normal(70, 10, size=1500), 1)
    lat = np.round(rng.gamma(4.0, 3.0, size=1500), 1)
    p = np.column_stack([acc, -lat])
    dominated = np.zeros(len(p), dtype=bool)
    for start in range(0, len(p), 300):
        rows = p[start:start + 300, None, :]
        dominated[start:start + 300] = ((p[None] >= rows).all(2) & (p[None] > rows).any(2)).any(1)
    front = pareto_front(acc, lat)
    assert sorted(front.tolist()) == np.flatnonzero(~dominated).tolist()
    assert (np.diff(lat[front]) >= 0).all() and (np.diff(acc[front]) >= 0).all()  # slower only when more accurate


def test_bad_input_is_one_line():
    for call in (lambda: non_dominated([[1.0, np.nan]], (True, False)),
                 lambda: non_dominated([[1.0, 2.0]], (True,)),
                 lambda: pareto_front([1.0, 2.0], [1.0]),
                 lambda: hypervolume_2d([1.0], [np.inf], reference=(0.0, 5.0)),
                 lambda: hypervolume_2d([1.0], [1.0], reference=(0.0, np.nan)),
                 lambda: crowding_distance([[1.0, 2.0]], [0, 0])):
        with pytest.raises(AutohasError) as caught:
            call()
        assert "\n" not in str(caught.value)
