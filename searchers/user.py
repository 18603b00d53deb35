"""An autohas searcher in a user's own `tune.Tuner`: `UserSearcher` wraps any registered searcher of
a space and speaks Tune's protocol as a user expects.

Metric and mode. Ray Tune 2.60's `tune.run` (what `Tuner.fit` runs) gives a searcher the TuneConfig's
metric and mode through `set_search_properties` only when a `param_space` is given; without one it
hands them to its controller (for checking results), the scheduler and the progress reporter, never
to the searcher. So the wrapper takes them from `set_search_properties` when Tune calls it, and
otherwise, at its first suggestion, from the arguments of the `tune.run` call it runs inside (the
searcher's `suggest` is always called from that loop, in that thread). Failing both: the metric and
mode it was made with, else autohas's own (`valid_acc`, max).

The wrapped searcher always sees autohas's metric (`valid_acc`, larger is better): the user's metric
is copied under that name, negated for mode "min", and test accuracies are removed. It thus keeps its
seeded behaviour whatever the user's metric is called.

Two objectives (`autohas.searcher(..., objectives=("accuracy", "latency"))`: random, rea, nsga2, tpe).
Tune's TuneConfig takes one metric only, so the pair comes with the searcher: `metric=[accuracy
metric, latency metric]`, `mode=[...]` (default `["valid_acc", "latency_ms"]`, `["max", "min"]`).
The wrapped searcher sees the first as `valid_acc` and the second as `latency_ms` (negated for mode
"max"). A TuneConfig metric, if any, must be the first of them, with its mode.

Configs it suggests hold the space's decisions (`edge_1_0`, ... for nats-tss) and, under "arch", the
architecture string they encode. A param_space may add constants; searched keys it does not own are
refused (`check_param_space`).
"""
from __future__ import annotations

import sys

from ray.tune.search import Searcher

from autohas.errors import AutohasError
from autohas.schema import LATENCY, METRIC, MODE, for_searcher
from autohas.searchers.base import check_param_space
from autohas.spaces import Space

ARCH_KEY = "arch"  # the suggested config's key for the architecture string


def tune_run_arguments() -> tuple[str | None, str | None] | None:
    """(metric, mode) of the `ray.tune.run` call the caller runs inside, or None outside one."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "run" and frame.f_globals.get("__name__") == "ray.tune.tune":
            return frame.f_locals.get("metric"), frame.f_locals.get("mode")
        frame = frame.f_back
    return None


def _objective_pair(metric: str | list[str] | None, mode: str | list[str] | None) -> tuple[list[str], list[str]]:
    """The two objectives' metric names and modes, checked (autohas's own by default)."""
    metric = [METRIC, LATENCY] if metric is None else list(metric) if isinstance(metric, (list, tuple)) else metric
    if mode is None and metric == [METRIC, LATENCY]:
        mode = [MODE, "min"]
    if (not isinstance(metric, list) or len(metric) != 2 or not all(isinstance(m, str) for m in metric)
            or not isinstance(mode, (list, tuple)) or len(mode) != 2 or any(m not in ("min", "max") for m in mode)):
        raise AutohasError(f"two objectives need metric=[accuracy metric, latency metric] and mode=[its mode, its mode] "
                           f"('min' or 'max'), e.g. ['{METRIC}', '{LATENCY}'] and ['max', 'min']; got {metric!r}, {mode!r}")
    return metric, list(mode)


class UserSearcher(Searcher):
    """`searcher` (a registered autohas searcher over `space`) for a user's own Tuner."""

    def __init__(self, searcher: Searcher, space: Space, metric: str | list[str] | None = None,
                 mode: str | list[str] | None = None, objectives: int = 1) -> None:
        if any(d.name == ARCH_KEY for d in space.decisions):
            raise AutohasError(f"{space.name} has a decision named {ARCH_KEY!r}, the key its configs keep the architecture under")
        if objectives == 1:
            if isinstance(metric, (list, tuple)) or isinstance(mode, (list, tuple)):
                raise AutohasError("this searcher has one objective: metric and mode are one name each (for two, make it "
                                   "with objectives=('accuracy', 'latency'))")
            if mode not in (None, "min", "max"):
                raise AutohasError(f"mode must be 'min' or 'max', not {mode!r}")
        else:
            metric, mode = _objective_pair(metric, mode)
        super().__init__(metric=metric, mode=mode)
        self.searcher = searcher  # Tune's SearchGenerator saves wrappers by this attribute name
        self.space = space
        self.objectives = objectives
        self.given = (metric, mode)
        self.settled = False  # whether metric and mode are final (Tune's, or none from Tune)

    def _adopt(self, metric: str | None, mode: str | None) -> None:
        """Tune's metric and mode where given, else the ones the searcher was made with, else autohas's."""
        if self.objectives > 1:
            first = (self.given[0][0], self.given[1][0])
            if metric is not None and (metric, mode or first[1]) != first:
                raise AutohasError(f"TuneConfig's metric {metric!r} ({mode}) is not this searcher's first objective "
                                   f"{first[0]!r} ({first[1]}): give Tune that one, or none")
            self._metric, self._mode, self.settled = list(self.given[0]), list(self.given[1]), True
            return
        metric = metric or self.given[0] or METRIC
        mode = mode or self.given[1] or (MODE if metric == METRIC else None)
        if mode is None:
            raise AutohasError(f"metric {metric!r} comes without a mode: give TuneConfig(mode='max' or 'min')")
        self._metric, self._mode, self.settled = metric, mode, True

    # -- Tune's protocol -------------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        """Called by Tune only when the Tuner has a param_space."""
        check_param_space(self.space, config, searcher_keys=(ARCH_KEY,))
        self._adopt(metric, mode)
        return True

    def suggest(self, trial_id: str) -> dict | None:
        if not self.settled:
            self._adopt(*(tune_run_arguments() or (None, None)))
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            config = {**config, ARCH_KEY: self.space.config_to_arch(config)}
        return config

    def _inner_result(self, result: dict) -> dict:
        """The result as the wrapped searcher reads it: the user's (first) metric as a larger-is-better
        `valid_acc`, a second one as a smaller-is-better `latency_ms`, no test accuracies."""
        inner = for_searcher(result)
        metrics, modes = (self._metric, self._mode) if self.objectives > 1 else ([self._metric], [self._mode])
        for (name, mode), (own, own_mode) in zip(zip(metrics, modes), ((METRIC, MODE), (LATENCY, "min"))):
            if (name, mode) != (own, own_mode):
                inner.pop(own, None)
                value = result.get(name)
                if value is not None:
                    inner[own] = float(value) if mode == own_mode else -float(value)
        return inner

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, self._inner_result(result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, self._inner_result(result) if result else result, error=error)

    def on_pause(self, trial_id: str) -> None:
        """HyperBandForBOHB (through Tune) pauses a trial: tell a searcher that follows pauses."""
        if hasattr(self.searcher, "on_pause"):
            self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        if hasattr(self.searcher, "on_unpause"):
            self.searcher.on_unpause(trial_id)

    # -- state: the wrapped searcher is saved by Tune itself (SearchGenerator follows `.searcher`) --
    def get_state(self) -> dict:
        return {"_metric": self._metric, "_mode": self._mode, "given": self.given, "settled": self.settled}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)
