"""The Python API of a user's own Tune script: the README's examples run as written, the searcher
follows Tune's metric and mode and refuses keys it does not own, the tabular trainable refuses bad
arguments up front, and an experiment's records load as a DataFrame in both modes."""
from __future__ import annotations

import json
import re

import pytest
from ray.tune.search import Searcher

import autohas
from autohas import searchers
from autohas.errors import AutohasError
from autohas.spaces import get_space
from tests.conftest import ROOT

SPACE = get_space("nats-tss")


def readme_python_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Python\n"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_examples_run(ray_session, table_path, tmp_path, monkeypatch):
    import ray.train.constants
    import ray.tune.experiment.experiment

    for module in (ray.train.constants, ray.tune.experiment.experiment):  # Tune's default ~/ray_results
        monkeypatch.setattr(module, "DEFAULT_STORAGE_PATH", str(tmp_path))
    monkeypatch.setenv("NATS_TSS_TABLE", str(table_path))
    blocks = readme_python_blocks()
    assert len(blocks) == 2 and all(len(b.strip().splitlines()) <= 10 for b in blocks)
    namespace = {"__name__": "readme_example"}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    bench = autohas.open_benchmark(str(table_path), "nats-tss")
    mine, theirs, searcher = namespace["mine"], namespace["theirs"], namespace["searcher"]
    # (a) no param_space: the searcher took TuneConfig's metric and mode, so no trial failed on valid_acc
    assert (searcher.metric, searcher.mode) == ("acc", "max")
    assert len(mine) == 10 and not mine.errors
    for result in mine:
        arch = result.config["arch"]
        assert arch == SPACE.config_to_arch(result.config)
        assert result.metrics["acc"] == pytest.approx(bench.evaluate(arch, "cifar10", 12).valid_acc)
    # REA saw the user's metric: its population holds the scores the trials reported
    scores = sorted(r.metrics["acc"] for r in mine)
    assert sorted(score for _, score in searcher.searcher.population) == pytest.approx(scores)
    # (b) autohas's trainable under Tune's OptunaSearch: schema results, the benchmark's numbers
    assert len(theirs) == 10 and not theirs.errors
    best = theirs.get_best_result()
    assert best.metrics["valid_acc"] == max(r.metrics["valid_acc"] for r in theirs)
    assert best.metrics["arch"] == SPACE.config_to_arch(best.config)
    assert best.metrics["test_acc"] == pytest.approx(bench.test_acc(best.metrics["arch"], "cifar10"))


def test_a_param_space_with_constants_and_mode_min(ray_session, table_path, tmp_path):
    """With a param_space Tune calls set_search_properties: mode min reaches the searcher (it keeps the
    lowest scores), constants reach the trainable, the config holds the architecture string."""
    from ray import tune

    table = str(table_path)

    def trainable(config):
        valid = autohas.open_benchmark(table, "nats-tss").evaluate(config["arch"], "cifar10", 12).valid_acc
        tune.report({"err": 100.0 - valid, "lr": config["lr"]})

    searcher = autohas.searcher("rea", "nats-tss", seed=1)
    grid = tune.Tuner(trainable, param_space={**autohas.param_space("nats-tss"), "lr": 0.1},
                      tune_config=tune.TuneConfig(search_alg=searcher, metric="err", mode="min", num_samples=6, reuse_actors=True),
                      run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert len(grid) == 6 and not grid.errors and {r.metrics["lr"] for r in grid} == {0.1}
    assert (searcher.metric, searcher.mode) == ("err", "min")
    assert sorted(s for _, s in searcher.searcher.population) == pytest.approx(sorted(-r.metrics["err"] for r in grid))


def toy_score(arch: str) -> float:
    return float(sum(d.choices.index(v) for d, v in zip(SPACE.decisions, SPACE.decode(arch))))


@pytest.mark.parametrize("algo", ["rea", "gp"])
def test_a_minimised_metric_drives_the_searcher_as_its_negative_maximised(algo):
    """The wrapper changes names and signs only: same seed, same proposals as the bare searcher."""
    bare = searchers.create(algo, SPACE, seed=5)
    wrapped = autohas.searcher(algo, SPACE, seed=5)
    assert wrapped.set_search_properties("loss", "min", {}) is True
    for i in range(25):
        config, plain = wrapped.suggest(f"t{i}"), bare.suggest(f"t{i}")
        assert config["arch"] == SPACE.config_to_arch(plain) and {k: config[k] for k in plain} == plain
        score = toy_score(config["arch"])
        bare.on_trial_complete(f"t{i}", {"valid_acc": score})
        wrapped.on_trial_complete(f"t{i}", {"loss": -score, "valid_acc": -1.0, "test_acc": 99.0})


TWO = ("accuracy", "latency")


def test_two_objectives_reach_the_wrapped_searcher_as_its_own():
    """Two user metrics, the first minimised and the second maximised, drive multi-objective rea as
    its valid_acc and latency_ms: same seed, same proposals as the bare searcher."""
    bare = searchers.create("rea", SPACE, seed=4, objectives=TWO)
    wrapped = autohas.searcher("rea", SPACE, seed=4, objectives=TWO, metric=["err", "speed"], mode=["min", "max"])
    wrapped.set_search_properties("err", "min", {})  # Tune's single metric: the first objective
    assert (wrapped.metric, wrapped.mode) == (["err", "speed"], ["min", "max"])
    for i in range(30):
        config, plain = wrapped.suggest(f"t{i}"), bare.suggest(f"t{i}")
        assert config["arch"] == SPACE.config_to_arch(plain) and {k: config[k] for k in plain} == plain
        score = toy_score(config["arch"])
        latency = 1.0 + (i * 7) % 5  # not monotone in the score: a real trade-off
        bare.on_trial_complete(f"t{i}", {"valid_acc": score, "latency_ms": latency})
        wrapped.on_trial_complete(f"t{i}", {"err": -score, "speed": -latency, "valid_acc": -1.0, "latency_ms": 99.0})
    assert list(wrapped.searcher.population) == list(bare.population)
    # autohas's own names are the default pair
    assert autohas.searcher("nsga2", SPACE, objectives=TWO).metric == ["valid_acc", "latency_ms"]


def test_two_objectives_are_refused_in_one_line_where_wrong():
    cases = {
        "this searcher has one objective": dict(algo="rea", metric=["acc", "ms"], mode=["max", "min"]),
        "two objectives need metric=[accuracy metric, latency metric] and mode=[its mode, its mode] ('min' or 'max'), "
        "e.g. ['valid_acc', 'latency_ms'] and ['max', 'min']; got 'acc', 'max'": dict(algo="rea", objectives=TWO, metric="acc", mode="max"),
        "got ['acc', 'ms'], None": dict(algo="nsga2", objectives=TWO, metric=["acc", "ms"]),
        "got ['acc', 'ms'], ['max', 'fast']": dict(algo="random", objectives=TWO, metric=["acc", "ms"], mode=["max", "fast"]),
        "gp searches one objective": dict(algo="gp", objectives=TWO),
        "unknown objective 'latnecy' in objectives": dict(algo="rea", objectives=("accuracy", "latnecy")),
        "objectives latency: give accuracy, or accuracy,latency (each once)": dict(algo="rea", objectives=("latency",)),
        "give objectives as ('accuracy', 'latency'): metric and mode follow that order":
            dict(algo="rea", objectives=("latency", "accuracy"), metric=["ms", "acc"], mode=["min", "max"]),
    }
    for message, kwargs in cases.items():
        with pytest.raises(AutohasError, match=re.escape(message)) as caught:
            autohas.searcher(kwargs.pop("algo"), SPACE, **kwargs)
        assert "\n" not in str(caught.value)
    # one comma-separated string, as on the command line; a single "accuracy" is one objective
    assert autohas.searcher("rea", SPACE, objectives="accuracy,latency").metric == ["valid_acc", "latency_ms"]
    assert autohas.searcher("rea", SPACE, objectives="accuracy").metric is None
    made = autohas.searcher("rea", SPACE, objectives=TWO, metric=["acc", "ms"], mode=["max", "min"])
    with pytest.raises(AutohasError, match="TuneConfig's metric 'ms' \\(min\\) is not this searcher's first objective 'acc'"):
        made.set_search_properties("ms", "min", {})


@pytest.mark.parametrize("algo,with_param_space", [("rea", True), ("nsga2", False)])
def test_two_objectives_in_a_users_tuner(algo, with_param_space, ray_session, table_path, tmp_path):
    """A user's Tuner with a two-objective searcher whose accuracy is a minimised error, TuneConfig naming
    that first metric (with a param_space Tune hands it over by set_search_properties, without one the
    searcher reads it from tune.run): every trial's pair of numbers reaches the searcher, the error as
    its accuracy."""
    from ray import tune

    table = str(table_path)

    def trainable(config):
        valid = autohas.open_benchmark(table, "nats-tss").evaluate(config["arch"], "cifar10", 12).valid_acc
        tune.report({"err": 100.0 - valid, "ms": 1.0 + toy_score(config["arch"])})

    searcher = autohas.searcher(algo, "nats-tss", seed=2, objectives=TWO, metric=["err", "ms"], mode=["min", "min"])
    extra = {"param_space": {**autohas.param_space("nats-tss"), "lr": 0.1}} if with_param_space else {}
    grid = tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, metric="err", mode="min", num_samples=8),
                      run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0), **extra).fit()
    assert len(grid) == 8 and not grid.errors
    reported = sorted((100.0 - r.metrics["err"], r.metrics["ms"]) for r in grid)
    if algo == "rea":
        seen = sorted((100.0 + score, latency) for _, score, latency in searcher.searcher.population)  # score = -err
    else:
        seen = sorted((100.0 + values[0], values[1]) for values in (t.values for t in searcher.searcher.inner._ot_study.trials) if values)
    assert len(seen) == len(reported) and [x for pair in seen for x in pair] == pytest.approx([x for pair in reported for x in pair])


def test_metric_and_mode_precedence():
    made = autohas.searcher("random", SPACE, metric="acc", mode="min")
    made.set_search_properties(None, None, {})
    assert (made.metric, made.mode) == ("acc", "min")  # Tune said nothing: its own
    made.set_search_properties("loss", "max", {})
    assert (made.metric, made.mode) == ("loss", "max")  # Tune's win
    plain = autohas.searcher("random", "nats-tss")
    assert isinstance(plain.suggest("a"), dict)  # outside tune.run: autohas's own
    assert (plain.metric, plain.mode) == ("valid_acc", "max")
    with pytest.raises(AutohasError, match="metric 'acc' comes without a mode"):
        autohas.searcher("random", SPACE).set_search_properties("acc", None, {})
    with pytest.raises(AutohasError, match="mode must be"):
        autohas.searcher("random", SPACE, mode="maximise")


def test_param_space_keys_it_does_not_own_are_refused_in_one_line():
    from ray import tune

    own = autohas.param_space(SPACE)
    ok = autohas.searcher("rea", SPACE)
    assert ok.set_search_properties("acc", "max", {**own, "epochs": 12, "opt": {"name": "sgd"}}) is True
    cases = {
        "does not search 'lr'": {"lr": tune.loguniform(1e-4, 1e-1)},
        "does not search 'opt'": {"opt": {"momentum": tune.uniform(0.0, 1.0)}},
        "does not search 'batch'": {"batch": tune.grid_search([64, 128])},
        "sets 'edge_1_0' itself": {**own, "edge_1_0": tune.choice(["none", "skip_connect"])},
        "sets 'edge_2_1' itself": {"edge_2_1": "none"},
        "sets 'arch' itself": {"arch": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"},
    }
    for message, config in cases.items():
        with pytest.raises(AutohasError, match=re.escape(message)) as caught:
            autohas.searcher("rea", SPACE).set_search_properties("acc", "max", config)
        assert "\n" not in str(caught.value)
    # the bare searcher (autohas.create_searcher) refuses them too, rather than return True
    with pytest.raises(AutohasError, match="does not search 'lr'"):
        searchers.create("rea", SPACE, 0).set_search_properties("acc", "max", {"lr": tune.uniform(0, 1)})


def test_state_round_trip_keeps_metric_and_mode():
    first = autohas.searcher("rea", SPACE, seed=0)
    first.set_search_properties("err", "min", {})
    again = autohas.searcher("rea", SPACE, seed=0)
    again.set_state(first.get_state())
    assert (again.metric, again.mode, again.settled) == ("err", "min", True)


def test_tabular_trainable_refuses_bad_arguments_up_front(table_path, tmp_path):
    table = str(table_path)
    with pytest.raises(AutohasError, match="dataset 'mnist' is not in"):
        autohas.tabular_trainable(table, "mnist")
    with pytest.raises(AutohasError, match="benchmark not found"):
        autohas.tabular_trainable(str(tmp_path / "none.csv"), "cifar10")
    with pytest.raises(AutohasError, match="has no tabular benchmark"):
        autohas.tabular_trainable(table, "cifar10", space="has")
    with pytest.raises(AutohasError, match="seed_mode"):
        autohas.tabular_trainable(table, "cifar10", seed_mode="median")
    with pytest.raises(AutohasError, match="test accuracy"):
        autohas.tabular_trainable(table, "cifar10", budget=200)


def test_load_records_in_both_modes(ray_session, table_path, tmp_path):
    from autohas.runner import RunSpec, execute
    from autohas.schema import RECORD_KEYS
    from autohas.simulate import simulate_experiment

    def spec(algo):
        return RunSpec(algo=algo, seed=0, space="nats-tss", dataset="cifar10", benchmark=str(table_path),
                       experiment_dir=str(tmp_path / "both"), time_budget=1500.0, num_samples=None, concurrency=1)

    (tmp_path / "both").mkdir()
    simulate_experiment([spec("random")])
    execute(spec("rea"))
    with open(tmp_path / "both" / "results.jsonl") as handle:
        written = [json.loads(line) for line in handle]
    frame = autohas.load_records(tmp_path / "both")
    assert list(frame.columns) == [*RECORD_KEYS, "mode"]
    assert len(frame) == len(written) and {"random", "rea"} == set(frame.algo)
    assert dict(frame.groupby("algo")["mode"].first()) == {"random": "simulate", "rea": "tune"}
    for row, record in zip(frame.to_dict("records"), written):
        assert row["arch"] == record["arch"] and row["seq"] == record["seq"] and row["sim_seconds"] == record["sim_seconds"]
    for _, run in frame.groupby(["algo", "seed"]):
        assert list(run.seq) == list(range(len(run)))
        assert run.sim_seconds.is_monotonic_increasing
    # the same through (storage, name), and through the file itself
    assert autohas.load_records(tmp_path, "both").equals(frame)
    assert autohas.load_records(tmp_path / "both" / "results.jsonl").equals(frame)
    # a damaged line in the middle is refused; a torn last line (a write cut short) is skipped
    lines = (tmp_path / "both" / "results.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "both" / "results.jsonl").write_text("".join(lines) + '{"algo": "rea", "se')
    assert len(autohas.load_records(tmp_path / "both")) == len(written)
    (tmp_path / "both" / "results.jsonl").write_text("".join(lines[:2] + ["garbage\n"] + lines[2:]))
    with pytest.raises(AutohasError, match="line 3: not a JSON record"):
        autohas.load_records(tmp_path / "both")
    with pytest.raises(AutohasError, match="not an autohas experiment"):
        autohas.load_records(tmp_path / "nothing")


def test_searcher_finished_passes_through():
    """A searcher that has nothing more to propose says so through the wrapper (Tune ends the run)."""

    class Done(Searcher):
        def suggest(self, trial_id):
            return Searcher.FINISHED

    from autohas.searchers.user import UserSearcher

    assert UserSearcher(Done(), SPACE).suggest("x") is Searcher.FINISHED
