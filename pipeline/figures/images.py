"""Figures of the image track: paper Fig. 2 (test accuracy per set, classification and regression),
Fig. 3 (the learned AFs, GELU overlaid on those learned from a ReLU) and Fig. 4 (test accuracy
against TV complexity, one marker per model)."""

from __future__ import annotations

from typing import Mapping, Sequence

import math

import numpy as np

from .style import color, plt

#: Colours and markers of the image track's activations (ReLU keeps the shared palette's blue).
COLORS = {"relu": color("relu"), "gelu": color("gelu"), "tanh": color("tanh"),
          "af_relu_init": "#e6550d", "af_zeros_init": "#31a354",
          "af_relu_init_per_layer": "#fdae6b", "af_zeros_init_per_layer": "#a1d99b"}
MARKERS = {"relu": "o", "af_relu_init": "^", "af_zeros_init": "s", "af_relu_init_per_layer": "v",
           "af_zeros_init_per_layer": "D"}
TASK_TITLES = {"classification": "(a) classification", "regression": "(b) regression (class id, MSE)"}


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, x * Phi(x) (Hendrycks and Gimpel), the function the paper finds AFs learned from ReLU resemble."""
    x = np.asarray(x, dtype=float)
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _color(name: str) -> str:
    return COLORS.get(name, color(name))


def _order(models) -> list[str]:
    rank = {m: i for i, m in enumerate(COLORS)}
    return sorted(models, key=lambda m: (rank.get(m, len(rank)), m))


def accuracy_bars(metrics: Mapping[str, Mapping[str, dict]], tasks: Sequence[str] = ("classification", "regression")):
    """Paper Fig. 2: test accuracy (mean over seeds, std as error bar) of each activation on each
    set, one panel per task. ``metrics``: the output contract, ``{"<set>/<task>": {model: entry}}``."""
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        keys = [k for k in metrics if k.endswith(f"/{task}")]
        datasets = [k.rsplit("/", 1)[0] for k in keys]
        models = _order({m for k in keys for m in metrics[k]})
        width = 0.8 / max(1, len(models))
        lows = []
        for i, model in enumerate(models):
            xs = np.arange(len(keys)) + (i - (len(models) - 1) / 2) * width
            acc = [metrics[k].get(model, {}).get("test_acc", np.nan) for k in keys]
            std = [metrics[k].get(model, {}).get("test_acc_std", 0.0) for k in keys]
            ax.bar(xs, acc, width, yerr=std, color=_color(model), label=model, capsize=1.5, error_kw={"lw": 0.6})
            lows += [a for a in acc if np.isfinite(a)]
        ax.set_xticks(np.arange(len(keys)), datasets, fontsize=7)
        low = min(lows) if lows else 0.0
        ax.set_ylim(max(0.0, low - 0.1), 1.0)
        ax.set_ylabel("test accuracy")
        ax.set_title(TASK_TITLES.get(task, task), fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=6.5, loc="lower center", ncol=min(5, max(1, len(labels))),
               bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def learned_activations(panels: Sequence[dict], title: str = ""):
    """Paper Fig. 3: the AFs learned for one set. Each panel: ``task``, ``init``, ``shared``
    (``{"knots", "values"}`` or ``None``) and ``per_layer`` (a list of them, possibly empty). GELU
    (dotted) is overlaid where the init is ``relu``; ReLU (thin grey) for reference."""
    tasks = list(dict.fromkeys(p["task"] for p in panels))
    inits = list(dict.fromkeys(p["init"] for p in panels))
    fig, axes = plt.subplots(len(tasks), len(inits), figsize=(2.7 * len(inits), 2.3 * len(tasks)), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for p in panels:
        ax = axes[tasks.index(p["task"])][inits.index(p["init"])]
        ax.set_visible(True)
        name = f"af_{p['init']}_init"
        curves = [p["shared"]] if p.get("shared") else []
        knots = np.asarray((curves or p.get("per_layer") or [{"knots": [-4.8, 4.8]}])[0]["knots"])
        ax.plot(knots, np.maximum(knots, 0), color="0.7", lw=0.8, label="ReLU")
        if p["init"] == "relu":
            ax.plot(knots, gelu(knots), ":", color="k", lw=1.2, label="GELU")
        for layer, spec in enumerate(p.get("per_layer") or []):
            ax.plot(spec["knots"], spec["values"], "--", color=_color(f"{name}_per_layer"), lw=1.0,
                    label="per layer" if layer == 0 else None)
        if p.get("shared"):
            ax.plot(p["shared"]["knots"], p["shared"]["values"], color=_color(name), lw=1.6, label="shared")
        ax.set_title(f"{p['task']}, init {p['init']}", fontsize=7.5)
        ax.set_xlabel("pre-activation", fontsize=7)
        ax.legend(fontsize=5.5, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=8.5)
    fig.tight_layout()
    return fig


def accuracy_vs_tv(runs: Sequence[dict], dataset: str, spearman: Mapping[str, dict] | None = None,
                   tasks: Sequence[str] = ("classification", "regression")):
    """Paper Fig. 4: test accuracy against TV complexity on one set, one marker per model
    (activation x width x lr x seed), one panel per task; the title gives the Spearman correlation
    across all models of the panel (``spearman[task]["rho"]``)."""
    tasks = [t for t in tasks if any(r["dataset"] == dataset and r["task"] == t for r in runs)]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(3.6 * max(1, len(tasks)), 3.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        sub = [r for r in runs if r["dataset"] == dataset and r["task"] == task]
        for model in _order({r["activation"] for r in sub}):
            rs = [r for r in sub if r["activation"] == model]
            ax.scatter([r["tv"] for r in rs], [r["test_acc"] for r in rs], s=16, marker=MARKERS.get(model, "o"),
                       color=_color(model), edgecolors="white", linewidths=0.3, label=model, alpha=0.9)
        rho = (spearman or {}).get(task, {}).get("rho")
        ax.set_title(f"{dataset}: {TASK_TITLES.get(task, task)}\nSpearman(acc, TV) = "
                     + ("n/a" if rho is None else f"{rho:+.2f}"), fontsize=7.5)
        ax.set_xlabel("total variation (complexity)")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=5.5, loc="best")
    fig.tight_layout()
    return fig


# --- report section ------------------------------------------------------------------------

LEARNED_SHARED = ("af_relu_init", "af_zeros_init")


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def report_section(metrics: Mapping[str, Mapping[str, dict]], tables: Mapping | None = None) -> list[str]:
    """Markdown of the image track for ``reports/report.md``: results per set and task (test
    accuracy %, mean ± std over seeds at the grid point selected on validation), the Spearman
    correlation of accuracy and TV per set for classification and regression with the mean accuracy
    and TV of each activation's models, the comparisons of the acceptance criteria, and which data
    each result used (``tables``: ``reports/tables/images.json``)."""
    tables = tables or {}
    models = _order({m for e in metrics.values() for m in e})
    lines = [f"Profile `{tables.get('profile', '?')}`. Test accuracy in % (mean ± std over seeds) at the width and "
             "learning rate of best mean validation accuracy; TV of those models in brackets.", "",
             "| set / task | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for key in sorted(metrics, key=lambda k: (k.rsplit("/", 1)[1], k)):
        row = metrics[key]
        best = max(e["test_acc"] for e in row.values())
        cells = []
        for m in models:
            e = row.get(m)
            cell = "" if e is None else f"{_pct(e['test_acc'])} ± {_pct(e['test_acc_std'])} ({e['tv']:.1f})"
            cells.append(f"**{cell}**" if e is not None and e["test_acc"] == best else cell)
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    spearman = tables.get("spearman", {})
    if spearman:
        fmt = lambda s: "n/a" if not s or s.get("rho") is None else f"{s['rho']:+.2f} (p = {s['p']:.2g}, n = {s['n']})"  # noqa: E731
        lines += ["", "Spearman correlation of test accuracy and TV across all models (activations x grid x seeds):", "",
                  "| set | classification | regression |", "|---|---|---|"]
        lines += [f"| {d} | {fmt(t.get('classification'))} | {fmt(t.get('regression'))} |" for d, t in sorted(spearman.items())]
    by_activation = tables.get("by_activation", {})
    if by_activation:
        lines += ["", "Mean over each activation's models (all grid points and seeds): test accuracy % / train "
                  "accuracy % / TV. The correlation above pools these groups.", ""]
        for d, tasks in sorted(by_activation.items()):
            for task, acts in sorted(tasks.items()):
                lines.append(f"- {d}/{task}: " + "; ".join(
                    f"{m} {_pct(e['test_acc'])} / {_pct(e['train_acc'])} / {e['tv']:.2f}"
                    for m, e in ((m, acts[m]) for m in _order(acts))))
    lines += [""]
    for key in sorted(metrics):
        row, (dataset, task) = metrics[key], key.rsplit("/", 1)
        if "relu" not in row:
            continue
        relu = row["relu"]["test_acc"]
        learned = {m: e["test_acc"] for m, e in row.items() if m.startswith("af_")}
        if not learned:
            continue
        best = max(learned, key=learned.get)
        inits = ", ".join(f"{m} {100 * (learned[m] - relu):+.1f}" for m in LEARNED_SHARED if m in learned)
        lines.append(f"- {key}: best learned `{best}` {_pct(learned[best])} vs ReLU {_pct(relu)} "
                     f"({100 * (learned[best] - relu):+.1f} points; {inits}).")
    data = tables.get("data", {})
    if data:
        lines += ["", "Data used:", ""]
        for d, info in sorted(data.items()):
            prov = info.get("provenance", {})
            rows = info.get("rows", {})
            lines.append(f"- {d}: {prov.get('source', '?')} ({prov.get('location', '?')}); rows "
                         + ", ".join(f"{k} {v}" for k, v in rows.items()) + f"; {info.get('split_rule', '')}")
    skipped = tables.get("skipped", {})
    if skipped:
        lines += ["", "Skipped sets (not available from the configured source):", ""]
        lines += [f"- {d}: {note}" for d, note in skipped.items()]
    return lines
