"""Searcher registry: `create(name, space, seed)` builds a Ray Tune Searcher by name; `scheduler_for`
the Tune trial scheduler a run of it uses; `describe` one line on each searcher's settings."""
from __future__ import annotations

from typing import Any, Sequence

from autohas.errors import AutohasError
from autohas.spaces import Space

# name -> (module, class or factory function); imported on use so that `--help` and bad input stay fast.
_REGISTRY = {
    "random": ("autohas.searchers.random_search", "RandomSearch"),
    "rea": ("autohas.searchers.rea", "RegularizedEvolution"),
    "reinforce": ("autohas.searchers.reinforce", "Reinforce"),
    "gp": ("autohas.searchers.gp_bandit", "GaussianProcessBandit"),
    "bohb": ("autohas.searchers.bohb", "SeededBOHB"),
    "tpe": ("autohas.searchers.tune_searchers", "tpe"),
    "nsga2": ("autohas.searchers.tune_searchers", "nsga2"),
}
ALGORITHMS: tuple[str, ...] = tuple(_REGISTRY)
SINGLE_OBJECTIVE: tuple[str, ...] = ("accuracy",)
OBJECTIVE_NAMES: tuple[str, ...] = ("accuracy", "latency")  # the canonical order (--objectives)
# multi-objective search (accuracy, latency): the searchers that take both; where one becomes another class
# there, that class; the Tune factories that take the objectives themselves
MULTI_OBJECTIVE: tuple[str, ...] = ("random", "rea", "nsga2", "tpe")
_MULTI_OBJECTIVE_CLASSES = {"rea": ("autohas.searchers.rea", "ParetoRegularizedEvolution")}  # random: proposals unchanged
_TAKE_OBJECTIVES: tuple[str, ...] = ("nsga2", "tpe")  # tune_searchers' factories, and their describe_<name>
SCHEDULERS: tuple[str, ...] = ("asha", "hyperband")  # Tune's own (searchers/schedulers.py), for any searcher but bohb

# One line per searcher on its settings (the protocol states them; the README's Searchers table explains them).
_DESCRIPTIONS = {
    "random": "uniform sampling",
    "rea": "regularized evolution: population 10, tournament of 3, one-decision mutation as the reference's",
    "reinforce": "REINFORCE over one softmax per decision: Adam lr 0.01, moving-average baseline (momentum 0.9)",
    "gp": "GP bandit: Matern-5/2 ARD kernel, UCB mean + 1.8 std over one-decision mutations of the 10 best and "
    "1,000 random candidates, 10 random starts, kernel refitted every 25 observations",
    "bohb": "Ray Tune's TuneBOHB with HyperBandForBOHB: eta 3, rungs 1, 4, 12 of 12 epochs (12 only with one fidelity), "
    "num_samples 4, random_fraction 0, bandwidth_factor 3, min_bandwidth 0.3",
}
_MULTI_OBJECTIVE_DESCRIPTIONS = {
    "random": "uniform sampling (its front: the non-dominated of what it evaluated)",
    "rea": "regularized evolution with non-dominated sorting: population 10, tournament of 3, one-decision mutation; "
    "the tournament's winner has the best (non-dominated rank, then larger crowding distance) within the population",
}


def canonical_objectives(objectives: str | Sequence[str] | None, what: str = "--objectives") -> tuple[str, ...]:
    """`objectives` (names, or one comma-separated string; None: accuracy) checked and in the canonical
    order: ("accuracy",) or ("accuracy", "latency"). `what` names them in a refusal."""
    given = [o.strip() for o in objectives.split(",")] if isinstance(objectives, str) else list(objectives or SINGLE_OBJECTIVE)
    unknown = [o for o in given if o not in OBJECTIVE_NAMES]
    if unknown:
        raise AutohasError(f"unknown objective {unknown[0]!r} in {what}; choose accuracy or accuracy,latency")
    if len(set(given)) != len(given) or "accuracy" not in given:
        raise AutohasError(f"{what} {','.join(given)}: give accuracy, or accuracy,latency (each once)")
    return tuple(o for o in OBJECTIVE_NAMES if o in given)


def is_multi_objective(objectives) -> bool:
    """Whether `objectives` (the experiment's --objectives) asks for more than the search signal."""
    return tuple(objectives or SINGLE_OBJECTIVE) != SINGLE_OBJECTIVE


def check_objectives(name: str, objectives) -> None:
    """Refuse, in one line, a searcher that cannot search `objectives`."""
    check_algorithm(name)
    if is_multi_objective(objectives) and name not in MULTI_OBJECTIVE:
        raise AutohasError(f"--objectives {','.join(objectives)}: {name} searches one objective; multi-objective search "
                           f"is for {', '.join(MULTI_OBJECTIVE)}")


def check_algorithm(name: str) -> None:
    if name not in _REGISTRY:
        raise AutohasError(f"unknown algorithm {name!r}; choose from: {', '.join(ALGORITHMS)}")


def create(name: str, space: Space, seed: int, objectives=SINGLE_OBJECTIVE, **options: Any):
    """A fresh, seeded searcher `name` over `space`; with two `objectives` its multi-objective form
    (it reads each result's latency_ms as well as the search signal)."""
    check_objectives(name, objectives)
    import importlib

    multi = is_multi_objective(objectives)
    module, attribute = _MULTI_OBJECTIVE_CLASSES.get(name, _REGISTRY[name]) if multi else _REGISTRY[name]
    if multi and name in _TAKE_OBJECTIVES:
        options["objectives"] = tuple(objectives)
    return getattr(importlib.import_module(module), attribute)(space, seed, **options)


def describe(name: str, objectives=SINGLE_OBJECTIVE) -> str:
    """One line on searcher `name` and its settings (under `objectives`), for the experiment's protocol."""
    check_objectives(name, objectives)
    if name in _TAKE_OBJECTIVES:
        from autohas.searchers import tune_searchers

        return getattr(tune_searchers, f"describe_{name}")(objectives=tuple(objectives))
    if is_multi_objective(objectives):
        return _MULTI_OBJECTIVE_DESCRIPTIONS[name]
    return _DESCRIPTIONS[name]


def check_scheduler(name: str, scheduler: str | None) -> None:
    """A Tune scheduler runs with any black-box searcher but bohb, which brings its own HyperBand."""
    check_algorithm(name)
    if scheduler is None:
        return
    if scheduler not in SCHEDULERS:
        raise AutohasError(f"unknown scheduler {scheduler!r}; choose from: {', '.join(SCHEDULERS)}")
    if name == "bohb":
        raise AutohasError(f"--scheduler {scheduler} cannot run with bohb, which has its own HyperBand (HyperBandForBOHB): "
                           "run bohb in an experiment without --scheduler")


def pauses_trials(name: str, scheduler: str | None = None) -> bool:
    """Whether the run's scheduler pauses and resumes trials (HyperBand: bohb's own, or --scheduler hyperband)."""
    check_scheduler(name, scheduler)
    return name == "bohb" or scheduler == "hyperband"


def settles_past_budget(name: str) -> bool:
    """Whether the run goes on past its time budget until the number at the budget is settled (BOHB's
    official protocol, see searchers/limits.py)."""
    check_algorithm(name)
    return name == "bohb"


def evaluation_ends(name: str, epochs: list[int], scheduler: str | None = None) -> tuple[int, ...]:
    """The epochs (of the benchmark's `epochs`) at which an evaluation of the official protocol ends:
    BOHB's rungs (hpbandster's budgets, 1, 4 and 12 of 12 epochs), every epoch under a Tune scheduler
    (it may stop a trial after any of them), the last epoch for the others."""
    check_scheduler(name, scheduler)
    if scheduler is not None:
        return tuple(epochs)
    if name == "bohb":
        from autohas.searchers.bohb import rung_epochs

        return tuple(e for e in rung_epochs(max(epochs), min(epochs)) if e in epochs)
    return (max(epochs),)


def scheduler_for(name: str, epochs: list[int], scheduler: str | None = None):
    """The Tune trial scheduler a run of `name` uses over the evaluation's `epochs` (None: FIFO)."""
    check_scheduler(name, scheduler)
    if scheduler is not None:
        from autohas.searchers import schedulers

        return schedulers.create(scheduler, epochs)
    if name == "bohb":
        from autohas.searchers.bohb import bohb_scheduler

        return bohb_scheduler(max(epochs), min(epochs))
    return None


def describe_scheduler(scheduler: str | None, epochs: list[int]) -> str | None:
    """One line on the Tune scheduler over the evaluation's `epochs` (None: none)."""
    if scheduler is None:
        return None
    from autohas.searchers import schedulers

    return schedulers.describe(scheduler, epochs)
