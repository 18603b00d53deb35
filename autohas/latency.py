"""Latency tables and an additive per-operation latency model (hardware-aware search, issue 21).

A latency table is a CSV file with the columns `arch_index` (the space's official index),
`arch_str` (the official string at that index) and one or more latency columns named
`<device>_<batch>_ms` or `<device>_ms`, in milliseconds. A device's NAME is its column name
without `_ms` (`pixel3`, `titan_rtx_32`). `../shared/data/nats-tss/nats-tss-latency.csv` is one:
all 15,625 nats-tss cells on 27 device settings.

Constrained search looks latency up before it trains anything, so a table must cover the whole
space, each architecture once, with the right string and a positive finite number: a table that
does not is refused here, with one line, before any run starts. Reading one device of the
15,625-row table takes 14 ms on a quiet core (35 ms beside a busy one; only three columns are
parsed), plus ~20 ms the first time a process builds the space's official strings, plus pandas'
import (~0.3 s) where Ray Tune has not imported it already; the result is kept per process, so a
worker that simulates several seeds reads the file once (benchmarks/latency_model.py measures it).

The additive model (FBNet's): latency(cell) ~= intercept + sum over edges of w[edge, op], fitted by
least squares to a table, is what a weight-sharing search differentiates: the expected latency of a
supernet whose edge e picks op o with probability P[e, o] is intercept + (P * weights).sum().
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from autohas.errors import AutohasError
from autohas.spaces.base import Space

SUFFIX = "_ms"
KEY_COLUMNS = ("arch_index", "arch_str")
# --device names that measure the trained network on the trial's own machine instead of reading a table
# (train mode; autohas/models/latency_measure.py, trainables/measured_latency.py)
LOCAL_DEVICES = ("local-cpu", "local-gpu")
CV_FOLDS = 5
CV_SEED = 0  # the fixed permutation of the held-out folds
_CACHE_ENTRIES = 32
_read_cache: dict[tuple, np.ndarray] = {}


# -- the table ------------------------------------------------------------------------------------
def _header(path: str) -> list[str]:
    """The column names of a latency table, reading its first line only."""
    if not os.path.exists(path):
        raise AutohasError(f"latency table {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AutohasError(f"cannot read latency table {path}: {exc}") from None
    header = [name.strip() for name in header]
    devices = [name for name in header if name.endswith(SUFFIX) and len(name) > len(SUFFIX)]
    if not all(key in header for key in KEY_COLUMNS) or not devices:
        raise AutohasError(
            f"{path} is not a latency table: it needs the columns arch_index, arch_str and at least one "
            f"<device>_ms column (it has: {', '.join(header[:8]) or 'no header'}{', ...' if len(header) > 8 else ''})"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise AutohasError(f"latency table {path} names a column twice: {', '.join(repeated)}")
    return header


def device_names(path: str | os.PathLike) -> list[str]:
    """The devices of a latency table, in column order: each latency column's name without `_ms`.
    Reads the header only, so a CLI can check --device before anything else."""
    return [name[: -len(SUFFIX)] for name in _header(os.fspath(path)) if name.endswith(SUFFIX) and len(name) > len(SUFFIX)]


def _column_of(path: str, device: str) -> str:
    names = device_names(path)
    if device not in names:
        raise AutohasError(f"unknown device {device!r} in latency table {path}; choose from: {', '.join(sorted(names))}")
    return device + SUFFIX


@lru_cache(maxsize=8)
def _official_strings(space: Space) -> np.ndarray:
    """Every official architecture string of a space, by index (built once per process)."""
    return np.array([space.index_to_arch(i) for i in range(space.size)], dtype=object)


def _check_space(space: Space, what: str) -> None:
    if not space.has_index or space.hyperparameter_names:
        raise AutohasError(
            f"{what} needs a space of architectures with official indices; {space.name!r} is not one"
            + (f" (its candidates set {', '.join(space.hyperparameter_names)}: use {space.architecture_space!r})"
               if space.hyperparameter_names else "")
        )


def read_latency(path: str | os.PathLike, device: str, space: Space) -> np.ndarray:
    """The latency (ms, float64) of every architecture of `space` on `device`, row i = official index i.

    Every check that a constrained search relies on is made here, each refusal one AutohasError
    line: the file, its layout, the device, that the rows cover the space exactly once, that each
    `arch_str` is the space's string at its `arch_index`, that every latency is finite and positive.
    Rows may come in any order. The answer is a fresh copy (a per-process cache keeps the file's)."""
    path = os.path.abspath(os.fspath(path))
    column = _column_of(path, device)
    _check_space(space, "a latency table")
    stat = os.stat(path)
    key = (path, stat.st_mtime_ns, stat.st_size, column, space.name, id(space))
    if key not in _read_cache:
        if len(_read_cache) >= _CACHE_ENTRIES:
            _read_cache.pop(next(iter(_read_cache)))
        _read_cache[key] = _read_column(path, column, device, space)
    return _read_cache[key].copy()


@lru_cache(maxsize=8)
def latencies(path: str, device: str, space: str) -> np.ndarray:
    """read_latency of the space named `space`, read-only and kept per process: what trials and the
    constrained searcher index (thousands of lookups a run, without a copy each)."""
    from autohas.spaces import get_space

    values = read_latency(path, device, get_space(space))
    values.setflags(write=False)
    return values


def validate_latency_table(path: str | os.PathLike, device: str, space: Space) -> None:
    """All of read_latency's checks (tens of milliseconds), for the CLI to run before Ray starts."""
    read_latency(path, device, space)


def _shown(value: object) -> str:
    """A cell's value as a message shows it: a number plainly, text quoted."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _read_column(path: str, column: str, device: str, space: Space) -> np.ndarray:
    import pandas as pd  # lazily: device_names and the model need no pandas

    try:
        frame = pd.read_csv(path, usecols=lambda name: name.strip() in (*KEY_COLUMNS, column), encoding="utf-8-sig",
                            skipinitialspace=True)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as exc:
        raise AutohasError(f"cannot read latency table {path}: {' '.join(str(exc).split())}") from None
    frame.columns = [name.strip() for name in frame.columns]
    size = space.size
    index = frame["arch_index"]
    if not pd.api.types.is_integer_dtype(index.dtype):
        numbers = pd.to_numeric(index, errors="coerce")
        bad = np.flatnonzero(~np.isfinite(numbers.to_numpy(dtype=float)) | (numbers.to_numpy(dtype=float) % 1 != 0))
        if len(bad):
            raise AutohasError(f"{path}:{bad[0] + 2}: arch_index {_shown(index.iloc[bad[0]])} is not a whole number")
        index = numbers.astype(np.int64)
    index = index.to_numpy(dtype=np.int64)
    outside = np.flatnonzero((index < 0) | (index >= size))
    if len(outside):
        raise AutohasError(f"{path}:{outside[0] + 2}: arch_index {index[outside[0]]} is outside {space.name}'s 0..{size - 1}")
    counts = np.bincount(index, minlength=size)
    if (counts > 1).any():
        twice = int(np.flatnonzero(counts > 1)[0])
        lines = np.flatnonzero(index == twice)[:2] + 2
        raise AutohasError(f"latency table {path} has arch_index {twice} twice (lines {lines[0]} and {lines[1]})")
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        raise AutohasError(
            f"latency table {path} covers {len(frame)} of {space.name}'s {size} architectures "
            f"(missing: arch_index {', '.join(map(str, missing[:3]))}{', ...' if len(missing) > 3 else ''})"
        )
    official = _official_strings(space)[index]
    given = frame["arch_str"].to_numpy(dtype=object)
    wrong = np.flatnonzero(given != official)
    if len(wrong):
        row = wrong[0]
        raise AutohasError(
            f"{path}:{row + 2}: arch_str {given[row]!r} is not {space.name}'s architecture at arch_index {index[row]} "
            f"({official[row]})"
        )
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if len(bad):
        row = bad[0]
        raise AutohasError(
            f"{path}:{row + 2}: {column} of arch_index {index[row]} is {_shown(frame[column].iloc[row])}: "
            f"every latency must be a positive number of milliseconds"
        )
    latency = np.empty(size, dtype=np.float64)
    latency[index] = values
    latency.setflags(write=False)
    return latency


# -- the additive model ---------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _codes(space: Space) -> np.ndarray:
    """[size, decisions]: the position of each architecture's choice in each decision, by index."""
    position = [{choice: k for k, choice in enumerate(d.choices)} for d in space.decisions]
    codes = np.empty((space.size, len(space.decisions)), dtype=np.int16)
    for i, arch in enumerate(_official_strings(space)):
        codes[i] = [where[choice] for where, choice in zip(position, space.decode(arch))]
    codes.setflags(write=False)
    return codes


def _design(codes: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Intercept column, then one column per (decision, choice) but the decision's first choice
    (the reference level, whose weight is 0): a full-rank one-hot encoding of the cells."""
    offsets = np.concatenate([[0], np.cumsum([c - 1 for c in counts])])
    x = np.zeros((len(codes), 1 + offsets[-1]))
    x[:, 0] = 1.0
    rows = np.arange(len(codes))
    for d, count in enumerate(counts):
        chosen = codes[:, d].astype(np.int64)
        not_reference = chosen > 0
        x[rows[not_reference], 1 + offsets[d] + chosen[not_reference] - 1] = 1.0
    return x


def _solve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # least squares; where a subset leaves the design rank-deficient (a choice never seen),
    # numpy's lstsq gives the minimum-norm solution, i.e. that choice weighs 0 (its reference level's)
    return np.linalg.lstsq(x, y, rcond=None)[0]


def _r2(y: np.ndarray, predicted: np.ndarray) -> float:
    residual = float(((y - predicted) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    if total == 0.0:
        return 1.0 if residual <= 1e-12 * max(1.0, float((y ** 2).sum())) else 0.0
    return 1.0 - residual / total


@dataclass(frozen=True, eq=False)
class AdditiveLatencyModel:
    """latency(arch) ~= intercept + sum_e weights[e, choice_e(arch)].

    Parametrisation: the first choice of every decision is the reference level, weight 0 (nats-tss:
    `none`), so the least-squares solution is unique and each weight reads "ms added by this op
    instead of none on this edge". `weights` is [decisions, most choices]; a decision with fewer
    choices has zeros past its own. `r2` is in-sample; `heldout_r2` and `heldout_mape` (mean
    absolute % error) are of out-of-fold predictions: a fixed-seed 5-fold cross-validation in which
    every architecture is predicted by a model fitted without it, R^2 over all of them pooled."""

    intercept: float
    weights: np.ndarray
    r2: float
    heldout_r2: float
    heldout_mape: float
    space: Space = field(repr=False)
    # the weights as a tensor per (device, dtype) a torch P came in: built once, not on every step
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def predict(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Predicted latency (ms) of the architectures at these official indices."""
        indices = np.asarray(indices)
        if indices.size and (not np.issubdtype(indices.dtype, np.integer) or indices.min() < 0
                             or indices.max() >= self.space.size):
            raise AutohasError(f"latency model: indices must be whole numbers in 0..{self.space.size - 1}")
        codes = _codes(self.space)[indices.astype(np.int64)]
        decisions = np.arange(len(self.space.decisions))
        return self.intercept + self.weights[decisions, codes].sum(axis=-1)

    def expected(self, probabilities: np.ndarray | Any) -> float | Any:
        """Expected latency (ms) when decision e independently takes choice o with probability
        P[e, o] (a supernet's architecture distribution): intercept + (P * weights).sum().

        One formula for both kinds of P: a numpy array gives a float; a torch tensor gives a tensor
        of its dtype and device through which gradients flow (what a weight-sharing search's latency
        loss differentiates), without this module importing torch.

        A tensor's shape is checked, not its values: reading them would copy P to the host and wait
        for the device on every step of a search (its softmax is a distribution by construction)."""
        tensor = hasattr(probabilities, "detach")  # a torch tensor (duck-typed: torch stays unimported here)
        p = probabilities if tensor else np.asarray(probabilities, dtype=np.float64)
        if tuple(p.shape) != self.weights.shape:
            raise AutohasError(f"latency model: probabilities of shape {tuple(p.shape)}, expected {self.weights.shape} "
                               "(decisions x choices)")
        if not tensor:
            if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
                raise AutohasError("latency model: each decision's probabilities must be non-negative and sum to 1")
            return float(self.intercept + (p * self.weights).sum())
        key = (p.device, p.dtype)
        if key not in self._tensors:
            self._tensors[key] = p.new_tensor(self.weights)
        return self.intercept + (p * self._tensors[key]).sum()


def fit_additive_model(space: Space, latencies: np.ndarray, indices: Sequence[int] | np.ndarray | None = None
                       ) -> AdditiveLatencyModel:
    """Least-squares fit of the additive model to measured latencies: `latencies[i]` of official index
    i (the whole space, as read_latency returns it) or of `indices[i]` when given (a measured subset)."""
    _check_space(space, "an additive latency model")
    if not space.decisions or any(not isinstance(d.choices, tuple) or not d.choices or len(set(d.choices)) != len(d.choices)
                                  for d in space.decisions):
        raise AutohasError(f"an additive latency model needs categorical decisions (distinct choices); {space.name!r} has none")
    y = np.asarray(latencies, dtype=np.float64).ravel()
    if indices is None:
        if len(y) != space.size:
            raise AutohasError(f"latency model: {len(y)} latencies for {space.name}'s {space.size} architectures")
        rows = np.arange(space.size)
    else:
        rows = np.asarray(indices)
        if rows.shape != y.shape or not np.issubdtype(rows.dtype, np.integer):
            raise AutohasError("latency model: indices must be whole numbers, one per latency")
        if len(rows) and (rows.min() < 0 or rows.max() >= space.size):
            raise AutohasError(f"latency model: indices must be in 0..{space.size - 1}")
    if not np.isfinite(y).all():
        raise AutohasError("latency model: every latency must be a finite number")
    if len(y) < CV_FOLDS:
        raise AutohasError(f"latency model: needs at least {CV_FOLDS} measured architectures, got {len(y)}")
    counts = [len(d.choices) for d in space.decisions]
    x = _design(_codes(space)[rows], counts)

    beta = _solve(x, y)
    r2 = _r2(y, x @ beta)
    folds = np.array_split(np.random.default_rng(CV_SEED).permutation(len(y)), CV_FOLDS)
    out_of_fold = np.empty_like(y)
    for fold in folds:
        train = np.ones(len(y), dtype=bool)
        train[fold] = False
        out_of_fold[fold] = x[fold] @ _solve(x[train], y[train])
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(np.abs(out_of_fold - y) / np.abs(y)) * 100)

    weights = np.zeros((len(counts), max(counts)))
    start = 1
    for d, count in enumerate(counts):
        weights[d, 1:count] = beta[start:start + count - 1]
        start += count - 1
    weights.setflags(write=False)
    return AdditiveLatencyModel(intercept=float(beta[0]), weights=weights, r2=r2, heldout_r2=_r2(y, out_of_fold),
                                heldout_mape=mape, space=space)


__all__ = ["AdditiveLatencyModel", "device_names", "fit_additive_model", "latencies", "read_latency",
           "validate_latency_table"]
