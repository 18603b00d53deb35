"""A run's records and their accounting, Ray-free: reading and pruning results.jsonl, the run's
simulated clock and incumbent (`RunLedger`), and the NATS-Bench protocol's reading of a run at its
budget (`value_at_budget`, `budget_settled`). The simulator, the Tune callbacks (autohas.results),
the searchers' limits and the report all count the same way through here.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable, Iterator

from autohas.schema import to_record

class RunLedger:
    """Simulated clock + incumbent of one run, fed trial results in arrival order.

    Clock: the sum over trials of each trial's cumulative cost. Every result is recorded,
    the one that crosses the time budget included (the official loops run `while total_time
    < budget`); when to stop is the searcher's limit, and the number reported at the budget is
    read off the records afterwards (`value_at_budget`). Incumbent, as the official scripts'
    `max(trajectory)`: the architecture with the best search signal over all evaluations so
    far, of any budget (the first of equals), so its signal never falls; or, with `latest`,
    the architecture of the latest result (a weight-sharing search's answer is what it
    derives now, not its best-looking epoch).
    """

    def __init__(self, time_budget: float | None = None, latest: bool = False):
        self.time_budget = time_budget
        self.latest = latest
        self.trial_cost: dict[str, float] = {}
        self.best_signal: float | None = None
        self.best_arch: str | None = None
        self.best_test_acc: float | None = None
        self.count = 0  # records so far: the next one's seq

    @property
    def clock(self) -> float:
        return sum(self.trial_cost.values())

    def add(self, result: dict) -> dict:
        """The completed record for `result`."""
        trial, cost = result["trial_id"], float(result.get("trial_sim_seconds") or 0.0)
        self.trial_cost[trial] = max(self.trial_cost.get(trial, 0.0), cost)
        if self.latest:
            self.best_arch, self.best_test_acc = result["arch"], result.get("test_acc")
        elif result.get("valid_acc") is not None:
            signal = float(result["valid_acc"])
            if self.best_signal is None or signal > self.best_signal:
                self.best_signal, self.best_arch, self.best_test_acc = signal, result["arch"], result.get("test_acc")
        self.count += 1
        return to_record(result, self.clock, self.best_arch, self.best_test_acc, seq=self.count - 1)


def value_at_budget(times: list[float], values: list[float], budget: float) -> float:
    """The value at `budget` as NATS-Bench's `draw-table.py` (`query_performance`) reads it off a run:
    the two points whose times are nearest the budget (the earlier of equals first; both may lie
    on one side, then it extrapolates), joined by a straight line. One point: its value."""
    if not times:
        return float("nan")
    order = sorted(range(len(times)), key=lambda i: abs(times[i] - budget))  # stable, as Python's sort
    if len(order) == 1:
        return float(values[order[0]])
    (t1, v1), (t2, v2) = (times[order[0]], values[order[0]]), (times[order[1]], values[order[1]])
    if t1 == t2:  # the official formula divides by zero here; both points say the same time
        return float(v2)
    return float((t2 - budget) / (t2 - t1) * v1 + (budget - t1) / (t2 - t1) * v2)


def budget_settled(clock_marks: list[float], clock: float, time_budget: float) -> bool:
    """Whether, at `clock`, no later evaluation can be one of the two whose clock (`clock_marks`, one
    per evaluation so far) is nearest `time_budget`, the two that decide the number there: later
    evaluations lie farther past it (equals lose to the earlier, as in `value_at_budget`)."""
    distances = sorted(abs(t - time_budget) for t in clock_marks)
    return clock >= time_budget and len(distances) >= 2 and clock - time_budget >= distances[1]


def read_records(path: str) -> Iterator[dict]:
    """Records of a results.jsonl (a torn last line from a crash is skipped)."""
    if not os.path.exists(path):
        return
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def prune_records(path: str, drop: Callable[[dict], bool]) -> int:
    """Rewrite results.jsonl without the records `drop` selects (atomically); how many went."""
    records = list(read_records(path))
    keep = [r for r in records if not drop(r)]
    if len(keep) < len(records):
        temporary = path + ".tmp"
        with open(temporary, "w") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in keep)
        os.replace(temporary, path)
    return len(records) - len(keep)


def lines(records: list[dict]) -> str:
    """A run's records as results.jsonl holds them: one JSON line each, in order."""
    return "".join(json.dumps(r) + "\n" for r in records)


def digest(records: list[dict], text: str | None = None) -> str:
    """sha256 of a run's records as results.jsonl holds them (`text`: their `lines`, when at hand)."""
    return hashlib.sha256((lines(records) if text is None else text).encode()).hexdigest()


def seal(records: list[dict], text: str | None = None) -> dict:
    """What a finished run's marker keeps: its record count and their digest (`text`: their `lines`)."""
    return {"records": len(records), "sha256": digest(records, text)}


@dataclass
class Scan:
    """What a results.jsonl holds: its records by run (with their line numbers), its undecodable lines,
    and whether its last line is torn (a write cut short: no newline, not JSON)."""

    path: str
    runs: dict[tuple[str, int], list[tuple[int, dict]]] = field(default_factory=dict)
    bad_lines: list[int] = field(default_factory=list)
    torn_last: bool = False
    # per run, the sha256 of its lines as the file holds them: what its seal says when nobody touched
    # them (else the records are dumped again and compared as `digest` makes them)
    line_digests: dict[tuple[str, int], "hashlib._Hash"] = field(default_factory=dict, repr=False)

    def records(self) -> list[dict]:
        """Every decodable record in file order (what `read_records` gives)."""
        rows = sorted((row for rows in self.runs.values() for row in rows), key=lambda row: row[0])
        return [record for _, record in rows]

    def _sealed(self, run: tuple[str, int], records: list[dict], sha256: str | None) -> bool:
        """Whether the run's records are those its seal's digest says."""
        lines_digest = self.line_digests.get(run)
        if lines_digest is not None and lines_digest.hexdigest() == sha256:  # the lines as written: the records too
            return True
        return digest(records) == sha256

    def damage(self, seals: dict[tuple[str, int], dict | None]) -> list[tuple[tuple[str, int] | None, str]]:
        """(run or None, one line naming the file and line) per damage: an undecodable line (a torn last
        line excepted: its run is then unfinished, or short of its seal), a gap in a run's record
        numbers, a finished run whose records differ from its seal (`seals`: run -> marker)."""
        name = os.path.basename(self.path)
        found: list[tuple[tuple[str, int] | None, str]] = [
            (None, f"{name} line {n}: not a JSON record (what it held is lost)") for n in self.bad_lines]
        for run, rows in self.runs.items():
            algo, seed = run
            if all(r.get("seq") is not None for _, r in rows):
                for expected, (line, record) in enumerate(rows):
                    if record["seq"] != expected:
                        found.append((run, f"{name} line {line}: {algo} seed {seed} lacks its record {expected} "
                                           f"(the line holds record {record['seq']})"))
                        break
        for run, marker in seals.items():
            if not marker or marker.get("records") is None:
                continue
            rows = self.runs.get(run, [])
            records = [r for _, r in rows]
            if len(records) != marker["records"] or not self._sealed(run, records, marker.get("sha256")):
                where = f"line {rows[-1][0]}" if rows else "(no line)"
                differ = "" if len(records) != marker["records"] else " that differ from them"
                found.append((run, f"{name} {where}: {run[0]} seed {run[1]} finished with {marker['records']} records, "
                                   f"the file holds {len(records)}{differ}"))
        return found


def scan(path: str) -> Scan:
    """Read results.jsonl, keeping line numbers and every undecodable line."""
    result = Scan(path)
    if not os.path.exists(path):
        return result
    with open(path, "rb") as handle:
        data = handle.read()
    lines = data.split(b"\n")
    ends_cleanly = data.endswith(b"\n") or not data
    if ends_cleanly:
        lines = lines[:-1]
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError
        except ValueError:
            if number == len(lines) and not ends_cleanly:
                result.torn_last = True
            else:
                result.bad_lines.append(number)
            continue
        run = (record.get("algo"), record.get("seed"))
        result.runs.setdefault(run, []).append((number, record))
        if run not in result.line_digests:
            result.line_digests[run] = hashlib.sha256()
        result.line_digests[run].update(raw + b"\n")
    return result


def rewrite(path: str, keep: Callable[[dict], bool]) -> None:
    """Rewrite results.jsonl (atomically) with only its decodable records that `keep` selects, and
    complete lines: the repair of a torn last line or garbage, before new records are appended."""
    found = scan(path)
    rows = sorted(((line, record) for records in found.runs.values() for line, record in records), key=lambda row: row[0])
    kept = [record for _, record in rows if keep(record)]
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(temporary, path)
