"""The report's statistics (autohas.stats) against scipy and hand computation on fixed data, and the
report built from hand-made experiment folders: "n/a" for one run, protocols never merged into one
row, the optimum, the final architectures, learning curves. No Ray: the folders are written here."""
import json
import math
import re

import numpy as np
import pytest
from scipy import stats as sp

from autohas import layout, stats
from autohas.report import load, time_grid, write_report
from autohas.report_plots import zoom
from autohas.schema import RECORD_KEYS

A = [70.1, 71.3, 69.8, 72.0, 70.6]
B = [68.2, 69.0, 70.4, 67.9, 69.5, 68.8]


def test_confidence_interval_is_students_t_of_the_mean():
    low, high = stats.mean_ci(A)
    expected = sp.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=sp.sem(A))
    assert (low, high) == pytest.approx(expected, abs=1e-12)
    assert high - low == pytest.approx(2 * 2.7764451 * np.std(A, ddof=1) / math.sqrt(5), rel=1e-6)  # t(0.975, 4)
    assert stats.mean_ci([71.5]) is None and stats.mean_ci([]) is None  # no spread from one run
    assert stats.mean_ci([70.0, 70.0, 70.0]) == (70.0, 70.0)
    curves = np.array([[1.0, np.nan, 3.0], [2.0, 5.0, 5.0], [4.0, np.nan, 4.0]])
    half = stats.ci_halfwidths(curves)
    assert half[0] == pytest.approx((expected_half := sp.t.ppf(0.975, 2) * np.std([1, 2, 4], ddof=1) / math.sqrt(3)))
    assert expected_half > 0 and np.isnan(half[1])  # one run has a value there: no band


def test_mann_whitney_is_scipys_two_sided_test():
    assert stats.mann_whitney(A, B) == pytest.approx(sp.mannwhitneyu(A, B, alternative="two-sided").pvalue, abs=1e-15)
    tied = [70.0, 70.0, 71.0, 72.0]
    assert stats.mann_whitney(tied, A) == pytest.approx(sp.mannwhitneyu(tied, A, alternative="two-sided").pvalue)
    # by hand: 1,2,3 all below 4,5,6 is one of C(6,3) = 20 equally likely orders, either way round
    assert stats.mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)
    assert stats.mann_whitney([5, 5], [5, 5, 5]) == 1.0


def test_holm_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> kept at 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1, never decreasing
    assert stats.holm([0.2]) == [0.2] and stats.holm([]) == []


RANKED = {  # seed -> value; higher is better
    "a": {0: 0.9, 1: 0.2, 2: 0.7},
    "b": {0: 0.5, 1: 0.8, 2: 0.6},
    "c": {0: 0.1, 1: 0.8, 2: 0.9},
}


def test_average_ranks_by_hand():
    # seed 0: a 1, b 2, c 3; seed 1: b and c share 1.5, a 3; seed 2: c 1, a 2, b 3
    ranks = stats.average_ranks(RANKED, [0, 1, 2])
    assert ranks == pytest.approx({"a": 2.0, "b": 6.5 / 3, "c": 5.5 / 3})
    assert sum(ranks.values()) == pytest.approx(6.0)  # 1 + 2 + 3 per seed


def test_friedman_is_scipys():
    seeds = [0, 1, 2, 3]
    table = {"x": dict(zip(seeds, [70.1, 71.0, 69.5, 72.2])), "y": dict(zip(seeds, [69.0, 70.2, 69.9, 70.0])),
             "z": dict(zip(seeds, [68.0, 69.1, 68.5, 69.9]))}
    statistic, p = stats.friedman(table, seeds)
    expected = sp.friedmanchisquare(*[list(table[k].values()) for k in "xyz"])
    assert (statistic, p) == pytest.approx((expected.statistic, expected.pvalue))
    assert stats.friedman({"x": table["x"], "y": table["y"]}, seeds) is None  # needs three methods
    assert stats.friedman({k: {0: 1.0, 1: 1.0} for k in "xyz"}, [0, 1]) is None  # every block one tie


def test_compare_names_the_best_and_who_is_tied_with_it():
    best = dict(enumerate([10, 11, 12, 13, 14, 15, 16, 17]))
    close = dict(enumerate([9.5, 11.5, 11, 13.5, 13, 15.5, 15, 17.5]))
    far = dict(enumerate([0, 1, 2, 3, 4, 5, 6, 7]))
    result = stats.compare({"far": far, "close": close, "best": best})
    assert [m.name for m in result.methods] == ["best", "close", "far"]
    raw = [sp.mannwhitneyu(list(best.values()), list(m.values()), alternative="two-sided").pvalue for m in (close, far)]
    by = result.by_name()
    assert [by["close"].p_value, by["far"].p_value] == pytest.approx(raw)
    assert [by["close"].p_holm, by["far"].p_holm] == pytest.approx(stats.holm(raw))
    assert by["best"].verdict == stats.BEST and by["best"].p_value is None
    assert by["close"].verdict == stats.TIED and by["far"].verdict == stats.WORSE
    assert result.paired and result.rank_seeds == 8 and by["far"].average_rank == 3.0
    expected = sp.friedmanchisquare(*[list(d.values()) for d in (far, close, best)])
    assert result.friedman == pytest.approx((expected.statistic, expected.pvalue))
    # not the same seeds: no Friedman test, ranks over the seeds all ran; one run: no interval
    unpaired = stats.compare({"best": best, "close": {**close, 9: 12.0}, "one": {3: 1.0}})
    assert not unpaired.paired and unpaired.friedman is None and unpaired.rank_seeds == 1
    assert unpaired.by_name()["one"].ci is None and unpaired.by_name()["one"].median == 1.0


# ---- the report, from hand-made experiment folders --------------------------------------------

BUDGET = 6000.0
OPTIMUM = {"test_acc": 74.0, "index": 7, "arch": "|opt~0|"}


def protocol(**changes) -> dict:
    base = {"space": "nats-tss", "dataset": "cifar100", "evaluate": "tabular", "time_budget": BUDGET, "num_samples": None,
            "concurrency": 1, "benchmark": "CSV table t.csv", "signal": "valid12", "clock": "simulated", "seed_mode": "sample"}
    return {**base, **changes}


def record(algo, seed, seq, trial, t, acc, arch="|a~0|", index=1, epoch=12, best=None):
    fields = dict(algo=algo, space="nats-tss", dataset="cifar100", seed=seed, trial_id=trial, arch=arch, arch_index=index,
                  hparams={}, epoch=epoch, budget=epoch, valid_acc=acc - 20, test_acc=acc, trial_sim_seconds=t,
                  wall_seconds=0.01, params=None, flops=None, latency_ms=None, sim_seconds=t, best_arch=arch,
                  best_test_acc=acc if best is None else best, seq=seq)
    assert set(fields) == set(RECORD_KEYS)
    return fields


def tabular_run(algo, seed, final, arch="|a~0|", index=1):
    """Three evaluations: a worse one early, then `final` on both sides of the budget (so that the
    value read at the budget is `final`)."""
    return [record(algo, seed, 0, f"{algo}{seed}a", BUDGET * 0.25, final - 2.0, "|w~0|", 2),
            record(algo, seed, 1, f"{algo}{seed}b", BUDGET * 0.9, final, arch, index),
            record(algo, seed, 2, f"{algo}{seed}c", BUDGET * 1.05, final, arch, index)]


def experiment(folder, proto, runs, mode="simulate"):
    """An experiment folder: protocol.json, results.jsonl of `runs` ((algo, seed) -> records), run.json each."""
    folder.mkdir(parents=True)
    (folder / layout.PROTOCOL_FILE).write_text(json.dumps(proto))
    with open(folder / layout.RESULTS_FILE, "w") as handle:
        for records in runs.values():
            handle.writelines(json.dumps(r) + "\n" for r in records)
    for algo, seed in runs:
        layout.record_run(str(folder / layout.run_name(algo, seed)), algo, seed, mode, 0.5)
    return str(folder)


FINALS = {"gp": [72.9, 73.4, 72.5, 74.0], "rea": [72.0, 73.1, 72.2, 72.6], "random": [70.0, 70.4, 69.8, 70.9]}


def row(md, label):
    found = re.search(rf"^\| {re.escape(label)} \| (.*) \|$", md, re.M)
    assert found, md
    return [cell.strip() for cell in found.group(1).split(" | ")]


def test_report_numbers_are_the_statistics_of_the_finals(tmp_path):
    runs = {(algo, s): tabular_run(algo, s, v, f"|{algo}{s}~0|", 100 + s) for algo, values in FINALS.items()
            for s, v in enumerate(values)}
    runs[("gp", 3)] = tabular_run("gp", 3, 74.0, OPTIMUM["arch"], OPTIMUM["index"])
    folder = experiment(tmp_path / "e", protocol(optimum=OPTIMUM), runs)
    write_report([folder], str(tmp_path / "rep"))
    md = (tmp_path / "rep" / "report.md").read_text()
    order = [line.split(" | ")[0][2:] for line in md.splitlines() if re.match(r"^\| (gp|rea|random) \|", line)]
    assert order[:3] == ["gp", "rea", "random"]  # best mean first (the architectures table follows)
    raw = {a: sp.mannwhitneyu(FINALS["gp"], FINALS[a], alternative="two-sided").pvalue for a in ("rea", "random")}
    adjusted = dict(zip(raw, stats.holm(list(raw.values()))))
    for algo, values in FINALS.items():
        runs_, mean, ci, median, rank, p, verdict = row(md, algo)[:7]
        low, high = sp.t.interval(0.95, 3, loc=np.mean(values), scale=sp.sem(values))
        assert runs_ == "4" and float(mean) == pytest.approx(np.mean(values), abs=0.005)
        assert ci == f"[{low:.2f}, {high:.2f}]" and float(median) == pytest.approx(np.median(values), abs=0.005)
        if algo == "gp":
            assert (p, verdict) == ("-", "best")
        else:
            assert float(p) == pytest.approx(adjusted[algo], rel=1e-2)
            assert verdict == ("tied with the best" if adjusted[algo] >= 0.05 else "worse than the best")
    ranks = stats.average_ranks({a: dict(enumerate(v)) for a, v in FINALS.items()}, [0, 1, 2, 3])
    assert [float(row(md, a)[4]) for a in FINALS] == pytest.approx([ranks[a] for a in FINALS], abs=0.005)
    assert f"Best mean: gp, {np.mean(FINALS['gp']):.2f} %" in md
    friedman = sp.friedmanchisquare(*FINALS.values())
    assert f"chi-square = {friedman.statistic:.2f}, p = {friedman.pvalue:.3g}" in md
    # the optimum: a dashed line, a regret plot, and gp's seed 3 (74.0) found it
    assert (tmp_path / "rep" / "nats-tss-cifar100-regret.png").stat().st_size > 10_000
    assert "Optimum: 74.00 % (index 7, |opt~0|)" in md and "gp 1 of 4, rea 0 of 4, random 0 of 4" in md
    # final architectures: most frequent, then most accurate first (the Markdown escapes their pipes)
    arch_rows = [line for line in md.splitlines() if line.startswith("| gp | ") and "of 4" in line]
    assert arch_rows == ["| gp | 7 | \\|opt~0\\| | 74.00 | 1 of 4 |", "| gp | 101 | \\|gp1~0\\| | 73.40 | 1 of 4 |",
                         "| gp | 100 | \\|gp0~0\\| | 72.90 | 1 of 4 |", "| gp |  | 1 other architecture(s) |  | 1 of 4 |"]
    page = (tmp_path / "rep" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<tr class='best'><td>gp</td>" in page


def test_a_single_run_shows_na_not_a_spread(tmp_path):
    runs = {("rea", 0): tabular_run("rea", 0, 71.0), **{("random", s): tabular_run("random", s, 70 + s) for s in range(3)}}
    write_report([experiment(tmp_path / "one", protocol(), runs)], str(tmp_path / "rep"))
    md = (tmp_path / "rep" / "report.md").read_text()
    assert row(md, "rea")[:4] == ["1", "71.00", "n/a", "71.00"]
    assert "± 0.00" not in md and "+- 0.00" not in md
    assert row(md, "random")[2] != "n/a"
    assert "Friedman test: n/a, the methods did not all run the same seeds" in md
    assert (tmp_path / "rep" / "nats-tss-cifar100.png").exists() and not (tmp_path / "rep" / "nats-tss-cifar100-regret.png").exists()


def test_different_protocols_are_never_one_row(tmp_path):
    runs = lambda seeds: {("rea", s): tabular_run("rea", s, 71.0 + s) for s in seeds}  # noqa: E731
    base = experiment(tmp_path / "base", protocol(), runs(range(3)))
    other_budget = experiment(tmp_path / "budget", protocol(time_budget=8000.0), runs([0]))
    tuned = experiment(tmp_path / "tuned", protocol(), runs([0]), mode="tune")
    other_signal = experiment(tmp_path / "signal", protocol(signal="acc12"), runs([5]))
    settings = experiment(tmp_path / "settings", protocol(searchers={"rea": "population 20"}), runs([7]))
    groups = load([base, other_budget, tuned, other_signal, settings])
    sizes = sorted(sorted(len(v) for v in g.runs.values()) for g in groups)
    assert len(groups) == 3 and sizes == [[1], [1], [1, 1, 3]]
    write_report([base, other_budget, tuned, other_signal, settings], str(tmp_path / "rep"))
    md = (tmp_path / "rep" / "report.md").read_text()
    headings = re.findall(r"^## (.*)$", md, re.M)
    assert len(headings) == 3 and all("protocol" in h for h in headings), headings
    assert any("budget 8000 s" in h for h in headings) and any("signal acc12" in h for h in headings)
    assert row(md, "rea (simulate) [base]")[0] == "3" and row(md, "rea (tune)")[0] == "1"  # the mode splits rows
    assert row(md, "rea (simulate) [settings]")[0] == "1"  # so do the searcher's settings
    assert "Searcher rea: population 20." in md
    assert not re.search(r"^\| rea[^|]* \| (4|5|6) \|", md, re.M)  # no row mixes them
    assert len(list((tmp_path / "rep").glob("nats-tss-cifar100-p*.png"))) == 3


def test_learning_curves_and_protocol_text_of_searchers_and_scheduler(tmp_path):
    def trial(seed, name, values):  # a train-mode trial: one record per epoch
        return [record("rea", seed, 0, name, 10.0 * (e + 1), v, epoch=e + 1) for e, v in enumerate(values)]

    curve = trial(0, "t0", [50.0, 60.0, 65.0])
    for seq, r in enumerate(curve):
        r["seq"] = seq
    proto = protocol(evaluate="train", time_budget=None, num_samples=1, searchers={"rea": "population 10, sample 3"},
                     scheduler="asha: grace 1 epoch, reduction 3")
    write_report([experiment(tmp_path / "t", proto, {("rea", 0): curve})], str(tmp_path / "rep"))
    md = (tmp_path / "rep" / "report.md").read_text()
    assert (tmp_path / "rep" / "nats-tss-cifar100-epochs.png").stat().st_size > 5_000
    assert "Searcher rea: population 10, sample 3." in md and "Scheduler: asha: grace 1 epoch, reduction 3." in md
    assert row(md, "rea")[:4] == ["1", "65.00", "n/a", "65.00"]


def test_axes_zoom_and_log_time():
    curves = {"x": np.array([[10.0, 60.0, 70.0, 71.0], [20.0, 65.0, 69.0, 72.0]])}
    low, high = zoom(curves, start=1, optimum=75.0)
    assert 59.0 < low < 61.0 and 75.0 < high < 76.5  # the early 10-20 % are below the axis; the optimum just inside
    assert zoom(curves, start=1, optimum=None)[1] < 75.0
    assert zoom({"x": np.full((2, 3), np.nan)}, 0, None) is None


def test_time_axis_is_log_spaced_from_the_first_full_curve(tmp_path):
    runs = {("rea", s): tabular_run("rea", s, 71.0) for s in range(2)}
    (group,) = load([experiment(tmp_path / "g", protocol(), runs)])
    times, log = time_grid(group)
    assert log and times[0] == pytest.approx(BUDGET * 0.25) and times[-1] == pytest.approx(BUDGET)
    assert np.allclose(np.diff(np.log(times)), np.log(times[1] / times[0]))
