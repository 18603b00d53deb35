"""Inject faults into real experiments and check what comes back; prints the reliability table.

    python benchmarks/fault_injection.py [--runs 3] [--table ../shared/data/nats-tss/nats-tss-table.csv]

Each fault is injected `--runs` times into a tabular Tune-mode REA run (40 trials) or a finished
simulate-mode experiment (rea, random x 2 seeds x 25 trials), then the experiment's command is
rerun with --resume; a row says how many records were lost at the end (0 = every record of the
uninterrupted run is there) and whether the result equals the uninterrupted run's (architectures,
clock and record numbers; measured wall seconds and Tune's random trial ids excepted). The storage
faults mount a 64 MiB tmpfs (root only; the rows say "skipped" elsewhere).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def cli(*args: str, log=None) -> int:
    return subprocess.run([PY, "-m", "autohas.tune", *args], cwd=ROOT, stdout=log or subprocess.DEVNULL,
                          stderr=log or subprocess.DEVNULL).returncode


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def same(a: list[dict], b: list[dict]) -> bool:
    key = lambda r: (r["algo"], r["seed"], r["seq"])  # noqa: E731
    pick = lambda r: (r["arch"], round(r["sim_seconds"], 6), r["seq"], r["epoch"])  # noqa: E731
    return [pick(r) for r in sorted(a, key=key)] == [pick(r) for r in sorted(b, key=key)]


def tune_command(table: str, storage: Path, name: str) -> list[str]:
    return ["--algo", "rea", "--space", "nats-tss", "--benchmark", table, "--num-samples", "40", "--seed", "3",
            "--storage", str(storage), "--name", name]


def start_until(command: list[str], path: Path, log, count: int = 12) -> subprocess.Popen:
    """Start the CLI with `command` and return once `count` records are in `path` (or it ended)."""
    proc = subprocess.Popen([PY, "-m", "autohas.tune", *command], cwd=ROOT, stdout=log, stderr=log)
    while proc.poll() is None and len(records(path)) < count:
        time.sleep(0.1)
    return proc


def interrupt(table: str, work: Path, stop, reference: list[dict]) -> tuple[int, bool]:
    command = tune_command(table, work, "cut")
    path = work / "cut" / "results.jsonl"
    with open(work / "log", "w") as log:
        proc = start_until(command, path, log)
        stop(proc)
        proc.wait(timeout=300)
    cli(*command, "--resume")
    got = records(path)
    return len(reference) - len(got), same(got, reference)


def storage_fault(table: str, work: Path, fault: str, reference: list[dict]) -> tuple[int, bool] | None:
    mount = work / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True).returncode:
        return None
    try:
        command = tune_command(table, mount, "f")
        path = mount / "f" / "results.jsonl"
        with open(work / "log", "w") as log:
            proc = start_until(command, path, log)
            if fault == "read-only":
                while proc.poll() is None and subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True).returncode:
                    time.sleep(0.02)
            else:
                subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'filler'}", "bs=1M", "count=80"], capture_output=True)
            proc.wait(timeout=300)
        if fault == "read-only":
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)
        else:
            os.remove(mount / "filler")
        cli(*command, "--resume")
        got = records(path)
        return len(reference) - len(got), same(got, reference)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def damage(table: str, work: Path, how: str) -> tuple[int, bool]:
    command = ["--algo", "rea,random", "--space", "nats-tss", "--benchmark", table, "--seeds", "2", "--num-samples", "25",
               "--storage", str(work), "--name", "e"]
    cli(*command)
    path = work / "e" / "results.jsonl"
    reference = records(path)
    lines = path.read_bytes().split(b"\n")[:-1]
    if how == "torn last line":
        data = b"\n".join(lines[:-1]) + b"\n" + lines[-1][: len(lines[-1]) // 2]
    elif how == "garbage line":
        lines[40] = b"{garbage"
        data = b"\n".join(lines) + b"\n"
    else:
        del lines[40]
        data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    refused = subprocess.run([PY, "-m", "autohas.report", str(work / "e")], cwd=ROOT, capture_output=True).returncode == 2
    cli(*command, "--resume")
    got = records(path)
    return len(reference) - len(got), same(got, reference) and refused


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--table", default=str(ROOT.parent / "shared" / "data" / "nats-tss" / "nats-tss-table.csv"))
    args = parser.parse_args()
    if not os.path.exists(args.table):
        print(f"no table at {args.table}: give --table", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="autohas-faults-"))
    cli(*tune_command(args.table, base, "whole"))
    reference = records(base / "whole" / "results.jsonl")
    faults = {
        "SIGINT to the driver": lambda w: interrupt(args.table, w, lambda p: p.send_signal(signal.SIGINT), reference),
        "SIGTERM to the driver": lambda w: interrupt(args.table, w, lambda p: p.send_signal(signal.SIGTERM), reference),
        "kill -9 of the driver": lambda w: interrupt(args.table, w, lambda p: p.kill(), reference),
        "storage read-only mid-run": lambda w: storage_fault(args.table, w, "read-only", reference),
        "storage full mid-run": lambda w: storage_fault(args.table, w, "full", reference),
        "finished run: torn last line": lambda w: damage(args.table, w, "torn last line"),
        "finished run: garbage line": lambda w: damage(args.table, w, "garbage line"),
        "finished run: lost middle line": lambda w: damage(args.table, w, "lost line"),
    }
    print("| fault | runs | records lost after --resume | result equal to an uninterrupted run |")
    print("|---|---|---|---|")
    for name, inject in faults.items():
        outcomes = []
        for i in range(args.runs):
            work = base / f"{len(outcomes)}-{abs(hash(name))}"
            work.mkdir()
            outcomes.append(inject(work))
            shutil.rmtree(work, ignore_errors=True)
        if any(o is None for o in outcomes):
            print(f"| {name} | skipped (mounting a tmpfs needs root) | | |", flush=True)
            continue
        lost = sum(o[0] for o in outcomes)
        equal = sum(o[1] for o in outcomes)
        print(f"| {name} | {args.runs} | {lost} | {'yes' if equal == args.runs else f'{equal} of {args.runs}'} |", flush=True)
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
