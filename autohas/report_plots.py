"""The report's drawings (matplotlib, Agg): the incumbent's accuracy and its regret against time,
per-epoch learning curves, accuracy-vs-latency fronts, saliency maps. Inputs are plain arrays; autohas.report reads the runs.

Curves are means over runs with a 95 % Student-t band of the mean (not ± 1 std, which says how
runs spread, not how well the mean is known, and runs over 100 %). The accuracy axis is zoomed to
where the methods differ: from a low percentile of the runs after their first few evaluations to
just above the optimum.
"""
from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np

from autohas.stats import ci_halfwidths

LOW_PERCENTILE = 5  # of single runs' values, past the first evaluations: the bottom of the zoomed axis
REGRET_FLOOR = 1e-2  # accuracy points: a regret of 0 (the optimum found) is drawn here on the log axis
CURVE_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                "tab:olive", "tab:cyan", "tab:gray")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, half-width of its 95 % interval, where drawn) of runs x points; drawn where every run
    has a value (a mean of the runs that happen to have started is biased toward the fast ones)."""
    drawn = np.all(~np.isnan(curves), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
    return mean, ci_halfwidths(curves), drawn


def zoom(curves: Mapping[str, np.ndarray], start: int, optimum: float | None) -> tuple[float, float] | None:
    """The accuracy axis's range: from the LOW_PERCENTILE-th percentile of the single runs' values
    from grid point `start` on (after the first few evaluations) to just above the optimum or the
    best run; None when there is nothing to show."""
    tails = [c[:, start:][~np.isnan(c[:, start:])] for c in curves.values()]
    values = np.concatenate(tails) if tails else np.array([])
    if values.size == 0:
        return None
    low = float(np.percentile(values, LOW_PERCENTILE))
    high = max([float(values.max())] + ([optimum] if optimum is not None else []))  # a band of few runs may go past
    margin = max(0.05 * (high - low), 0.1)
    return low - margin, high + margin


def draw_incumbent(curves: Mapping[str, np.ndarray], times: np.ndarray, path: str, title: str, xlabel: str,
                   optimum: float | None, optimum_label: str, start: int, log_time: bool) -> None:
    """Mean incumbent accuracy per method (label -> runs x times) with its 95 % band, the optimum as
    a dashed line, the y-axis zoomed (`zoom`), time on a log axis when `log_time`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for i, (label, c) in enumerate(curves.items()):
        mean, half, drawn = mean_band(c)
        color = CURVE_COLORS[i % len(CURVE_COLORS)]
        ax.plot(times[drawn], mean[drawn], color=color, label=f"{label} ({len(c)} run{'s' * (len(c) != 1)})")
        band = drawn & ~np.isnan(half)
        ax.fill_between(times[band], (mean - half)[band], (mean + half)[band], color=color, alpha=0.18, linewidth=0)
    if optimum is not None:
        ax.axhline(optimum, color="black", linestyle="--", linewidth=1, label=optimum_label)
    limits = zoom(curves, start, optimum)
    if limits:
        ax.set_ylim(*limits)
    if log_time:
        ax.set_xscale("log")
    ax.set_xlim(times[0], times[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy of the incumbent (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_regret(curves: Mapping[str, np.ndarray], times: np.ndarray, path: str, title: str, xlabel: str,
                optimum: float, log_time: bool = True) -> None:
    """Mean regret (optimum - incumbent accuracy) per method with its 95 % band on a log axis (time
    too when `log_time`); a regret of 0 (and a band reaching below it) is drawn at REGRET_FLOOR."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=110)
    for i, (label, c) in enumerate(curves.items()):
        mean, half, drawn = mean_band(optimum - c)
        color = CURVE_COLORS[i % len(CURVE_COLORS)]
        floor = lambda v: np.maximum(v, REGRET_FLOOR)  # noqa: E731
        ax.plot(times[drawn], floor(mean[drawn]), color=color, label=f"{label} ({len(c)} run{'s' * (len(c) != 1)})")
        band = drawn & ~np.isnan(half)
        ax.fill_between(times[band], floor((mean - half)[band]), floor((mean + half)[band]), color=color, alpha=0.18,
                        linewidth=0)
    if log_time:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(times[0], times[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("regret: optimum - incumbent (points)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


FRONT_ZOOM_PERCENTILE = 10  # of all drawn front points' accuracies: the bottom of the zoomed panel


def draw_fronts(fronts: Mapping[str, tuple[np.ndarray, np.ndarray]], true_front: tuple[np.ndarray, np.ndarray] | None,
                path: str, title: str, reference: tuple[float, float] | None = None) -> None:
    """Accuracy against latency: each method's front (label -> (accuracies, latencies), fastest first) as a
    staircase with its points, the benchmark's true front in black, the hypervolume's reference point as a
    cross; left the whole range, right zoomed to the accurate end (from the FRONT_ZOOM_PERCENTILE-th
    percentile of the drawn points' accuracies: a few untrainable cells at ~10 % would flatten the rest);
    latency on a log axis when it spans more than a factor 20."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), dpi=110)
    drawn = [front for front in fronts.values() if len(front[0])] + ([true_front] if true_front is not None else [])
    accuracy = np.concatenate([acc for acc, _ in drawn]) if drawn else np.array([])
    latency = np.concatenate([lat for _, lat in drawn]) if drawn else np.array([])
    positive = latency[latency > 0]
    log = bool(positive.size and positive.max() / positive.min() > 20)
    for panel, ax in enumerate(axes):
        if true_front is not None and len(true_front[0]):
            # what a front dominates: each accuracy holds from its latency to the next (slower, more accurate) point
            ax.step(true_front[1], true_front[0], where="post", color="black", linewidth=1.2,
                    label=f"true front ({len(true_front[0])} cells)")
            ax.plot(true_front[1], true_front[0], "k.", markersize=3)
        for i, (label, (acc, lat)) in enumerate(fronts.items()):
            if not len(acc):
                continue
            color = CURVE_COLORS[i % len(CURVE_COLORS)]
            ax.step(lat, acc, where="post", color=color, linewidth=1.0, alpha=0.9)
            ax.plot(lat, acc, "o", color=color, markersize=3.5, label=label)
        if reference is not None and panel == 0:
            ax.plot([reference[1]], [reference[0]], "x", color="gray", markersize=7, label="reference point")
        if log:
            ax.set_xscale("log")
        if panel == 1 and accuracy.size:
            low = float(np.percentile(accuracy, FRONT_ZOOM_PERCENTILE))
            high = float(accuracy.max())
            margin = max(0.05 * (high - low), 0.1)
            shown = latency[accuracy >= low]
            ax.set_ylim(low - margin, high + margin)
            if shown.size:
                ax.set_xlim(shown.min() / (1.15 if log else 1.0), shown.max() * 1.15)
        ax.set_xlabel("latency (ms)" + (", log scale" if log else ""))
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title if panel == 0 else "the accurate end, zoomed", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="center left" if panel == 0 else "lower right", fontsize=8)  # clear of the reference point
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_learning_curves(methods: Mapping[str, Sequence[Sequence[tuple[int, float]]]], path: str, title: str,
                         max_lines: int = 200) -> None:
    """Validation accuracy per epoch: one panel per method, each trial (or search) a thin line
    (at most `max_lines` drawn per panel), and the mean over the trials that reached each epoch."""
    plt = _pyplot()
    count = len(methods)
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), dpi=100, squeeze=False, sharey=True)
    for i, (label, trials) in enumerate(methods.items()):
        ax = axes[i // columns][i % columns]
        by_epoch: dict[int, list[float]] = {}
        for trial in trials:
            for epoch, value in trial:
                by_epoch.setdefault(epoch, []).append(value)
        for trial in list(trials)[:max_lines]:
            ax.plot([e for e, _ in trial], [v for _, v in trial], color="tab:blue", alpha=0.25, linewidth=0.8)
        epochs = sorted(by_epoch)
        ax.plot(epochs, [float(np.mean(by_epoch[e])) for e in epochs], color="black", linewidth=1.6, label="mean")
        shown = f", {max_lines} drawn" if len(trials) > max_lines else ""
        ax.set_title(f"{label} ({len(trials)} curve{'s' * (len(trials) != 1)}{shown})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid acc (%)")
        ax.grid(alpha=0.3)
    for j in range(count, rows * columns):
        axes[j // columns][j % columns].set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_saliency(images: np.ndarray, maps: np.ndarray, path: str, title: str) -> None:
    """Images (uint8, N x 3 x H x W) above their saliency maps (N x H x W in [0, 1]), as one PNG."""
    plt = _pyplot()
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
