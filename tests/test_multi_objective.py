"""Multi-objective search (issue 21, part 3: --objectives accuracy,latency): refusals in one line,
REA's non-dominated-sorting tournament on a hand-made population, determinism per seed, the same
trials in both modes, the searcher told each latency, the true front against a brute-force one, and
the report's hypervolume table and figure. On synthetic tables of all 15,625 nats-tss cells written
to tmp (no ../shared data needed)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from autohas.bench import open_benchmark
from autohas.fronts import front_hypervolume, records_front, true_front
from autohas.latency import latencies
from autohas.pareto import hypervolume_2d
from autohas.runner import RunSpec, build_searcher, execute
from autohas.searchers.rea import ParetoRegularizedEvolution, RegularizedEvolution
from autohas.simulate import SimulatedRun, simulate_run
from autohas.spaces import get_space
from autohas.spaces.nats_tss import OPERATIONS
from tests.conftest import assert_refused_before_ray

SPACE = get_space("nats-tss")
DEVICE = "dev"
BOTH = ("accuracy", "latency")


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """(benchmark table, latency table, accuracy by index, latency by index): latency additive per edge op,
    accuracy higher for convolutions (slower) and lower for `none`, with noise; accuracies rounded to one
    decimal so that the front meets ties."""
    rng = np.random.default_rng(7)
    codes = np.array([[OPERATIONS.index(op) for op in SPACE.decode(SPACE.index_to_arch(i))] for i in range(SPACE.size)])
    op_ms = np.array([0.0, 0.1, 0.8, 2.4, 0.5])  # none, skip, conv1x1, conv3x3, avgpool
    op_acc = np.array([-6.0, 1.0, 3.0, 4.5, 0.5])
    latency = np.round(0.05 + op_ms[codes].sum(axis=1) * rng.uniform(0.9, 1.1, SPACE.size), 4)
    accuracy = np.round(np.clip(60 + op_acc[codes].sum(axis=1) + rng.normal(0, 1.5, SPACE.size), 10, 95), 1)
    valid = np.round(accuracy - 3 + rng.normal(0, 1.0, SPACE.size), 2)
    folder = tmp_path_factory.mktemp("mo")
    bench = folder / "table.csv"
    lines = ["index,arch,cifar10.acc12,cifar10.acc200,cifar10.time12,cifar10.valid12"]
    lines += [f"{i},{SPACE.index_to_arch(i)},{valid[i] - 1:.2f},{accuracy[i]:.1f},{100 + 20 * latency[i]:.3f},{valid[i]:.2f}"
              for i in range(SPACE.size)]
    bench.write_text("\n".join(lines) + "\n")
    table = folder / "latency.csv"
    table.write_text("arch_index,arch_str,dev_ms\n" + "".join(f"{i},{SPACE.index_to_arch(i)},{float(latency[i])!r}\n" for i in range(SPACE.size)))
    return bench, table, accuracy, latency


def spec_for(tmp_path, algo, tables, seed=0, samples=40, limit=None, objectives=BOTH):
    bench, table, _, _ = tables
    return RunSpec(algo=algo, seed=seed, space="nats-tss", dataset="cifar10", benchmark=str(bench),
                   experiment_dir=str(tmp_path / "e"), time_budget=None, num_samples=samples, concurrency=1,
                   latency_table=str(table), device=DEVICE, latency_limit=limit, objectives=tuple(objectives))


def keyed(records):
    return [(r["arch"], r["epoch"], round(r["sim_seconds"], 6), r["latency_ms"]) for r in records]


def brute_front(accuracy: np.ndarray, latency: np.ndarray, among: np.ndarray) -> set[int]:
    """The indices in `among` that no other of them dominates, one comparison row at a time."""
    acc, lat = accuracy[among], latency[among]
    keep = set()
    for k, i in enumerate(among):
        dominated = (acc >= acc[k]) & (lat <= lat[k]) & ((acc > acc[k]) | (lat < lat[k]))
        if not dominated.any():
            keep.add(int(i))
    return keep


# -- refusals -----------------------------------------------------------------------------------
def test_bad_objectives_are_one_line_exit_2_before_ray_and_any_folder(tables, tmp_path):
    bench, table, _, _ = tables
    base = ["--space", "nats-tss", "--benchmark", str(bench), "--storage", str(tmp_path / "out"), "--name", "x"]
    lat = ["--latency-table", str(table), "--device", DEVICE]
    both = ["--objectives", "accuracy,latency"]
    cases = [
        (["--algo", "rea"] + base + both, "--objectives accuracy,latency needs --latency-table PATH and --device NAME"),
        (["--algo", "rea"] + base + lat + ["--objectives", "accuracy,speed"], "unknown objective 'speed' in --objectives"),
        (["--algo", "rea"] + base + lat + ["--objectives", "latency"], "give accuracy, or accuracy,latency (each once)"),
        (["--algo", "rea"] + base + lat + ["--objectives", "accuracy,latency,accuracy"], "(each once)"),
        (["--algo", "rea,gp,bohb"] + base + lat + both,
         "gp, bohb search one objective; multi-objective search is for random, rea, nsga2, tpe"),
        (["--algo", "reinforce"] + base + lat + both, "reinforce searches one objective"),
        (["--algo", "random,darts-v1"] + base + lat + both, "darts-v1 searches one objective"),
        (["--algo", "rea"] + base + lat + both + ["--scheduler", "asha"], "cannot run with --scheduler asha"),
    ]
    assert_refused_before_ray(cases, tmp_path / "out")


# -- REA with non-dominated sorting --------------------------------------------------------------
def test_rea_tournament_follows_rank_then_crowding_on_a_hand_made_population():
    searcher = ParetoRegularizedEvolution(SPACE, seed=0)
    members = {  # name: (score, latency ms)
        "A": (90.0, 5.0), "B": (80.0, 2.0), "C": (70.0, 1.0),  # the first front: B in the middle, A and C its ends
        "D": (85.0, 6.0),  # dominated by A
        "E": (60.0, 3.0),  # dominated by B and C
    }
    names = list(members)
    for name in names:
        searcher.population.append((name, *members[name]))
    ranks, crowding = searcher.rank_and_crowding()
    assert list(ranks) == [0, 0, 0, 1, 1]
    assert np.isinf(crowding[[0, 2]]).all() and np.isfinite(crowding[1])
    pick = lambda *drawn: searcher.tournament(np.array([names.index(n) for n in drawn]))[0]  # noqa: E731
    assert pick("D", "B") == "B"  # rank beats score (plain REA would take D, 85 > 80)
    assert RegularizedEvolution.tournament(searcher, np.array([3, 1]))[0] == "D"
    assert pick("B", "A") == "A"  # same rank: the larger crowding distance (an end of the front)
    assert pick("B", "B", "E") == "B"
    assert pick("E", "D") == "E" and pick("D", "E") == "D"  # a front of two: both infinitely far, the first drawn


@pytest.mark.parametrize("algo", ["rea", "nsga2", "tpe"])
def test_two_objective_searchers_are_deterministic_per_seed_and_read_each_latency(tables, tmp_path, algo):
    _, table, _, latency = tables
    first, _ = simulate_run(spec_for(tmp_path, algo, tables, seed=3))
    again, _ = simulate_run(spec_for(tmp_path, algo, tables, seed=3))
    other, _ = simulate_run(spec_for(tmp_path, algo, tables, seed=4))
    assert keyed(first) == keyed(again) and keyed(first) != keyed(other)
    assert all(r["latency_ms"] == latency[r["arch_index"]] for r in first)
    if algo == "rea":  # the population keeps what each result said of its latency
        run = SimulatedRun(spec_for(tmp_path, algo, tables, seed=3))
        run.run()
        population = run.searcher.searcher.population
        assert len(population) == 10 and all(lat == latency[SPACE.arch_to_index(arch)] for arch, _, lat in population)
    else:  # optuna's study has two directions and was told (valid_acc, latency_ms) of every trial
        run = SimulatedRun(spec_for(tmp_path, algo, tables, seed=3))
        run.run()
        study = run.searcher.searcher.inner._ot_study
        told = [t.values for t in study.trials if t.values]
        assert len(study.directions) == 2 and len(told) == 40
        by_arch = {r["arch"]: (r["valid_acc"], r["latency_ms"]) for r in run.records}
        assert sorted(map(tuple, told)) == sorted(by_arch[r["arch"]] for r in run.records)


def test_rea_with_two_objectives_differs_from_the_reference_rea(tables, tmp_path):
    plain, _ = simulate_run(spec_for(tmp_path, "rea", tables, seed=5, objectives=("accuracy",)))
    pareto, _ = simulate_run(spec_for(tmp_path, "rea", tables, seed=5))
    assert keyed(plain)[:10] == keyed(pareto)[:10]  # the same random first population
    assert keyed(plain) != keyed(pareto)


@pytest.mark.parametrize("algo", ["rea", "nsga2"])
def test_simulate_equals_tune_under_two_objectives(ray_session, tables, tmp_path, algo):
    spec = spec_for(tmp_path, algo, tables, seed=2, samples=15)
    execute(spec)
    with open(spec.results_path) as handle:
        tuned = [json.loads(line) for line in handle]
    simulated, _ = simulate_run(spec)
    assert len(tuned) == 15 and keyed(simulated) == keyed(tuned)


def _drive(searcher, steps, bench, latency, start=0):
    """Suggest and complete `steps` trials one at a time, each scored by the table with its latency."""
    archs = []
    for n in range(start, start + steps):
        arch = SPACE.config_to_arch(searcher.suggest(f"t{n:05d}"))
        archs.append(arch)
        searcher.on_trial_complete(f"t{n:05d}", {"valid_acc": bench.evaluate(arch, "cifar10", 12).valid_acc, "epoch": 12,
                                                 "trial_sim_seconds": 1.0, "latency_ms": latency[SPACE.arch_to_index(arch)]})
    return archs


@pytest.mark.parametrize("algo", ["rea", "nsga2"])
def test_a_two_objective_searcher_resumes_exactly_through_tune(tables, tmp_path, algo):
    from ray.tune.search import SearchGenerator

    bench = open_benchmark(str(tables[0]), "nats-tss")
    spec = spec_for(tmp_path, algo, tables, seed=6, samples=None, limit=float(np.percentile(tables[3], 60)))
    expected = _drive(build_searcher(spec, mark_finished=False), 60, bench, tables[3])
    first = build_searcher(spec, mark_finished=False)
    head = _drive(first, 25, bench, tables[3])
    folder = tmp_path / "state"
    folder.mkdir()
    SearchGenerator(first).save_to_dir(str(folder), session_str="x")  # what Tune saves for a resume
    second = build_searcher(spec, mark_finished=False)
    SearchGenerator(second).restore_from_dir(str(folder))
    assert head + _drive(second, 35, bench, tables[3], start=25) == expected


def test_a_constrained_two_objective_search_stays_feasible(tables, tmp_path):
    _, _, _, latency = tables
    limit = float(np.percentile(latency, 20))
    for algo in ("rea", "nsga2"):
        records, _ = simulate_run(spec_for(tmp_path, algo, tables, seed=1, samples=30, limit=limit))
        assert len(records) == 30 and max(r["latency_ms"] for r in records) <= limit


# -- fronts ---------------------------------------------------------------------------------------
def test_the_true_front_is_the_brute_force_non_dominated_set_of_the_table(tables):
    bench_path, table, accuracy, latency = tables
    bench = open_benchmark(str(bench_path), "nats-tss")
    values = latencies(str(table), DEVICE, "nats-tss")
    front = true_front(bench, "cifar10", values)
    indices = [p["index"] for p in front["points"]]
    assert set(indices) == brute_front(accuracy, latency, np.arange(SPACE.size))
    assert [p["latency_ms"] for p in front["points"]] == sorted(p["latency_ms"] for p in front["points"])
    assert front["reference"] == [accuracy.min(), latency.max()] and front["architectures"] == SPACE.size
    # the hypervolume by hand: boxes between consecutive latencies, each at the best accuracy reached so far
    lat = np.array([p["latency_ms"] for p in front["points"]] + [latency.max()])
    acc = np.maximum.accumulate([p["test_acc"] for p in front["points"]])
    assert front["hypervolume"] == pytest.approx(float((np.diff(lat) * (acc - accuracy.min())).sum()))
    limit = float(np.percentile(latency, 10))
    feasible = true_front(bench, "cifar10", values, limit)
    assert {p["index"] for p in feasible["points"]} == brute_front(accuracy, latency, np.flatnonzero(latency <= limit))
    assert feasible["reference"][1] <= limit and feasible["limit_ms"] == limit


def test_a_runs_front_is_its_non_dominated_evaluations_each_once():
    records = [{"arch": a, "arch_index": i, "valid_acc": acc, "test_acc": acc, "latency_ms": lat, "epoch": 12}
               for i, (a, acc, lat) in enumerate([("a", 90.0, 5.0), ("b", 80.0, 2.0), ("a", 90.0, 5.0), ("c", 85.0, 6.0),
                                                  ("d", 80.0, 2.0), ("e", None, 1.0)])]
    front = records_front(records)
    assert [p["arch"] for p in front] == ["b", "d", "a"]  # equal points both kept (two architectures), fastest first
    assert front_hypervolume(front, (70.0, 10.0)) == pytest.approx(hypervolume_2d([80, 90], [2, 5], (70, 10)))
    assert front_hypervolume(front, (70.0, 10.0)) == pytest.approx(3 * 10 + 5 * 20)


def test_a_runs_front_is_chosen_by_the_search_signal_at_each_architectures_last_epoch():
    """As the incumbent is: the test accuracy reports the front, it never chooses it."""
    records = [
        {"arch": "a", "valid_acc": 50.0, "test_acc": 99.0, "latency_ms": 1.0, "epoch": 1},  # a's early epoch
        {"arch": "a", "valid_acc": 70.0, "test_acc": 71.0, "latency_ms": 1.0, "epoch": 12},
        {"arch": "b", "valid_acc": 80.0, "test_acc": 60.0, "latency_ms": 3.0, "epoch": 12},  # best signal, poor test
        {"arch": "c", "valid_acc": 75.0, "test_acc": 95.0, "latency_ms": 4.0, "epoch": 12},  # dominated by b's signal
    ]
    front = records_front(records)
    assert [(p["arch"], p["test_acc"]) for p in front] == [("a", 71.0), ("b", 60.0)]
    assert front_hypervolume(front, (0.0, 10.0)) == pytest.approx(71 * 9)  # b's box lies inside a's


# -- the report -----------------------------------------------------------------------------------
def test_the_report_draws_fronts_and_tabulates_hypervolumes(ray_session, tables, tmp_path, capsys):
    from autohas.tune import main

    bench, table, accuracy, latency = tables
    argv = ["--algo", "random,rea,nsga2", "--space", "nats-tss", "--dataset", "cifar10", "--benchmark", str(bench),
            "--latency-table", str(table), "--device", DEVICE, "--objectives", "latency,accuracy", "--num-samples", "30",
            "--seeds", "3", "--storage", str(tmp_path), "--name", "mo", "--quiet"]
    assert main(argv) == 0
    folder = tmp_path / "mo"
    protocol = json.loads((folder / "protocol.json").read_text())
    assert protocol["objectives"] == ["accuracy", "latency"]  # canonical, whatever order was given
    assert "objectives:\n- accuracy\n- latency" in (folder / "experiment.yaml").read_text()
    assert {p["index"] for p in protocol["true_front"]["points"]} == brute_front(accuracy, latency, np.arange(SPACE.size))
    md = (folder / "report" / "report.md").read_text()
    reference = (accuracy.min(), latency.max())
    assert f"reference point ({reference[0]:.2f} %, {reference[1]:.4g} ms): the worst accuracy and the slowest latency" in md
    fronts_part = md[md.index("### Pareto fronts (accuracy vs latency)"):]
    with open(folder / "results.jsonl") as handle:
        records = [json.loads(line) for line in handle]
    for algo in ("random", "rea", "nsga2"):
        volumes = [front_hypervolume(records_front([r for r in records if (r["algo"], r["seed"]) == (algo, s)]), reference)
                   for s in range(3)]
        row = re.search(rf"^\| {algo} \| 3 \| ([\d,.]+) \| \[([\d,.]+), ([\d,.]+)\] \|", fronts_part, re.M)
        assert row, md
        mean, low, high = (float(v.replace(",", "")) for v in row.groups())
        assert mean == pytest.approx(np.mean(volumes), abs=0.06) and low < mean < high
    true_hv = protocol["true_front"]["hypervolume"]
    assert f"| true front (benchmark) | - | {true_hv:,.1f} |" in md
    assert (folder / "report" / "nats-tss-cifar10-front.png").stat().st_size > 10_000
    assert "![nats-tss-cifar10-front.png](nats-tss-cifar10-front.png)" in md and "run of median hypervolume" in md
    assert str(tmp_path) not in md
    # without a true front (the official files have none) the reference point is what the runs evaluated
    protocol.pop("true_front")
    (folder / "protocol.json").write_text(json.dumps(protocol))
    from autohas.report import write_report

    write_report([str(folder)], str(tmp_path / "again"))
    again = (tmp_path / "again" / "report.md").read_text()
    evaluated = (min(r["test_acc"] for r in records), max(r["latency_ms"] for r in records))
    assert (f"reference point ({evaluated[0]:.2f} %, {evaluated[1]:.4g} ms): the worst accuracy and the slowest latency "
            "any run evaluated") in again and "true front (benchmark)" not in again
    # the objectives are fixed on resume
    capsys.readouterr()
    assert main(argv[:-1] + ["--resume", "--objectives", "accuracy", "--quiet"]) == 2
    assert "--objectives accuracy: it was started with accuracy,latency" in capsys.readouterr().err


def test_an_experiment_saved_before_the_latency_options_resumes_only_without_them(tables, tmp_path, capsys):
    """experiment.yaml of an autohas without the hardware-aware options lacks their keys: it ran with one
    objective and no latency, so resuming it with them is refused (one line, before Ray), without them allowed."""
    import yaml

    from autohas.experiment import check_experiment
    from autohas.tune import main
    from autohas.validate import parse_options, validate

    bench, table, _, _ = tables
    plain = ["--algo", "rea", "--space", "nats-tss", "--dataset", "cifar10", "--benchmark", str(bench), "--num-samples", "5",
             "--storage", str(tmp_path), "--name", "old", "--resume", "--quiet"]
    folder = tmp_path / "old"
    folder.mkdir()
    saved = yaml.safe_load(yaml.safe_dump(vars(validate(parse_options(plain)))))
    older = {k: v for k, v in saved.items() if k in ("algo", "space", "dataset", "benchmark", "evaluate", "num_samples")}
    (folder / "experiment.yaml").write_text(yaml.safe_dump(older))
    (folder / "results.jsonl").write_text("")
    assert check_experiment(validate(parse_options(plain))) == str(folder)
    capsys.readouterr()
    hardware = ["--latency-table", str(table), "--device", DEVICE]
    assert main(plain + hardware) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"with --latency-table {table}: it was started by an autohas without --latency-table, so with none" in err
    # one saved with a latency table but before --objectives: it searched accuracy alone
    (folder / "experiment.yaml").write_text(yaml.safe_dump({**older, "latency_table": str(table), "device": DEVICE}))
    assert check_experiment(validate(parse_options(plain + hardware))) == str(folder)
    assert main(plain + hardware + ["--objectives", "accuracy,latency"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "with --objectives accuracy,latency: it was started by an autohas without --objectives, so with accuracy" in err
    assert check_experiment(validate(parse_options(plain + hardware + ["--objectives", "accuracy"]))) == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["experiment.yaml", "results.jsonl"]



def test_a_runs_front_counts_the_evaluations_its_final_accuracy_counts():
    """Evaluations past the budget (BOHB settling, the crossing trial's successors) are not in the front,
    as they are not in the final accuracy (the record nearest the budget, Run.final_record)."""
    from autohas.report import Run
    from autohas.report_fronts import within_budget

    def record(arch, acc, lat, t):
        return {"arch": arch, "valid_acc": acc, "test_acc": acc, "latency_ms": lat, "epoch": 12, "sim_seconds": t,
                "best_test_acc": acc}

    run = Run("e", "rea", 0, [record("a", 80.0, 2.0, 40.0), record("b", 85.0, 3.0, 95.0), record("c", 99.0, 1.0, 180.0)])
    assert [r["arch"] for r in within_budget(run, 100.0)] == ["a", "b"]
    assert [p["arch"] for p in records_front(within_budget(run, 100.0))] == ["a", "b"]
    assert [r["arch"] for r in within_budget(run, None)] == ["a", "b", "c"]
