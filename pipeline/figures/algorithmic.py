"""Figures of the algorithmic track: paper Fig. 11 (learning curves), 12 (learned AFs),
13 (steps to 95 % against train fraction and width) and 14 (transfer matrix)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .style import color, plt


def learning_curves(curves: Mapping[str, Sequence[Sequence[dict]]], title: str):
    """Paper Fig. 11: train (dotted) and test (solid) accuracy against steps, mean and min-max band
    over seeds, one colour per activation. ``curves[activation]`` is a list (seeds) of curves."""
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    for name, runs in curves.items():
        steps = np.array([row["step"] for row in runs[0]])
        for split, style in (("train_acc", ":"), ("test_acc", "-")):
            values = np.array([[row[split] for row in run[: len(steps)]] for run in runs])
            ax.plot(steps, values.mean(0), style, color=color(name), lw=1.4 if split == "test_acc" else 1.0,
                    label=name if split == "test_acc" else None)
            ax.fill_between(steps, values.min(0), values.max(0), color=color(name), alpha=0.15, lw=0)
    ax.plot([], [], ":", color="0.3", label="train (dotted)")
    ax.set_xscale("log")
    ax.set_xlabel("optimisation steps")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=6.5, loc="center right")
    return fig


def learned_activations(panels: Sequence[dict]):
    """Paper Fig. 12: the AFs learned for several tasks side by side, each drawn over the
    pre-activation range its model visits, titled with its dominant frequency (and the highest
    frequency the knot grid can represent) and the share of knots that received gradient. Each
    panel: ``task``, ``knots``, ``values``, ``visited_range``, ``dominant_frequency``,
    ``knots_visited``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 2.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        knots, values = np.asarray(panel["knots"]), np.asarray(panel["values"])
        lo, hi = panel["visited_range"]
        inside = (knots >= lo) & (knots <= hi)
        ax.plot(knots, values, color="0.75", lw=0.8, marker=".", ms=2)
        ax.plot(knots[inside], values[inside], color=color("af"), lw=1.6, marker=".", ms=3)
        ax.axvspan(lo, hi, color=color("af"), alpha=0.07, lw=0)
        # The visited range is often a small part of the knot interval (one-hot inputs keep
        # pre-activations near 0): zoom to it, with half its width of context on each side.
        margin = max(0.5 * (hi - lo), 2 * float(np.diff(knots).mean()))
        window = (knots >= lo - margin) & (knots <= hi + margin)
        ax.set_xlim(lo - margin, hi + margin)
        if window.any():
            v = values[window]
            pad = 0.1 * (v.max() - v.min() or 1.0)
            ax.set_ylim(v.min() - pad, v.max() + pad)
        # The knot grid cannot represent more than one cycle per two knot spacings: a dominant
        # frequency at that limit is set by the grid's resolution, not by the task.
        nyquist = 0.5 / float(np.diff(knots).mean())
        frequency = panel["dominant_frequency"]
        frequency = "none (flat)" if not np.isfinite(frequency) or not np.ptp(values) else f"{frequency:.2f}/unit"
        ax.set_title(f"{panel['task']}\nf = {frequency} (grid limit {nyquist:.2f})\n"
                     f"{100 * panel['knots_visited']:.0f}% of knots got gradient", fontsize=7)
        ax.set_xlabel("pre-activation")
    return fig


def steps_to_target(rows: Sequence[dict], x: str, xlabel: str, budget: int):
    """Paper Fig. 13: steps to reach 95 % test accuracy against ``x`` (train fraction or width);
    ReLU dashed, learned AF solid; runs that never reach it are drawn at the budget (hollow)."""
    fig, ax = plt.subplots(figsize=(3.6, 2.8))
    for name in sorted({r["activation"] for r in rows}):
        sub = sorted((r for r in rows if r["activation"] == name), key=lambda r: r[x])
        xs = sorted({r[x] for r in sub})
        med = [np.median([r["steps_to_95"] or budget for r in sub if r[x] == v]) for v in xs]
        ax.plot(xs, med, "--" if name == "relu" else "-", marker="o", color=color(name), label=name)
        never = [v for v in xs if all(r["steps_to_95"] is None for r in sub if r[x] == v)]
        ax.scatter(never, [budget] * len(never), facecolors="white", edgecolors=color(name), zorder=3)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("steps to 95 % test accuracy")
    ax.axhline(budget, color="0.6", lw=0.6, ls=":")
    ax.legend(fontsize=7)
    return fig


def transfer_matrix(transfer: dict):
    """Paper Fig. 14: the transfer scores (rows: tasks; columns: the AF learned on each task, the
    all-task AF and ReLU), with each column's mean printed under it."""
    import seaborn as sns

    scores = transfer["scores"]
    rows = list(scores)
    columns = [f"af_{t}" for t in rows] + [c for c in ("af_all_tasks", "relu") if any(c in scores[r] for r in rows)]
    matrix = np.array([[scores[r].get(c, np.nan) for c in columns] for r in rows])
    with_means = np.vstack([matrix, np.nanmean(matrix, axis=0)])  # the paper prints column means under it
    size = max(3.2, 0.32 * len(columns) + 1.5)
    fig, ax = plt.subplots(figsize=(size, 0.8 * size + 0.3))
    sns.heatmap(100 * with_means, ax=ax, vmin=0, vmax=100, cmap="viridis", annot=len(columns) <= 8, fmt=".0f",
                cbar_kws={"label": "score (% of the best on the task)"},
                xticklabels=[c.removeprefix("af_") for c in columns], yticklabels=[*rows, "column mean"])
    ax.axhline(len(rows), color="white", lw=3)
    ax.set_xlabel("activation (AF learned on ...)")
    ax.set_ylabel("task trained")
    return fig
