"""The common result schema: the keys every trainable reports, and the record on disk.

A trainable reports TRIAL_KEYS each step. The driver completes each result into a
record (RECORD_KEYS) with the keys that only it can know across trials: the
experiment's simulated clock (`sim_seconds`, the sum of all trials' simulated costs
so far, which is what a time budget limits) and the incumbent (`best_arch`,
`best_test_acc`). The report reads records only.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

METRIC = "valid_acc"  # the search signal, maximised
MODE = "max"
LATENCY = "latency_ms"  # the second objective of a multi-objective search (--objectives accuracy,latency), minimised
INFEASIBLE = "infeasible"  # a told result's flag: constrained search refused the proposal (searchers/feasible.py)
HIDDEN_FROM_SEARCHERS = ("test_acc", "best_test_acc", "best_arch")

IDENTITY = ("algo", "space", "dataset", "seed", "trial_id")
CANDIDATE = ("arch", "arch_index", "hparams")
PROGRESS = ("epoch", "budget")
METRICS = ("valid_acc", "test_acc")
COST = ("trial_sim_seconds", "wall_seconds", "params", "flops", "latency_ms")  # latency_ms: with --latency-table, or measured (--device local-*)
TRIAL_KEYS = IDENTITY + CANDIDATE + PROGRESS + METRICS + COST
RUN_KEYS = ("sim_seconds", "best_arch", "best_test_acc", "seq")  # seq: the record's number in its run, 0, 1, ...
RECORD_KEYS = TRIAL_KEYS + RUN_KEYS


def _plain(value: Any) -> Any:
    """JSON-friendly scalars: numpy to Python, NaN to None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def trial_result(**fields: Any) -> dict:
    """What a trainable passes to `tune.report`: exactly TRIAL_KEYS (a clear error otherwise).

    Missing numbers are NaN rather than None so that Tune sees the same keys and types
    in every report. `latency_ms` may be left out (no latency table or measurement: NaN, null in the record).
    """
    fields.setdefault("latency_ms", None)
    missing = set(TRIAL_KEYS) - set(fields)
    extra = set(fields) - set(TRIAL_KEYS)
    if missing or extra:
        raise ValueError(f"schema mismatch: missing {sorted(missing)}, unexpected {sorted(extra)}")
    result = {k: _plain(fields[k]) for k in TRIAL_KEYS}
    for k in ("params", "flops", "arch_index", "latency_ms"):
        if result[k] is None:
            result[k] = float("nan")
    result["hparams"] = dict(result["hparams"] or {})
    return result


def epoch_result(setup: Any, trial_id: str, arch: str, arch_index: int | None, epoch: int, **measured: Any) -> dict:
    """`trial_result` of one candidate after `epoch` epochs; identity from a trainable's setup
    (its algo, space, dataset, seed), the numbers (valid_acc, test_acc, costs) as keywords."""
    return trial_result(
        algo=setup.algo, space=setup.space, dataset=setup.dataset, seed=setup.seed, trial_id=trial_id,
        arch=arch, arch_index=arch_index, hparams=measured.pop("hparams", {}), epoch=epoch, budget=epoch, **measured,
    )


def to_record(result: dict, sim_seconds: float, best_arch: str | None, best_test_acc: float | None, seq: int | None = None) -> dict:
    """A trainable's result completed with the run-level keys, in schema order (`seq`: its number in
    the run, which lets a reader tell a lost record)."""
    record = {k: _plain(result.get(k)) for k in TRIAL_KEYS}
    record["hparams"] = {k: _plain(v) for k, v in dict(result.get("hparams") or {}).items()}
    record["sim_seconds"] = float(sim_seconds)
    record["best_arch"] = best_arch
    record["best_test_acc"] = _plain(best_test_acc)
    record["seq"] = seq
    return record


def for_searcher(result: dict) -> dict:
    """The result without the numbers a searcher must never see (test accuracies)."""
    return {k: v for k, v in result.items() if k not in HIDDEN_FROM_SEARCHERS}
