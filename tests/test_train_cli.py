"""Searchers over real training through the CLI: REA and BOHB on digits, resource checks."""
import json
import os
from collections import defaultdict

import pytest

from autohas.tune import main
from tests.test_cli import cli


def records(folder):
    with open(os.path.join(folder, "results.jsonl")) as handle:
        return [json.loads(line) for line in handle]


def by_trial(rows):
    trials = defaultdict(list)
    for r in rows:
        trials[r["trial_id"]].append(r["epoch"])
    return trials


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data-cache")
    old = os.environ.get("AUTOHAS_DATA_CACHE")
    os.environ["AUTOHAS_DATA_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("AUTOHAS_DATA_CACHE")
    else:
        os.environ["AUTOHAS_DATA_CACHE"] = old


def test_rea_trains_candidates(ray_session, data_cache, tmp_path, capsys):
    code = main(["--algo", "rea", "--space", "nats-sss", "--evaluate", "train", "--dataset", "digits",
                 "--num-samples", "5", "--epochs", "2", "--storage", str(tmp_path), "--name", "rea"])
    assert code == 0
    out = capsys.readouterr().out
    assert "rea seed 0: 5 trials" in out and "report:" in out
    rows = records(tmp_path / "rea")
    trials = by_trial(rows)
    assert len(trials) == 5 and all(epochs == [1, 2] for epochs in trials.values())
    assert len({r["arch"] for r in rows}) == 5
    last = rows[-1]
    assert 0 < last["best_test_acc"] <= 100 and last["params"] > 0 and last["flops"] > 0
    # the incumbent is the best 12-epoch validation accuracy so far
    finals = [r for r in rows if r["epoch"] == 2]
    assert last["best_arch"] == max(finals, key=lambda r: r["valid_acc"])["arch"]
    protocol = json.loads((tmp_path / "rea" / "protocol.json").read_text())
    assert protocol["evaluate"] == "train" and protocol["clock"].startswith("measured")
    assert (tmp_path / "rea" / "report" / "report.md").exists()


def test_bohb_stops_low_budget_trials_and_resumes_paused_ones(ray_session, data_cache, tmp_path):
    code = main(["--algo", "bohb", "--space", "nats-sss", "--evaluate", "train", "--dataset", "digits",
                 "--num-samples", "8", "--epochs", "4", "--storage", str(tmp_path), "--name", "bohb"])
    assert code == 0
    rows = records(tmp_path / "bohb")
    trials = by_trial(rows)
    assert len(trials) == 8
    # every trial reports epochs 1..k once each: paused trials continue from their checkpoint
    for epochs in trials.values():
        assert epochs == list(range(1, len(epochs) + 1))
    lengths = sorted(len(e) for e in trials.values())
    assert lengths[0] < 4 and lengths[-1] == 4  # HyperBand stopped some trials early, promoted others
    assert len(set(lengths)) > 1 and set(lengths) <= {1, 4}  # rungs 4/3 -> 1 and 4: the whole schedule
    # the simulated clock is the sum of the trials' own (measured) costs
    cost = {}
    for r in rows:
        cost[r["trial_id"]] = r["trial_sim_seconds"]
    assert rows[-1]["sim_seconds"] == pytest.approx(sum(cost.values()))


def test_gpu_fraction_without_a_gpu_fails_at_once(ray_session, tmp_path, capsys):
    import ray

    if ray.cluster_resources().get("GPU", 0):
        pytest.skip("this machine has a GPU")
    code = main(["--algo", "random", "--space", "nats-sss", "--evaluate", "train", "--num-samples", "1",
                 "--gpus-per-trial", "0.25", "--storage", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gpus-per-trial 0.25 but the Ray cluster has no GPU" in err[0]
    assert not (tmp_path / "nats-sss-digits").exists()  # nothing written: the same command without it runs


@pytest.mark.parametrize(
    "args,message",
    [
        (["--mode", "simulate"], "--mode simulate needs a tabular benchmark"),
        (["--benchmark", "x.csv", "--evaluate", "train"], "--benchmark is for --evaluate tabular"),
        (["--dataset", "mnist"], "unknown dataset 'mnist' for --evaluate train"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--cpus-per-trial", "0.00001"], "--cpus-per-trial must be a number of CPUs, at least 0.01"),
        (["--dataset", "imagefolder"], "imagefolder needs --data-dir"),
        (["--benchmark", "x.csv", "--epochs", "3"], "--epochs is for --evaluate train"),
        (["--gpus-per-trial", "1.5"], "--gpus-per-trial must be a fraction in [0.01, 1] or a whole number"),
        (["--data-dir", "/no/such/dir"], "--data-dir /no/such/dir does not exist"),
    ],
)
def test_bad_training_options_are_one_line(args, message):
    out = cli("--algo", "rea", "--space", "nats-sss", *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], out.stderr


def test_ctrl_c_then_resume_continues_trials_from_their_checkpoints(ray_session, data_cache, tmp_path):
    import signal
    import subprocess
    import time

    from tests.test_cli import PY, ROOT

    common = ["--algo", "random", "--space", "nats-sss", "--evaluate", "train", "--dataset", "digits",
              "--num-samples", "2", "--epochs", "3", "--storage", str(tmp_path), "--name", "cut"]
    path = tmp_path / "cut" / "results.jsonl"
    log = open(tmp_path / "cut.log", "w+")
    env = {**os.environ, "AUTOHAS_DATA_CACHE": str(data_cache)}
    proc = subprocess.Popen([PY, "-m", "autohas.tune", *common], cwd=ROOT, stdout=log, stderr=log, text=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and (not path.exists() or len(path.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    partial = records(tmp_path / "cut")
    assert 2 <= len(partial) < 6
    assert main(common + ["--resume"]) == 0
    resumed = records(tmp_path / "cut")
    assert resumed[: len(partial)] == partial  # nothing finished was lost or rewritten
    trials = by_trial(resumed)
    assert len(trials) == 2 and all(epochs == [1, 2, 3] for epochs in trials.values())
