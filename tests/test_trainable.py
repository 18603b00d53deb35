"""The tabular trainable under real Ray Tune, and the run ledger behind results.jsonl."""
import pytest
from ray import tune

from autohas.bench import open_benchmark
from autohas.results import RunLedger
from autohas.schema import RECORD_KEYS, TRIAL_KEYS, trial_result
from trainables.tabular import TabularSetup, benchmark_seed, tabular_trainable


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
def test_official_trial_reports_every_epoch_in_the_schema(ray_session, official_path, tmp_path, seed_mode):
    bench = open_benchmark(str(official_path), "nats-tss")
    arch = bench.space.index_to_arch(284)
    setup = TabularSetup(benchmark=str(official_path), space="nats-tss", dataset="cifar100",
                         budget=12, seed=5, algo="manual", seed_mode=seed_mode)
    rows = run_fixed(tmp_path, setup, arch, bench.space)
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    seed = None if seed_mode == "mean" else benchmark_seed(5, 284)
    for row in rows:
        expected = bench.evaluate(arch, "cifar100", row["epoch"], seed)
        assert row["valid_acc"] == pytest.approx(expected.valid_acc)
        assert row["trial_sim_seconds"] == pytest.approx(expected.sim_seconds)
        assert row["test_acc"] == pytest.approx(bench.test_acc(arch, "cifar100"))
        assert (row["arch"], row["arch_index"], row["budget"]) == (arch, 284, row["epoch"])
        assert row["params"] == pytest.approx(bench.cost(arch, "cifar100").params)
    costs = [r["trial_sim_seconds"] for r in rows]
    assert costs == sorted(costs)


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


def test_ledger_clock_budget_and_incumbent():
    ledger = RunLedger(time_budget=100.0)
    r1 = ledger.add(_result("t1", 12, 60.0, 40.0, arch="A", test=70.0))
    assert set(r1) == set(RECORD_KEYS)
    assert (r1["sim_seconds"], r1["best_arch"], r1["best_test_acc"]) == (40.0, "A", 70.0)
    # a partial evaluation with a higher signal does not outrank a complete one
    r2 = ledger.add(_result("t2", 3, 65.0, 10.0, arch="B", test=80.0))
    assert (r2["sim_seconds"], r2["best_arch"]) == (50.0, "A")
    r3 = ledger.add(_result("t2", 12, 61.0, 40.0, arch="B", test=80.0))
    assert (r3["sim_seconds"], r3["best_arch"], r3["best_test_acc"]) == (80.0, "B", 80.0)
    assert ledger.add(_result("t3", 12, 99.0, 30.0, arch="C")) is None  # would end at 110 s > 100 s
    assert ledger.clock == 80.0 and ledger.best_arch == "B"


def test_schema_rejects_missing_or_extra_keys():
    fields = {k: 0 for k in TRIAL_KEYS}
    fields["hparams"] = {}
    assert list(trial_result(**fields)) == list(TRIAL_KEYS)
    with pytest.raises(ValueError, match="missing"):
        trial_result(**{k: v for k, v in fields.items() if k != "arch"})
    with pytest.raises(ValueError, match="unexpected"):
        trial_result(**fields, loss=1.0)
