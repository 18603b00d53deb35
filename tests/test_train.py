"""The train trainable: the H0 schedule, real learning, per-epoch schema, exact resume."""
import io
import math

import pytest
import torch

from autohas import schema
from autohas.models import count_flops, count_params
from autohas.trainables.train import Recipe, TrainSetup, cosine_lr, train_results

SMALL = {"nats-sss": "16:16:16:16:16", "nats-tss": "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"}


def setup_for(space="nats-sss", budget=2, epochs=12, tmp_cache=None, **recipe):
    return TrainSetup(
        space=space, dataset="digits", data_dir=None, budget=budget, seed=0, algo="test",
        recipe=Recipe(epochs=epochs, **recipe), threads=2, cache_dir=tmp_cache,
    )


def config_of(space, arch):
    from autohas.spaces import get_space

    return get_space(space).arch_to_config(arch)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data-cache"))


def test_cosine_schedule_spans_the_whole_run():
    assert cosine_lr(0.1, 0, 120) == pytest.approx(0.1)
    assert cosine_lr(0.1, 60, 120) == pytest.approx(0.05)
    assert cosine_lr(0.1, 120, 120) == pytest.approx(0.0, abs=1e-12)
    values = [cosine_lr(0.1, s, 120) for s in range(121)]
    assert all(a > b for a, b in zip(values, values[1:]))
    # a 3-epoch budget of a 12-epoch schedule ends at lr(3/12), not at 0
    assert cosine_lr(0.1, 30, 120) == pytest.approx(0.05 * (1 + math.cos(math.pi / 4)))


@pytest.mark.parametrize("space", ["nats-sss", "nats-tss"])
def test_reports_the_schema_every_epoch(space, cache):
    arch = SMALL[space]
    results = []
    for result, training in train_results(setup_for(space, budget=2, tmp_cache=cache), config_of(space, arch), "t1"):
        results.append(result)
        lr = training.optimizer.param_groups[0]["lr"]
    assert [r["epoch"] for r in results] == [1, 2] and [r["budget"] for r in results] == [1, 2]
    for r in results:
        assert set(r) == set(schema.TRIAL_KEYS)
        assert r["arch"] == arch and r["space"] == space and r["dataset"] == "digits"
        assert 0.0 <= r["valid_acc"] <= 100.0 and 0.0 <= r["test_acc"] <= 100.0
        assert r["params"] == pytest.approx(count_params(training.model))
        assert r["flops"] == pytest.approx(count_flops(training.model, (1, 3, 16, 16)))
    # the cost on a CPU is the process' CPU seconds of training and validation: at most threads x wall
    threads = setup_for(space, budget=2, tmp_cache=cache).threads
    assert 0 < results[0]["trial_sim_seconds"] < results[1]["trial_sim_seconds"] <= threads * results[1]["wall_seconds"] + 0.1
    # in the second of 12 epochs the lr is still high: the schedule spans all 12, stepping per epoch
    assert lr == pytest.approx(cosine_lr(0.1, 1, 12))


def test_learns_digits(cache):
    """Twelve H0 epochs of a small sss network recognise digits far above chance (10 %)."""
    results = [r for r, _ in train_results(setup_for("nats-sss", budget=12, tmp_cache=cache), config_of("nats-sss", "16:16:16:16:16"), "t")]
    assert results[-1]["valid_acc"] > 80.0 and results[-1]["test_acc"] > 80.0
    assert results[-1]["valid_acc"] > results[0]["valid_acc"]


def test_resume_from_a_checkpoint_continues_the_same_run(cache):
    config = config_of("nats-sss", "8:16:8:16:8")
    straight = [r for r, _ in train_results(setup_for(budget=3, tmp_cache=cache), config, "t")]
    state = None
    for _, training in train_results(setup_for(budget=1, tmp_cache=cache), config, "t"):
        buffer = io.BytesIO()
        torch.save(training.state(), buffer)  # as the checkpoint does
        buffer.seek(0)
        state = torch.load(buffer, weights_only=False)
    resumed = [r for r, _ in train_results(setup_for(budget=3, tmp_cache=cache), config, "t", state=state)]
    assert [r["epoch"] for r in resumed] == [2, 3]
    for a, b in zip(straight[1:], resumed):
        assert (a["valid_acc"], a["test_acc"]) == (b["valid_acc"], b["test_acc"])
    assert resumed[-1]["trial_sim_seconds"] > resumed[0]["trial_sim_seconds"] > state["seconds"]


def test_same_seed_same_training_other_arch_other_numbers(cache):
    config = config_of("nats-sss", "8:8:16:8:8")
    a = [r["valid_acc"] for r, _ in train_results(setup_for(budget=2, tmp_cache=cache), config, "a")]
    b = [r["valid_acc"] for r, _ in train_results(setup_for(budget=2, tmp_cache=cache), config, "b")]
    assert a == b


def test_given_splits_are_the_ones_trained_and_evaluated(cache):
    """`train_results(splits=...)` (benchmarks/train_speed.py times the trainable on a subset): the
    dataset's own splits give the numbers of a run that loads them; a valid split that is the test
    split gives valid_acc == test_acc."""
    from autohas.data import Splits, load_splits

    setup, config = setup_for(budget=1, tmp_cache=cache), config_of("nats-sss", "8:8:8:8:8")
    loaded = load_splits("digits", cache_dir=cache)
    [(plain, _)] = train_results(setup, config, "a")
    [(given, _)] = train_results(setup, config, "a", splits=loaded)
    assert (given["valid_acc"], given["test_acc"]) == (plain["valid_acc"], plain["test_acc"])
    swapped = Splits(spec=loaded.spec, train=loaded.train, valid=loaded.test, test=loaded.test)
    [(result, _)] = train_results(setup, config, "a", splits=swapped)
    assert result["valid_acc"] == result["test_acc"] == plain["test_acc"]
    assert result["valid_acc"] != plain["valid_acc"]
