"""Both readers against the real records: exact numbers, semantics, clear errors."""
import bz2
import pickle
import statistics

import numpy as np
import pytest

from autohas.bench import open_benchmark, resolve_benchmark_path
from autohas.errors import AutohasError

TSS = "NATS-tss-v1_0-3ffb9-simple"
SSS = "NATS-sss-v1_0-50262-simple"


def raw_record(official_path, folder, index):
    with bz2.open(official_path / folder / f"{index:06d}.pickle.pbz2", "rb") as handle:
        return pickle.load(handle)


def raw_runs(record, hp, name):
    info = record[hp]
    return [info["all_results"][(name, s)] for s in sorted(info["dataset_seed"][name])]


# -- official reader ---------------------------------------------------------------------
def test_official_exact_numbers_arch_11(official_path):
    bench = open_benchmark(str(official_path), "nats-tss")
    arch = bench.space.index_to_arch(11)
    # cifar10: search signal from cifar10-valid (seed mean of 111 and 777), report from cifar10.
    ev = bench.evaluate(arch, "cifar10", 12)
    assert ev.valid_acc == pytest.approx(63.27799998413086, abs=1e-9)
    assert ev.sim_seconds == pytest.approx(153.6959332625071, abs=1e-9)
    assert bench.evaluate(arch, "cifar10", 1, seed=0).valid_acc == pytest.approx(30.008000002441406, abs=1e-9)
    assert bench.test_acc(arch, "cifar10") == pytest.approx(91.58333333333333, abs=1e-9)
    assert bench.test_acc(arch, "cifar100") == pytest.approx(67.6066666422526, abs=1e-9)
    assert bench.test_acc(arch, "ImageNet16-120") == pytest.approx(30.166666602240667, abs=1e-9)
    cost = bench.cost(arch, "cifar10")
    assert (cost.params, cost.flops) == (pytest.approx(0.802426), pytest.approx(113.95137))


@pytest.mark.parametrize("index", [0, 11, 284])
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "ImageNet16-120"])
def test_official_tss_matches_the_raw_records(official_path, index, dataset):
    bench = open_benchmark(str(official_path), "nats-tss")
    record = raw_record(official_path, TSS, index)
    arch = bench.space.index_to_arch(index)
    assert record["12"]["arch_str"] == arch
    search_name = "cifar10-valid" if dataset == "cifar10" else dataset
    runs = raw_runs(record, "12", search_name)
    for epoch in (1, 5, 12):
        per_run = [r["eval_acc1es"][f"x-valid@{epoch - 1}"] for r in runs]
        assert bench.evaluate(arch, dataset, epoch).valid_acc == pytest.approx(statistics.fmean(per_run), abs=1e-9)
        for k, run in enumerate(runs):  # seed picks one run
            assert bench.evaluate(arch, dataset, epoch, seed=k).valid_acc == pytest.approx(per_run[k], abs=1e-9)
            train = sum(run["train_times"][e] for e in range(epoch))
            valid_per_epoch = sum(run["eval_times"][f"x-valid@{e}"] for e in range(epoch)) / epoch
            assert bench.evaluate(arch, dataset, epoch, seed=k).sim_seconds == pytest.approx(train + valid_per_epoch)
    test_set = "ori-test" if dataset == "cifar10" else "x-test"
    report = [r["eval_acc1es"][f"{test_set}@199"] for r in raw_runs(record, "200", dataset)]
    assert len(report) == 3
    assert bench.test_acc(arch, dataset) == pytest.approx(statistics.fmean(report), abs=1e-9)


def test_official_search_signal_is_monotone_in_cost(official_path):
    bench = open_benchmark(str(official_path), "nats-tss")
    arch = bench.space.index_to_arch(284)
    costs = [bench.evaluate(arch, "cifar100", e, seed=3).sim_seconds for e in bench.fidelities]
    assert costs == sorted(costs) and costs[0] > 0
    assert bench.fidelities == tuple(range(1, 13))
    assert bench.epochs_up_to(5) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("index", [0, 11, 284])
def test_official_sss_reports_hp_90(official_path, index):
    bench = open_benchmark(str(official_path), "nats-sss")
    record = raw_record(official_path, SSS, index)
    arch = bench.space.index_to_arch(index)
    assert record["90"]["arch_str"] == arch
    runs = raw_runs(record, "90", "cifar100")
    assert bench.test_acc(arch, "cifar100") == pytest.approx(
        statistics.fmean(r["eval_acc1es"]["x-test@89"] for r in runs), abs=1e-9
    )
    search = raw_runs(record, "12", "cifar10-valid")
    assert len(search) == 3
    assert bench.evaluate(arch, "cifar10", 12).valid_acc == pytest.approx(
        statistics.fmean(r["eval_acc1es"]["x-valid@11"] for r in search), abs=1e-9
    )
    assert bench.cost(arch, "cifar100").params == pytest.approx(float(runs[0]["params"]))


def test_official_absent_record_and_bad_queries(official_path):
    bench = open_benchmark(str(official_path), "nats-tss")
    with pytest.raises(AutohasError, match="architecture 5 .* has no record"):
        bench.evaluate(bench.space.index_to_arch(5), "cifar10", 12)
    arch = bench.space.index_to_arch(0)
    with pytest.raises(AutohasError, match="epoch 13"):
        bench.evaluate(arch, "cifar10", 13)
    with pytest.raises(AutohasError, match="dataset 'mnist'"):
        bench.test_acc(arch, "mnist")


def test_official_folder_resolution(official_path):
    assert resolve_benchmark_path(str(official_path), "nats-sss").endswith(SSS)
    assert resolve_benchmark_path(str(official_path / TSS), "nats-tss").endswith(TSS)
    with pytest.raises(AutohasError, match="holds nats-tss, not nats-sss"):
        resolve_benchmark_path(str(official_path / TSS), "nats-sss")
    with pytest.raises(AutohasError, match="benchmark not found"):
        resolve_benchmark_path(str(official_path / "nope"), "nats-tss")
    with pytest.raises(AutohasError, match="has no"):
        resolve_benchmark_path(str(official_path.parent / "nats-tss"), "nats-tss")


# -- CSV table reader --------------------------------------------------------------------
def test_table_exact_numbers_and_fidelities(table_path):
    bench = open_benchmark(str(table_path), "nats-tss")
    arch0 = bench.space.index_to_arch(0)
    assert bench.fidelities == (12, 200)
    assert bench.datasets == ("cifar10", "cifar100", "ImageNet16-120")
    ev = bench.evaluate(arch0, "cifar10", 12)  # the signal is valid12 (acc12 is 69.55, a test accuracy)
    assert (ev.valid_acc, ev.sim_seconds) == (pytest.approx(63.364), pytest.approx(173.306))
    assert bench.evaluate(arch0, "cifar100", 12).valid_acc == pytest.approx(31.84)
    assert bench.signal.startswith("validation accuracy") and "valid12" in bench.signal
    with pytest.raises(AutohasError, match="never a search signal"):
        bench.evaluate(arch0, "cifar10", 200)
    with pytest.raises(AutohasError, match="budget 200 would make the search signal the 200-epoch test accuracy"):
        bench.epochs_up_to(200)
    assert bench.test_acc(arch0, "cifar10") == pytest.approx(85.8633)
    assert bench.evaluate(arch0, "ImageNet16-120", 12).sim_seconds == pytest.approx(525.811)
    assert bench.epochs_up_to(12) == [12]
    with pytest.raises(AutohasError, match="not a fidelity"):
        bench.evaluate(arch0, "cifar10", 5)
    with pytest.raises(AutohasError, match="below the smallest fidelity"):
        bench.epochs_up_to(4)


def test_a_table_without_valid12_falls_back_on_acc12_and_says_so(table_path, tmp_path):
    import csv

    with open(table_path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = [c for c in reader.fieldnames if not c.endswith(".valid12")]
        rows = [next(reader) for _ in range(3)]
    old = tmp_path / "old-table.csv"
    with open(old, "w", newline="") as handle:
        writer = csv.DictWriter(handle, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    bench = open_benchmark(str(old), "nats-tss")
    arch0 = bench.space.index_to_arch(0)
    assert bench.evaluate(arch0, "cifar10", 12).valid_acc == pytest.approx(69.55)  # acc12
    assert bench.signal.startswith("WARNING") and "TEST accuracy (acc12)" in bench.signal


def test_table_cross_checks(table_path):
    bench = open_benchmark(str(table_path), "nats-tss")
    space = bench.space
    for dataset, index, best in (("cifar10", 6111, 94.3733), ("cifar100", 9930, 73.5133), ("ImageNet16-120", 857, 47.3111)):
        accs = [bench.test_acc(space.index_to_arch(i), dataset) for i in range(space.size)]
        assert max(accs) == pytest.approx(best)
        assert accs.index(max(accs)) == index
    resnet = space.index_to_arch(11472)
    assert [round(bench.test_acc(resnet, d), 2) for d in bench.datasets] == [93.91, 70.89, 44.23]


@pytest.mark.parametrize("index", [0, 11, 284])
def test_table_rows_agree_with_official_records(table_path, official_path, index):
    table = open_benchmark(str(table_path), "nats-tss")
    official = open_benchmark(str(official_path), "nats-tss")
    arch = table.space.index_to_arch(index)
    for dataset in table.datasets:
        assert table.test_acc(arch, dataset) == pytest.approx(official.test_acc(arch, dataset), abs=1e-3)


def test_table_errors(table_path, tmp_path):
    with pytest.raises(AutohasError, match="not a nats-sss table"):
        open_benchmark(str(table_path), "nats-sss")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(AutohasError, match="lacks the 'index' and 'arch' columns"):
        open_benchmark(str(bad), "nats-tss")
    partial = tmp_path / "partial.csv"
    lines = table_path.read_text().splitlines()
    partial.write_text("\n".join(lines[:3]) + "\n")
    bench = open_benchmark(str(partial), "nats-tss")
    with pytest.raises(AutohasError, match="architecture 7 .* has no row"):
        bench.test_acc(bench.space.index_to_arch(7), "cifar10")
    mislabelled = tmp_path / "mislabelled.csv"
    mislabelled.write_text(lines[0] + "\n" + lines[2].replace("1,", "0,", 1) + "\n")
    with pytest.raises(AutohasError, match="is not nats-tss index 0"):
        open_benchmark(str(mislabelled), "nats-tss")
    other = tmp_path / "table.txt"
    other.write_text("x")
    with pytest.raises(AutohasError, match="neither a .csv table"):
        open_benchmark(str(other), "nats-tss")


def test_table_read_a_column_at_a_time_equals_row_by_row(table_path, tmp_path, monkeypatch):
    """The fast reader (whole columns) fills exactly what the row-by-row reader fills, on the real
    table and on one with shuffled rows and blank lines; a bad row still gets its line named."""
    from autohas.bench.csv_table import CsvTableBenchmark
    from autohas.spaces import get_space

    space = get_space("nats-tss")
    fast = CsvTableBenchmark(str(table_path), space)
    header, *rows = table_path.read_text().splitlines()
    shuffled = tmp_path / "shuffled.csv"
    order = list(range(len(rows)))
    import random

    random.Random(0).shuffle(order)
    shuffled.write_text(header + "\n" + "\n\n".join(rows[i] for i in order) + "\n")
    mixed = CsvTableBenchmark(str(shuffled), space)
    taken = []
    monkeypatch.setattr(CsvTableBenchmark, "_load_columns", lambda self, header, rows: taken.append(1) or False)
    slow = CsvTableBenchmark(str(table_path), space)
    assert taken == [1] and fast._columns.keys() == slow._columns.keys() == mixed._columns.keys()
    for key in fast._columns:
        assert np.array_equal(fast._columns[key], slow._columns[key], equal_nan=True)
        assert np.array_equal(fast._columns[key], mixed._columns[key], equal_nan=True)
    assert fast._present.all() and slow._present.all() and mixed._present.all()
    assert fast._row_of == slow._row_of == mixed._row_of and len(fast._row_of) == space.size
    monkeypatch.undo()
    # a value that is not a number, in the 4th row: the fast reader gives up, the row reader names the line
    bad = tmp_path / "bad-value.csv"
    cells = rows[3].split(",")
    cells[header.split(",").index("cifar100.valid12")] = "n/a"
    bad.write_text("\n".join([header, *rows[:3], ",".join(cells), *rows[4:]]) + "\n")
    with pytest.raises(AutohasError, match=r"bad-value.csv:5: cifar100.valid12 is not a number"):
        CsvTableBenchmark(str(bad), space)


def test_table_lookups_by_string_equal_those_by_index(table_path):
    """Rows are found by the official string without decoding it; a string written another way that
    decodes to the same cell finds the same row, and one that does not decode is still refused."""
    bench = open_benchmark(str(table_path), "nats-tss")
    for index in (0, 11, 15624):
        arch = bench.space.index_to_arch(index)
        assert bench._row(arch) == index == bench.space.arch_to_index(arch)
        assert bench._row("|" + arch + "|") == index  # extra bars: the same cell, found through decoding
        assert bench.test_acc("|" + arch + "|", "cifar10") == bench.test_acc(arch, "cifar10")
    with pytest.raises(AutohasError, match="not a nats-tss architecture"):
        bench.test_acc("|none~0|+|none~0|", "cifar10")
    assert bench.seeded is False  # one number per architecture: a seed picks nothing
