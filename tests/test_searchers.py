"""Searchers driven directly through Tune's Searcher protocol (no Ray needed)."""
import numpy as np
import pytest
from ray.tune.search import Searcher

from autohas import searchers
from autohas.errors import AutohasError
from autohas.spaces import get_space
from autohas.searchers.limits import LimitedSearcher


def score_of(space, arch):
    """A deterministic toy objective: the sum of the choice positions (bigger is better)."""
    return float(sum(d.choices.index(v) for d, v in zip(space.decisions, space.decode(arch))))


def drive(searcher, space, n, prefix="t"):
    """Run n sequential trials against the toy objective; the proposed architectures."""
    archs = []
    for i in range(n):
        config = searcher.suggest(f"{prefix}{i}")
        if config is Searcher.FINISHED or config is None:
            break
        arch = space.config_to_arch(config)
        archs.append(arch)
        searcher.on_trial_complete(f"{prefix}{i}", {"valid_acc": score_of(space, arch), "trial_sim_seconds": 10.0})
    return archs


@pytest.mark.parametrize("algo", searchers.ALGORITHMS)
@pytest.mark.parametrize("space_name", ["nats-tss", "nats-sss"])
def test_same_seed_same_trials_other_seed_other_trials(algo, space_name):
    space = get_space(space_name)
    a = drive(searchers.create(algo, space, seed=3), space, 40)
    b = drive(searchers.create(algo, space, seed=3), space, 40)
    c = drive(searchers.create(algo, space, seed=4), space, 40)
    assert len(a) == 40 and a == b and a != c


def test_unknown_algorithm():
    with pytest.raises(AutohasError, match="unknown algorithm 'nope'"):
        searchers.create("nope", get_space("nats-tss"), 0)


def test_rea_warm_up_then_mutation_of_a_population_member_then_aging():
    space = get_space("nats-sss")
    rea = searchers.create("rea", space, seed=0)
    archs = drive(rea, space, 10)
    assert len(rea.population) == 10
    for i in range(10, 60):
        before = list(rea.population)
        child = space.config_to_arch(rea.suggest(f"c{i}"))
        # sss mutation (the reference's) may redraw the old width: at most one decision changes
        parents = [p for p, _ in before if sum(x != y for x, y in zip(space.decode(p), space.decode(child))) <= 1]
        assert parents, "every child is a mutation of a population member"
        rea.on_trial_complete(f"c{i}", {"valid_acc": score_of(space, child)})
        # the child joins at the young end, the oldest member leaves
        assert list(rea.population) == before[1:] + [(child, score_of(space, child))]
    assert len(archs) == 10


def test_rea_climbs_the_toy_objective_better_than_random():
    space = get_space("nats-sss")
    best = {}
    for algo in ("random", "rea"):
        finals = []
        for seed in range(5):
            s = searchers.create(algo, space, seed=seed)
            finals.append(max(score_of(space, a) for a in drive(s, space, 150)))
        best[algo] = np.mean(finals)
    assert best["rea"] > best["random"]


def test_rea_tournament_takes_the_best_sampled_member():
    space = get_space("nats-tss")
    rea = searchers.create("rea", space, seed=1, population_size=4, sample_size=50)
    drive(rea, space, 4)
    best = max(rea.population, key=lambda m: m[1])[0]
    child = space.config_to_arch(rea.suggest("x"))
    # with 50 draws from 4 members the best one is drawn (probability 1 - (3/4)^50)
    assert sum(x != y for x, y in zip(space.decode(best), space.decode(child))) == 1


def test_limits_stop_at_the_time_budget_and_hide_test_accuracy():
    space = get_space("nats-tss")
    seen = []

    class Spy(searchers.create("random", space, 0).__class__):
        def on_trial_complete(self, trial_id, result=None, error=False):
            seen.append(dict(result))
            super().on_trial_complete(trial_id, result, error)

    limited = LimitedSearcher(Spy(space, 0), time_budget=35.0)
    for i in range(10):
        config = limited.suggest(f"t{i}")
        if config is Searcher.FINISHED:
            break
        limited.on_trial_complete(f"t{i}", {"valid_acc": 1.0, "test_acc": 99.0, "best_test_acc": 99.0, "trial_sim_seconds": 10.0})
    assert i == 4  # 4 trials x 10 s reach 35 s; the 5th is refused
    assert limited.used_seconds == 40.0
    assert all("test_acc" not in r and "best_test_acc" not in r for r in seen)


def test_settling_past_the_budget_stops_once_no_later_evaluation_can_be_nearest_it():
    """BOHB: the two evaluations nearest the budget decide the number at it; later ones lie farther."""
    space = get_space("nats-tss")

    def stops_at(**limits):
        limited = LimitedSearcher(searchers.create("random", space, 0), time_budget=100.0, **limits)
        for i, cost in enumerate([60.0, 30.0, 15.0, 10.0, 10.0, 10.0]):  # the clock: 60, 90, 105, 115, ...
            if limited.suggest(f"t{i}") is Searcher.FINISHED:
                return i, limited.used_seconds
            limited.on_trial_complete(f"t{i}", {"valid_acc": 1.0, "trial_sim_seconds": cost})
        return None

    assert stops_at() == (3, 105.0)  # the official loops: the first evaluation past the budget is the last
    # at 105 the nearest are 105 (5) and 90 (10): a next one could still be within 10; at 115 none can
    assert stops_at(settle_past_budget=True) == (4, 115.0)


def test_limits_max_trials_and_concurrency():
    space = get_space("nats-tss")
    limited = LimitedSearcher(searchers.create("random", space, 0), max_trials=3, max_concurrent=2)
    assert isinstance(limited.suggest("a"), dict)
    assert isinstance(limited.suggest("b"), dict)
    assert limited.suggest("c") is None  # two live already
    limited.on_trial_complete("a", {"valid_acc": 1.0, "trial_sim_seconds": 1.0})
    assert isinstance(limited.suggest("c"), dict)
    limited.on_trial_complete("b", {"valid_acc": 1.0, "trial_sim_seconds": 1.0})
    assert limited.suggest("d") is Searcher.FINISHED


@pytest.mark.parametrize("algo", searchers.ALGORITHMS)
def test_saved_state_continues_the_same_sequence(algo, tmp_path):
    space = get_space("nats-tss")
    whole = drive(LimitedSearcher(searchers.create(algo, space, seed=9)), space, 30)
    first = LimitedSearcher(searchers.create(algo, space, seed=9))
    head = drive(first, space, 15)
    first.save(str(tmp_path / "state.pkl"))
    second = LimitedSearcher(searchers.create(algo, space, seed=123))
    second.restore(str(tmp_path / "state.pkl"))
    tail = drive(second, space, 15, prefix="u")
    assert head + tail == whole
