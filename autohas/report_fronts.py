"""The report's multi-objective part (--objectives accuracy,latency): per section (one device: the
latency protocol is part of a section's key) a figure of accuracy against latency with each method's
front and the benchmark's true front, and a table of hypervolume per method.

A run's front is the non-dominated set of the architectures it evaluated by search signal and latency_ms,
drawn and measured by the test accuracy the records report (autohas.fronts.records_front). Its hypervolume is measured against one
reference point per section: the one protocol.json states with the true front (the worst accuracy and
the slowest latency of the table's architectures on the device, within the latency limit if any), else
(no true front: official files) the worst accuracy and slowest latency the section's runs evaluated.
Hypervolumes compare like final accuracies (autohas.stats: mean, Student-t 95 % CI, Holm-corrected
Mann-Whitney tests against the best, a Friedman test when the seeds are paired).
"""
from __future__ import annotations

import os
import statistics
from collections import Counter
from typing import Any, Callable, Hashable

import numpy as np

from autohas import stats
from autohas.fronts import front_hypervolume, records_front, reference_point
from autohas.schema import LATENCY

Group = Any  # autohas.report.Group and Run: not imported, autohas.report imports this module
Run = Any

HV_COLUMNS = ("algorithm", "runs", "mean HV", "95 % CI", "median", "% of true front", "p vs best (Holm)", "vs the best",
              "points per front")


def is_multi_objective(group: Group) -> bool:
    """Whether the section's runs searched accuracy and latency."""
    return any("latency" in (p.get("objectives") or ()) for p in group.protocols)


def true_front_of(group: Group) -> dict | None:
    """The benchmark's true front the section's protocol states (autohas.fronts.true_front), if any."""
    for p in group.protocols:
        if p.get("true_front"):
            return p["true_front"]
    return None


def within_budget(run: Run, budget: float | None) -> list[dict]:
    """The run's records up to its final one at `budget` (Run.final_record: where its final accuracy is
    read), so that its front and its accuracy count the same evaluations; all of them without a budget."""
    final = run.final_record(budget) if budget is not None else None
    if final is None:
        return run.records
    last = next(i for i, r in enumerate(run.records) if r is final)
    return run.records[:last + 1]


def fronts_of(group: Group, budget_for: Callable[[Group, Run], float | None]) -> dict[str, list[tuple[Run, list[dict]]]]:
    """label -> [(run, its front at the budget `budget_for(group, run)` gives)]."""
    return {label: [(r, records_front(within_budget(r, budget_for(group, r)))) for r in runs] for label, runs in group.runs.items()}


def reference_of(group: Group, fronts: dict[str, list[tuple[Run, list[dict]]]]) -> tuple[tuple[float, float], str]:
    """The section's hypervolume reference point (accuracy %, latency ms) and how it was chosen."""
    true = true_front_of(group)
    if true is not None:
        limit = true.get("limit_ms")
        within = f" within the {limit:g} ms limit" if limit is not None else ""
        return (float(true["reference"][0]), float(true["reference"][1])), (
            f"the worst accuracy and the slowest latency of the benchmark's {true['architectures']:,} architectures{within}")
    # every evaluated point, not only the fronts' (they hold the best ones)
    points = [(r["test_acc"], r[LATENCY]) for runs in group.runs.values() for run in runs for r in run.records
              if r.get("test_acc") is not None and r.get(LATENCY) is not None]
    if not points:
        return (0.0, 0.0), "none (no run evaluated an architecture with a latency)"
    accuracy, latency = np.array(points, dtype=float).T
    return reference_point(accuracy, latency), "the worst accuracy and the slowest latency any run evaluated"


def hypervolumes(group: Group, fronts: dict[str, list[tuple[Run, list[dict]]]],
                 reference: tuple[float, float]) -> dict[str, dict[Hashable, float]]:
    """label -> {seed: the hypervolume of that run's front}; a seed one row holds from two experiments is
    told apart by the experiment (as the accuracy table does)."""
    result = {}
    for label, members in fronts.items():
        counts = Counter(r.seed for r, _ in members)
        result[label] = {(r.seed if counts[r.seed] == 1 else f"{r.seed}@{os.path.basename(r.experiment)}"):
                         front_hypervolume(front, reference) for r, front in members}
    return result


def median_front(members: list[tuple[Run, list[dict]]], reference: tuple[float, float]) -> tuple[Run, list[dict]]:
    """The run of median hypervolume (the lower of the two middle ones; the lower seed of equals) and its front."""
    ranked = sorted(members, key=lambda m: (front_hypervolume(m[1], reference), m[0].seed))
    return ranked[(len(ranked) - 1) // 2]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def table_rows(group: Group, fronts: dict[str, list[tuple[Run, list[dict]]]], comparison: stats.Comparison,
               true: dict | None) -> list[dict]:
    """One row per method (best mean hypervolume first), then the true front's."""
    found = comparison.by_name()
    rows = []
    for label in [m.name for m in comparison.methods] + [label for label in fronts if label not in found]:
        method, members = found.get(label), fronts[label]
        rows.append({
            "algorithm": label,
            "runs": len(members),
            "mean HV": _fmt(method.mean if method else None),
            "95 % CI": "n/a" if method and method.ci is None else (f"[{method.ci[0]:,.1f}, {method.ci[1]:,.1f}]" if method else "-"),
            "median": _fmt(method.median if method else None),
            "% of true front": f"{100 * method.mean / true['hypervolume']:.2f}" if method and true and true["hypervolume"] > 0 else "-",
            "p vs best (Holm)": "-" if not method or method.p_holm is None else f"{method.p_holm:.3g}",
            "vs the best": method.verdict if method and len(comparison.methods) > 1 else "-",
            "points per front": f"{statistics.fmean(len(f) for _, f in members):.1f}" if members else "-",
        })
    if true is not None:
        rows.append({"algorithm": "true front (benchmark)", "runs": "-", "mean HV": _fmt(true["hypervolume"]), "95 % CI": "-",
                     "median": "-", "% of true front": "100.00", "p vs best (Holm)": "-", "vs the best": "-",
                     "points per front": str(len(true["points"]))})
    return rows


def hypervolume_notes(comparison: stats.Comparison) -> list[str]:
    """What the hypervolume table's tests found, in sentences."""
    methods = comparison.methods
    if not methods:
        return ["No run has a front yet."]
    best = methods[0]
    ci = f" (95 % CI {best.ci[0]:,.1f} to {best.ci[1]:,.1f})" if best.ci else ""
    lines = [f"Best mean hypervolume: {best.name}, {best.mean:,.1f}{ci}"
             + ("" if len(methods) == 1 else "; tied with it: "
                + (", ".join(m.name for m in methods[1:] if m.verdict == stats.TIED) or "none")) + "."]
    lines.append("95 % CI: Student-t interval of the mean hypervolume over runs (one per seed; n/a for a single run).")
    if len(methods) > 1:
        lines.append(f"p vs best: two-sided Mann-Whitney U test of each method's hypervolumes against those of {best.name}, "
                     f"Holm-corrected over the {len(methods) - 1} comparison(s); tied where p >= {comparison.alpha:g}.")
    if comparison.friedman:
        chi2, p = comparison.friedman
        lines.append(f"Friedman test over the {len(methods)} methods, paired by seed: chi-square = {chi2:.2f}, p = {p:.3g}.")
    return lines


def section(group: Group, out: str, name: str, budget_for: Callable[[Group, Run], float | None]
            ) -> tuple[str, list[dict], list[str], list[tuple[str, str]]]:
    """The section's multi-objective part, drawn into `out`: the table's heading, its rows, notes on its
    tests, and (PNG file, caption) of the figure; each run's front at the budget `budget_for` gives."""
    from autohas import report_plots

    fronts = fronts_of(group, budget_for)
    reference, how = reference_of(group, fronts)
    true = true_front_of(group)
    comparison = stats.compare(hypervolumes(group, fronts, reference))
    rows = table_rows(group, fronts, comparison, true)
    device = next((p["latency"]["device"] for p in group.protocols if p.get("latency")), "the device")
    heading = (f"Hypervolume of each run's front (accuracy % x latency ms, larger is better) on {device}; reference point "
               f"({reference[0]:.2f} %, {reference[1]:.4g} ms): {how}.")
    chosen = {label: median_front(members, reference) for label, members in fronts.items() if members}
    drawn = {f"{label} (seed {run.seed})": (np.array([p["test_acc"] for p in front]), np.array([p[LATENCY] for p in front]))
             for label, (run, front) in chosen.items()}
    true_points = None if true is None else (np.array([p["test_acc"] for p in true["points"]]),
                                             np.array([p[LATENCY] for p in true["points"]]))
    png = f"{name}-front.png"
    title = f"{group.space} / {group.dataset} on {device}: accuracy vs latency"
    report_plots.draw_fronts(drawn, true_points, os.path.join(out, png), title, reference)
    caption = ("Each method's front from its run of median hypervolume (seed in the legend): the non-dominated architectures "
               "that run evaluated by search signal and latency, drawn at their reported test accuracy, as a staircase of what "
               "they dominate; "
               + ("black: the benchmark's true front, computed exactly from the table and the latency table"
                  + (f" within the {true['limit_ms']:g} ms limit" if true.get("limit_ms") is not None else "") + "; "
                  if true is not None else "")
               + "the cross: the hypervolume's reference point.")
    return heading, rows, hypervolume_notes(comparison), [(png, caption)]
