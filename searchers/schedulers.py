"""Ray Tune's own trial schedulers for any black-box searcher: `asha` (Tune's ASHAScheduler, which Tune
names `async_hyperband`) and `hyperband` (Tune's HyperBandScheduler), built by Tune's `create_scheduler`.

Their settings come from the evaluation's fidelities (the epochs at which a trial reports):
the grace period (ASHA's first rung; HyperBand's smallest bracket starts there too) is the
smallest, max_t the largest, and the reduction factor is 3, NATS-Bench's eta for BOHB. Progress
is counted in `epoch` (the fidelity) rather than Tune's `training_iteration`, so that a resumed
trial and the simulated-clock driver count alike. ASHA has one bracket (Tune's default).
"""
from __future__ import annotations

from typing import Any

TUNE_NAMES = {"asha": "async_hyperband", "hyperband": "hyperband"}  # autohas name -> Tune's
REDUCTION_FACTOR = 3


def settings(name: str, epochs: list[int]) -> dict[str, Any]:
    """create_scheduler's keyword arguments of scheduler `name` over the fidelities `epochs`."""
    common = {"time_attr": "epoch", "max_t": max(epochs), "reduction_factor": REDUCTION_FACTOR, "stop_last_trials": True}
    if name == "asha":
        return {**common, "grace_period": min(epochs), "brackets": 1}
    return common


def asha_rungs(epochs: list[int]) -> list[int]:
    """The epochs at which ASHA may stop a trial (its rungs, as Tune computes them), ascending."""
    s = settings("asha", epochs)
    rungs, rung = [], s["grace_period"]
    while rung < s["max_t"]:
        rungs.append(int(rung))
        rung *= s["reduction_factor"]
    return rungs


def describe(name: str, epochs: list[int]) -> str:
    """One line on scheduler `name` over `epochs`, for the protocol."""
    s = settings(name, epochs)
    if name == "asha":
        return (f"asha: Tune's ASHAScheduler (async_hyperband), grace {s['grace_period']}, reduction factor "
                f"{s['reduction_factor']}, max {s['max_t']} epochs (may stop a trial after epoch "
                f"{', '.join(map(str, asha_rungs(epochs)))})")
    return (f"hyperband: Tune's HyperBandScheduler, reduction factor {s['reduction_factor']}, max {s['max_t']} epochs "
            "(brackets of trials paused at lower epochs, the better ones resumed)")


def create(name: str, epochs: list[int]):
    """A fresh Tune scheduler `name` over the fidelities `epochs` (metric and mode come from Tune)."""
    from ray.tune.schedulers import create_scheduler

    return create_scheduler(TUNE_NAMES[name], **settings(name, epochs))
