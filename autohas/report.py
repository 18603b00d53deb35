"""The comparison report, built from finished experiments on disk only.

    python -m autohas.report DIR [DIR ...] [--out FOLDER]

For each search space x dataset found in the experiments: a table (algorithm ->
final test accuracy of the incumbent at the time budget, mean +- std over seeds,
trials per run, wall seconds per run), a plot of the incumbent's test accuracy
against simulated time (mean and a +-1 std band over seeds, one line per algorithm,
as the NATS-Bench multi-trial figure), and a note of the protocol. Written as
report.md, a self-contained index.html (plots inlined) and the PNG plots. Separate
experiments (other machines, other days) merge into one comparison.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import statistics
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from autohas import layout
from autohas.bench.base import DATASETS
from autohas.errors import AutohasError
from autohas.layout import PROTOCOL_FILE, RESULTS_FILE, SALIENCY_DIR
from autohas.records import read_records, scan, value_at_budget

GRID_POINTS = 200


@dataclass
class Run:
    """One (algorithm, seed) of one experiment: its records in order."""

    experiment: str
    algo: str
    seed: int
    records: list[dict] = field(default_factory=list)
    wall_seconds: float | None = None
    mode: str | None = None

    def final_test_acc(self, budget: float | None = None) -> float | None:
        """The incumbent's reported accuracy: at `budget` as NATS-Bench's draw-table.py reads it
        (`value_at_budget`), or, without a budget, that of the last record."""
        points = [(r["sim_seconds"], r["best_test_acc"]) for r in self.records if r["best_test_acc"] is not None]
        if not points:
            return None
        if budget is None:
            return points[-1][1]
        return value_at_budget([t for t, _ in points], [v for _, v in points], budget)

    @property
    def trials(self) -> int:
        return len({r["trial_id"] for r in self.records})

    def incumbent_at(self, times: np.ndarray) -> np.ndarray:
        """best_test_acc as a step function of the simulated clock (NaN before the first result)."""
        clock = np.array([r["sim_seconds"] for r in self.records], dtype=float)
        best = np.array([np.nan if r["best_test_acc"] is None else r["best_test_acc"] for r in self.records], dtype=float)
        position = np.searchsorted(clock, times, side="right") - 1
        return np.where(position >= 0, best[np.clip(position, 0, None)], np.nan)


@dataclass
class Group:
    """All runs on one space x dataset, and the protocols they were run under."""

    space: str
    dataset: str
    runs: dict[str, list[Run]] = field(default_factory=lambda: defaultdict(list))
    protocols: list[dict] = field(default_factory=list)


def load(folders: Sequence[str]) -> list[Group]:
    groups: dict[tuple[str, str], Group] = {}
    for folder in dict.fromkeys(os.path.realpath(f) for f in folders):  # each experiment once
        path = os.path.join(folder, RESULTS_FILE)
        if not os.path.exists(path):
            raise AutohasError(f"{folder} holds no {RESULTS_FILE}: not an autohas experiment")
        protocol = {}
        if os.path.exists(os.path.join(folder, PROTOCOL_FILE)):
            with open(os.path.join(folder, PROTOCOL_FILE)) as handle:
                protocol = json.load(handle)
        _refuse_damage(folder, path)
        runs: dict[tuple, Run] = {}
        for record in read_records(path):
            key = (record["space"], record["dataset"], record["algo"], record["seed"])
            if key not in runs:
                runs[key] = Run(os.path.abspath(folder), record["algo"], record["seed"])
            runs[key].records.append(record)
        for (space, dataset, algo, seed), run in runs.items():
            meta = layout.read_run(os.path.join(folder, layout.run_name(algo, seed)))
            run.wall_seconds, run.mode = meta.get("wall_seconds"), meta.get("mode")
            run.records.sort(key=lambda r: r["sim_seconds"])
            group = groups.setdefault((space, dataset), Group(space, dataset))
            group.runs[algo].append(run)
            if protocol and protocol not in group.protocols:
                group.protocols.append(protocol)
    if not groups:
        raise AutohasError("no results found in " + ", ".join(folders))
    return list(groups.values())


def _refuse_damage(folder: str, path: str) -> None:
    """A damaged experiment (a lost or garbled record, a finished run short of its seal) is not
    reported as if complete: one line naming the file and line, and how to repair it."""
    found = scan(path)
    seals = {}
    for entry in sorted(os.listdir(folder)):
        marker = layout.read_seal(os.path.join(folder, entry))
        if marker and "-seed" in entry:
            algo, _, seed = entry.rpartition("-seed")
            if seed.isdigit():
                seals[(algo, int(seed))] = marker
    damage = [line for _, line in found.damage(seals)]
    if damage:
        more = f" (and {len(damage) - 1} more)" if len(damage) > 1 else ""
        raise AutohasError(f"{os.path.basename(os.path.normpath(folder))}: {damage[0]}{more}: the report would present "
                           "damaged runs as complete; rerun the experiment's command with --resume to repair it")


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.fmean(values):.2f} ± {statistics.pstdev(values):.2f}"


def time_budget_of(group: Group) -> float | None:
    """The time budget the group's runs were given (None: none, e.g. weight sharing)."""
    budgets = [p["time_budget"] for p in group.protocols if p.get("time_budget")]
    return max(budgets) if budgets else None


def table_rows(group: Group) -> list[dict]:
    rows = []
    budget = time_budget_of(group)
    for algo, runs in group.runs.items():
        finals = [f for f in (r.final_test_acc(budget) for r in runs) if f is not None]
        walls = [r.wall_seconds for r in runs if r.wall_seconds is not None]
        rows.append(
            {
                "algorithm": algo,
                "runs": len(runs),
                "final test acc (%)": _mean_std(finals),
                "mean": statistics.fmean(finals) if finals else float("nan"),
                "trials per run": f"{statistics.fmean(r.trials for r in runs):.1f}",
                "wall s per run": f"{statistics.fmean(walls):.2f}" if walls else "-",
                "mode": "/".join(sorted({r.mode for r in runs if r.mode})) or "-",
            }
        )
    return sorted(rows, key=lambda row: -row["mean"] if row["mean"] == row["mean"] else 0.0)


def budget_of(group: Group) -> float:
    """The plot's time axis: the time budget, else the longest run."""
    budget = time_budget_of(group)
    if budget is not None:
        return budget
    return max(r.records[-1]["sim_seconds"] for runs in group.runs.values() for r in runs if r.records)


def plot(group: Group, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = budget_of(group)
    times = np.linspace(0, budget, GRID_POINTS)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for algo, runs in group.runs.items():
        curves = np.vstack([r.incumbent_at(times) for r in runs])
        valid = np.sum(~np.isnan(curves), axis=0) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns where some runs have no result yet
            mean, std = np.nanmean(curves[:, valid], axis=0), np.nanstd(curves[:, valid], axis=0)
        ax.plot(times[valid], mean, label=f"{algo} ({len(runs)} runs)")
        ax.fill_between(times[valid], mean - std, mean + std, alpha=0.2)
    measured = any(p.get("clock", "simulated") != "simulated" for p in group.protocols)
    ax.set_xlabel("measured training time (s)" if measured else "simulated training time (s)")
    ax.set_ylabel("test accuracy of the incumbent (%)")
    ax.set_title(f"{group.space} / {group.dataset}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def protocol_note(group: Group) -> list[str]:
    lines = []
    for p in group.protocols:
        clock = "simulated" if p.get("clock", "simulated") == "simulated" else "measured training"
        budget = f"{p['time_budget']:.0f} {clock} s per run" if p.get("time_budget") else "no time budget"
        samples = f", at most {p['num_samples']} trials" if p.get("num_samples") else ""
        lines.append(
            f"Budget: {budget}{samples}; {p.get('concurrency') or 'as many as the trial resources fit'} trial(s) at a time. "
            f"Benchmark: {p.get('benchmark', '?')}. Search signal: {p.get('signal', '?')}. "
            f"Benchmark runs per evaluation: {p.get('seed_mode', '?')}."
        )
        if p.get("weight_sharing"):
            lines.append(f"Weight sharing: {p['weight_sharing']}.")
    if any(p.get("weight_sharing") for p in group.protocols):
        lines.append("For a weight-sharing method the final test accuracy is that of the architecture it derives at its last epoch.")
    lines.append(
        "Incumbent = the architecture with the best search signal over all evaluations so far, of any "
        "budget (the official scripts' max(trajectory)); searchers never see test accuracies. Final test "
        "accuracy = the incumbent's reported accuracy at the time budget, read off each run as NATS-Bench's "
        "draw-table.py does: linearly between the two evaluations whose clock is nearest the budget "
        "(both may lie on one side). Tabular evaluations are charged from scratch (a BOHB promotion "
        "pays the longer schedule again), and the evaluation that crosses the budget is recorded."
    )
    return lines


def draw_saliency(images: np.ndarray, maps: np.ndarray, path: str, title: str) -> None:
    """Images (uint8, N x 3 x H x W) above their saliency maps (N x H x W in [0, 1]), as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(images)
    fig, axes = plt.subplots(2, count, figsize=(1.4 * count, 3.2), squeeze=False)
    for i in range(count):
        axes[0, i].imshow(np.transpose(images[i], (1, 2, 0)))
        axes[1, i].imshow(maps[i], cmap="inferno", vmin=0.0, vmax=1.0)
        for row in (0, 1):
            axes[row, i].set_axis_off()
    fig.suptitle(f"saliency |delta| / eps: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_saliency_figures(folder: str) -> None:
    """Draw every run's saved saliency maps (`layout.saliency_arrays`) not drawn since they were saved."""
    for run in sorted(os.listdir(folder)):
        arrays = os.path.join(folder, run, layout.SALIENCY_ARRAYS)
        if not os.path.isfile(arrays):
            continue
        figure = layout.saliency_figure(folder, run)
        if os.path.exists(figure) and os.path.getmtime(figure) >= os.path.getmtime(arrays):
            continue
        os.makedirs(os.path.dirname(figure), exist_ok=True)
        with np.load(arrays) as maps:
            draw_saliency(maps["images"], maps["saliency"], figure, f"{run.replace('-seed', ' seed ')}, epoch {int(maps['epoch'])}")


def saliency_figures(folders: Sequence[str]) -> list[str]:
    """The saliency PNGs the experiments hold (drawn first from saved maps), in name order."""
    found = []
    for folder in folders:
        draw_saliency_figures(folder)
        where = os.path.join(folder, SALIENCY_DIR)
        if os.path.isdir(where):
            found += [os.path.join(where, f) for f in sorted(os.listdir(where)) if f.endswith(".png")]
    return found


def _saliency_section(folders: Sequence[str], out: str) -> tuple[list[str], list[str]]:
    """Markdown and HTML lines showing every saliency figure (copied next to report.md)."""
    import shutil

    figures = saliency_figures(folders)
    if not figures:
        return [], []
    intro = "Saliency maps (SANAS, LeaSE): validation images and |delta| / eps of the final explainer."
    md, page = ["## Saliency maps", "", intro, ""], ["<h2>Saliency maps</h2>", f"<p>{html.escape(intro)}</p>"]
    for i, figure in enumerate(figures):
        name = f"saliency-{i}-{os.path.basename(figure)}"
        shutil.copyfile(figure, os.path.join(out, name))
        md += [f"![{name}]({name})", ""]
        with open(figure, "rb") as handle:
            inline = base64.b64encode(handle.read()).decode()
        page.append(f"<p><img alt='{html.escape(name)}' src='data:image/png;base64,{inline}'></p>")
    return md, page


COLUMNS = ("algorithm", "runs", "final test acc (%)", "trials per run", "wall s per run", "mode")


def write_report(folders: Sequence[str], out: str | None = None) -> str:
    """Build the report of `folders` into `out` (default: the first folder's report/); its index.html."""
    groups = load(folders)
    out = out or os.path.join(folders[0], "report")
    os.makedirs(out, exist_ok=True)
    names = ", ".join(os.path.basename(os.path.normpath(f)) for f in folders)  # no path of this machine
    md = ["# autohas comparison report", "", "Experiments: " + names, ""]
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>autohas report</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}</style></head><body>",
        "<h1>autohas comparison report</h1>",
        "<p>Experiments: " + html.escape(names) + "</p>",
    ]
    order = {d: i for i, d in enumerate(DATASETS)}
    for group in sorted(groups, key=lambda g: (g.space, order.get(g.dataset, len(order)), g.dataset)):
        name = f"{group.space}-{group.dataset}"
        png = os.path.join(out, f"{name}.png")
        plot(group, png)
        rows = table_rows(group)
        md += [f"## {group.space} / {group.dataset}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        md += ["| " + " | ".join(str(row[c]) for c in COLUMNS) + " |" for row in rows]
        md += ["", f"![{name}]({name}.png)", ""] + protocol_note(group) + [""]
        with open(png, "rb") as handle:
            inline = base64.b64encode(handle.read()).decode()
        page += [f"<h2>{html.escape(group.space)} / {html.escape(group.dataset)}</h2>", "<table><tr>"]
        page += ["".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS) + "</tr>"]
        page += ["<tr>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in COLUMNS) + "</tr>" for row in rows]
        page += ["</table>", f"<p><img alt='{name}' src='data:image/png;base64,{inline}'></p>"]
        page += [f"<p>{html.escape(line)}</p>" for line in protocol_note(group)]
    md_saliency, page_saliency = _saliency_section(folders, out)
    md += md_saliency
    page += page_saliency
    page.append("</body></html>")
    with open(os.path.join(out, "report.md"), "w") as handle:
        handle.write("\n".join(md))
    index = os.path.join(out, "index.html")
    with open(index, "w") as handle:
        handle.write("\n".join(page))
    return index


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autohas.report", description="Rebuild the comparison report of finished experiments.")
    parser.add_argument("folders", nargs="+", metavar="DIR", help="experiment folders (<storage>/<name>)")
    parser.add_argument("--out", help="report folder (default: DIR/report of the first DIR)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        index = write_report(args.folders, args.out)
    except AutohasError as exc:
        print(f"autohas.report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {index}")
    print(f"markdown: {os.path.join(os.path.dirname(index), 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
