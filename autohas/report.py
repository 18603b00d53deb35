"""The comparison report, built from finished experiments on disk only.

    python -m autohas.report DIR [DIR ...] [--out FOLDER]

Runs are grouped into sections, one per search space x dataset x protocol (how the numbers were
obtained: evaluation, benchmark, search signal, clock, time budget or trial count, benchmark runs
per evaluation, scheduler): runs of different protocols never share a section. Within a section a
row is one method run one way (mode simulate / tune, the searcher's settings): a 1-seed tune-mode
run beside a 50-seed simulate run is two rows, never a row of 51. Each section has a table (per
method: runs, mean final test accuracy, its 95 % confidence interval, median, average rank within
a seed, a Holm-corrected Mann-Whitney test against the best; a Friedman test when the seeds are
paired; autohas.stats), the incumbent's accuracy against time with 95 % bands and the optimum,
its regret on log-log axes, the final architectures found, per-epoch learning curves where trials
have several epochs, and the protocol. Written as report.md, a self-contained index.html (plots
inlined) and the PNG plots. Separate experiments (other machines, other days) merge.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import numpy as np

from autohas import layout, report_fronts, stats
from autohas.bench.base import DATASETS
from autohas.errors import AutohasError
from autohas.layout import PROTOCOL_FILE, RESULTS_FILE, SALIENCY_DIR
from autohas.records import Scan, scan, value_at_budget

GRID_POINTS = 200
FIRST_EVALUATIONS = 5  # the accuracy axis is zoomed to what the runs show after this many evaluations
TOP_ARCHITECTURES = 3  # per method in the final-architectures table
# protocol.json fields whose difference makes runs incomparable: they never share a section
KEY_FIELDS = ("evaluate", "benchmark", "signal", "clock", "time_budget", "num_samples", "seed_mode", "scheduler", "latency",
              "objectives")
UNSTATED = {"objectives": ["accuracy"]}  # what a protocol without the field (an older experiment) measured


@dataclass
class Run:
    """One (algorithm, seed) of one experiment: its records in order, and how it was run."""

    experiment: str
    algo: str
    seed: int
    records: list[dict] = field(default_factory=list)
    wall_seconds: float | None = None
    mode: str | None = None
    protocol: dict = field(default_factory=dict)

    def _incumbents(self) -> list[dict]:
        return [r for r in self.records if r["best_test_acc"] is not None]

    def final_test_acc(self, budget: float | None = None) -> float | None:
        """The incumbent's reported accuracy: at `budget` as NATS-Bench's draw-table.py reads it
        (`value_at_budget`), or, without a budget, that of the last record."""
        points = [(r["sim_seconds"], r["best_test_acc"]) for r in self._incumbents()]
        if not points:
            return None
        if budget is None:
            return points[-1][1]
        return value_at_budget([t for t, _ in points], [v for _, v in points], budget)

    def final_record(self, budget: float | None = None) -> dict | None:
        """The record whose incumbent is the run's final architecture: the one nearest the budget
        (the first of the two `value_at_budget` reads; the earlier of equals), else the last."""
        found = self._incumbents()
        if not found:
            return None
        if budget is None:
            return found[-1]
        return min(found, key=lambda r: abs(r["sim_seconds"] - budget))  # min keeps the first of equals

    @property
    def trials(self) -> int:
        return len({r["trial_id"] for r in self.records})

    def incumbent_at(self, times: np.ndarray) -> np.ndarray:
        """best_test_acc as a step function of the simulated clock (NaN before the first result)."""
        clock = np.array([r["sim_seconds"] for r in self.records], dtype=float)
        best = np.array([np.nan if r["best_test_acc"] is None else r["best_test_acc"] for r in self.records], dtype=float)
        position = np.searchsorted(clock, times, side="right") - 1
        return np.where(position >= 0, best[np.clip(position, 0, None)], np.nan)

    def learning_curves(self) -> list[list[tuple[int, float]]]:
        """(epoch, valid_acc) of each trial that reported two or more epochs (train-mode trials,
        weight-sharing searches, multi-fidelity lookups), in epoch order."""
        by_trial: dict[str, dict[int, float]] = {}
        for r in self.records:
            if r.get("valid_acc") is not None and r.get("epoch") is not None:
                by_trial.setdefault(r["trial_id"], {})[int(r["epoch"])] = float(r["valid_acc"])
        return [sorted(points.items()) for points in by_trial.values() if len(points) >= 2]


@dataclass
class Group:
    """One section: the runs on one space x dataset under one protocol, by row label."""

    space: str
    dataset: str
    runs: dict[str, list[Run]] = field(default_factory=dict)
    protocols: list[dict] = field(default_factory=list)
    key: tuple = ()
    part: int = 1  # this section's number among those of its space x dataset
    parts: int = 1
    differs: str = ""  # what sets its protocol apart from theirs (when parts > 1)


def protocol_key(protocol: dict) -> tuple:
    """What makes runs comparable: the KEY_FIELDS of their protocol (absent = None)."""
    return tuple(json.dumps(protocol.get(f, UNSTATED.get(f)), sort_keys=True) for f in KEY_FIELDS)


def _variant(run: Run) -> str:
    """The run's method settings as its experiment states them: runs of one algorithm whose
    settings differ are different rows."""
    from autohas.trainables.weight_sharing import METHOD_NAMES

    searchers = run.protocol.get("searchers") or {}
    weight_sharing = run.protocol.get("weight_sharing") if run.algo in METHOD_NAMES else None
    return json.dumps([searchers.get(run.algo), weight_sharing], sort_keys=True)


def _rows(runs: list[Run]) -> dict[str, list[Run]]:
    """label -> runs, one row per (algorithm, mode, settings); the label is the algorithm, with the
    mode and/or the experiments added where one algorithm has several rows."""
    rows: dict[tuple, list[Run]] = {}
    for run in runs:
        rows.setdefault((run.algo, run.mode, _variant(run)), []).append(run)
    labels = {}
    for (algo, mode, variant), members in rows.items():
        label = algo
        if len({k[1] for k in rows if k[0] == algo}) > 1:
            label += f" ({mode or 'mode unknown'})"
        if len([k for k in rows if k[:2] == (algo, mode)]) > 1:  # settings differ: name the experiments
            label += " [" + ", ".join(dict.fromkeys(os.path.basename(r.experiment) for r in members)) + "]"
        labels[label] = sorted(members, key=lambda r: (r.seed, r.experiment))
    return labels


def _difference(keys: list[tuple], key: tuple) -> str:
    """A short text of the KEY_FIELDS in which `key` differs from the others of `keys`."""
    parts = []
    for i, name in enumerate(KEY_FIELDS):
        if len({k[i] for k in keys}) > 1:
            value = json.loads(key[i])
            if name == "time_budget":
                parts.append(f"budget {value:.0f} s" if value else "no time budget")
            elif name == "num_samples":
                parts.append(f"at most {value} trials" if value else "no trial limit")
            elif name == "objectives":
                parts.append("objectives " + " and ".join(value or ["accuracy"]))
            elif name == "latency":
                limit = (value or {}).get("limit_ms")
                target = (value or {}).get("target_ms")
                parts.append("no latency table" if not value else value["measured"] if value.get("measured")
                             else f"latency on {value['device']} ({value['table']})" + (f" at most {limit:g} ms" if limit is not None else "")
                             + (f" target {target:g} ms" if target is not None else ""))
            else:
                parts.append(f"{name.replace('_', ' ')} {value if value is not None else 'unstated'}")
    return "; ".join(parts)


def load(folders: Sequence[str]) -> list[Group]:
    """The sections of the experiments in `folders`, ordered by space, dataset, protocol."""
    runs: list[Run] = []
    for folder in dict.fromkeys(os.path.realpath(f) for f in folders):  # each experiment once
        path = os.path.join(folder, RESULTS_FILE)
        if not os.path.exists(path):
            raise AutohasError(f"{folder} holds no {RESULTS_FILE}: not an autohas experiment")
        protocol = {}
        if os.path.exists(os.path.join(folder, PROTOCOL_FILE)):
            with open(os.path.join(folder, PROTOCOL_FILE)) as handle:
                protocol = json.load(handle)
        scanned = _refuse_damage(folder, path)
        found: dict[tuple, Run] = {}
        for record in scanned.records():
            key = (record["space"], record["dataset"], record["algo"], record["seed"])
            if key not in found:
                found[key] = Run(os.path.abspath(folder), record["algo"], record["seed"], protocol=protocol)
            found[key].records.append(record)
        for (_, _, algo, seed), run in found.items():
            meta = layout.read_run(os.path.join(folder, layout.run_name(algo, seed)))
            run.wall_seconds, run.mode = meta.get("wall_seconds"), meta.get("mode")
            run.records.sort(key=lambda r: r["sim_seconds"])
            runs.append(run)
    if not runs:
        raise AutohasError("no results found in " + ", ".join(folders))
    sections: dict[tuple, list[Run]] = {}
    for run in runs:
        first = run.records[0]
        sections.setdefault((first["space"], first["dataset"], protocol_key(run.protocol)), []).append(run)
    order = {d: i for i, d in enumerate(DATASETS)}
    groups = []
    for (space, dataset, key), members in sorted(sections.items(), key=lambda item: (
            item[0][0], order.get(item[0][1], len(order)), item[0][1], item[0][2])):
        protocols = list({json.dumps(r.protocol, sort_keys=True): r.protocol for r in members if r.protocol}.values())
        groups.append(Group(space, dataset, _rows(members), protocols, key))
    for group in groups:
        same = [g for g in groups if (g.space, g.dataset) == (group.space, group.dataset)]
        group.part, group.parts = same.index(group) + 1, len(same)
        if len(same) > 1:
            group.differs = _difference([g.key for g in same], group.key)
    return groups


def _refuse_damage(folder: str, path: str) -> Scan:
    """A damaged experiment (a lost or garbled record, a finished run short of its seal) is not
    reported as if complete: one line naming the file and line, and how to repair it. What the
    file holds (read once)."""
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
    return found


def time_budget_of(group: Group) -> float | None:
    """The time budget the section's runs were given (None: none, e.g. weight sharing)."""
    budgets = [p["time_budget"] for p in group.protocols if p.get("time_budget")]
    return max(budgets) if budgets else None


def budget_for(group: Group, run: Run) -> float | None:
    """Where a run's final number is read: at the section's time budget, except for a weight-sharing
    search (its clock is its own, measured; its answer is what it derives at its last epoch)."""
    from autohas.trainables.weight_sharing import METHOD_NAMES

    return None if run.algo in METHOD_NAMES else time_budget_of(group)


def optimum_of(group: Group) -> dict | None:
    """The benchmark's best reported accuracy on the dataset (protocol.json's `optimum`), if known."""
    for p in group.protocols:
        if p.get("optimum") and p["optimum"].get("test_acc") is not None:
            return p["optimum"]
    return None


def finals(group: Group) -> dict[str, dict[Hashable, float]]:
    """label -> {seed: final test accuracy at the budget}; a seed that one row holds from two
    experiments is told apart by the experiment (and then pairs with nothing)."""
    result = {}
    for label, runs in group.runs.items():
        counts = Counter(r.seed for r in runs)
        values = {}
        for r in runs:
            value = r.final_test_acc(budget_for(group, r))
            if value is not None:
                key = r.seed if counts[r.seed] == 1 else f"{r.seed}@{os.path.basename(r.experiment)}"
                values[key] = value
        result[label] = values
    return result


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def caption(group: Group) -> str:
    """What the table's numbers are."""
    budget = time_budget_of(group)
    where = f"at the {budget:.0f} s budget" if budget else "at its last evaluation (no time budget)"
    return f"Final test accuracy (%) of each run's incumbent {where}, over runs (one per seed)."


COLUMNS = ("algorithm", "runs", "mean (%)", "95 % CI", "median", "avg rank", "p vs best (Holm)", "vs the best",
           "trials per run", "wall s per run", "mode")


def table_rows(group: Group, comparison: stats.Comparison) -> list[dict]:
    """One row per method, in the comparison's order (best mean first), methods without a final
    value last."""
    found = comparison.by_name()
    order = [m.name for m in comparison.methods] + [label for label in group.runs if label not in found]
    rows = []
    for label in order:
        runs, method = group.runs[label], found.get(label)
        walls = [r.wall_seconds for r in runs if r.wall_seconds is not None]
        rows.append({
            "algorithm": label,
            "runs": len(runs),
            "mean (%)": _fmt(method.mean if method else None),
            "95 % CI": "n/a" if method and method.ci is None else (
                f"[{method.ci[0]:.2f}, {method.ci[1]:.2f}]" if method else "-"),
            "median": _fmt(method.median if method else None),
            "avg rank": _fmt(method.average_rank if method else None) if comparison.rank_seeds else "n/a",
            "p vs best (Holm)": _p(method.p_holm if method else None),
            "vs the best": method.verdict if method and len(comparison.methods) > 1 else "-",
            "trials per run": f"{statistics.fmean(r.trials for r in runs):.1f}",
            "wall s per run": f"{statistics.fmean(walls):.2f}" if walls else "-",
            "mode": "/".join(sorted({r.mode for r in runs if r.mode})) or "-",
        })
    return rows


def statistics_note(comparison: stats.Comparison) -> list[str]:
    """What the table's columns mean and what the tests found, in sentences."""
    methods = comparison.methods
    if not methods:
        return ["No run has a final test accuracy yet."]
    best = methods[0]
    lines = ["95 % CI: Student-t interval of the mean over runs (n/a for a single run: no spread to estimate)."]
    summary = f"{'Best mean' if len(methods) > 1 else 'One method'}: {best.name}, {best.mean:.2f} %"
    if best.ci:
        summary += f" (95 % CI {best.ci[0]:.2f} to {best.ci[1]:.2f})"
    if len(methods) == 1:
        return [summary + ": nothing to compare it with."] + lines
    tied = [m.name for m in methods[1:] if m.verdict == stats.TIED]
    rank = (f"Avg rank: rank within a seed among the {len(methods)} methods (1 = best, ties share), averaged over the "
            f"{comparison.rank_seeds} seed(s) every method ran." if comparison.rank_seeds
            else "Avg rank: n/a, no seed was run by every method.")
    lines += [
        rank,
        f"p vs best: two-sided Mann-Whitney U test of each method against the best mean ({best.name}), Holm-corrected "
        f"over the {len(methods) - 1} comparison(s); \"tied with the best\" where p >= {comparison.alpha:g}: no "
        "evidence at that level that it is worse (which is not evidence that it is as good).",
    ]
    if comparison.friedman:
        chi2, p = comparison.friedman
        verdict = "the methods differ" if p < comparison.alpha else f"no evidence at the {comparison.alpha:g} level that the methods differ"
        lines.append(f"Friedman test over all {len(methods)} methods, paired by seed ({comparison.rank_seeds} seeds): "
                     f"chi-square = {chi2:.2f}, p = {p:.3g} ({verdict}).")
    elif comparison.paired:
        lines.append("Friedman test: n/a (it needs three or more methods and two or more seeds, and not every seed one tie).")
    else:
        lines.append("Friedman test: n/a, the methods did not all run the same seeds (not paired).")
    summary += "; tied with it: " + (", ".join(tied) if tied else "none") + "."
    return [summary] + lines


def architecture_rows(group: Group, optimum: dict | None, order: Sequence[str]) -> tuple[list[dict], list[str]]:
    """Per method (in `order`), its runs' final architectures, most frequent first, then the most
    accurate (at most TOP_ARCHITECTURES, then a count of the others), and per method how many runs
    ended on the optimum's accuracy."""
    rows, found_lines = [], []
    for label in order:
        runs = group.runs[label]
        finals_of = [(r, r.final_record(budget_for(group, r))) for r in runs]
        finals_of = [(r, f) for r, f in finals_of if f is not None]
        if not finals_of:
            continue
        index_of, latency_of = {}, {}
        for r, _ in finals_of:
            for record in r.records:
                if record.get("arch_index") is not None:
                    index_of[record["arch"]] = record["arch_index"]
                if record.get("latency_ms") is not None:
                    latency_of[record["arch"]] = record["latency_ms"]
        counts = Counter(f["best_arch"] for _, f in finals_of)
        accuracy = {f["best_arch"]: f["best_test_acc"] for _, f in finals_of}
        ranked = sorted(counts.items(), key=lambda item: (-item[1], -accuracy[item[0]]))[:TOP_ARCHITECTURES]
        for arch, count in ranked:
            index = index_of.get(arch)
            rows.append({"algorithm": label, "arch index": "-" if index is None else str(index), "architecture": arch,
                         "test acc (%)": _fmt(accuracy[arch]), "runs": f"{count} of {len(runs)}",
                         LATENCY_COLUMN: f"{latency_of[arch]:.3f}" if arch in latency_of else ""})
        if len(counts) > TOP_ARCHITECTURES:
            others = len(finals_of) - sum(c for _, c in ranked)
            rows.append({"algorithm": label, "arch index": "", "architecture": f"{len(counts) - TOP_ARCHITECTURES} other architecture(s)",
                         "test acc (%)": "", "runs": f"{others} of {len(runs)}", LATENCY_COLUMN: ""})
        if optimum:
            hit = sum(f["best_test_acc"] >= optimum["test_acc"] - 1e-9 for _, f in finals_of)
            found_lines.append(f"{label} {hit} of {len(runs)}")
    return rows, found_lines


ARCH_COLUMNS = ("algorithm", "arch index", "architecture", "test acc (%)", "runs")
LATENCY_COLUMN = "latency (ms)"  # with a latency table: each final architecture's latency on its device


def arch_columns(rows: list[dict]) -> tuple[str, ...]:
    """The final-architectures table's columns: the latency too where the records have it."""
    return ARCH_COLUMNS + ((LATENCY_COLUMN,) if any(row.get(LATENCY_COLUMN) for row in rows) else ())


def protocol_note(group: Group) -> list[str]:
    """The section's protocol in sentences: budget, benchmark, signal, searchers' settings, scheduler."""
    lines = []
    p = group.protocols[0] if group.protocols else {}
    clock = "simulated" if p.get("clock", "simulated") == "simulated" else "measured training"
    budget = f"{p['time_budget']:.0f} {clock} s per run" if p.get("time_budget") else "no time budget"
    samples = f", at most {p['num_samples']} trials" if p.get("num_samples") else ""
    concurrency = sorted({str(q.get("concurrency") or "as many as the trial resources fit") for q in group.protocols}) or ["?"]
    lines.append(
        f"Budget: {budget}{samples}; {' / '.join(concurrency)} trial(s) at a time. "
        f"Benchmark: {p.get('benchmark', '?')}. Search signal: {p.get('signal', '?')}. "
        f"Benchmark runs per evaluation: {p.get('seed_mode', '?')}."
    )
    described = {}
    for q in group.protocols:
        for algo, text in (q.get("searchers") or {}).items():
            if any(r.algo == algo for runs in group.runs.values() for r in runs):
                described.setdefault(algo, [])
                if text not in described[algo]:
                    described[algo].append(text)
    lines += [f"Searcher {algo}: {' / '.join(texts)}." for algo, texts in described.items()]
    if "scheduler" in p:
        lines.append(f"Scheduler: {p['scheduler'] or 'none (every trial runs its whole budget)'}.")
    latency = p.get("latency")
    if latency and latency.get("measured"):
        lines.append(f"Latency: {latency['measured']} (each record's latency_ms: one measurement per architecture, "
                     "kept in the experiment and reused by later trials of it).")
    elif latency:
        limit = latency.get("limit_ms")
        lines.append(f"Latency: {latency['device']} from the table {latency['table']} (each record's latency_ms)"
                     + (f"; constrained search, limit {limit:g} ms: {latency['feasible']:,} of the {latency['architectures']:,} "
                        "architectures meet it; an architecture over the limit is never evaluated (no trial, no cost, "
                        "never an incumbent), its searcher is told it is infeasible (the worst accuracy)." if limit is not None
                        else "; no latency limit."))
        if latency.get("target_ms") is not None:
            lines.append(f"Latency target: the weight-sharing searches add TAS' cost loss toward {latency['target_ms']:g} ms on "
                         f"{latency['device']} to their architecture update; the additive per-op latency model they "
                         f"differentiate fits the table's column with R^2 {latency['model_r2']:.3f} "
                         f"(held-out {latency['model_heldout_r2']:.3f}).")
    if report_fronts.is_multi_objective(group):
        lines.append("Objectives: the search signal (maximised) and latency_ms on the device (minimised): each run's outcome "
                     "is its Pareto front, the non-dominated architectures it evaluated by search signal and latency, "
                     "reported at their test accuracy; the accuracy table and curves show its most accurate architecture (the incumbent) as ever.")
    optimum = optimum_of(group)
    if optimum:
        where = f" (index {optimum['index']}, {optimum['arch']}" if optimum.get("arch") else ""
        if where and optimum.get("latency_ms") is not None:
            where += f", {optimum['latency_ms']:.3f} ms"
        where += ")" if where else ""
        feasible = optimum.get("limit_ms") is not None
        lines.append(f"Optimum: {optimum['test_acc']:.2f} %{where}, the best reported accuracy of any "
                     + (f"feasible architecture (latency at most {optimum['limit_ms']:g} ms) " if feasible else "architecture ")
                     + "in the benchmark on this dataset (the dashed line; regret is measured from it).")
    for text in dict.fromkeys(q["weight_sharing"] for q in group.protocols if q.get("weight_sharing")):
        lines.append(f"Weight sharing: {text}.")
    if any(q.get("weight_sharing") for q in group.protocols):
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


def budget_of(group: Group) -> float:
    """The plot's time axis: the time budget, else the longest run."""
    budget = time_budget_of(group)
    if budget is not None:
        return budget
    return max(r.records[-1]["sim_seconds"] for runs in group.runs.values() for r in runs if r.records)


def time_grid(group: Group) -> tuple[np.ndarray, bool]:
    """The plots' clock points: log-spaced from where the first curve starts (`mean_band`: every
    run of a method has an incumbent) to the budget when both are positive (then True), else
    evenly from 0."""
    end = budget_of(group)
    # the earliest time one method has an incumbent in every run: where the first curve is drawn
    starts = [max(r.records[0]["sim_seconds"] for r in runs) for runs in group.runs.values()]
    first = min((t for t in starts if t > 0), default=0.0)
    if first >= end:  # a budget smaller than any evaluation: show the evaluations that crossed it
        end = max(r.records[-1]["sim_seconds"] for runs in group.runs.values() for r in runs if r.records)
    if 0 < first < end:
        return np.geomspace(first, end, GRID_POINTS), True
    return np.linspace(0, end, GRID_POINTS), False


def plots(group: Group, out: str, name: str) -> list[tuple[str, str]]:
    """Draw the section's plots into `out`; (file name, caption) of each."""
    from autohas import report_plots

    times, log_time = time_grid(group)
    curves = {label: np.vstack([r.incumbent_at(times) for r in runs]) for label, runs in group.runs.items()}
    nth = [r.records[min(FIRST_EVALUATIONS, len(r.records)) - 1]["sim_seconds"] for runs in group.runs.values() for r in runs]
    start = int(np.searchsorted(times, float(np.median(nth)))) if nth else 0
    measured = any(p.get("clock", "simulated") != "simulated" for p in group.protocols)
    xlabel = ("measured training time (s)" if measured else "simulated training time (s)") + (", log scale" if log_time else "")
    title = f"{group.space} / {group.dataset}" + (f" ({group.differs})" if group.differs else "")
    optimum = optimum_of(group)
    value = optimum["test_acc"] if optimum else None
    label = ("feasible " if optimum and optimum.get("limit_ms") is not None else "") + \
        (f"optimum {value:.2f} %" + (f" (index {optimum['index']})" if optimum.get("index") is not None else "") if optimum else "")
    made = []
    report_plots.draw_incumbent(curves, times, os.path.join(out, f"{name}.png"), title + ": incumbent's test accuracy",
                                xlabel, value, label, start, log_time)
    made.append((f"{name}.png", "Mean test accuracy of the incumbent over runs, with its 95 % confidence band (Student t), "
                 "drawn from the time every run has an incumbent; the accuracy axis is zoomed to the range the runs span "
                 f"after their first {FIRST_EVALUATIONS} evaluations" + (" and the dashed line is the optimum." if optimum else ".")))
    if optimum:
        report_plots.draw_regret(curves, times, os.path.join(out, f"{name}-regret.png"),
                                 title + ": regret (optimum - incumbent)", xlabel, value, log_time)
        made.append((f"{name}-regret.png", f"Regret = optimum ({value:.2f} %) - test accuracy of the incumbent, mean over "
                     f"runs with its 95 % band, log-log; a regret of 0 is drawn at {report_plots.REGRET_FLOOR:g}."))
    learning = {label: [c for r in runs for c in r.learning_curves()] for label, runs in group.runs.items()}
    learning = {label: c for label, c in learning.items() if c}
    if learning:
        report_plots.draw_learning_curves(learning, os.path.join(out, f"{name}-epochs.png"),
                                          title + ": validation accuracy per epoch")
        made.append((f"{name}-epochs.png", "Validation accuracy (the search signal) per epoch of every trial or search that "
                     "reported several epochs (train-mode trials; weight-sharing searches, whose accuracy is that of the "
                     "architecture derived that epoch); black: the mean over those that reached the epoch."))
    return made


def draw_saliency_figures(folder: str) -> None:
    """Draw every run's saved saliency maps (`layout.saliency_arrays`) not drawn since they were saved."""
    from autohas.report_plots import draw_saliency

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


def _inline(path: str, alt: str) -> str:
    with open(path, "rb") as handle:
        data = base64.b64encode(handle.read()).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


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
        page.append(f"<p>{_inline(figure, name)}</p>")
    return md, page


def _md_table(columns: Sequence[str], rows: list[dict]) -> list[str]:
    """A Markdown table; a `|` in a cell (architecture strings) is escaped."""
    cell = lambda value: str(value).replace("|", "\\|")  # noqa: E731
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]


def _html_table(columns: Sequence[str], rows: list[dict], klass: str = "", caption: str = "") -> list[str]:
    """An HTML table; a row's verdict ("best", "tied with the best", ...) styles the row."""
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>"
    body = []
    for row in rows:
        verdict = {stats.BEST: " class='best'", stats.TIED: " class='tied'"}.get(row.get("vs the best"), "")
        body.append(f"<tr{verdict}>" + "".join(f"<td>{html.escape(str(row[c]))}</td>" for c in columns) + "</tr>")
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return [f"<table class='{klass}'>" if klass else "<table>", title, head, *body, "</table>"]


STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.35}"
    "table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #bbb;padding:.3em .6em;text-align:right}"
    "td{white-space:nowrap}"
    "th{background:#eee}td:first-child{text-align:left}table.arch td:nth-child(3){text-align:left;font-family:monospace;font-size:.85em}"
    "th:first-child{text-align:left}table.arch th:nth-child(3){text-align:left}caption{text-align:left;padding:.3em 0;"
    "font-style:italic}tr.best td{font-weight:bold}tr.tied td{background:#f3f7ff}td:nth-child(8){text-align:left}"
    "img{max-width:100%}.note{font-size:.92em;color:#333}.summary{font-weight:bold}"
)


def write_report(folders: Sequence[str], out: str | None = None) -> str:
    """Build the report of `folders` into `out` (default: the first folder's report/); its index.html."""
    groups = load(folders)
    out = out or os.path.join(folders[0], "report")
    os.makedirs(out, exist_ok=True)
    names = ", ".join(os.path.basename(os.path.normpath(f)) for f in folders)  # no path of this machine
    md = ["# autohas comparison report", "", "Experiments: " + names, ""]
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>autohas report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>autohas comparison report</h1>",
        "<p>Experiments: " + html.escape(names) + "</p>",
    ]
    for group in groups:
        name = f"{group.space}-{group.dataset}" + (f"-p{group.part}" if group.parts > 1 else "")
        heading = f"{group.space} / {group.dataset}"
        if group.parts > 1:
            heading += f", protocol {group.part} of {group.parts}: {group.differs}"
        comparison = stats.compare(finals(group))
        rows = table_rows(group, comparison)
        notes = statistics_note(comparison)
        made = plots(group, out, name)
        optimum = optimum_of(group)
        arch_rows, found = architecture_rows(group, optimum, [row["algorithm"] for row in rows])
        md += [f"## {heading}", "", caption(group), ""] + _md_table(COLUMNS, rows) + [""]
        md += [line for note in notes for line in (note, "")]
        page += [f"<h2>{html.escape(heading)}</h2>", *_html_table(COLUMNS, rows, caption=caption(group))]
        page += [f"<p class='summary'>{html.escape(notes[0])}</p>"] + [f"<p class='note'>{html.escape(n)}</p>" for n in notes[1:]]
        for png, text in made:
            md += [f"![{png}]({png})", "", text, ""]
            page += [f"<p>{_inline(os.path.join(out, png), png)}<br><span class='note'>{html.escape(text)}</span></p>"]
        if arch_rows:
            intro = "The architecture each run ends with (its incumbent where the table reads it), most frequent first, then most accurate."
            if found:
                intro += (f" Runs that found the optimum (a final architecture with the optimum's {optimum['test_acc']:.2f} %): "
                          + ", ".join(found) + ".")
            md += ["### Final architectures", "", intro, ""] + _md_table(arch_columns(arch_rows), arch_rows) + [""]
            page += ["<h3>Final architectures</h3>", f"<p class='note'>{html.escape(intro)}</p>",
                     *_html_table(arch_columns(arch_rows), arch_rows, "arch")]
        if report_fronts.is_multi_objective(group):
            fronts_heading, fronts_rows, fronts_notes, fronts_made = report_fronts.section(group, out, name, budget_for)
            md += ["### Pareto fronts (accuracy vs latency)", "", fronts_heading, ""]
            md += _md_table(report_fronts.HV_COLUMNS, fronts_rows) + [""] + [line for n in fronts_notes for line in (n, "")]
            page += ["<h3>Pareto fronts (accuracy vs latency)</h3>",
                     *_html_table(report_fronts.HV_COLUMNS, fronts_rows, caption=fronts_heading)]
            page += [f"<p class='note'>{html.escape(n)}</p>" for n in fronts_notes]
            for png, text in fronts_made:
                md += [f"![{png}]({png})", "", text, ""]
                page += [f"<p>{_inline(os.path.join(out, png), png)}<br><span class='note'>{html.escape(text)}</span></p>"]
        md += ["### Protocol", ""] + [line for note in protocol_note(group) for line in (note, "")]
        page += ["<h3>Protocol</h3>"] + [f"<p class='note'>{html.escape(line)}</p>" for line in protocol_note(group)]
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
