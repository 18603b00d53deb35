"""Weight-sharing methods through the CLI: Tune trials per (method, seed), the report, resume, bad input."""
import json
import os
import signal
import subprocess
import time

import pytest

from autohas.spaces import get_space
from autohas.tune import main
from tests.conftest import ROOT
from tests.test_cli import PY, acc200, cli, records  # noqa: F401 (acc200 is a fixture)
from tests.test_data import write_folder
from tests.test_train_cli import data_cache  # noqa: F401 (a fixture)

QUICK = ["--space", "nats-tss", "--search-epochs", "2", "--search-batches", "2"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--algo", "rsps", "--select", "ostr"], "--select ostr needs architecture parameters, which rsps does not learn"),
        (["--algo", "rea", "--select", "alpha"], "--select is for weight-sharing methods"),
        (["--algo", "gdas", "--select", "magnitude"], "unknown selection 'magnitude'"),
        (["--algo", "gdas", "--search-epochs", "0"], "--search-epochs and --search-batches must be at least 1"),
        (["--algo", "pc-darts"], "unknown algorithm 'pc-darts'; choose from:"),
        (["--algo", "autohas"], "autohas search hyperparameters too: use --space has"),
        (["--algo", "rea", "--retrain-epochs", "2"], "--retrain-epochs is for weight-sharing methods"),
        (["--algo", "rea,autohas", "--space", "has", "--evaluate", "tabular"], "has has no tabular benchmark"),
        (["--algo", "gdas", "--space", "nats-sss"], "gdas search nats-tss or has; on nats-sss use tas, mask-gumbel, mask-sample"),
        (["--algo", "rea,tas,mask-sample"], "tas, mask-sample search nats-sss widths, not nats-tss"),
        (["--algo", "gdas", "--warmup-ratio", "0.2"], "--warmup-ratio is a fraction in [0, 1) of the search epochs of tas"),
        (["--algo", "tas", "--space", "nats-sss", "--warmup-ratio", "1"], "--warmup-ratio is a fraction in [0, 1)"),
        (["--algo", "rea", "--warmup-ratio", "0.2"], "--warmup-ratio is for weight-sharing methods"),
        (["--algo", "mask-gumbel", "--space", "nats-sss", "--flops-target", "50"], "--flops-target is tas' target in MFLOPs"),
        (["--algo", "tas", "--space", "nats-sss", "--flops-target", "-5"], "--flops-target is tas' target in MFLOPs, a number above 0"),
        (["--algo", "lease", "--space", "has", "--retrain-epochs", "-1"], "--retrain-epochs must be 0 (no re-training) or more"),
    ],
)
def test_bad_weight_sharing_options_are_one_line_errors(args, message, tmp_path):
    space = [] if "--space" in args else ["--space", "nats-tss"]
    done = cli(*args, *space, "--storage", str(tmp_path))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_gdas_and_darts_search_as_tune_trials_into_one_report(ray_session, data_cache, tmp_path, capsys):
    argv = ["--algo", "gdas,darts-v1", *QUICK, "--select", "ostr", "--storage", str(tmp_path), "--name", "ws"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "gdas seed 0: 1 trials" in out and "darts-v1 seed 0: 1 trials" in out
    rows = records(tmp_path / "ws" / "results.jsonl")
    for algo in ("gdas", "darts-v1"):
        mine = [r for r in rows if r["algo"] == algo]
        assert [r["epoch"] for r in mine] == [1, 2] and len({r["trial_id"] for r in mine}) == 1
        for r in mine:  # the incumbent of a search is what it derives now
            assert r["best_arch"] == r["arch"] and r["best_test_acc"] == r["test_acc"]
            assert r["sim_seconds"] == pytest.approx(r["trial_sim_seconds"])
        assert (tmp_path / "ws" / f"{algo}-seed0" / "search-finished").exists()
    protocol = json.loads((tmp_path / "ws" / "protocol.json").read_text())
    assert "gdas ostr" in protocol["weight_sharing"] and "supernet on the test split" in protocol["weight_sharing"]
    assert protocol["clock"] == "measured search seconds" and protocol["time_budget"] is None
    report = (tmp_path / "ws" / "report" / "report.md").read_text()
    assert "| gdas |" in report and "| darts-v1 |" in report and "Weight sharing:" in report
    # resuming a finished experiment changes nothing; adding a method to its searches is refused
    assert main(argv + ["--resume"]) == 0
    assert records(tmp_path / "ws" / "results.jsonl") == rows
    assert main(["--algo", "gdas,darts-v1,setn", *QUICK, "--select", "ostr", "--storage", str(tmp_path), "--name", "ws", "--resume"]) == 2


def test_size_methods_search_nats_sss_into_one_report(ray_session, data_cache, tmp_path, capsys):
    """tas, mask-gumbel and mask-sample through the CLI: every epoch's derived widths, then (no
    benchmark) the final widths re-trained from scratch; one report with all three."""
    argv = ["--algo", "tas,mask-gumbel,mask-sample", "--space", "nats-sss", "--search-epochs", "2", "--search-batches", "2",
            "--retrain-epochs", "1", "--warmup-ratio", "0.5", "--flops-target", "30", "--storage", str(tmp_path), "--name", "sss"]
    assert main(argv) == 0
    rows = records(tmp_path / "sss" / "results.jsonl")
    space = get_space("nats-sss")
    for algo in ("tas", "mask-gumbel", "mask-sample"):
        mine = [r for r in rows if r["algo"] == algo]
        assert [r["epoch"] for r in mine] == [1, 2, 3] and all(r["space"] == "nats-sss" for r in mine)
        assert all(space.arch_to_index(r["arch"]) == r["arch_index"] for r in mine)
        assert mine[-1]["arch"] == mine[-2]["arch"] and mine[-1]["hparams"] == {"retrain_epochs": 1}
    protocol = json.loads((tmp_path / "sss" / "protocol.json").read_text())
    described = protocol["weight_sharing"]
    assert "nats-sss supernet" in described and "the first 0.5 of them training the widest" in described
    assert "tas with TAS' cost loss toward 30 MFLOPs" in described
    report = (tmp_path / "sss" / "report" / "report.md").read_text()
    assert all(f"| {algo} |" in report for algo in ("tas", "mask-gumbel", "mask-sample"))
    assert main(argv + ["--resume"]) == 0 and records(tmp_path / "sss" / "results.jsonl") == rows


def test_searches_beside_black_box_searchers_with_benchmark_lookup(ray_session, table_path, acc200, data_cache, tmp_path):
    cifar = write_folder(tmp_path / "c10", classes=10, train=16, test=4)
    argv = ["--algo", "rea,gdas", *QUICK, "--dataset", "cifar10", "--benchmark", str(table_path), "--data-dir", str(cifar),
            "--num-samples", "4", "--storage", str(tmp_path), "--name", "mixed"]
    assert main(argv) == 0
    rows = records(tmp_path / "mixed" / "results.jsonl")
    assert len({r["trial_id"] for r in rows if r["algo"] == "rea"}) == 4
    searches = [r for r in rows if r["algo"] == "gdas"]
    assert [r["epoch"] for r in searches] == [1, 2]
    for r in searches:  # the derived architecture's 200-epoch test accuracy, looked up in the table
        assert r["test_acc"] == pytest.approx(acc200[r["arch"]]["cifar10"])
    report = (tmp_path / "mixed" / "report" / "report.md").read_text()
    assert "| rea |" in report and "| gdas |" in report


def test_a_killed_search_resumes_from_its_last_epoch(ray_session, data_cache, tmp_path):
    common = ["--algo", "gdas", "--space", "nats-tss", "--search-epochs", "4", "--search-batches", "3", "--storage", str(tmp_path)]
    assert main(common + ["--name", "whole"]) == 0
    whole = records(tmp_path / "whole" / "results.jsonl")

    path = tmp_path / "cut" / "results.jsonl"
    log = open(tmp_path / "cut.log", "w+")
    env = dict(os.environ)
    proc = subprocess.Popen([PY, "-m", "autohas.tune", *common, "--name", "cut"], cwd=ROOT, stdout=log, stderr=log, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and (not path.exists() or len(path.read_text().splitlines()) < 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    partial = records(path)
    assert 2 <= len(partial) < 4, partial

    assert main(common + ["--name", "cut", "--resume"]) == 0
    resumed = records(path)
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4]  # each epoch once: none lost, none repeated
    # continued from the checkpoint, the search is the same search
    assert [r["arch"] for r in resumed] == [r["arch"] for r in whole]
    assert [r["valid_acc"] for r in resumed] == pytest.approx([r["valid_acc"] for r in whole])


def test_sanas_lease_and_autohas_land_in_one_report_with_gdas(ray_session, data_cache, tmp_path, capsys):
    quick = ["--space", "has", "--search-epochs", "2", "--search-batches", "2"]
    argv = ["--algo", "sanas-darts,lease,autohas,gdas", *quick, "--storage", str(tmp_path), "--name", "has"]
    assert main(argv + ["--retrain-epochs", "1"]) == 0
    rows = records(tmp_path / "has" / "results.jsonl")
    by_algo = {a: [r for r in rows if r["algo"] == a] for a in ("sanas-darts", "lease", "autohas", "gdas")}
    for algo, mine in by_algo.items():  # two search epochs, then one epoch of re-training
        assert [r["epoch"] for r in mine] == [1, 2, 3], algo
        assert all(r["space"] == "has" for r in mine)
        assert mine[-1]["hparams"]["retrain_epochs"] == 1 and mine[-1]["arch"] == mine[-2]["arch"]
        assert (tmp_path / "has" / f"{algo}-seed0" / "search-finished").exists()
    derived = by_algo["autohas"][-1]["hparams"]
    assert len(derived["lr_per_epoch"]) == 2 and 5e-5 <= derived["weight_decay"] <= 5e-3
    saliency = tmp_path / "has" / "saliency"
    assert sorted(os.listdir(saliency)) == ["lease-seed0.png", "sanas-darts-seed0.png"]
    report = (tmp_path / "has" / "report" / "report.md").read_text()
    for algo in by_algo:
        assert f"| {algo} |" in report
    assert "## Saliency maps" in report and "sanas-darts-seed0.png" in report
    assert "re-trained from scratch" in report
    html = (tmp_path / "has" / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64") == 4  # the accuracy plot, the learning curves and two saliency figures
