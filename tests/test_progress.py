"""Progress on stderr: the rate limit and heartbeat (a fake clock), the Tune callbacks' lines and their
pickling, and real short runs (tune, simulate, weight sharing) whose progress comes before the end."""
import io
import pickle
import re
import sys
from types import SimpleNamespace

import pytest

from autohas import progress
from autohas.progress import LinePrinter, RunProgress, SearchProgress, SimulateProgress, clock_text
from autohas.tune import main
from tests.test_train_cli import data_cache  # noqa: F401 (a fixture)


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class Recorder(io.StringIO):
    """A stream that remembers when (on the fake clock) each line was written."""

    def __init__(self, clock, tty=False):
        super().__init__()
        self.clock, self.tty, self.times = clock, tty, []

    def write(self, text):
        self.times.extend([self.clock()] * text.count("\n"))
        return super().write(text)

    def isatty(self):
        return self.tty

    def lines(self):
        return self.getvalue().splitlines()


def test_at_most_one_line_a_second_and_a_heartbeat_after_ten_seconds_of_silence():
    clock = FakeClock()
    out = Recorder(clock)
    printer = LinePrinter(out, clock=clock)
    status = lambda: f"status at {clock.now - 100:.1f}"  # noqa: E731
    printer.event("a1", key="a")  # the first line goes at once
    clock.now += 0.2
    printer.event("b1", key="b")
    printer.event("a2", key="a")  # held behind b (arrived first), replacing a's held line
    clock.now += 0.3
    printer.event("a3", key="a")
    printer.tick(status)
    assert out.lines() == ["a1"]  # 0.5 s after a line: nothing yet
    clock.now = 101.0
    printer.tick(status)
    assert out.lines() == ["a1", "b1"]
    clock.now = 101.5
    printer.tick(status)
    clock.now = 102.0
    printer.tick(status)
    assert out.lines() == ["a1", "b1", "a3"]  # a2 was replaced by the newer a3
    for step in range(1, 101):  # silence: ticks every 0.1 s
        clock.now = 102.0 + step / 10
        printer.tick(status)
    assert out.lines()[3:] == ["status at 12.0"]  # one heartbeat, exactly 10 s after the last line
    clock.now = 112.5
    printer.event("c1", key="c")  # 0.5 s after the heartbeat: held
    printer.event("d1", key="d")
    printer.close()  # the newest held line is the run's last state: written
    assert out.lines()[4:] == ["d1"]
    gaps = [b - a for a, b in zip(out.times[:-1], out.times[1:-1])]
    assert min(gaps) >= 1.0 and max(gaps) <= 10.0 + 1e-9


def test_quiet_writes_nothing_and_the_setting_is_restored():
    clock = FakeClock()
    out = Recorder(clock)
    printer = LinePrinter(out, clock=clock)
    with progress.quiet(True):
        printer.event("hidden")
        clock.now += 20
        printer.tick(lambda: "status")
        printer.close()
    assert out.getvalue() == "" and progress.enabled()
    printer.event("shown")
    assert out.lines() == ["shown"]


def test_a_terminal_gets_one_line_updated_in_place():
    clock = FakeClock()
    out = Recorder(clock, tty=True)
    printer = LinePrinter(out, clock=clock)
    printer.event("epoch 1", key="t")  # kept lines end with a newline
    for _ in range(3):
        clock.now += 1.0
        printer.tick(lambda: f"running {clock.now - 100:.0f} s")  # each second on a terminal
    printer.close()
    text = out.getvalue()
    assert text == "\r\x1b[Kepoch 1\n\r\x1b[Krunning 1 s\r\x1b[Krunning 2 s\r\x1b[Krunning 3 s\n"


def test_clock_text():
    assert [clock_text(s) for s in (0, 59.4, 61, 3599, 3600 * 2 + 5, None)] == ["0:00", "0:59", "1:01", "59:59", "2:00:05", "?"]


def _trial(trial_id, status="RUNNING", run=None):
    return SimpleNamespace(trial_id=trial_id, status=status, config={"run": run} if run else {})


def _result(trial_id, valid, arch, epoch=12, cost=1000.0):
    return {"algo": "rea", "seed": 0, "trial_id": trial_id, "arch": arch, "epoch": epoch, "valid_acc": valid,
            "test_acc": valid, "trial_sim_seconds": cost}


def test_run_progress_counts_budget_best_and_resumes_from_the_records(tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    watcher = RunProgress("rea", 0, time_budget=4000.0, num_samples=None, results_path=str(results))
    watcher.setup()
    watcher.printer.interval = 0  # the rate limit is tested above: here the lines' content
    trials = [_trial("t1", "TERMINATED"), _trial("t2")]
    watcher.on_trial_result(0, trials, trials[0], _result("t1", 90.0, "A"))
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("rea seed 0: 1 trials done, 1 running, budget 25% (1,000 of 4,000 simulated s), best valid 90.00 (A)")
    assert line.endswith("| trial 1 valid 90.00 (epoch 12)")
    # pickled with the experiment, it keeps its settings only; a resumed driver replays results.jsonl
    clone = pickle.loads(pickle.dumps(watcher))
    assert not clone._ready and not hasattr(clone, "ledger") and clone.results_path == str(results)
    results.write_text("".join(__import__("json").dumps(_result(t, v, a)) + "\n" for t, v, a in [("t1", 90.0, "A"), ("t2", 92.0, "B")]))
    clone.setup()
    assert "search started (budget: 4,000 simulated s; resumed after 2 trials)" in capsys.readouterr().err
    assert clone.ledger.clock == 2000.0 and clone.ledger.best_arch == "B" and clone.numbers == {"t1": 1, "t2": 2}
    status = clone.status([_trial("t1", "TERMINATED"), _trial("t2", "TERMINATED"), _trial("t3")])
    assert "2 trials done, 1 running, budget 50% (2,000 of 4,000 simulated s), best valid 92.00 (B)" in status


def test_train_runs_show_every_trial_and_epoch(capsys):
    """With epochs (train mode) each trial keeps its line: two trials reporting within a second both
    show; a tabular run keeps only the newest."""
    for epochs, expected in ((12, ["trial 1 epoch 1/12", "trial 2 epoch 1/12"]), (None, ["trial 2 valid"])):
        watcher = RunProgress("rea", 0, time_budget=None, num_samples=10, clock_name="training", epochs=epochs)
        watcher.setup()
        capsys.readouterr()
        trials = [_trial("t1"), _trial("t2")]
        watcher.printer._last = watcher.printer._clock()  # a line was just written: both are held
        watcher.on_trial_result(0, trials, trials[0], _result("t1", 50.0, "A", epoch=1))
        watcher.on_trial_result(0, trials, trials[1], _result("t2", 60.0, "B", epoch=1))
        watcher.printer._last -= 1.0
        watcher.on_step_end(0, trials)
        watcher.on_experiment_end(trials)
        lines = capsys.readouterr().err.splitlines()
        assert [next(p for p in expected if p in line) for line in lines] == expected


def test_search_progress_lines_name_epoch_arch_accuracy_and_phase(capsys):
    watcher = SearchProgress({"autohas": (2, 3)})
    watcher.setup()
    watcher.printer.interval = 0
    trial = _trial("w1", run={"algo": "autohas", "seed": 4})
    watcher.on_trial_start(0, [trial], trial)
    for epoch in (1, 4):
        watcher.on_trial_result(0, [trial], trial, {"epoch": epoch, "arch": "CELL@lr=0.1", "valid_acc": 41.5})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "weight sharing: searches started: autohas (2 search + 3 re-training epochs)"
    assert re.fullmatch(r"autohas seed 4: search epoch 1/2, CELL@lr=0\.1, valid 41\.50, epoch \d+\.\d s, ETA \d+:\d\d", lines[1])
    assert lines[2].startswith("autohas seed 4: re-training epoch 2/3, CELL@lr=0.1, valid 41.50")
    assert watcher.status([trial]).startswith("weight sharing: 0 of 1 searches done, running: autohas seed 4 in epoch 5/5 for 0:00")
    assert pickle.loads(pickle.dumps(watcher)).__dict__ == {"epochs": {"autohas": (2, 3)}, "_ready": False}


def test_simulate_progress_counts_runs_and_estimates(capsys):
    clock = FakeClock()
    out = Recorder(clock)
    watcher = SimulateProgress(total=4, done=1, printer=LinePrinter(out, clock=clock), clock=clock)
    clock.now += 10
    watcher.run_done("rea-seed1", [{"trial_id": "x", "best_test_acc": 93.5}, {"trial_id": "y", "best_test_acc": 94.0}])
    assert out.lines() == ["simulate: 1/4 runs done (25%), elapsed 0:00, ETA ?",
                           "simulate: 2/4 runs done (50%), elapsed 0:10, ETA 0:20; rea-seed1: 2 trials, best test acc 94.00"]


# -- real runs: progress lines come while the run goes, before its outcome; none with --quiet ------------------


class Merged(io.StringIO):
    """stdout and stderr as one stream, in the order written (what a terminal shows)."""

    def isatty(self):
        return False


def _run(monkeypatch, argv):
    merged = Merged()
    monkeypatch.setattr(sys, "stdout", merged)
    monkeypatch.setattr(sys, "stderr", merged)
    code = main(argv)
    monkeypatch.undo()
    assert code == 0, merged.getvalue()
    return merged.getvalue().splitlines()


def _before_outcome(lines, outcome, progress_line):
    """The progress lines (matching `progress_line`) written before the first outcome line."""
    end = next(i for i, line in enumerate(lines) if line.startswith(outcome))
    return [line for line in lines[:end] if re.search(progress_line, line)]


def test_a_tune_mode_run_shows_trials_budget_and_best_while_it_runs(ray_session, table_path, tmp_path, monkeypatch):
    common = ["--algo", "rea", "--space", "nats-tss", "--benchmark", str(table_path), "--num-samples", "20", "--storage", str(tmp_path)]
    lines = _run(monkeypatch, common + ["--name", "loud"])
    shown = _before_outcome(lines, "rea seed 0: 20 trials", r"^rea seed 0: (search started|\d+ trials done)")
    assert shown[0] == "rea seed 0: search started (budget: 20 trials)"
    counts = [int(m.group(1)) for m in map(re.compile(r"budget (\d+)% \(\d+ of 20 trials\)").search, shown[1:])]
    assert counts and counts == sorted(counts) and min(counts) < 100  # a line from the middle of the run
    assert all(re.search(r"best valid \d+\.\d\d \(\|.+\|\), elapsed \d+:\d\d, (ETA|budget used)", line) for line in shown[1:])
    quiet = _run(monkeypatch, common + ["--name", "quiet", "--quiet"])
    assert quiet[0].startswith("rea seed 0: 20 trials") and not any("trials done" in line for line in quiet)


def test_a_simulate_mode_run_shows_runs_done(ray_session, table_path, tmp_path, monkeypatch):
    lines = _run(monkeypatch, ["--algo", "rea", "--space", "nats-tss", "--benchmark", str(table_path), "--seeds", "3",
                               "--time-budget", "20000", "--storage", str(tmp_path), "--name", "sim"])
    shown = _before_outcome(lines, "rea seed 0: ", r"^simulate: ")
    assert shown[0].startswith("simulate: 0/3 runs done (0%), elapsed 0:00, ETA ?")
    assert re.fullmatch(r"simulate: 3/3 runs done \(100%\), elapsed \d:\d\d, ETA 0:00; rea-seed\d: \d+ trials, best test acc \d+\.\d\d",
                        shown[-1])


def test_a_weight_sharing_run_shows_each_epoch(ray_session, data_cache, tmp_path, monkeypatch):  # noqa: F811
    lines = _run(monkeypatch, ["--algo", "gdas", "--space", "nats-tss", "--search-epochs", "2", "--search-batches", "2",
                               "--storage", str(tmp_path), "--name", "ws"])
    shown = _before_outcome(lines, "gdas seed 0: 1 trials", r"^(weight sharing|gdas seed 0): ")
    assert shown[0] == "weight sharing: searches started: gdas (2 epochs)"
    epochs = [re.fullmatch(r"gdas seed 0: search epoch (\d)/2, \|.+\|, valid \d+\.\d\d, epoch \d+\.\d s, ETA \d+:\d\d", line)
              for line in shown[1:] if "search epoch" in line]
    assert epochs and all(epochs) and int(epochs[-1].group(1)) == 2
