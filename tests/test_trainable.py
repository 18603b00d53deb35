"""The tabular trainable under real Ray Tune, and the run ledger behind results.jsonl."""
import dataclasses

import numpy as np
import pytest
from ray import tune

from autohas.bench import open_benchmark
from autohas.results import RunLedger
from autohas.schema import RECORD_KEYS, TRIAL_KEYS, trial_result
from autohas.trainables.tabular import TabularSetup, benchmark_seed, tabular_results, tabular_trainable


def run_fixed(tmp_path, setup, arch, space):
    tuner = tune.Tuner(
        tune.with_parameters(tabular_trainable, setup=setup),
        param_space=space.arch_to_config(arch),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="fixed", verbose=0),
    )
    grid = tuner.fit()
    assert not grid.errors
    return grid[0].metrics_dataframe.to_dict("records")


@pytest.mark.parametrize("seed_mode", ["sample", "mean"])
def test_official_trial_reports_where_its_evaluations_end_in_the_schema(ray_session, official_path, tmp_path, seed_mode):
    """By default one evaluation at the budget (as the official random / REA / REINFORCE); with BOHB's
    rungs, a result at each (one continuous evaluation here: each costs its epochs from scratch)."""
    bench = open_benchmark(str(official_path), "nats-tss")
    arch = bench.space.index_to_arch(284)
    setup = TabularSetup(benchmark=str(official_path), space="nats-tss", dataset="cifar100",
                         budget=12, seed=5, algo="manual", seed_mode=seed_mode)
    assert [r["epoch"] for r in run_fixed(tmp_path / "one", setup, arch, bench.space)] == [12]
    rungs = dataclasses.replace(setup, evaluations=(1, 4, 12))
    rows = run_fixed(tmp_path / "rungs", rungs, arch, bench.space)
    assert [r["epoch"] for r in rows] == [1, 4, 12]
    seed = None if seed_mode == "mean" else benchmark_seed(5, 284)
    for row in rows:
        expected = bench.evaluate(arch, "cifar100", row["epoch"], seed)
        assert row["valid_acc"] == pytest.approx(expected.valid_acc)
        assert row["trial_sim_seconds"] == pytest.approx(expected.sim_seconds)
        assert row["test_acc"] == pytest.approx(bench.test_acc(arch, "cifar100"))
        assert (row["arch"], row["arch_index"], row["budget"]) == (arch, 284, row["epoch"])
        assert row["params"] == pytest.approx(bench.cost(arch, "cifar100").params)


def test_a_resumed_trial_pays_its_new_evaluation_from_scratch(official_path):
    """A trial resumed after epoch 4 (a BOHB promotion) pays the 12-epoch time again on top of what it
    paid, as the official `simulate_train_eval(arch, iepoch=11)` charges every evaluation."""
    bench = open_benchmark(str(official_path), "nats-tss")
    arch = bench.space.index_to_arch(11)
    setup = TabularSetup(benchmark=str(official_path), space="nats-tss", dataset="cifar10", budget=12, seed=0,
                         algo="manual", seed_mode="mean", evaluations=(1, 4, 12))
    config = bench.space.arch_to_config(arch)
    cost = {e: bench.evaluate(arch, "cifar10", e).sim_seconds for e in (1, 4, 12)}
    first = list(tabular_results(setup, config, "t", done=0, paid=0.0))[:1]
    assert first[0]["trial_sim_seconds"] == pytest.approx(cost[1])
    second = list(tabular_results(setup, config, "t", done=1, paid=cost[1]))[:1]
    assert (second[0]["epoch"], second[0]["trial_sim_seconds"]) == (4, pytest.approx(cost[1] + cost[4]))
    (last,) = tabular_results(setup, config, "t", done=4, paid=cost[1] + cost[4])
    assert (last["epoch"], last["trial_sim_seconds"]) == (12, pytest.approx(cost[1] + cost[4] + cost[12]))
    assert last["trial_sim_seconds"] > cost[12] + 0.9 * cost[4]  # not just the difference 12 - 4


def test_no_budget_makes_the_signal_a_test_accuracy(table_path):
    """The CSV table's 200-epoch column is acc200, a test accuracy: a budget reaching it is refused."""
    from autohas.errors import AutohasError

    bench = open_benchmark(str(table_path), "nats-tss")
    config = bench.space.arch_to_config(bench.space.index_to_arch(11472))
    setup = TabularSetup(benchmark=str(table_path), space="nats-tss", dataset="cifar10", budget=200, seed=0, algo="manual")
    with pytest.raises(AutohasError, match="test accuracy"):
        next(tabular_results(setup, config, "t"))
    with pytest.raises(AutohasError, match="never a search signal"):
        bench.evaluate(bench.space.index_to_arch(0), "cifar10", 200)


def test_table_trial_reports_its_one_fidelity(ray_session, table_path, tmp_path):
    bench = open_benchmark(str(table_path), "nats-tss")
    arch = bench.space.index_to_arch(11472)
    setup = TabularSetup(benchmark=str(table_path), space="nats-tss", dataset="cifar10", budget=12, seed=0, algo="manual")
    rows = run_fixed(tmp_path, setup, arch, bench.space)
    assert len(rows) == 1
    assert rows[0]["valid_acc"] == pytest.approx(bench.evaluate(arch, "cifar10", 12).valid_acc)
    assert rows[0]["test_acc"] == pytest.approx(93.91, abs=0.01)


def _result(trial, epoch, acc, cost, arch="a", test=50.0):
    fields = {k: None for k in TRIAL_KEYS}
    fields.update(trial_id=trial, epoch=epoch, budget=epoch, valid_acc=acc, trial_sim_seconds=cost, arch=arch, test_acc=test, hparams={})
    return fields


def test_ledger_clock_records_the_crossing_evaluation_and_a_monotone_incumbent():
    ledger = RunLedger(time_budget=100.0)
    r1 = ledger.add(_result("t1", 12, 60.0, 40.0, arch="A", test=70.0))
    assert set(r1) == set(RECORD_KEYS)
    assert (r1["sim_seconds"], r1["best_arch"], r1["best_test_acc"]) == (40.0, "A", 70.0)
    # the best signal over all evaluations of any budget (the official max(trajectory)), even a short one
    r2 = ledger.add(_result("t2", 4, 65.0, 10.0, arch="B", test=80.0))
    assert (r2["sim_seconds"], r2["best_arch"], r2["best_test_acc"]) == (50.0, "B", 80.0)
    # a longer evaluation of B with a lower signal does not dethrone B's best: the signal never falls
    r3 = ledger.add(_result("t2", 12, 61.0, 50.0, arch="B", test=81.0))
    assert (r3["sim_seconds"], r3["best_arch"], r3["best_test_acc"]) == (90.0, "B", 80.0)
    r4 = ledger.add(_result("t3", 12, 65.0, 5.0, arch="C", test=99.0))  # equal signal: the first stays
    assert r4["best_arch"] == "B"
    # the evaluation that crosses the budget is recorded (the official `while total_time < budget`)
    r5 = ledger.add(_result("t4", 12, 99.0, 30.0, arch="D", test=90.0))
    assert (r5["sim_seconds"], r5["best_arch"], r5["best_test_acc"]) == (125.0, "D", 90.0)
    assert ledger.clock == 125.0


def test_value_at_budget_is_draw_tables_query_performance():
    """Linear between the two points nearest the budget; both may lie on one side (extrapolation)."""
    from autohas.results import value_at_budget

    times, values = [10.0, 40.0, 70.0, 130.0], [50.0, 60.0, 66.0, 80.0]
    assert value_at_budget(times, values, 100.0) == pytest.approx(73.0)  # 70 and 130 straddle it
    assert value_at_budget(times, values, 55.0) == pytest.approx(63.0)  # 40 and 70
    # nearest two both before the budget: 70 (d 5) and 40 (d 35) beat 130 (d 55): extrapolated
    assert value_at_budget(times, values, 75.0) == pytest.approx(67.0)
    # nearest two both after the budget (105, 110): extrapolated back
    assert value_at_budget([10.0, 105.0, 110.0], [50.0, 60.0, 70.0], 100.0) == pytest.approx(50.0)
    assert value_at_budget([10.0], [42.0], 100.0) == 42.0 and np.isnan(value_at_budget([], [], 1.0))
    # 40 and 60 are equally near 50 after 45: the earlier one is taken, as Python's stable sort does
    assert value_at_budget([40.0, 45.0, 60.0], [1.0, 2.0, 3.0], 50.0) == pytest.approx(3.0)


def test_schema_rejects_missing_or_extra_keys():
    fields = {k: 0 for k in TRIAL_KEYS}
    fields["hparams"] = {}
    assert list(trial_result(**fields)) == list(TRIAL_KEYS)
    with pytest.raises(ValueError, match="missing"):
        trial_result(**{k: v for k, v in fields.items() if k != "arch"})
    with pytest.raises(ValueError, match="unexpected"):
        trial_result(**fields, loss=1.0)
