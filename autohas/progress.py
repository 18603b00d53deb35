"""Progress on stderr while an experiment runs, so that a long run is never silent.

`LinePrinter` writes at most one line a second and, after `heartbeat` seconds without one, a
status line (on a terminal: one line updated in place, each second). Lines that arrive faster are
held, one per key, the newest text winning, and written as the second allows; the newest held
line is written when the run ends. Three watchers feed it: `RunProgress` (a Tune callback, one
black-box run: trials done, budget used, best search signal and its architecture, ETA; with
`--evaluate train` a line per trial and epoch), `SearchProgress` (a Tune callback, the
weight-sharing searches: a line per epoch) and `SimulateProgress` (simulate mode: runs done and
ETA). Whether anything is written is the process's choice (`--quiet`, `set_enabled`), not the
experiment's: Tune pickles its callbacks with the experiment and a resumed run unpickles them.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from typing import Callable, Iterator, TextIO

from ray.tune import Callback

from autohas.records import RunLedger, read_records

INTERVAL = 1.0  # seconds: at most one line per interval
HEARTBEAT = 10.0  # seconds: the longest silence (not on a terminal)

_enabled = True


def set_enabled(on: bool) -> None:
    """Turn progress lines on or off for this process (`--quiet` turns them off)."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def quiet(on: bool) -> Iterator[None]:
    """Progress off (with `on`) while the block runs; the previous setting afterwards."""
    before = _enabled
    set_enabled(before and not on)
    try:
        yield
    finally:
        set_enabled(before)


def clock_text(seconds: float | None) -> str:
    """Seconds as m:ss or h:mm:ss; '?' when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def eta(elapsed: float, gained: float, left: float, least: float = 0.0) -> float | None:
    """Seconds still to go when `gained` of the work took `elapsed` seconds and `left` remains;
    None (unknown) until more than `least` is gained."""
    if gained <= least:
        return None
    return elapsed * max(0.0, left) / gained


class LinePrinter:
    """Rate-limited progress lines on a stream (stderr unless given, looked up at each write, so
    pytest's capture and redirections are honoured).

    `event(text, key)`: a line about something that happened; held while the last line is younger
    than `interval` (a later event of the same key replaces it). `tick(status)`: called often; writes
    a held line when allowed, and `status()` after `heartbeat` seconds without a line. On a terminal
    the status line and lines with `keep=False` are updated in place, the status each `interval`.
    """

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 interval: float = INTERVAL, heartbeat: float = HEARTBEAT, tty: bool | None = None) -> None:
        self._stream, self._clock, self._tty = stream, clock, tty
        self.interval, self.heartbeat = interval, heartbeat
        self._pending: dict[str, tuple[str, bool]] = {}
        self._newest: str | None = None
        self._last: float | None = None  # when the last line was written
        self._born = clock()
        self._open = False  # a terminal line updated in place is showing

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    @property
    def tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def event(self, text: str, key: str = "", keep: bool = True) -> None:
        """Write `text` now if a line is allowed, else hold it (replacing the held line of `key`)."""
        if not _enabled:
            return
        self._pending[key] = (text, keep)
        self._newest = key
        self._flush(self._clock())

    def tick(self, status: Callable[[], str] | None = None) -> None:
        """Write a held line once allowed; after a silence of `heartbeat` seconds, `status()`."""
        if not _enabled:
            return
        now = self._clock()
        if self._flush(now) or self._pending or status is None:
            return
        silence = now - (self._born if self._last is None else self._last)
        if silence >= (self.interval if self.tty else self.heartbeat):
            self._write(status(), keep=False, now=now)

    def close(self) -> None:
        """The newest held line (the run's last state), and a terminal's in-place line ended."""
        if _enabled and self._newest in self._pending:
            text, keep = self._pending[self._newest]
            self._write(text, keep=True, now=self._clock())
        self._pending.clear()
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def _flush(self, now: float) -> bool:
        if not self._pending or (self._last is not None and now - self._last < self.interval):
            return False
        key = next(iter(self._pending))
        text, keep = self._pending.pop(key)
        self._write(text, keep, now)
        return True

    def _write(self, text: str, keep: bool, now: float) -> None:
        stream = self.stream
        if self.tty:
            if not keep:  # an in-place line must fit, else the terminal wraps it and \r cannot clear it
                width = shutil.get_terminal_size((120, 24)).columns - 1
                text = text if len(text) <= width else text[: width - 3] + "..."
            stream.write("\r\033[K" + text + ("\n" if keep else ""))
            self._open = not keep
        else:
            stream.write(text + "\n")
        stream.flush()
        self._last = now


def _budget(ledger: RunLedger, done: int, time_budget: float | None, num_samples: int | None,
            clock_name: str) -> tuple[float | None, str]:
    """The fraction of the run's budget used (the larger of time and trials) and its words."""
    parts = []
    if time_budget:
        parts.append((ledger.clock / time_budget, f"{ledger.clock:,.0f} of {time_budget:,.0f} {clock_name} s"))
    if num_samples:
        parts.append((done / num_samples, f"{done} of {num_samples} trials"))
    if not parts:
        return None, "no budget"
    fraction, words = max(parts, key=lambda p: p[0])
    return fraction, f"budget {100 * fraction:.0f}% ({words})"


class _ProgressCallback(Callback):
    """What both Tune progress callbacks share: a heartbeat status line (their `status(trials)`) on each controller step, the
    newest held line written at the end, and pickling of their settings only (Tune pickles callbacks
    with the experiment; the state is rebuilt in `setup`, so `--quiet` on resume is honoured)."""

    SETTINGS: tuple[str, ...] = ()
    _ready = False

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        if self._ready:
            self.printer.tick(lambda: self.status(trials))

    def on_experiment_end(self, trials: list, **info) -> None:
        if self._ready:
            self.printer.close()

    def __getstate__(self) -> dict:
        return {**{k: getattr(self, k) for k in self.SETTINGS}, "_ready": False}


class RunProgress(_ProgressCallback):
    """Tune callback: the progress of one black-box run (`algo`, `seed`), one Tune experiment.

    Each result is a line: the trial and its search signal, then the run's state (trials done,
    budget used, the best signal so far and its architecture, ETA). Tabular runs hold one line for
    the run (the newest wins); with `epochs` (train mode: epochs per trial) each trial keeps its
    own, so every trial's epochs are shown as fast as the rate allows. The run's clock and
    incumbent are counted as results.jsonl counts them (`RunLedger`), continuing the file's
    records on resume.
    """

    SETTINGS = ("algo", "seed", "time_budget", "num_samples", "clock_name", "epochs", "results_path")

    def __init__(self, algo: str, seed: int, time_budget: float | None, num_samples: int | None,
                 clock_name: str = "simulated", epochs: int | None = None, results_path=None) -> None:
        self.algo, self.seed = algo, int(seed)
        self.time_budget, self.num_samples = time_budget, num_samples
        self.clock_name, self.epochs, self.results_path = clock_name, epochs, results_path
        self._ready = False

    @property
    def label(self) -> str:
        return f"{self.algo} seed {self.seed}"

    def _prepare(self) -> None:
        self.printer = LinePrinter()
        self.ledger = RunLedger(self.time_budget)
        self.numbers: dict[str, int] = {}
        for record in read_records(self.results_path) if self.results_path is not None else ():
            if (record.get("algo"), record.get("seed")) == (self.algo, self.seed):
                self._count(record)
        self.done = len(self.numbers)  # until Tune's trials say (a resumed run's earlier trials are done)
        self.started = time.monotonic()
        self.fraction_at_start = _budget(self.ledger, self.done, self.time_budget, self.num_samples, self.clock_name)[0] or 0.0
        self._ready = True

    def _count(self, result: dict) -> None:
        self.numbers.setdefault(result["trial_id"], len(self.numbers) + 1)
        self.ledger.add(result)

    def setup(self, **info) -> None:
        self._prepare()
        limits = [f"{self.time_budget:,.0f} {self.clock_name} s" if self.time_budget else "",
                  f"{self.num_samples} trials" if self.num_samples else ""]
        budget = " or ".join(filter(None, limits)) or "none"
        again = f"; resumed after {len(self.numbers)} trials" if self.numbers else ""
        self.printer.event(f"{self.label}: search started (budget: {budget}{again})", key="run", keep=True)

    def status(self, trials: list) -> str:
        """The run's state in one line."""
        running = sum(t.status == "RUNNING" for t in trials)
        paused = sum(t.status == "PAUSED" for t in trials)  # HyperBand's, to be continued
        self.done = max(self.done, sum(t.status in ("TERMINATED", "ERROR") for t in trials))
        fraction, words = _budget(self.ledger, self.done, self.time_budget, self.num_samples, self.clock_name)
        elapsed = time.monotonic() - self.started
        if self.ledger.best_signal is None:
            best = "no result yet"
        else:
            best = f"best valid {self.ledger.best_signal:.2f} ({self.ledger.best_arch})"
        if fraction is not None and fraction >= 1:
            ahead = "budget used: finishing"
        elif fraction is None:
            ahead = "ETA ?"
        else:
            # a resumed run first re-reports what it had done: no pace from that
            ahead = f"ETA {clock_text(eta(elapsed, fraction - self.fraction_at_start, 1 - fraction, least=0.005))}"
        waiting = f", {paused} paused" if paused else ""
        return (f"{self.label}: {self.done} trials done, {running} running{waiting}, {words}, {best}, "
                f"elapsed {clock_text(elapsed)}, {ahead}")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if not self._ready:
            self._prepare()
        self._count({**result, "trial_id": trial.trial_id})
        number = self.numbers[trial.trial_id]
        epoch = result.get("epoch")
        at = f"epoch {epoch}/{self.epochs}" if self.epochs else f"(epoch {epoch})"
        valid = result.get("valid_acc")
        signal = "no valid acc" if valid is None else f"valid {float(valid):.2f}"
        line = f"trial {number} {at} {signal}" if self.epochs else f"trial {number} {signal} {at}"
        key = trial.trial_id if self.epochs else "run"
        self.printer.event(f"{self.status(trials)} | {line}", key=key, keep=bool(self.epochs))



class SearchProgress(_ProgressCallback):
    """Tune callback: the weight-sharing searches of an experiment, one trial per (method, seed), a
    line per epoch: method, seed, epoch of the search (or of re-training), the derived architecture,
    its valid accuracy, the epoch's time and the search's ETA. `epochs`: method -> (search epochs,
    re-training epochs)."""

    SETTINGS = ("epochs",)

    def __init__(self, epochs: dict[str, tuple[int, int]]) -> None:
        self.epochs = {algo: (int(s), int(r)) for algo, (s, r) in epochs.items()}
        self._ready = False

    def _prepare(self) -> None:
        self.printer = LinePrinter()
        self.started = time.monotonic()
        self.seen: dict[str, float] = {}  # trial -> when its last epoch (or its start) was seen
        self.spans: dict[str, list[float]] = {}  # trial -> seconds of each epoch seen by this driver
        self.epoch: dict[str, int] = {}
        self._ready = True

    @staticmethod
    def _run(trial) -> tuple[str, int]:
        run = trial.config.get("run", {})
        return run.get("algo", "?"), int(run.get("seed", 0))

    def setup(self, **info) -> None:
        self._prepare()
        names = ", ".join(f"{algo} ({s} search + {r} re-training epochs)" if r else f"{algo} ({s} epochs)"
                          for algo, (s, r) in self.epochs.items())
        self.printer.event(f"weight sharing: searches started: {names}", key="start", keep=True)

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        if not self._ready:
            self._prepare()
        self.seen[trial.trial_id] = time.monotonic()

    on_trial_restore = on_trial_start

    def _total(self, algo: str) -> tuple[int, int]:
        return self.epochs.get(algo, (0, 0))

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if not self._ready:
            self._prepare()
        now = time.monotonic()
        algo, seed = self._run(trial)
        epoch = int(result.get("epoch") or 0)
        search, retrain = self._total(algo)
        span = now - self.seen.get(trial.trial_id, self.started)
        self.seen[trial.trial_id] = now
        self.spans.setdefault(trial.trial_id, []).append(span)
        self.epoch[trial.trial_id] = epoch
        spans = self.spans[trial.trial_id]
        left = eta(sum(spans), len(spans), search + retrain - epoch)
        if epoch <= search or not retrain:
            phase = f"search epoch {epoch}/{search}"
        else:
            phase = f"re-training epoch {epoch - search}/{retrain}"
        valid = result.get("valid_acc")
        acc = "valid ?" if valid is None else f"valid {float(valid):.2f}"
        self.printer.event(f"{algo} seed {seed}: {phase}, {result.get('arch')}, {acc}, epoch {span:.1f} s, "
                           f"ETA {clock_text(left)}", key=trial.trial_id, keep=True)

    def status(self, trials: list) -> str:
        done = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        now = time.monotonic()
        running = []
        for t in trials:
            if t.status == "RUNNING":
                algo, seed = self._run(t)
                search, retrain = self._total(algo)
                total = search + retrain
                since = clock_text(now - self.seen.get(t.trial_id, self.started))
                running.append(f"{algo} seed {seed} in epoch {min(self.epoch.get(t.trial_id, 0) + 1, total)}/{total} for {since}")
        busy = f", running: {'; '.join(running)}" if running else ""
        return (f"weight sharing: {done} of {len(trials)} searches done{busy}, "
                f"elapsed {clock_text(now - self.started)}")



class SimulateProgress:
    """Simulate mode: runs done of all the experiment's runs, and the ETA from this session's pace
    (runs go as parallel Ray tasks, so the pace is the cluster's)."""

    def __init__(self, total: int, done: int = 0, printer: LinePrinter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.done, self.at_start = total, done, done
        self.printer = printer or LinePrinter(clock=clock)
        self.clock = clock
        self.started = clock()
        self.printer.event(self.status(), key="simulate")

    def status(self, last: str = "") -> str:
        elapsed = self.clock() - self.started
        left = eta(elapsed, self.done - self.at_start, self.total - self.done)
        percent = 100 * self.done / self.total if self.total else 100.0
        return (f"simulate: {self.done}/{self.total} runs done ({percent:.0f}%), elapsed {clock_text(elapsed)}, "
                f"ETA {clock_text(left) if self.done < self.total else '0:00'}{last}")

    def run_done(self, name: str, records: list[dict]) -> None:
        """One more run finished with these records."""
        self.done += 1
        last = records[-1] if records else {}
        trials = len({r.get("trial_id") for r in records})
        best = last.get("best_test_acc")
        said = f"; {name}: {trials} trials, best test acc {best:.2f}" if best is not None else f"; {name}: {trials} trials"
        self.printer.event(self.status(said), key="simulate")

    def tick(self) -> None:
        self.printer.tick(self.status)

    def close(self) -> None:
        self.printer.close()
