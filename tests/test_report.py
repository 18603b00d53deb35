"""The comparison report: numbers from results.jsonl, plots, merging experiments."""
import json
import re
import statistics
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import t

from autohas.report import Run, load, write_report
from autohas.runner import RunSpec
from autohas.simulate import simulate_experiment
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def experiments(ray_session, table_path, tmp_path_factory):
    """Two small simulated experiments: cifar10 (random, rea x 3 seeds) and cifar100 (rea x 2)."""
    root = tmp_path_factory.mktemp("reports")
    folders = []
    for name, dataset, algos, seeds in (("c10", "cifar10", ("random", "rea"), 3), ("c100", "cifar100", ("rea",), 2)):
        specs = [RunSpec(algo=a, seed=s, space="nats-tss", dataset=dataset, benchmark=str(table_path),
                         experiment_dir=str(root / name), time_budget=6000.0, num_samples=None)
                 for a in algos for s in range(seeds)]
        (root / name).mkdir()
        (root / name / "protocol.json").write_text(json.dumps({"time_budget": 6000.0, "signal": "acc12", "benchmark": "table"}))
        simulate_experiment(specs)
        folders.append(root / name)
    return folders


def finals(folder, algo, budget=6000.0):
    """Each run's incumbent test accuracy at the budget, as draw-table.py's query_performance reads it."""
    by_seed = {}
    for line in (folder / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["algo"] == algo:
            by_seed.setdefault(r["seed"], []).append((r["sim_seconds"], r["best_test_acc"]))
    values = []
    for points in by_seed.values():
        (t1, v1), (t2, v2) = sorted(points, key=lambda p: abs(p[0] - budget))[:2]
        values.append(v1 + (v2 - v1) * (budget - t1) / (t2 - t1))
    return values


def test_table_holds_mean_ci_and_median_of_final_incumbents(experiments, tmp_path):
    index = write_report([str(experiments[0])], str(tmp_path / "rep"))
    md = (tmp_path / "rep" / "report.md").read_text()
    for algo in ("random", "rea"):
        values = finals(experiments[0], algo)
        row = re.search(rf"^\| {algo} \| 3 \| ([\d.]+) \| \[([\d.]+), ([\d.]+)\] \| ([\d.]+) \|", md, re.M)
        assert row, md
        low, high = t.interval(0.95, 2, loc=statistics.fmean(values), scale=statistics.stdev(values) / 3 ** 0.5)
        assert float(row.group(1)) == pytest.approx(statistics.fmean(values), abs=0.005)
        assert (float(row.group(2)), float(row.group(3))) == pytest.approx((low, high), abs=0.005)
        assert float(row.group(4)) == pytest.approx(statistics.median(values), abs=0.005)
    assert "Budget: 6000 simulated s per run" in md and "Search signal: acc12" in md
    page = open(index).read()
    assert page.count("data:image/png;base64,") == 1 and "<table>" in page
    assert (tmp_path / "rep" / "nats-tss-cifar10.png").stat().st_size > 10_000


def test_merging_experiments_gives_one_section_per_dataset(experiments, tmp_path):
    write_report([str(f) for f in experiments], str(tmp_path / "merged"))
    md = (tmp_path / "merged" / "report.md").read_text()
    assert len(re.findall(r"^## nats-tss / cifar10$", md, re.M)) == 1
    assert len(re.findall(r"^## nats-tss / cifar100$", md, re.M)) == 1
    assert re.search(r"^\| rea \| 2 \|", md, re.M)  # the cifar100 experiment's two runs
    groups = {g.dataset: g for g in load([str(f) for f in experiments])}
    assert sorted(groups["cifar10"].runs) == ["random", "rea"]


def test_incumbent_curve_is_a_step_function_of_the_clock():
    run = Run("x", "rea", 0, records=[
        {"sim_seconds": 10.0, "best_test_acc": 50.0, "trial_id": "a"},
        {"sim_seconds": 30.0, "best_test_acc": 60.0, "trial_id": "b"},
    ])
    curve = run.incumbent_at(np.array([0.0, 10.0, 29.9, 30.0, 99.0]))
    assert np.isnan(curve[0]) and list(curve[1:]) == [50.0, 50.0, 60.0, 60.0]
    assert run.final_test_acc() == 60.0 and run.trials == 2
    assert run.final_test_acc(20.0) == pytest.approx(55.0) and run.final_test_acc(40.0) == pytest.approx(65.0)


def test_report_cli(experiments, tmp_path):
    out = subprocess.run([sys.executable, "-m", "autohas.report", str(experiments[1]), "--out", str(tmp_path / "r")],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and (tmp_path / "r" / "index.html").exists()
    bad = subprocess.run([sys.executable, "-m", "autohas.report", str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "not an autohas experiment" in bad.stderr
