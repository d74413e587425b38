"""The Markdown report: every figure with a caption naming the paper figure it mirrors, the
results tables read from ``reports/metrics/*.json`` (the output contract), and the benchmark
records of ``reports/benchmarks/*.json`` (:mod:`pipeline.figures.performance`)."""

from __future__ import annotations

import json
from pathlib import Path

from .images import report_section as images_report
from .performance import report_section as performance_report
from .shortcut import report_section as shortcut_report

#: Caption of each figure family, by the file-name prefix its stage writes.
CAPTIONS = {
    "fig11_curves": "Paper Fig. 11: training (dotted) and test (solid) accuracy against optimisation steps, "
                    "mean and min-max band over seeds; ReLU, the meta-learned AF and the non-learned controls.",
    "fig12_learned_afs": "Paper Fig. 12: the AFs meta-learned per task, drawn in colour over the pre-activation "
                         "range the trained model visits (1st-99th percentile); title: dominant frequency and "
                         "share of knots that received meta-gradient.",
    "fig13_steps": "Paper Fig. 13: steps to 95 % test accuracy against the train fraction and the width "
                   "(ReLU dashed, learned AF solid; hollow markers: never reached within the budget). The AF is "
                   "the one learned at the profile's train fraction and width, reused unchanged.",
    "fig14_transfer": "Paper Fig. 14: transfer of learned AFs across tasks (score = fraction of the best "
                      "convergence speed on the row's task, or of the best accuracy when no activation reaches "
                      "95 %); column means under the matrix.",
    "fig5_model_types": "Paper Fig. 5: mean test accuracy of each model type over the datasets (left; each model "
                        "selected on validation accuracy per seed), and each dataset's accuracy relative to that "
                        "dataset's mean over models (right).",
    "fig20_per_dataset": "Paper Fig. 20: test accuracy per dataset (mean and std over seeds); dashed: XGBoost.",
    "fig6_accuracy_vs_tv": "Paper Fig. 6: test accuracy against complexity (total variation of the class "
                           "probabilities along paths between training rows), one marker per trained network "
                           "(every config of the search budget and every seed); star: the selected XGBoost.",
    "fig7a_learned_activations": "Paper Fig. 7a: the AFs meta-learned on the focus dataset (from a ReLU and from zeros) "
                                 "and the learned IAFs, one per input feature (dashed: the identity they start from).",
    "fig7b_landscapes": "Paper Fig. 7b: complexity landscapes: TV over a plane in parameter space through the "
                        "trained solution (o); top: the plane of the training trajectory (white line; x = "
                        "initialisation), bottom: a random filter-normalised plane around the solution.",
    "fig7c_slices": "Paper Fig. 7c: the function (class probability) of the ReLU, TanH, learned-AF, IAF and XGBoost "
                    "models along two lines through training points (t = 0, 1) and over the plane through three "
                    "training points (white triangle).",
    "fig8_reuse": "Paper Fig. 8: learned activations reused frozen at other widths and depths, against ReLU (dashed) "
                  "at the same size; mean over seeds. Solid: the AF meta-learned once (at the meta architecture); "
                  "dash-dot: the IAFs of the selected IAF & ReLU model (trained at its size) in front of fresh ReLU "
                  "MLPs. Right: per width, the paired difference to ReLU at the depth selected on validation (mean "
                  "and std over seeds).",
    "fig2_accuracy": "Paper Fig. 2: test accuracy of ReLU and learned-AF MLPs on each image set, (a) classification, "
                     "(b) regression (class id as a scalar, MSE, accuracy = rounding to the nearest id); mean and "
                     "std over seeds at the grid point selected on validation accuracy.",
    "fig3_afs": "Paper Fig. 3: the AFs learned on this set from a ReLU and from zeros, shared (solid) and one per "
                "layer (dashed), for classification and regression; GELU (dotted) overlaid where the init is ReLU.",
    "fig4_tv": "Paper Fig. 4: test accuracy against complexity (TV along paths between training images), one "
               "marker per model (activation x width x learning rate x seed); title: Spearman correlation.",
    "fig9_shortcut": "Paper Fig. 9: shortcut learning on collages; left: accuracy on the MNIST-predictive and the "
                     "CIFAR-predictive test sets (ReLU, AF-mnist, AF-cifar, IAF-mnist, IAF-cifar: per-pixel input activations "
                     "before a ReLU MLP; dotted grey: fixed activations trained "
                     "like ReLU, as controls; hatched: ReLU trained on unambiguous collages); right: both along the "
                     "whole training trajectory (dashed: MNIST, solid: CIFAR).",
    "fig9_iafs": "Beyond the paper (Fig. 9's IAF models): per pixel of the collage (top: MNIST tile, bottom: CIFAR "
                 "tile), the share of the pixel's variation over the training collages that passes the input "
                 "activation learned with V = the MNIST- or the CIFAR-predictive set (output std / input std; "
                 "identity 1, silenced 0; grey: constant pixels).",
}

PAPER_NOTES = {
    "tabular": "Paper (Sec. 3.3, Fig. 5, 20): vanilla MLPs trail trees; learned AFs close the gap; IAFs do best, "
               "sometimes above trees; accuracy peaks at a dataset-specific complexity (Fig. 6).",
    "images": "Paper (Sec. 3.1-3.2, Fig. 2-4): for classification ReLU and learned AFs are within a small margin and "
              "the AF learned from ReLU resembles GELU; for regression learned AFs (esp. from zeros) are clearly "
              "better and accuracy correlates with TV.",
    "shortcut": "Paper (Sec. 3.4, Fig. 9): ReLU relies on the MNIST tile (CIFAR test at chance); each learned AF "
                "steers the model towards its tile, below a model trained on unambiguous data.",
    "algorithmic": "Paper (Sec. 3.5): on a+b mod 27 ReLU groks at about 9e3 steps and the learned AF converges "
                   "by about 1e3 (about 10x faster).",
}


def caption_for(path: Path) -> str:
    for prefix, caption in CAPTIONS.items():
        if path.stem.startswith(prefix):
            return caption
    return path.stem.replace("_", " ")


def algorithmic_section(metrics: dict) -> list[str]:
    lines = ["| task | model | steps to 95 % (median) | per seed | final test acc | final train acc | TV |",
             "|---|---|---|---|---|---|---|"]
    ratios = []
    transfer = metrics.get("transfer")
    for task, models in metrics.items():
        if task == "transfer":
            continue
        order = sorted(models, key=lambda m: (m != "af", m != "relu", m))
        for model in order:
            v = models[model]
            steps = "never" if v["steps_to_95"] is None else f"{v['steps_to_95']:g}"
            per_seed = ", ".join("never" if s is None else str(s) for s in v["steps_to_95_per_seed"])
            lines.append(f"| {task} | {model} | {steps} | {per_seed} | {v['test_acc']:.3f} ± {v['test_acc_std']:.3f} "
                         f"| {v['final_train_acc']:.3f} | {v['tv']:.2f} |")
        af = models.get("af", {}).get("steps_to_95")
        relu = models.get("relu", {}).get("steps_to_95")
        controls = [v["steps_to_95"] for m, v in models.items() if m not in ("af", "relu") and v["steps_to_95"]]
        if af:
            ratios.append(f"- {task}: ReLU needs {relu / af:.1f}x the steps of the learned AF" if relu else
                          f"- {task}: ReLU never reached 95 % within the budget; the learned AF did at {af:g} steps")
            if controls:
                ratios[-1] += f"; the best non-learned control needs {min(controls) / af:.1f}x."
    if transfer:
        ours, paper = transfer["column_mean"], transfer["paper_column_mean"]
        fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
        n_tasks = len(transfer["scores"])
        ratios += ["", f"Transfer (paper Fig. 14) over {n_tasks} tasks (the paper: 22), mean column score in %:", "",
                   "| column | this run | paper |", "|---|---|---|"]
        ratios += [f"| {name} | {fmt(ours[name])} | {paper[name]:.1f} |" for name in ("task_specific", "relu", "all_tasks")]
    return lines + [""] + ratios



TABULAR_ORDER = ("linear", "knn", "random_forest", "xgboost", "mlp_relu", "mlp_tanh", "mlp_tanh_scaled", "mlp_af",
                 "iaf_linear", "iaf_relu", "iaf_af")


def tabular_section(metrics: dict, root: Path) -> list[str]:
    """Results table (test accuracy %, mean ± std over seeds; mean over datasets last), the variant
    means, the acceptance numbers of ``reports/tables/tabular.json`` and the skipped datasets."""
    summary_path = root / "tables" / "tabular.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    datasets = summary.get("datasets") or list(metrics)
    models = [m for m in TABULAR_ORDER if any(m in metrics.get(d, {}) for d in datasets)]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    grouped, ordered = summary.get("group_by") or {}, summary.get("order_by") or {}
    exceptions = ([("whole groups of a column (no group in two splits) for "
                    + ", ".join(f"{d} ({c})" for d, c in grouped.items()))] if grouped else []) + \
                 ([("groups of a column in ascending order (train on the lowest values, test on the highest) for "
                    + ", ".join(f"{d} ({c})" for d, c in ordered.items()))] if ordered else [])
    split = "random rows (the benchmark's protocol)" + (", except " + "; ".join(exceptions) if exceptions else "")
    lines = [f"Profile `{summary.get('profile', '?')}`; each model selected on validation accuracy per seed; splits: {split}.",
             "", "| dataset | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for d in datasets:
        row = metrics.get(d, {})
        best = max((row[m]["test_acc"] for m in models if m in row), default=None)
        cells = []
        for m in models:
            if m not in row:
                cells.append("")
                continue
            cell = f"{pct(row[m]['test_acc'])} ± {pct(row[m]['test_acc_std'])}"
            cells.append(f"**{cell}**" if row[m]["test_acc"] == best else cell)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    means = summary.get("means", {})
    lines.append("| **mean** | " + " | ".join(pct(means[m]) if means.get(m) is not None else "" for m in models) + " |")
    extras = sorted(m for m in means if m not in TABULAR_ORDER and means[m] is not None)
    if extras:
        lines += ["", "Variants (mean test accuracy over the datasets): "
                  + ", ".join(f"{m} {pct(means[m])}" for m in extras) + "."]
    acc = summary.get("acceptance", {})
    lines += [""]
    if "best_learned_vs_relu" in acc:
        a = acc["best_learned_vs_relu"]
        lines.append(f"- Best learned variant `{a['model']}` {pct(a['mean'])} vs ReLU MLP {pct(a['relu'])}: "
                     f"{a['gap_points']:+.1f} points (target >= +1.0).")
    if "best_iaf_vs_xgboost" in acc:
        a = acc["best_iaf_vs_xgboost"]
        lines.append(f"- Best IAF variant `{a['model']}` {pct(a['mean'])} vs XGBoost {pct(a['xgboost'])}: "
                     f"{a['gap_points']:+.1f} points (target >= -0.5).")
    if "learned_beats_xgboost" in acc:
        a = acc["learned_beats_xgboost"]
        where = "; ".join(f"{d} ({', '.join(f'{m} {g:+.2f}' for m, g in ms.items())})" for d, ms in a["datasets"].items())
        lines.append(f"- A learned variant (AF or IAF) beats XGBoost (higher mean test accuracy, margins in points) on "
                     f"{a['n_datasets']} of {a['of']} datasets"
                     + (f": {where}." if where else "."))
    if "iaf_tv_vs_relu" in acc:
        a = acc["iaf_tv_vs_relu"]
        iafs = ", ".join(f"{m} {v['tv']:.3f}" for m, v in a["iaf"].items())
        lines.append(f"- TV on {a['dataset']} (selected models, mean over seeds): ReLU MLP {a['relu_tv']:.3f}; {iafs}.")
    if "fig8_reuse" in acc:
        a = acc["fig8_reuse"]
        what = {"af": "the AF meta-learned from ReLU", "iaf": "the IAFs of the selected IAF & ReLU model (ReLU behind them)"}
        for name in a["reused"]:
            label = name.upper()
            per = "; ".join(f"width {w}: {label} {pct(v[name])} vs ReLU {pct(v['relu'])} "
                            f"({100 * v[f'{name}_diff']:+.2f} ± {100 * v[f'{name}_diff_std']:.2f}, {v[f'{name}_n_seeds']} seeds)"
                            for w, v in a["per_width"].items() if name in v)
            verdict = "at least as accurate as ReLU at every width" if a[f"pass_{name}"] else "below ReLU at some width"
            lines.append(f"- Fig. 8 on {a['dataset']}, {what[name]} reused frozen (per width, the depth selected on "
                         f"validation per seed; paired difference {label} - ReLU, mean ± std over seeds): {per}; "
                         f"{verdict}; at least as accurate (mean over seeds) in {a[f'{name}_at_least_relu']} of "
                         f"{a['of']} (depth, width) cells.")
    skipped = summary.get("skipped", {})
    if skipped:
        lines += ["", "Skipped datasets (not available from the configured source):", ""]
        lines += [f"- {d}: {note}" for d, note in skipped.items()]
    return lines


def _tables(root: Path, track: str) -> dict:
    path = root / "tables" / f"{track}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def build_report(reports_dir: str | Path = "reports") -> str:
    """The report's Markdown from the metrics and figures present under ``reports_dir``."""
    root = Path(reports_dir)
    out = ["# Report", "",
           "Generated by `dvc repro` (stage `report`) from `reports/metrics/*.json` and `reports/figures/`.", ""]
    sections = {"algorithmic": ("Algorithmic tasks and grokking (paper Sec. 3.5, 4)", algorithmic_section),
                "tabular": ("Tabular data (paper Sec. 3.3)", lambda m: tabular_section(m, root)),
                "images": ("Image classification and regression (paper Sec. 3.1, 3.2)",
                           lambda m: images_report(m, _tables(root, "images"))),
                "shortcut": ("Shortcut learning (paper Sec. 3.4)", lambda m: shortcut_report(m, _tables(root, "shortcut")))}
    for track, (title, table) in sections.items():
        metrics_path = root / "metrics" / f"{track}.json"
        if not metrics_path.is_file():
            continue
        out += [f"## {title}", "", PAPER_NOTES.get(track, ""), ""]
        out += table(json.loads(metrics_path.read_text())) + [""]
        for fig in sorted((root / "figures" / track).glob("*.png")):
            out += [f"![{fig.stem}](figures/{track}/{fig.name})", "", f"*{caption_for(fig)}*", ""]
    out += ["## Performance", ""] + performance_report(root / "benchmarks")
    out += recorded_runs(root)
    return "\n".join(out)


def recorded_runs(root: Path) -> list[str]:
    """A section linking the recorded runs of larger profiles (``<root>/runs/*/report.md``), each by
    its title (the file's first heading)."""
    reports = sorted((root / "runs").glob("*/report.md"))
    if not reports:
        return []
    lines = ["", "## Recorded runs", "",
             "Runs of the larger profiles and of the split checks, each with its commit, settings and time:", ""]
    for path in reports:
        title = next((line[2:].strip() for line in path.read_text().splitlines() if line.startswith("# ")), path.parent.name)
        lines.append(f"- [{title}](runs/{path.parent.name}/report.md)")
    return lines + [""]


def headline(reports_dir: str | Path = "reports") -> dict:
    """The few numbers ``dvc metrics show`` prints: per track, each model's test accuracy averaged
    over the datasets (shortcut: on each unambiguous test set); for the algorithmic track the
    median steps to 95 % of ReLU and the learned AF per task, their ratio, and the transfer column
    means. The full per-dataset metrics stay in ``reports/metrics/<track>.json``."""
    root = Path(reports_dir) / "metrics"
    out: dict = {}
    for track in ("tabular", "images", "shortcut"):
        path = root / f"{track}.json"
        if not path.is_file():
            continue
        groups: dict[str, dict[str, dict[str, list[float]]]] = {}  # task kind -> model -> metric -> values
        for dataset, models in json.loads(path.read_text()).items():
            kind = dataset.split("/")[1] if "/" in dataset else "all"  # images: <name>/classification
            for model, values in models.items():
                for key in ("test_acc", "test_acc_mnist", "test_acc_cifar"):
                    if isinstance(values, dict) and isinstance(values.get(key), (int, float)):
                        groups.setdefault(kind, {}).setdefault(model, {}).setdefault(key, []).append(values[key])
        summary = {kind: {model: {f"mean_{k}": round(sum(v) / len(v), 4) for k, v in keys.items()}
                          for model, keys in sorted(per_model.items())} for kind, per_model in groups.items()}
        out[track] = summary.get("all", summary) if list(summary) == ["all"] else summary
    path = root / "algorithmic.json"
    if path.is_file():
        metrics = json.loads(path.read_text())
        track: dict = {}
        for task, models in metrics.items():
            if task == "transfer":
                track["transfer_column_mean"] = {k: None if v is None else round(v, 1)
                                                 for k, v in models["column_mean"].items()}
                continue
            relu, af = models.get("relu", {}).get("steps_to_95"), models.get("af", {}).get("steps_to_95")
            controls = [v["steps_to_95"] for m, v in models.items() if m not in ("af", "relu") and v["steps_to_95"]]
            track[task] = {"steps_to_95_relu": relu, "steps_to_95_af": af,
                           "relu_over_af": round(relu / af, 2) if relu and af else None,
                           "best_control_over_af": round(min(controls) / af, 2) if controls and af else None}
        out["algorithmic"] = track
    return out
