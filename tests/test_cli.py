"""The CLI contract: bad input, determinism, the done-when run, YAML, resume."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from autohas.tune import main
from tests.conftest import ROOT

PY = sys.executable


def cli(*args, timeout=120):
    return subprocess.run([PY, "-m", "autohas.tune", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def records(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def acc200(table_path):
    with open(table_path, newline="") as handle:
        return {row["arch"]: {d: float(row[f"{d}.acc200"]) for d in ("cifar10", "cifar100", "ImageNet16-120")} for row in csv.DictReader(handle)}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--algo", "nope", "--space", "nats-tss"], "unknown algorithm 'nope'"),
        (["--algo", "rea", "--space", "darts"], "unknown space 'darts'"),
        (["--algo", "rea", "--space", "nats-tss", "--dataset", "mnist"], "unknown dataset 'mnist'"),
        (["--algo", "rea", "--space", "nats-tss", "--benchmark", "/no/such/file.csv"], "benchmark not found: /no/such/file.csv"),
        (["--algo", "rea", "--space", "nats-tss", "--config", "/no/such.yaml"], "cannot read config /no/such.yaml"),
        (["--algo", "rea", "--space", "nats-tss", "--seeds", "x"], "--seeds: invalid int value"),
        (["--space", "nats-tss"], "--algo is required"),
        (["--algo", "rea", "--space", "nats-tss", "--mode", "fast"], "--mode: invalid choice: 'fast'"),
        (["--algo", "rea", "--space", "nats-tss", "--seed", "-1"], "seeds must lie in 0 .. 2**32-1"),
        (["--algo", "rea", "--space", "nats-tss", "--time-budget", "inf"], "--time-budget must be a positive number"),
        (["--algo", "rea", "--space", "nats-tss", "--bogus"], "unrecognized arguments: --bogus"),
        (["--algo", "random", "--space", "nats-sss", "--max-failures", "-1"], "--max-failures must be 0 (no retries) or more"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    out = cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("autohas.tune: error: ") and message in lines[0]
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_malformed_yaml_and_unknown_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: [rea\nspace: nats-tss\n")
    out = cli("--config", str(bad))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "malformed YAML" in out.stderr and "Traceback" not in out.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("algo: rea\nspace: nats-tss\nbudgett: 3\n")
    out = cli("--config", str(unknown))
    assert out.returncode == 2 and "unknown option 'budgett'" in out.stderr


def test_dataset_missing_from_benchmark(official_path, tmp_path):
    table = tmp_path / "c10.csv"
    table.write_text("index,arch,cifar10.acc12,cifar10.acc200,cifar10.time12\n")
    out = cli("--algo", "rea", "--space", "nats-tss", "--dataset", "cifar100", "--benchmark", str(table))
    assert out.returncode == 2 and "dataset 'cifar100' is not in CSV table c10.csv" in out.stderr


def test_help_lists_algorithms_and_spaces():
    out = cli("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps the epilog
    assert "searchers: random, rea, reinforce, gp, bohb, tpe, nsga2;" in text
    assert ("weight-sharing methods: darts-v1, darts-v2, gdas, rsps, setn, enas, sanas-darts, sanas-gdas, lease, "
            "autohas, autohas-hp, tas, mask-gumbel, mask-sample;") in text
    # argparse may wrap the epilog after a hyphen ("nats-\nsss"): compare without white space
    assert "spaces:nats-tss,nats-sss,has(architecturexhyperparameters" in "".join(text.split())
    assert "--mode" in text and "--select" in text and "--retrain-epochs" in text


def test_done_when_rea_cifar100(ray_session, table_path, tmp_path, acc200):
    argv = ["--algo", "rea", "--space", "nats-tss", "--dataset", "cifar100", "--benchmark", str(table_path),
            "--time-budget", "40000", "--seed", "0", "--storage", str(tmp_path), "--name", "t"]
    assert main(argv) == 0
    recs = records(tmp_path / "t" / "results.jsonl")
    assert len(recs) > 100
    from autohas.schema import RECORD_KEYS
    assert all(list(r) == list(RECORD_KEYS) for r in recs)
    clock = [r["sim_seconds"] for r in recs]
    # the official `while total_time < budget`: the evaluation that crosses the budget is the last, recorded
    assert clock == sorted(clock) and clock[-2] < 40000 <= clock[-1]
    for r in recs:
        assert r["test_acc"] == pytest.approx(acc200[r["arch"]]["cifar100"])
        assert r["best_test_acc"] == pytest.approx(acc200[r["best_arch"]]["cifar100"])
    best = max(recs, key=lambda r: r["valid_acc"])
    assert recs[-1]["best_arch"] == best["arch"]
    # the same experiment name again is refused rather than overwritten
    assert main(argv) == 2
    # the same command again (new name) gives the same trials
    assert main(argv[:-1] + ["t-again"]) == 0
    assert [r["arch"] for r in records(tmp_path / "t-again" / "results.jsonl")] == [r["arch"] for r in recs]


def test_several_algorithms_seeds_and_yaml(ray_session, table_path, tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text(f"algo: [random, rea]\nspace: nats-tss\ndataset: ImageNet16-120\nbenchmark: {table_path}\n"
                      f"time-budget: 1.0e9\nnum_samples: 4\nseeds: 2\nseed: 3\nstorage: {tmp_path}\nname: fromyaml\n")
    assert main(["--config", str(config), "--num-samples", "6"]) == 0  # the command line wins
    recs = records(tmp_path / "fromyaml" / "results.jsonl")
    runs = {(r["algo"], r["seed"]) for r in recs}
    assert runs == {("random", 3), ("random", 4), ("rea", 3), ("rea", 4)}
    for run in runs:
        assert len({r["trial_id"] for r in recs if (r["algo"], r["seed"]) == run}) == 6
    assert {r["dataset"] for r in recs} == {"ImageNet16-120"}
    random3 = [r["arch"] for r in recs if (r["algo"], r["seed"]) == ("random", 3)]
    random4 = [r["arch"] for r in recs if (r["algo"], r["seed"]) == ("random", 4)]
    assert random3 != random4


@pytest.mark.parametrize("stop,torn", [(signal.SIGINT, False), (signal.SIGKILL, False), (signal.SIGKILL, True)],
                         ids=["ctrl-c", "kill-9", "kill-9-mid-copy"])
def test_interrupted_experiment_resumes_without_repeats_or_losses(ray_session, table_path, tmp_path, stop, torn):
    common = ["--algo", "rea", "--space", "nats-tss", "--dataset", "cifar10", "--benchmark", str(table_path),
              "--time-budget", "12000", "--seed", "1", "--storage", str(tmp_path)]
    assert main(common + ["--name", "whole"]) == 0
    whole = records(tmp_path / "whole" / "results.jsonl")

    path = tmp_path / "cut" / "results.jsonl"
    # output to a file: after a kill -9, Ray's daemons may hold a pipe open for a while
    log = open(tmp_path / "cut.log", "w+")
    proc = subprocess.Popen([PY, "-m", "autohas.tune", *common, "--name", "cut"], cwd=ROOT, stdout=log, stderr=log, text=True)
    deadline = time.time() + 90
    while time.time() < deadline and (not path.exists() or len(path.read_text().splitlines()) < 15):
        time.sleep(0.2)
    proc.send_signal(stop)
    proc.wait(timeout=90)
    log.seek(0)
    err = log.read()
    partial = records(path)
    assert 15 <= len(partial) < len(whole)
    if stop == signal.SIGINT:  # a clean stop: Tune snapshots its state, nothing needs undoing
        assert proc.returncode == 130, err
        assert "--resume" in err and "Traceback" not in err
    if torn:  # killed while Tune copied its state into the run folder: every copy torn
        run_dir = tmp_path / "cut" / "rea-seed1"
        states = [p for p in run_dir.iterdir() if p.name.startswith(("experiment_state-", "search_gen_state-", "searcher-state-"))]
        assert len(states) >= 2
        for state in states:
            state.write_bytes(b"")

    assert main(common + ["--name", "cut", "--resume"]) == 0
    resumed = records(path)
    if stop == signal.SIGINT:
        assert resumed[: len(partial)] == partial  # nothing finished was lost or rewritten
    assert len({(r["trial_id"], r["epoch"]) for r in resumed}) == len(resumed)  # nothing repeated
    assert [r["arch"] for r in resumed] == [r["arch"] for r in whole]
    assert [r["sim_seconds"] for r in resumed] == pytest.approx([r["sim_seconds"] for r in whole])
    # resuming a finished experiment changes nothing
    assert main(common + ["--name", "cut", "--resume"]) == 0
    assert records(path) == resumed


def test_resume_refuses_a_changed_protocol(ray_session, table_path, tmp_path):
    common = ["--algo", "random", "--space", "nats-tss", "--benchmark", str(table_path), "--num-samples", "2", "--storage", str(tmp_path), "--name", "e"]
    assert main(common) == 0
    assert main(common + ["--resume", "--dataset", "cifar100"]) == 2


def test_overwrite_touches_only_experiments(ray_session, table_path, tmp_path):
    keep = tmp_path / "precious"
    keep.mkdir()
    (keep / "data.txt").write_text("x")
    argv = ["--algo", "random", "--space", "nats-tss", "--benchmark", str(table_path), "--num-samples", "2",
            "--storage", str(tmp_path), "--name", "precious", "--overwrite"]
    assert main(argv) == 2 and (keep / "data.txt").exists()


def test_a_budget_smaller_than_any_evaluation_records_the_one_that_crosses_it(ray_session, table_path, tmp_path, capsys):
    """The official loops start an evaluation while the clock is below the budget: the first one runs."""
    argv = ["--algo", "random", "--space", "nats-tss", "--benchmark", str(table_path), "--time-budget", "10",
            "--storage", str(tmp_path), "--name", "tiny"]
    assert main(argv) == 0
    assert "random seed 0: 1 trials" in capsys.readouterr().out
    (only,) = records(tmp_path / "tiny" / "results.jsonl")
    assert only["sim_seconds"] > 10 and only["best_arch"] == only["arch"]


def test_preset_picks_the_budget_of_the_dataset(table_path, tmp_path):
    from autohas.tune import parse_options

    preset = ROOT / "benchmarks" / "nats-tss-multitrial.yaml"
    common = ["--config", str(preset), "--benchmark", str(table_path), "--storage", str(tmp_path)]
    assert parse_options(common + ["--dataset", "ImageNet16-120"]).time_budget == 120000
    options = parse_options(common + ["--dataset", "cifar100", "--seeds", "2"])
    assert options.time_budget == 40000 and options.algo == ["random", "rea", "reinforce", "gp", "bohb", "tpe"]
    assert options.mode == "simulate"
    assert parse_options(common + ["--time-budget", "5"]).time_budget == 5


def test_simulate_mode_end_to_end_with_report(ray_session, table_path, tmp_path):
    argv = ["--algo", "random,rea", "--space", "nats-tss", "--dataset", "cifar10", "--benchmark", str(table_path),
            "--time-budget", "8000", "--seeds", "3", "--storage", str(tmp_path), "--name", "sim"]
    assert main(argv) == 0
    recs = records(tmp_path / "sim" / "results.jsonl")
    assert {(r["algo"], r["seed"]) for r in recs} == {(a, s) for a in ("random", "rea") for s in range(3)}
    for run in {(r["algo"], r["seed"]) for r in recs}:  # each run stops after the evaluation crossing 8000 s
        clock = [r["sim_seconds"] for r in recs if (r["algo"], r["seed"]) == run]
        assert clock[-2] < 8000 <= clock[-1]
    md = (tmp_path / "sim" / "report" / "report.md").read_text()
    assert "| random | 3 |" in md and "| rea | 3 |" in md
    # the same seeds in tune mode give the same trials
    assert main(argv[:-1] + ["sim-tune", "--mode", "tune", "--seeds", "1", "--algo", "rea"]) == 0
    tuned = [r["arch"] for r in records(tmp_path / "sim-tune" / "results.jsonl")]
    assert tuned == [r["arch"] for r in recs if (r["algo"], r["seed"]) == ("rea", 0)]


def test_an_architecture_missing_from_the_benchmark_is_one_clear_line(ray_session, official_path, tmp_path, capsys):
    # the sample holds three records of the 32,768 sss architectures: a search would soon ask for another,
    # so the benchmark is refused before anything runs, in both modes, leaving no folder behind
    argv = ["--algo", "random", "--space", "nats-sss", "--benchmark", str(official_path), "--num-samples", "20",
            "--seeds", "2", "--storage", str(tmp_path), "--name", "sparse"]
    for mode in (argv, argv[:-1] + ["sparse-tune", "--seeds", "1"]):
        assert main(mode) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds 3 of the 32,768 nats-sss architectures" in err[0] and "Traceback" not in err[0]
    assert os.listdir(tmp_path) == []
