"""Latency tables (autohas.latency): every refusal one line, the additive per-operation model recovers
known weights from a synthetic table of all 15,625 nats-tss cells, and the real table reads as its CSV."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from autohas.errors import AutohasError
from autohas.latency import AdditiveLatencyModel, device_names, fit_additive_model, read_latency, validate_latency_table
from autohas.spaces import get_space
from autohas.spaces.nats_tss import OPERATIONS
from tests.conftest import SHARED_DATA

LATENCY_TABLE = SHARED_DATA / "nats-tss" / "nats-tss-latency.csv"
SPACE = get_space("nats-tss")
# known per-edge op costs (ms), `none` not free on purpose: the fit reports them relative to `none`
TRUE_INTERCEPT = 1.5
TRUE_WEIGHTS = np.array([
    # none, skip, conv1x1, conv3x3, avgpool
    [0.10, 0.20, 0.90, 2.50, 0.60],
    [0.00, 0.15, 0.80, 2.20, 0.55],
    [0.05, 0.25, 1.10, 3.00, 0.70],
    [0.00, 0.10, 0.70, 1.90, 0.50],
    [0.20, 0.30, 1.20, 3.30, 0.80],
    [0.00, 0.35, 1.40, 4.10, 0.95],
])


def _additive(space=SPACE) -> np.ndarray:
    codes = np.array([[OPERATIONS.index(op) for op in space.decode(space.index_to_arch(i))] for i in range(space.size)])
    return TRUE_INTERCEPT + TRUE_WEIGHTS[np.arange(6), codes].sum(axis=1), codes


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray, list[str]]:
    """A latency table of all 15,625 cells, rows shuffled: `dev_ms` additive with TRUE_WEIGHTS,
    `gpu_256_ms` additive plus an interaction (conv3x3 on both edges into node 1 and 2 costs 3 ms more)."""
    latency, codes = _additive()
    extra = 3.0 * ((codes[:, 0] == 3) & (codes[:, 2] == 3))
    order = np.random.default_rng(0).permutation(SPACE.size)
    lines = ["arch_index,arch_str,dev_ms,gpu_256_ms"]
    lines += [f"{i},{SPACE.index_to_arch(i)},{float(latency[i])!r},{float(latency[i] + extra[i])!r}" for i in order]
    path = tmp_path_factory.mktemp("latency") / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, latency, latency + extra, lines


def test_device_names_come_from_the_header_in_column_order(synthetic):
    path, *_ = synthetic
    assert device_names(path) == ["dev", "gpu_256"]
    assert device_names(str(path)) == ["dev", "gpu_256"]


def test_a_table_is_read_by_official_index_whatever_its_row_order(synthetic):
    path, latency, with_extra, _ = synthetic
    got = read_latency(path, "dev", SPACE)
    assert got.dtype == np.float64 and got.shape == (15625,)
    assert np.array_equal(got, latency)  # repr() round trip: exact
    assert np.array_equal(read_latency(path, "gpu_256", SPACE), with_extra)
    got[:] = -1.0  # the caller's copy: the next read is not affected
    assert np.array_equal(read_latency(path, "dev", SPACE), latency)
    validate_latency_table(path, "dev", SPACE)


def test_the_additive_fit_recovers_known_weights(synthetic):
    path, latency, *_ = synthetic
    model = fit_additive_model(SPACE, read_latency(path, "dev", SPACE))
    assert isinstance(model, AdditiveLatencyModel)
    # reference level `none`: each edge's weights shift by its `none` cost, the intercept takes the sum
    assert model.weights.shape == (6, 5)
    np.testing.assert_allclose(model.weights, TRUE_WEIGHTS - TRUE_WEIGHTS[:, :1], atol=1e-9)
    assert model.intercept == pytest.approx(TRUE_INTERCEPT + TRUE_WEIGHTS[:, 0].sum(), abs=1e-9)
    assert model.r2 == pytest.approx(1.0, abs=1e-12) and model.heldout_r2 == pytest.approx(1.0, abs=1e-12)
    assert model.heldout_mape == pytest.approx(0.0, abs=1e-8)
    indices = np.array([0, 11, 284, 15624])
    np.testing.assert_allclose(model.predict(indices), latency[indices], atol=1e-9)
    # expected latency of a distribution: a one-hot P is that cell; the uniform P is the mean of all cells
    codes = [OPERATIONS.index(op) for op in SPACE.decode(SPACE.index_to_arch(284))]
    assert model.expected(np.eye(5)[codes]) == pytest.approx(latency[284], abs=1e-9)
    assert model.expected(np.full((6, 5), 0.2)) == pytest.approx(latency.mean(), abs=1e-9)
    # a subset of measured cells (as training measures them) gives the same weights
    some = np.random.default_rng(1).choice(SPACE.size, size=200, replace=False)
    subset = fit_additive_model(SPACE, latency[some], indices=some)
    np.testing.assert_allclose(subset.weights, model.weights, atol=1e-9)


def test_a_non_additive_latency_is_fitted_worse_and_said_so(synthetic):
    path, _, with_extra, _ = synthetic
    model = fit_additive_model(SPACE, read_latency(path, "gpu_256", SPACE))
    residual = with_extra - model.predict(np.arange(SPACE.size))
    assert abs(residual.mean()) < 1e-9  # least squares with an intercept
    assert 0.5 < model.heldout_r2 < model.r2 < 0.999 and model.heldout_mape > 1.0
    # the interaction is charged to conv3x3 on edges 0 and 2, more than its true cost
    assert model.weights[0, 3] > TRUE_WEIGHTS[0, 3] - TRUE_WEIGHTS[0, 0] + 0.1
    assert model.weights[2, 3] > TRUE_WEIGHTS[2, 3] - TRUE_WEIGHTS[2, 0] + 0.1


def _variant(tmp_path: Path, lines: list[str], change) -> Path:
    rows = list(lines)
    change(rows)
    path = tmp_path / "variant.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _row_of(lines: list[str], index: int) -> int:
    return next(n for n, line in enumerate(lines) if line.startswith(f"{index},"))


def _swap_strings(rows):
    a, b = _row_of(rows, 5), _row_of(rows, 6)
    fa, fb = rows[a].split(","), rows[b].split(",")
    fa[1], fb[1] = fb[1], fa[1]
    rows[a], rows[b] = ",".join(fa), ",".join(fb)


def _set_value(index: int, text: str):
    def change(rows):
        n = _row_of(rows, index)
        fields = rows[n].split(",")
        fields[2] = text
        rows[n] = ",".join(fields)
    return change


REFUSALS = {
    "no arch_str": (lambda rows: rows.__setitem__(0, rows[0].replace("arch_str", "arch")), "is not a latency table"),
    "no _ms column": (lambda rows: rows.__setitem__(0, "arch_index,arch_str,dev,gpu_256"), "at least one <device>_ms column"),
    "a row missing": (lambda rows: rows.pop(_row_of(rows, 77)), "covers 15624 of nats-tss's 15625 architectures (missing: arch_index 77)"),
    "a row twice": (lambda rows: rows.append(rows[_row_of(rows, 3)]), "has arch_index 3 twice"),
    "an index outside": (lambda rows: rows.__setitem__(1, "15625," + rows[1].split(",", 1)[1]), "arch_index 15625 is outside"),
    "a fractional index": (lambda rows: rows.__setitem__(1, "2.5," + rows[1].split(",", 1)[1]), "is not a whole number"),
    "swapped strings": (_swap_strings, "is not nats-tss's architecture at arch_index"),
    "a malformed string": (lambda rows: rows.__setitem__(1, rows[1].replace("~0|", "~9|", 1)), "is not nats-tss's architecture"),
    "nan": (_set_value(10, "nan"), "every latency must be a positive number"),
    "empty": (_set_value(10, ""), "every latency must be a positive number"),
    "inf": (_set_value(10, "inf"), "dev_ms of arch_index 10 is"),
    "zero": (_set_value(10, "0"), "dev_ms of arch_index 10 is 0.0"),
    "negative": (_set_value(10, "-2.5"), "every latency must be a positive number"),
    "text": (_set_value(10, "fast"), "dev_ms of arch_index 10 is 'fast'"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_bad_table_is_refused_in_one_line(synthetic, tmp_path, case):
    _, _, _, lines = synthetic
    change, words = REFUSALS[case]
    path = _variant(tmp_path, lines, change)
    with pytest.raises(AutohasError) as caught:
        read_latency(path, "dev", SPACE)
    message = str(caught.value)
    assert words in message and "\n" not in message, message


def test_missing_unreadable_and_unknown_device_are_refused(synthetic, tmp_path):
    path, *_ = synthetic
    with pytest.raises(AutohasError, match="does not exist"):
        device_names(tmp_path / "nope.csv")
    with pytest.raises(AutohasError, match="does not exist"):
        read_latency(tmp_path / "nope.csv", "dev", SPACE)
    with pytest.raises(AutohasError, match="cannot read latency table"):
        read_latency(tmp_path, "dev", SPACE)  # a folder
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(AutohasError, match="is not a latency table"):
        device_names(tmp_path / "empty.csv")
    with pytest.raises(AutohasError) as caught:
        read_latency(path, "pixel9", SPACE)
    assert str(caught.value).endswith("choose from: dev, gpu_256") and "unknown device 'pixel9'" in str(caught.value)
    with pytest.raises(AutohasError, match="unknown device 'dev_ms'"):  # the name, not the column
        read_latency(path, "dev_ms", SPACE)
    with pytest.raises(AutohasError, match="'has' is not one .*use 'nats-tss'"):
        read_latency(path, "dev", get_space("has"))


def test_a_changed_file_is_read_again(synthetic, tmp_path):
    _, latency, _, lines = synthetic
    path = _variant(tmp_path, lines, lambda rows: None)
    assert read_latency(path, "dev", SPACE)[10] == latency[10]
    _variant(tmp_path, lines, _set_value(10, "123.25"))
    assert read_latency(path, "dev", SPACE)[10] == 123.25


def test_the_model_refuses_what_it_cannot_fit(synthetic):
    _, latency, *_ = synthetic
    with pytest.raises(AutohasError, match="15624 latencies for nats-tss's 15625"):
        fit_additive_model(SPACE, latency[:-1])
    with pytest.raises(AutohasError, match="finite"):
        fit_additive_model(SPACE, np.where(np.arange(SPACE.size) == 3, np.nan, latency))
    with pytest.raises(AutohasError, match="'has' is not one"):
        fit_additive_model(get_space("has"), latency)
    with pytest.raises(AutohasError, match="indices must be in 0..15624"):
        fit_additive_model(SPACE, latency[:10], indices=np.arange(15620, 15630))
    model = fit_additive_model(SPACE, latency)
    with pytest.raises(AutohasError, match="shape"):
        model.expected(np.full((5, 6), 0.2))
    with pytest.raises(AutohasError, match="sum to 1"):
        model.expected(np.full((6, 5), 0.3))
    with pytest.raises(AutohasError, match="0..15624"):
        model.predict([15625])


# -- the real table ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_table() -> Path:
    if not LATENCY_TABLE.exists():
        pytest.skip(f"the latency table {LATENCY_TABLE} is absent (it lives in ../shared/data beside the checkout)")
    return LATENCY_TABLE


def test_the_real_table_reads_as_its_csv(real_table):
    names = device_names(real_table)
    assert len(names) == 27 and {"pixel3", "titan_rtx_32", "1080ti_256", "eyeriss"} <= set(names)
    with open(real_table, newline="") as handle:
        rows = list(csv.reader(handle))
    column = rows[0].index("pixel3_ms")
    expected = np.empty(len(rows) - 1)
    expected[[int(row[0]) for row in rows[1:]]] = [float(row[column]) for row in rows[1:]]
    got = read_latency(real_table, "pixel3", SPACE)
    assert got[0] == float(rows[1][column]) and rows[1][0] == "0"
    assert np.array_equal(got, expected)


def test_a_gpu_at_batch_256_is_close_to_additive(real_table):
    model = fit_additive_model(SPACE, read_latency(real_table, "1080ti_256", SPACE))
    print(f"1080ti_256: R^2 {model.r2:.4f}, held-out R^2 {model.heldout_r2:.4f}, held-out MAPE {model.heldout_mape:.2f} %")
    assert model.r2 > 0.5 and model.heldout_r2 > 0.99
    conv3, conv1, skip = (OPERATIONS.index(op) for op in ("nor_conv_3x3", "nor_conv_1x1", "skip_connect"))
    # a 3x3 convolution costs more than a 1x1 one, which costs more than a skip, on every edge
    assert (model.weights[:, conv3] > model.weights[:, conv1]).all()
    assert (model.weights[:, conv1] > model.weights[:, skip]).all()
