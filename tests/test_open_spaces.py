"""Spaces are open: a user's registered space works with every searcher and resumes; `has` is a real
Space (nats-tss cell x learning rate x weight decay) that black-box searchers search by training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from autohas import searchers
from autohas import spaces as registry
from autohas.errors import AutohasError
from autohas.searchers.base import SpaceSearcher
from autohas.searchers.limits import LimitedSearcher
from autohas.spaces import Decision, Space, get_space, register_space
from tests.test_searchers import drive


class ToySpace(Space):
    """A user's space: depth x activation x width, index in mixed radix (depth most significant)."""

    name = "toy-mlp"

    def __init__(self) -> None:
        super().__init__([Decision("depth", (1, 2, 3, 4)), Decision("act", ("relu", "gelu", "tanh")), Decision("width", (16, 32, 64))])

    def encode(self, genotype):
        self._check(genotype)
        depth, act, width = genotype
        return f"d{depth}-{act}-w{width}"

    def decode(self, arch):
        try:
            depth, act, width = arch.split("-")
            genotype = (int(depth[1:]), act, int(width[1:]))
        except (AttributeError, ValueError):
            raise AutohasError(f"not a toy-mlp architecture: {arch!r}") from None
        self._check(genotype)
        return genotype

    def arch_to_index(self, arch):
        index = 0
        for decision, value in zip(self.decisions, self.decode(arch)):
            index = index * len(decision.choices) + decision.choices.index(value)
        return index

    def index_to_arch(self, index):
        values = []
        for decision in reversed(self.decisions):
            index, position = divmod(int(index), len(decision.choices))
            values.append(decision.choices[position])
        return self.encode(tuple(reversed(values)))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    monkeypatch.setattr(registry, "_INSTANCES", dict(registry._INSTANCES))
    register_space(ToySpace)
    return get_space("toy-mlp")


def test_a_registered_space_is_known_by_name_and_listed(toy):
    assert isinstance(toy, ToySpace) and toy.size == 36 and "toy-mlp" in registry.space_names()
    assert [toy.arch_to_index(toy.index_to_arch(i)) for i in range(toy.size)] == list(range(36))
    with pytest.raises(AutohasError, match="already registered"):
        register_space(ToySpace)
    assert sorted(toy.neighbours("d2-gelu-w32")) == sorted(
        ["d1-gelu-w32", "d3-gelu-w32", "d4-gelu-w32", "d2-relu-w32", "d2-tanh-w32", "d2-gelu-w16", "d2-gelu-w64"])


@pytest.mark.parametrize("algo", searchers.ALGORITHMS)
def test_every_searcher_searches_and_resumes_a_users_space(algo, toy, tmp_path):
    whole = drive(LimitedSearcher(searchers.create(algo, toy, seed=5)), toy, 24)
    assert len(whole) == 24 and all(toy.decode(a) for a in whole)
    first = LimitedSearcher(searchers.create(algo, toy, seed=5))
    head = drive(first, toy, 12)
    first.save(str(tmp_path / "state.pkl"))
    second = LimitedSearcher(searchers.create(algo, toy, seed=77))
    second.restore(str(tmp_path / "state.pkl"))  # the space comes back through the registry, by name
    tail = drive(second, toy, 12, prefix="u")
    assert head + tail == whole
    if isinstance(second.searcher, SpaceSearcher):
        assert second.searcher.space is toy


def test_has_is_a_space_of_cells_and_hyperparameters():
    has, tss = get_space("has"), get_space("nats-tss")
    assert has.size == tss.size * 81 and has.architecture_space == "nats-tss" and not has.tabular
    rng = np.random.default_rng(0)
    for _ in range(100):
        arch = has.sample(rng)
        assert has.index_to_arch(has.arch_to_index(arch)) == arch
        assert has.config_to_arch(has.arch_to_config(arch)) == arch
        cell, hp = has.architecture(arch), has.hyperparameters(arch)
        assert arch == f"{cell}@lr={hp['lr']:.6g},wd={hp['weight_decay']:.6g}"
        assert has.arch_to_index(arch) // 81 == tss.arch_to_index(cell)
    assert has.index_to_arch(0).startswith(tss.index_to_arch(0) + "@lr=0.01,wd=5e-05")
    with pytest.raises(AutohasError, match="not a has candidate"):
        has.decode(tss.index_to_arch(0) + "@lr=0.3,wd=5e-05")


def test_the_gp_bandit_searches_has_without_tabulating_a_million_candidates():
    has = get_space("has")
    archs = drive(searchers.create("gp", has, seed=0, num_initial=4, num_random=50), has, 8)
    assert len(set(archs)) == 8
    again = drive(searchers.create("gp", has, seed=0, num_initial=4, num_random=50), has, 8)
    assert archs == again


def test_a_has_candidate_trains_with_its_own_learning_rate_and_weight_decay(tmp_path):
    from autohas.data import load_splits
    from autohas.trainables.train import Training, TrainSetup, recipe_for

    has = get_space("has")
    arch = has.index_to_arch(11472 * 81 + 2 * 9 + 7)  # the ResNet-like cell, lr 0.05, wd 0.00375
    setup = TrainSetup(space="has", dataset="digits", data_dir=None, budget=1, seed=0, algo="random", recipe=recipe_for("digits", 2))
    splits = load_splits("digits", cache_dir=str(tmp_path))
    training = Training(setup, arch, seed=0, splits=splits)
    assert (training.recipe.lr, training.recipe.weight_decay) == (pytest.approx(0.05), pytest.approx(5e-4 * 7.5))
    assert training.optimizer.param_groups[0]["weight_decay"] == pytest.approx(5e-4 * 7.5)
    plain = Training(TrainSetup(space="nats-tss", dataset="digits", data_dir=None, budget=1, seed=0, algo="random",
                                recipe=recipe_for("digits", 2)), has.architecture(arch), seed=0, splits=splits)
    assert plain.recipe.lr == 0.1  # a pure architecture keeps H0's
    for mine, theirs in zip(training.model.parameters(), plain.model.parameters()):  # the same network, the same seed
        assert mine.shape == theirs.shape and bool((mine == theirs).all())


def test_black_box_searchers_search_has_by_training_on_digits(ray_session, tmp_path, capsys):
    from autohas.tune import main

    argv = ["--algo", "random,rea", "--space", "has", "--dataset", "digits", "--epochs", "2", "--num-samples", "2",
            "--storage", str(tmp_path), "--name", "has-bb"]
    assert main(argv) == 0
    rows = [json.loads(line) for line in open(tmp_path / "has-bb" / "results.jsonl")]
    has = get_space("has")
    assert {r["algo"] for r in rows} == {"random", "rea"} and {r["space"] for r in rows} == {"has"}
    for r in rows:
        assert r["hparams"] == has.hyperparameters(r["arch"]) and r["arch_index"] == has.arch_to_index(r["arch"])
        assert 0 <= r["valid_acc"] <= 100 and r["best_arch"].count("@lr=") == 1
    for algo in ("random", "rea"):
        assert len({r["trial_id"] for r in rows if r["algo"] == algo}) == 2
        assert [r["epoch"] for r in rows if r["algo"] == algo] == [1, 2, 1, 2]
    protocol = json.load(open(tmp_path / "has-bb" / "protocol.json"))
    assert "lr, weight decay as the candidate sets them" in protocol["signal"]
    assert "random seed 0: 2 trials" in capsys.readouterr().out
