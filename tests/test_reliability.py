"""Nothing lost, nothing hung, no traceback: results integrity, up-front validation, injected faults."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autohas.tune import main
from tests.conftest import ROOT, TABLE, main_in_one_process

PY = sys.executable


def records(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def without_wall(rows):
    """Records as a deterministic run repeats them: every field but the measured wall seconds."""
    return [json.dumps({k: v for k, v in r.items() if k != "wall_seconds"}) for r in rows]


# ------------------------------------------------------------------------------------------------
# Bad input: one line on stderr, exit 2, no traceback, no Ray started, no folder that blocks a retry


def _bad_inputs(tmp: Path) -> list[tuple[list[str], str]]:
    """(argv, a phrase of the one line) for every kind of bad input; `tmp` holds the files they use."""
    binary = tmp / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 4)
    (tmp / "bad.yaml").write_text("algo: [rea\n")
    (tmp / "unknown.yaml").write_text("budgett: 3\n")
    (tmp / "list.yaml").write_text("space: [nats-tss, nats-sss]\n")
    (tmp / "float.yaml").write_text("seeds: 2.7\n")
    (tmp / "scalar.yaml").write_text("just a string\n")
    (tmp / "nobudget.yaml").write_text("time-budget: {cifar100: 5}\n")
    (tmp / "adir").mkdir()
    (tmp / "existing").mkdir()
    (tmp / "existing" / "x").write_text("not an experiment")
    ts, sss = ["--algo", "rea", "--space", "nats-tss"], ["--algo", "random", "--space", "nats-sss"]
    cases = [
        (["--algo", "nope", "--space", "nats-tss"], "unknown algorithm 'nope'"),
        (["--algo", "rea", "--space", "darts"], "unknown space 'darts'"),
        (["--space", "nats-tss"], "--algo is required"),
        (["--algo", "rea"], "--space is required"),
        (ts + ["--seeds", "x"], "--seeds: invalid int value"),
        (ts + ["--mode", "fast"], "--mode: invalid choice: 'fast'"),
        (ts + ["--evaluate", "fast"], "--evaluate: invalid choice: 'fast'"),
        (ts + ["--seed-mode", "x"], "--seed-mode: invalid choice: 'x'"),
        (ts + ["--bogus"], "unrecognized arguments: --bogus"),
        (ts + ["--seed", "-1"], "seeds must lie in 0 .. 2**32-1"),
        (ts + ["--seeds", "0"], "--seeds and --concurrency must be at least 1"),
        (ts + ["--concurrency", "0"], "--seeds and --concurrency must be at least 1"),
        (ts + ["--num-samples", "0"], "--num-samples must be at least 1"),
        (ts + ["--time-budget", "inf"], "--time-budget must be a positive number"),
        (ts + ["--time-budget", "-5"], "--time-budget must be a positive number"),
        (sss + ["--max-failures", "-1"], "--max-failures must be 0 (no retries) or more"),
        (sss + ["--gpus-per-trial", "1.5"], "--gpus-per-trial must be a fraction in [0.01, 1]"),
        (sss + ["--cpus-per-trial", "0"], "--cpus-per-trial must be a number of CPUs"),
        (["--algo", "rea,,bohb", "--space", "nats-tss"], "--algo has an empty entry: 'rea,,bohb'"),
        (["--algo", "rea,", "--space", "nats-tss"], "--algo has an empty entry"),
        (["--algo", ",", "--space", "nats-tss"], "--algo is empty"),
        (["--algo", "rea,rea", "--space", "nats-tss"], "--algo names an algorithm twice"),
        (sss + ["--name", ""], "--name must be a plain folder name, not ''"),
        (sss + ["--name", "a/b"], "--name must be a plain folder name"),
        (sss + ["--name", " x"], "--name must be a plain folder name"),
        (sss + ["--name", ".."], "--name must be a plain folder name"),
        (sss + ["--resume", "--overwrite"], "--resume continues an experiment and --overwrite deletes it"),
        (sss + ["--storage", str(tmp), "--name", "never", "--resume"], "nothing to resume at"),
        (sss + ["--storage", str(tmp), "--name", "existing"], "exists and is not an autohas experiment"),
        (sss + ["--connect-timeout", "0"], "--connect-timeout must be a positive number"),
        (sss + ["--address", "nohost"], "--address nohost is not HOST:PORT"),
        (ts + ["--config", str(tmp / "none.yaml")], "cannot read config"),
        (ts + ["--config", str(tmp / "adir")], "cannot read config"),
        (ts + ["--config", str(binary)], "malformed YAML"),
        (ts + ["--config", str(tmp / "bad.yaml")], "malformed YAML"),
        (ts + ["--config", str(tmp / "unknown.yaml")], "unknown option 'budgett'"),
        (["--algo", "rea", "--config", str(tmp / "list.yaml")], "option space must be a single value"),
        (ts + ["--config", str(tmp / "float.yaml")], "seeds must be a whole number, not 2.7"),
        (ts + ["--config", str(tmp / "scalar.yaml")], "must be a mapping of option: value"),
        (ts + ["--config", str(tmp / "nobudget.yaml"), "--evaluate", "train"], "names no budget for dataset 'digits'"),
        (ts + ["--benchmark", "/no/such/file.csv"], "benchmark not found: /no/such/file.csv"),
        (ts + ["--benchmark", str(binary)], "is neither a .csv table nor a NATS-Bench folder"),
        (ts + ["--benchmark", str(tmp / "adir")], "has no NATS-tss-v1_0-3ffb9-simple folder"),
        (ts + ["--evaluate", "train", "--dataset", "mnist"], "unknown dataset 'mnist' for --evaluate train"),
        (ts + ["--evaluate", "train", "--benchmark", "x.csv"], "--benchmark is for --evaluate tabular"),
        (ts + ["--evaluate", "train", "--mode", "simulate"], "--mode simulate needs a tabular benchmark"),
        (ts + ["--evaluate", "train", "--epochs", "0"], "--epochs must be at least 1"),
        (ts + ["--evaluate", "train", "--data-dir", "/no/such/dir"], "--data-dir /no/such/dir does not exist"),
        (ts + ["--select", "alpha", "--evaluate", "train"], "--select is for weight-sharing methods"),
        (ts + ["--warmup-ratio", "0.1", "--evaluate", "train"], "--warmup-ratio is for weight-sharing methods"),
        (["--algo", "rea", "--space", "has", "--evaluate", "tabular"], "has has no tabular benchmark"),
        (["--algo", "autohas", "--space", "nats-tss"], "autohas search hyperparameters too: use --space has"),
        (["--algo", "gdas", "--space", "nats-sss"], "gdas search nats-tss or has"),
    ]
    if TABLE.exists():
        table = str(TABLE)
        lines = TABLE.read_text().splitlines(keepends=True)
        (tmp / "head.csv").write_text("".join(lines[:100]))
        (tmp / "header.csv").write_text(lines[0])
        cases += [
            (ts + ["--benchmark", str(tmp / "head.csv")], "holds 99 of the 15,625 nats-tss architectures"),
            (ts + ["--benchmark", str(tmp / "header.csv")], "holds 0 of the 15,625 nats-tss architectures"),
            (ts + ["--benchmark", table, "--time-budget", "1e30"], "it would never run out; give at most"),
            (ts + ["--benchmark", table, "--dataset", "mnist"], "unknown dataset 'mnist'"),
            (ts + ["--benchmark", table, "--epochs", "3"], "--epochs is for --evaluate train"),
            (ts + ["--benchmark", table, "--data-dir", "/tmp"], "--data-dir is for --evaluate train"),
        ]
    official = ROOT.parent / "shared" / "data" / "nats-official-sample"
    if official.exists():
        cases.append((sss + ["--benchmark", str(official)], "holds 3 of the 32,768 nats-sss architectures"))
    noise = tmp / "noise" / "NATS-tss-v1_0-3ffb9-simple"
    noise.mkdir(parents=True)
    for name in ("meta.pickle.pbz2", "000000.pickle.pbz2"):
        (noise / name).write_bytes(os.urandom(2048))
    cases.append((ts + ["--benchmark", str(tmp / "noise")], "cannot read benchmark file"))
    return cases


def test_bad_input_is_one_line_exit_2_before_ray_and_before_any_folder(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cases = _bad_inputs(inputs)
    assert len(cases) >= 40
    storage = tmp_path / "store"
    argvs = [argv if "--storage" in argv else argv + ["--storage", str(storage)] for argv, _ in cases]
    answer = main_in_one_process(argvs, {**os.environ, "AUTOHAS_DATA_CACHE": str(tmp_path / "cache"), "AUTOHAS_BENCHMARK": ""},
                                 timeout=600)
    assert not answer["ray_started"]
    for (argv, phrase), (rc, err) in zip(cases, answer["results"]):
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1, (argv, err)
        assert lines[0].startswith("autohas.tune: error: ") and phrase in lines[0], (argv, lines[0])
        assert "Traceback" not in err
    assert not storage.exists() or os.listdir(storage) == []  # nothing blocks the corrected command


def test_an_address_nothing_answers_at_is_one_line_within_the_timeout(tmp_path):
    start = time.monotonic()
    done = subprocess.run([PY, "-m", "autohas.tune", "--algo", "random", "--space", "nats-sss", "--address", "127.0.0.1:1",
                           "--connect-timeout", "5", "--storage", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "AUTOHAS_DATA_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 2 and time.monotonic() - start < 100
    assert done.stderr.strip().splitlines() == [
        "autohas.tune: error: cannot connect to the Ray cluster at 127.0.0.1:1: Connection refused (waited up to 5 s)"]
    assert os.listdir(tmp_path) == ["cache"]


# ------------------------------------------------------------------------------------------------
# Results integrity


@pytest.fixture
def finished(ray_session, table_path, tmp_path):
    """A finished simulate-mode experiment of two searchers x two seeds, and its command."""
    command = ["--algo", "rea,random", "--space", "nats-tss", "--benchmark", str(table_path), "--seeds", "2",
               "--num-samples", "25", "--storage", str(tmp_path), "--name", "e"]
    assert main(command) == 0
    return command, tmp_path / "e" / "results.jsonl"


def _run_of(rows, run):
    return [r for r in rows if (r["algo"], r["seed"]) == run]


def test_every_record_is_numbered_and_a_finished_run_is_sealed(finished):
    _, path = finished
    rows = records(path)
    for run in {(r["algo"], r["seed"]) for r in rows}:
        mine = _run_of(rows, run)
        assert [r["seq"] for r in mine] == list(range(25))
        seal = json.loads((path.parent / f"{run[0]}-seed{run[1]}" / "search-finished").read_text())
        assert seal["records"] == 25 and len(seal["sha256"]) == 64


@pytest.mark.parametrize("damage", ["torn-last", "garbage-middle", "lost-middle"])
def test_damage_is_reported_in_one_line_and_resume_repairs_it(finished, damage, capsys):
    command, path = finished
    original = records(path)
    text = path.read_bytes()
    lines = text.split(b"\n")[:-1]
    if damage == "torn-last":
        text = b"\n".join(lines[:-1]) + b"\n" + lines[-1][: len(lines[-1]) // 2]
        where = len(lines) - 1
    elif damage == "garbage-middle":
        lines[40] = b"{garbage"
        text = b"\n".join(lines) + b"\n"
        where = 41
    else:
        del lines[40]
        text = b"\n".join(lines) + b"\n"
        where = None
    path.write_bytes(text)
    from autohas.report import main as report

    assert report([str(path.parent)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results.jsonl line" in err[0] and "--resume" in err[0], err
    if where is not None:
        assert f"line {where}" in err[0]
    assert main(command + ["--resume"]) == 0
    said = capsys.readouterr().err
    assert "repaired: " in said and "is evaluated again" in said
    repaired = records(path)
    for run in {(r["algo"], r["seed"]) for r in original}:
        before, after = _run_of(original, run), _run_of(repaired, run)
        assert without_wall(after) == without_wall(before)  # the same records, in order
    intact = {json.dumps(r) for r in original}
    assert sum(json.dumps(r) in intact for r in repaired) >= len(original) - 25  # untouched runs byte for byte
    assert report([str(path.parent)]) == 0


def test_an_interrupted_write_is_completed_before_new_records_join_it(ray_session, table_path, tmp_path):
    """A torn last line of an unfinished run: dropped on resume, so the next record starts a line."""
    command = ["--algo", "rea", "--space", "nats-tss", "--benchmark", str(table_path), "--num-samples", "8",
               "--storage", str(tmp_path), "--name", "u", "--mode", "simulate"]
    assert main(command) == 0
    whole = records(tmp_path / "u" / "results.jsonl")
    path = tmp_path / "u" / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])
    os.remove(tmp_path / "u" / "rea-seed0" / "search-finished")  # as if killed before the run ended
    assert main(command + ["--resume"]) == 0
    assert without_wall(records(path)) == without_wall(whole)


# ------------------------------------------------------------------------------------------------
# Injected faults


def _tabular_command(table, storage, name, samples=40):
    return ["--algo", "rea", "--space", "nats-tss", "--benchmark", str(table), "--num-samples", str(samples),
            "--seed", "3", "--storage", str(storage), "--name", name]


def _start(command, log):
    return subprocess.Popen([PY, "-m", "autohas.tune", *command], cwd=ROOT, stdout=log, stderr=log, text=True)


def _wait_for_records(path, count, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_the_driver_as_ctrl_c_and_the_run_resumes_exactly(ray_session, table_path, tmp_path):
    assert main(_tabular_command(table_path, tmp_path, "whole")) == 0
    whole = records(tmp_path / "whole" / "results.jsonl")
    log = open(tmp_path / "cut.log", "w+")
    proc = _start(_tabular_command(table_path, tmp_path, "cut"), log)
    path = tmp_path / "cut" / "results.jsonl"
    assert _wait_for_records(path, 10, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    log.seek(0)
    err = log.read()
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    partial = records(path)
    assert 10 <= len(partial) < len(whole)
    assert main(_tabular_command(table_path, tmp_path, "cut") + ["--resume"]) == 0
    resumed = records(path)
    assert resumed[: len(partial)] == partial  # nothing finished was lost or rewritten
    assert [r["arch"] for r in resumed] == [r["arch"] for r in whole]
    assert [r["seq"] for r in resumed] == list(range(len(whole)))
    assert [r["sim_seconds"] for r in resumed] == pytest.approx([r["sim_seconds"] for r in whole])


@pytest.fixture
def small_mount(tmp_path):
    """A 64 MiB tmpfs of our own (root only: skipped where mounting is not allowed)."""
    point = tmp_path / "mnt"
    point.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(point)],
                                                        capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN) on this machine")
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_storage_failing_mid_run_is_one_line_and_resume_equals_an_uninterrupted_run(ray_session, table_path, tmp_path,
                                                                                   small_mount, fault):
    assert main(_tabular_command(table_path, tmp_path, "whole")) == 0
    whole = records(tmp_path / "whole" / "results.jsonl")
    log = open(tmp_path / "fault.log", "w+")
    command = _tabular_command(table_path, small_mount, "f")
    proc = _start(command, log)
    path = small_mount / "f" / "results.jsonl"
    assert _wait_for_records(path, 10, proc)
    if fault == "read-only":  # refused while a file is open for writing there: try until a moment without one
        deadline = time.time() + 60
        while subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], capture_output=True).returncode != 0:
            assert time.time() < deadline and proc.poll() is None, "found no moment to make the storage read-only"
            time.sleep(0.02)
    else:
        filler = small_mount / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=80"], capture_output=True)
    proc.wait(timeout=300)
    log.seek(0)
    err = log.read()
    assert proc.returncode == 1, err
    said = [line for line in err.splitlines() if line.startswith("autohas.tune:")]
    assert len(said) == 1 and "--resume" in said[0] and ("Read-only" in said[0] or "No space" in said[0]), err[-3000:]
    assert "Traceback" not in err
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,rw", str(small_mount)], check=True)
    else:
        os.remove(filler)
    assert main(command + ["--resume"]) == 0
    resumed = records(path)
    assert [r["arch"] for r in resumed] == [r["arch"] for r in whole]
    assert [r["seq"] for r in resumed] == list(range(len(whole)))
    assert [r["sim_seconds"] for r in resumed] == pytest.approx([r["sim_seconds"] for r in whole])


def test_a_second_driver_on_the_same_experiment_refuses(table_path, tmp_path, capsys):
    from autohas.experiment import driver_lock
    from autohas.validate import parse_options

    command = _tabular_command(table_path, tmp_path, "busy", samples=2)
    with driver_lock(parse_options(command)):
        assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"another autohas driver (pid {os.getpid()}) is running the experiment" in err[0]
    assert not (tmp_path / "busy").exists()


def _trial_workers() -> list[int]:
    """PIDs of Ray worker processes running a trial (Tune's function trainables)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"ray::ImplicitFunc" in command:
                found.append(int(entry.name))
    return found


def test_a_killed_trial_worker_is_retried_from_its_checkpoint_with_the_same_records(tmp_path):
    common = ["--algo", "random", "--space", "nats-sss", "--dataset", "digits", "--epochs", "4", "--num-samples", "2",
              "--storage", str(tmp_path)]
    env = {**os.environ, "AUTOHAS_DATA_CACHE": str(tmp_path / "cache")}
    assert subprocess.run([PY, "-m", "autohas.tune", *common, "--name", "whole"], cwd=ROOT, env=env,
                          capture_output=True, timeout=600).returncode == 0
    whole = records(tmp_path / "whole" / "results.jsonl")
    log = open(tmp_path / "kill.log", "w+")
    proc = subprocess.Popen([PY, "-m", "autohas.tune", *common, "--name", "kill"], cwd=ROOT, env=env, stdout=log, stderr=log)
    path = tmp_path / "kill" / "results.jsonl"
    assert _wait_for_records(path, 2, proc, seconds=300)
    workers = _trial_workers()
    assert workers, "no trial worker found"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=600)
    log.seek(0)
    assert proc.returncode == 0, log.read()[-3000:]
    killed = records(path)
    assert [(r["arch"], r["epoch"]) for r in killed] == [(r["arch"], r["epoch"]) for r in whole]
    assert [r["valid_acc"] for r in killed] == pytest.approx([r["valid_acc"] for r in whole])
    assert [r["seq"] for r in killed] == list(range(len(whole)))


def test_trials_failing_in_a_row_end_the_search_unfinished():
    from autohas import searchers
    from autohas.searchers.limits import LimitedSearcher
    from autohas.spaces import get_space
    from ray.tune.search import Searcher

    told = []
    limited = LimitedSearcher(searchers.create("random", get_space("nats-tss"), 0), on_finished=lambda: told.append(1))
    for i in range(3):
        assert isinstance(limited.suggest(f"t{i}"), dict)
        limited.on_trial_complete(f"t{i}", error=True)
    assert limited.suggest("t3") is Searcher.FINISHED and told == []  # broken evaluation: not a finished search
