"""Figures of the shortcut-learning track: paper Fig. 9 (left: accuracy on the MNIST- and the
CIFAR-predictive test sets per model, with the unambiguous upper bounds; right: both along the
whole training trajectory)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .style import color, plt

COLORS = {"relu": color("relu"), "gelu": "#969696", "tanh": "#bdbdbd", "sin": "#d9d9d9", "af_mnist": "#e6550d",
          "af_cifar": "#31a354", "iaf_mnist": "#a63603", "iaf_cifar": "#006d2c", "relu_upper_bound_mnist": "#9ecae1",
          "relu_upper_bound_cifar": "#c7e9c0"}
ORDER = ("relu", "gelu", "tanh", "sin", "af_mnist", "af_cifar", "iaf_mnist", "iaf_cifar", "relu_upper_bound_mnist",
         "relu_upper_bound_cifar")
#: Fixed activations trained like ReLU (pipeline.flows.shortcut.CONTROLS).
CONTROLS = ("gelu", "tanh", "sin")


def _models(names) -> list[str]:
    return [m for m in ORDER if m in names] + sorted(set(names) - set(ORDER))


def test_accuracy_bars(ax, entries: Mapping[str, dict], tiles: tuple[str, str] = ("MNIST", "CIFAR"), chance: float = 0.5):
    """Paper Fig. 9 (left) on ``ax``: accuracy on each unambiguous test set per model (mean over
    seeds, std as error bar); the dotted line is chance."""
    models = _models(entries)
    xs = np.arange(2)
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        e = entries[model]
        acc = [e["test_acc_mnist"], e["test_acc_cifar"]]
        std = [e.get("test_acc_mnist_std", 0.0), e.get("test_acc_cifar_std", 0.0)]
        hatch = "//" if model.startswith("relu_upper_bound") else ".." if model in CONTROLS else None
        ax.bar(xs + (i - (len(models) - 1) / 2) * width, acc, width, yerr=std, color=COLORS.get(model, "#666"),
               hatch=hatch, edgecolor="white", label=model, capsize=1.5, error_kw={"lw": 0.6})
    ax.axhline(chance, color="0.3", ls=":", lw=0.8)
    ax.set_xticks(xs, [f"{tiles[0]}-predictive\ntest set", f"{tiles[1]}-predictive\ntest set"], fontsize=7)
    ax.set_ylim(max(0.0, chance - 0.1), 1.02)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)


def trajectories(ax, curves: Mapping[str, Sequence[Sequence[dict]]],
                 models: Sequence[str] = ("relu", "af_mnist", "af_cifar", "iaf_mnist", "iaf_cifar"),
                 chance: float = 0.5):
    """Paper Fig. 9 (right) on ``ax``: accuracy on the MNIST-predictive (dashed) and the
    CIFAR-predictive (solid) test sets against training steps, mean over seeds.
    ``curves[model]`` is a list (seeds) of curves with ``step``, ``test_acc_mnist``, ``test_acc_cifar``."""
    for model in [m for m in models if m in curves]:
        runs = curves[model]
        n = min(len(run) for run in runs)
        steps = np.array([row["step"] for row in runs[0][:n]])
        for key, style in (("test_acc_mnist", "--"), ("test_acc_cifar", "-")):
            values = np.array([[row[key] for row in run[:n]] for run in runs]).mean(0)
            ax.plot(steps, values, style, color=COLORS.get(model, "#666"), lw=1.3,
                    label=f"{model}" if key == "test_acc_cifar" else None)
    ax.plot([], [], "--", color="0.4", label="MNIST-predictive (dashed)")
    ax.plot([], [], "-", color="0.4", label="CIFAR-predictive (solid)")
    ax.axhline(chance, color="0.3", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training steps")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(max(0.0, chance - 0.1), 1.02)
    ax.legend(fontsize=5.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)


def shortcut_learning(entries: Mapping[str, dict], curves: Mapping[str, Sequence[Sequence[dict]]], data_label: str = "",
                      tiles: tuple[str, str] = ("MNIST", "CIFAR"), chance: float = 0.5):
    """Paper Fig. 9: the bars (left) and the trajectories (right) in one figure; ``data_label``
    names the collages' data (e.g. ``mnist_cifar`` or ``bundled_digits``); ``chance``: 1 / classes."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.6), gridspec_kw={"width_ratios": [1, 1.25]})
    test_accuracy_bars(left, entries, tiles, chance)
    trajectories(right, curves, chance=chance)
    left.set_title("final accuracy (checkpoint of best held-out accuracy)", fontsize=7.5)
    right.set_title("along the whole training trajectory", fontsize=7.5)
    if data_label:
        fig.suptitle(f"Shortcut learning on collages ({data_label})", fontsize=8.5)
    fig.tight_layout()
    return fig


def iaf_maps(maps: Mapping[str, np.ndarray], tiles: tuple[str, str] = ("MNIST", "CIFAR"), data_label: str = ""):
    """Per pixel of the collage, the share of its variation that passes each model's learned input
    activations (``maps[model]``: ``(2 s, s)``, top tile the simple one, ``nan`` for constant pixels,
    drawn grey): where the IAFs keep (1), amplify (> 1) or silence (0) each tile. One panel per
    model, a shared colour scale."""
    models = _models(maps)
    fig, axes = plt.subplots(1, len(models), figsize=(2.2 * len(models) + 1.2, 4.0), squeeze=False)
    top = max(float(np.nanpercentile(maps[m], 99)) for m in models) or 1.0
    cmap = plt.get_cmap("magma").with_extremes(bad="0.75")
    for i, (ax, model) in enumerate(zip(axes[0], models)):
        grid = maps[model]
        side = grid.shape[1]
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
        ax.grid(False)
        ax.axhline(side - 0.5, color="white", lw=0.8)
        ax.set_title(f"{model}\nmean: top {np.nanmean(grid[:side]):.2f} | bottom {np.nanmean(grid[side:]):.2f}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([side / 2 - 0.5, 1.5 * side - 0.5], [tiles[0], tiles[1]] if i == 0 else ["", ""], fontsize=6.5)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="output std / input std per pixel (identity: 1)")
    fig.suptitle("Learned input activations per pixel" + (f" ({data_label})" if data_label else ""), fontsize=8.5, y=0.99)
    return fig


# --- report section ------------------------------------------------------------------------


def report_section(metrics: Mapping[str, Mapping[str, dict]], tables: Mapping | None = None) -> list[str]:
    """Markdown of the shortcut track for ``reports/report.md``: accuracy on each unambiguous test
    set per model, the comparisons of the acceptance criteria, and which collages were used
    (``tables``: ``reports/tables/shortcut.json``)."""
    tables = tables or {}
    data = tables.get("data", {})
    prov = data.get("provenance", {})
    chance = tables.get("chance", 0.5)
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = []
    if prov:
        lines += [f"Collages: **{prov.get('data')}** ({prov.get('source')}: {prov.get('location')}); simple tile "
                  f"{prov.get('simple', {}).get('dataset')} {prov.get('simple', {}).get('classes')}, complex tile "
                  f"{prov.get('complex', {}).get('dataset')} {prov.get('complex', {}).get('classes')}"
                  + (f" with noise sigma {prov.get('complex_noise')}" if prov.get("complex_noise") else "")
                  + f". Profile `{tables.get('profile', '?')}`; {tables.get('n_classes', 2)} classes, chance = {pct(chance)} %. "
                  "\"MNIST\"/\"CIFAR\" name the simple/complex tile whatever the data.", ""]
    for dataset, entries in metrics.items():
        lines += [f"| {dataset}: model | MNIST-predictive test | CIFAR-predictive test | TV | kept step |",
                  "|---|---|---|---|---|"]
        for model in _models(entries):
            e = entries[model]
            lines.append(f"| {model} | {pct(e['test_acc_mnist'])} ± {pct(e['test_acc_mnist_std'])} | "
                         f"{pct(e['test_acc_cifar'])} ± {pct(e['test_acc_cifar_std'])} | {e['tv']:.2f} | {e['best_step']:.0f} |")
        lines.append("")
        relu = entries.get("relu")
        if relu:
            lines.append(f"- ReLU on the CIFAR-predictive set: {pct(relu['test_acc_cifar'])} % "
                         f"({100 * (relu['test_acc_cifar'] - chance):+.1f} points from chance).")
        for kind, label in (("af", "AF"), ("iaf", "IAF")):
            towards_cifar, towards_mnist = entries.get(f"{kind}_cifar"), entries.get(f"{kind}_mnist")
            if relu and towards_cifar:
                lines.append(f"- {label}-cifar on the CIFAR-predictive set: {pct(towards_cifar['test_acc_cifar'])} % "
                             f"({100 * (towards_cifar['test_acc_cifar'] - relu['test_acc_cifar']):+.1f} points vs ReLU"
                             f"; MNIST-predictive {pct(towards_cifar['test_acc_mnist'])} %).")
            if towards_mnist:
                lines.append(f"- {label}-mnist on the MNIST-predictive set: {pct(towards_mnist['test_acc_mnist'])} %"
                             + (f" (ReLU {pct(relu['test_acc_mnist'])} %)." if relu else "."))
        for model, tiles in tables.get("iaf_pass_through", {}).items():
            lines.append(f"- {model} passes {tiles['simple']:.2f} of the MNIST tile's pixel variation and "
                         f"{tiles['complex']:.2f} of the CIFAR tile's (output std / input std over the training "
                         "collages, mean over pixels; identity 1, silenced 0; per pixel in the IAF maps).")
        controls = [m for m in CONTROLS if m in entries]
        if relu and controls:
            shifts = {m: 100 * (entries[m]["test_acc_cifar"] - relu["test_acc_cifar"]) for m in controls}
            lines.append("- Fixed activations (controls, no meta-learning) on the CIFAR-predictive set: "
                         + ", ".join(f"{m} {pct(entries[m]['test_acc_cifar'])} % ({shifts[m]:+.1f})" for m in controls)
                         + ": the shift a change of activation alone gives.")
        ub = entries.get("relu_upper_bound_cifar")
        if ub:
            lines.append(f"- Upper bound (ReLU trained on CIFAR-predictive collages): {pct(ub['test_acc_cifar'])} % "
                         "on the CIFAR-predictive set.")
        lines.append("")
    return lines
