"""Figures of the tabular track: paper Fig. 5 (model types over the datasets), 20 (per dataset),
6 (test accuracy against complexity), 7 (electricity: learned AF and IAFs, complexity landscapes,
function slices) and 8 (learned activations reused at other widths and depths)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .style import plt

#: Display name and colour of each model key (the fixed keys of the output contract first).
MODELS = {
    "linear": ("Linear", "#bdbdbd"),
    "knn": ("k-NN", "#969696"),
    "random_forest": ("Random forest", "#74c476"),
    "xgboost": ("XGBoost", "#238b45"),
    "mlp_relu": ("ReLU MLP", "#1f4e9c"),
    "mlp_tanh": ("TanH MLP", "#9e9ac8"),
    "mlp_tanh_scaled": ("tanh(αx) MLP", "#6a51a3"),
    "mlp_af": ("Learned-AF MLP", "#e6550d"),
    "iaf_linear": ("IAF & linear", "#fdae6b"),
    "iaf_relu": ("IAF & ReLU MLP", "#d94801"),
    "iaf_af": ("IAF & AF MLP", "#a63603"),
}
ORDER = ("linear", "knn", "random_forest", "xgboost", "mlp_relu", "mlp_tanh", "mlp_tanh_scaled", "mlp_af",
         "iaf_linear", "iaf_relu", "iaf_af")
#: Markers of Fig. 6 per network family / AF variant.
MARKERS = {"mlp_relu": "o", "mlp_tanh": "v", "mlp_tanh_scaled": "^", "af_relu": "s", "af_zeros": "D",
           "af_per_layer": "P", "iaf_linear": "<", "iaf_relu": ">", "iaf_af": "*"}


def label(key: str) -> str:
    return MODELS.get(key, (key.replace("_", " "), None))[0]


def colour(key: str) -> str:
    return MODELS.get(key, (None, "#333333"))[1]


def _models(metrics: Mapping[str, Mapping[str, dict]], datasets: Sequence[str]) -> list[str]:
    present = {m for d in datasets for m in metrics.get(d, {})}
    return [m for m in ORDER if m in present]


def model_types(metrics: Mapping[str, Mapping[str, dict]], datasets: Sequence[str], title: str = ""):
    """Paper Fig. 5: mean test accuracy of each model type over the datasets (bars; the value on
    top), with each dataset's accuracy as a dot (relative to that dataset's mean over models, so
    that sets of different difficulty share one axis: the right panel)."""
    models = _models(metrics, datasets)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 1]})
    means = [100 * np.mean([metrics[d][m]["test_acc"] for d in datasets if m in metrics[d]]) for m in models]
    x = np.arange(len(models))
    ax.bar(x, means, color=[colour(m) for m in models])
    for xi, v in zip(x, means):
        ax.text(xi, v + 0.3, f"{v:.1f}", ha="center", va="bottom", fontsize=6.5)
    lo = min(means) - 5
    ax.set_ylim(max(0, lo), min(100, max(means) + 3))
    ax.set_xticks(x, [label(m) for m in models], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("mean test accuracy (%)")
    ax.set_title(title or f"Model types over {len(datasets)} datasets", fontsize=8)
    rng = np.random.default_rng(0)
    for d in datasets:
        centre = np.mean([metrics[d][m]["test_acc"] for m in models if m in metrics[d]])
        for i, m in enumerate(models):
            if m in metrics[d]:
                ax2.scatter(i + rng.uniform(-0.15, 0.15), 100 * (metrics[d][m]["test_acc"] - centre), s=9,
                            color=colour(m), alpha=0.8, lw=0)
    ax2.axhline(0, color="0.6", lw=0.6)
    ax2.set_xticks(x, [label(m) for m in models], rotation=45, ha="right", fontsize=7)
    ax2.set_ylabel("accuracy - dataset mean (points)")
    ax2.set_title("each dot: one dataset", fontsize=8)
    fig.tight_layout()
    return fig


def per_dataset(metrics: Mapping[str, Mapping[str, dict]], datasets: Sequence[str]):
    """Paper Fig. 20: test accuracy (mean and std over seeds) of each model type, one panel per
    dataset, the y axis zoomed on the panel's range; the dashed line is XGBoost."""
    models = _models(metrics, datasets)
    n = len(datasets)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols, 2.5 * rows), squeeze=False)
    for ax, d in zip(axes.flat, datasets):
        ms = [m for m in models if m in metrics[d]]
        vals = np.array([100 * metrics[d][m]["test_acc"] for m in ms])
        errs = np.array([100 * metrics[d][m]["test_acc_std"] for m in ms])
        ax.bar(np.arange(len(ms)), vals, yerr=errs, color=[colour(m) for m in ms], error_kw={"lw": 0.6})
        if "xgboost" in metrics[d]:
            ax.axhline(100 * metrics[d]["xgboost"]["test_acc"], color=colour("xgboost"), ls="--", lw=0.8)
        span = max(vals.max() - vals.min(), 1.0)
        ax.set_ylim(max(0, vals.min() - 0.4 * span), min(100, vals.max() + 0.25 * span + errs.max()))
        ax.set_xticks([])
        ax.set_title(d, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour(m)) for m in models]
    fig.legend(handles, [label(m) for m in models], loc="lower center", ncol=min(6, len(models)), fontsize=6.5,
               bbox_to_anchor=(0.5, -0.02))
    fig.supylabel("test accuracy (%)", fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def _marker_key(row: dict) -> str:
    return row["variant"] if row["family"] == "mlp_af" else row["family"]


def accuracy_vs_complexity(runs: Sequence[dict], datasets: Sequence[str], baselines: Mapping[str, Mapping[str, dict]] | None = None):
    """Paper Fig. 6: test accuracy against total variation, one marker per trained network
    (every config of the search, every seed), one panel per dataset; marker shape and colour by
    family (learned AFs: from ReLU = square, from zeros = diamond, per layer = plus). XGBoost's
    selected model is the green star when given."""
    n = len(datasets)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.6 * rows), squeeze=False)
    seen = {}
    for ax, d in zip(axes.flat, datasets):
        for r in runs:
            if r["dataset"] != d or r["family"] not in MARKERS and r["family"] != "mlp_af":
                continue
            key = _marker_key(r)
            c = colour(r["family"]) if r["family"] != "mlp_af" else {"af_relu": "#e6550d", "af_zeros": "#fd8d3c",
                                                                      "af_per_layer": "#a63603"}.get(key, "#e6550d")
            h = ax.scatter(r["tv"], 100 * r["test_acc"], marker=MARKERS.get(key, "o"), s=16, color=c, alpha=0.75, lw=0)
            seen.setdefault(key, h)
        if baselines and "xgboost" in baselines.get(d, {}):
            b = baselines[d]["xgboost"]
            h = ax.scatter(b["tv"], 100 * b["test_acc"], marker="*", s=70, color=colour("xgboost"), edgecolor="k", lw=0.4)
            seen.setdefault("xgboost", h)
        ax.set_xscale("log")
        ax.set_title(d, fontsize=8)
        ax.set_xlabel("TV of class probabilities (log)", fontsize=6.5)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    names = {"af_relu": "AF (init ReLU)", "af_zeros": "AF (init zeros)", "af_per_layer": "AF per layer (init ReLU)",
             "xgboost": "XGBoost (selected)"}
    fig.legend(list(seen.values()), [names.get(k, label(k)) for k in seen], loc="lower center",
               ncol=min(6, len(seen)), fontsize=6.5, bbox_to_anchor=(0.5, -0.02))
    fig.supylabel("test accuracy (%)", fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def learned_activations(afs: Mapping[str, dict], iaf: dict | None, dataset: str, max_features: int = 8,
                        trained_iaf: dict | None = None):
    """Paper Fig. 7a: the learned AFs (one curve per variant) and the learned IAFs, one panel per
    input feature (dashed: the identity they started from; ``trained_iaf``: the IAFs of the
    selected IAF model after training, e.g. fine-tuned on a finer grid, drawn over the
    meta-learned ones)."""
    n_iaf = 0 if iaf is None else min(max_features, len(iaf["values"]))
    fig, axes = plt.subplots(1, 1 + n_iaf, figsize=(2.3 * (1 + n_iaf), 2.3), squeeze=False)
    ax = axes[0, 0]
    for name, spec in afs.items():
        ax.plot(spec["knots"], spec["values"], lw=1.3, label=name)
    k = np.asarray(next(iter(afs.values()))["knots"]) if afs else np.linspace(-4.8, 4.8, 49)
    ax.plot(k, np.maximum(k, 0), color="0.6", ls=":", lw=0.8, label="ReLU")
    ax.set_title(f"learned AFs ({dataset})", fontsize=7)
    ax.legend(fontsize=5.5)
    if iaf is not None:
        names = iaf.get("feature_names") or [f"x{j}" for j in range(len(iaf["values"]))]
        for j in range(n_iaf):
            a = axes[0, 1 + j]
            a.plot(iaf["knots"], iaf["knots"], color="0.7", ls="--", lw=0.7)
            a.plot(iaf["knots"], iaf["values"][j], color=colour("iaf_linear"), lw=1.2, label="meta-learned")
            if trained_iaf is not None and j < len(trained_iaf["values"]):
                a.plot(trained_iaf["knots"], trained_iaf["values"][j], color=colour("iaf_relu"), lw=0.6,
                       label=f"selected model ({len(trained_iaf['knots'])} knots)")
            if j == 0:
                a.legend(fontsize=5)
            a.set_title(f"IAF: {names[j]}"[:28], fontsize=7)
            a.tick_params(labelsize=5.5)
    fig.tight_layout()
    return fig


def _view_label(name: str, views: Mapping) -> str:
    model = views["models"].get(name, {})
    family = model.get("family", name)
    acc = model.get("test_acc")
    return f"{label(family)}" + (f"\n{100 * acc:.1f} %" if acc is not None else "")


def landscapes(views: Mapping):
    """Paper Fig. 7b: complexity (TV) over a plane in parameter space for each network; top row
    the global plane along the training trajectory (white: the trajectory, x = the initialisation at
    (1, 0), o = the solution at (0, 0)); bottom row a random filter-normalised plane around the
    solution. One colour scale per row, shared by the models."""
    names = list(views["landscapes"])
    fig, axes = plt.subplots(2, len(names), figsize=(2.5 * len(names), 4.8), squeeze=False)
    for row, plane in enumerate(("global", "local")):
        grids = [np.asarray(views["landscapes"][n][plane]["tv"]) for n in names if plane in views["landscapes"][n]]
        if not grids:
            continue
        vmin, vmax = min(g.min() for g in grids), max(g.max() for g in grids)
        for col, name in enumerate(names):
            ax = axes[row, col]
            v = views["landscapes"][name].get(plane)
            if v is None:
                ax.axis("off")
                continue
            a, b, z = np.asarray(v["a"]), np.asarray(v["b"]), np.asarray(v["tv"])
            im = ax.imshow(z, origin="lower", extent=(a[0], a[-1], b[0], b[-1]), aspect="auto", cmap="magma",
                           vmin=vmin, vmax=vmax)
            ax.grid(False)
            if plane == "global":
                tr = np.asarray(v["trajectory"])
                ax.plot(tr[:, 0], tr[:, 1], color="w", lw=0.8)
                ax.plot([1], [0], "wx", ms=5)
                ax.plot([0], [0], "wo", ms=4)
            else:
                ax.plot([0], [0], "wo", ms=4)
            ax.set_title(_view_label(name, views) if row == 0 else "", fontsize=7)
            ax.tick_params(labelsize=5.5)
        fig.colorbar(im, ax=list(axes[row]), shrink=0.8, label="TV" if row else "TV")
        axes[row, 0].set_ylabel("trajectory plane" if plane == "global" else "random plane", fontsize=7)
    return fig


def slices(views: Mapping):
    """Paper Fig. 7c: the function of each model (probability of the class shown) along two 1-D
    lines through training points (top rows; t = 0 and 1 are the points) and over the 2-D plane
    through three training points (bottom row; the triangle of the points drawn in white)."""
    names = list(views["slices_1d"])
    fig, axes = plt.subplots(3, len(names), figsize=(2.3 * len(names), 6.2), squeeze=False)
    for col, name in enumerate(names):
        for row in range(2):
            line = views["slices_1d"][name][row]
            ax = axes[row, col]
            ax.plot(line["t"], line["y"], color=colour(views["models"][name]["family"]), lw=1.1)
            ax.axvline(0, color="0.7", lw=0.5)
            ax.axvline(1, color="0.7", lw=0.5)
            ax.set_ylim(-0.03, 1.03)
            ax.tick_params(labelsize=5.5)
            if row == 0:
                ax.set_title(_view_label(name, views), fontsize=7)
        s = views["slices_2d"][name]
        u, v, z = np.asarray(s["u"]), np.asarray(s["v"]), np.asarray(s["z"])
        ax = axes[2, col]
        ax.imshow(z, origin="lower", extent=(u[0], u[-1], v[0], v[-1]), cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
        ax.plot([0, 1, 0, 0], [0, 0, 1, 0], color="w", lw=0.6)
        ax.grid(False)
        ax.tick_params(labelsize=5.5)
    axes[0, 0].set_ylabel("1-D slice A", fontsize=7)
    axes[1, 0].set_ylabel("1-D slice B", fontsize=7)
    axes[2, 0].set_ylabel("2-D slice", fontsize=7)
    fig.tight_layout()
    return fig


#: Fig. 8's lines: family of the runs -> (label, line style).
REUSE_STYLES = {"mlp_relu": ("ReLU", "--"), "mlp_af": ("AF", "-"), "iaf_relu": ("IAFs", "-.")}


def reuse(rows: Sequence[dict], dataset: str, meta: Mapping | None = None,
          per_width: Mapping[str, Mapping] | None = None):
    """Paper Fig. 8: test accuracy against width for each depth (left) and against depth for each
    width (middle); ReLU dashed, the learned AF (meta-learned once, at the meta architecture, then
    reused frozen) solid, and when present the IAFs of the selected IAF & ReLU model (frozen, in
    front of fresh ReLU MLPs) dash-dot; mean over seeds. With ``per_width``
    (:func:`pipeline.flows.tabular_summary.reuse_per_width`), a third panel: the paired difference
    to ReLU per width at the depth selected on validation, mean and std over seeds, against zero
    (is the reused activation at least as accurate, beyond the seeds' spread?)."""
    depths = sorted({r["depth"] for r in rows})
    families = [f for f in REUSE_STYLES if any(r["family"] == f for r in rows)]
    cmap = plt.get_cmap("viridis")
    n_panels = 3 if per_width else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(3.8 * n_panels, 3.0))
    for i, depth in enumerate(depths):
        c = cmap(i / max(1, len(depths) - 1) * 0.85)
        for family in families:
            label, style = REUSE_STYLES[family]
            sub = [r for r in rows if r["depth"] == depth and r["family"] == family]
            widths = sorted({r["width"] for r in sub})
            accs = [[100 * r["test_acc"] for r in sub if r["width"] == w] for w in widths]
            axes[0].plot(widths, [np.mean(a) for a in accs], style, marker="o", ms=3, color=c,
                         label=f"{label}, {depth} layer{'s' * (depth > 1)}")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("width")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=5, ncol=len(families))
    meta_txt = f" (AF learned at depth {meta['depth']}, width {meta['width']})" if meta else ""
    axes[0].set_title(f"{dataset}: learned activations reused{meta_txt}", fontsize=7)
    widths = sorted({r["width"] for r in rows})
    for j, w in enumerate(widths):
        c = cmap(j / max(1, len(widths) - 1) * 0.85)
        for family in families:
            label, style = REUSE_STYLES[family]
            accs = [np.mean([100 * r["test_acc"] for r in rows if r["width"] == w and r["depth"] == d and r["family"] == family])
                    for d in depths]
            axes[1].plot(depths, accs, style, marker="o", ms=3, color=c, label=f"{label}, width {w}")
    axes[1].set_xticks(depths)
    axes[1].set_xlabel("hidden layers")
    axes[1].legend(fontsize=5, ncol=len(families))
    axes[1].set_title("against depth (" + ", ".join(f"{s}: {l}" for l, s in
                                                    (REUSE_STYLES[f] for f in families)) + ")", fontsize=7)
    if per_width:
        ws = sorted(per_width, key=int)
        marks = {"af": ("o", colour("mlp_af")), "iaf": ("s", "#7f2704")}
        names = [n for n in marks if any(n in per_width[w] for w in ws)]
        for k, name in enumerate(names):
            at = [i for i, w in enumerate(ws) if name in per_width[w]]
            offset = (k - (len(names) - 1) / 2) * 0.15
            axes[2].errorbar([i + offset for i in at], [100 * per_width[ws[i]][f"{name}_diff"] for i in at],
                             yerr=[100 * per_width[ws[i]][f"{name}_diff_std"] for i in at], fmt=marks[name][0],
                             color=marks[name][1], capsize=3, ms=4,
                             label=f"{name.upper()} - ReLU")
        axes[2].axhline(0.0, color="0.3", ls=":", lw=0.8)
        axes[2].set_xticks(range(len(ws)), ws)
        axes[2].set_xlabel("width")
        axes[2].set_ylabel("reused - ReLU (points)")
        axes[2].legend(fontsize=6)
        n = max(per_width[w]["n_seeds"] for w in ws)
        axes[2].set_title(f"paired difference, depth selected on validation ({n} seeds, std)", fontsize=7)
    fig.tight_layout()
    return fig
