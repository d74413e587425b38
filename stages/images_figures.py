"""Stage images_figures: paper Fig. 2, 3 and 4 from the runs and the learned AFs
-> reports/figures/images/."""

import json
from pathlib import Path

from pipeline.figures.images import accuracy_bars, accuracy_vs_tv, learned_activations
from pipeline.figures.style import save_figure
from pipeline.flows.images import load_specs, parse_activation

from .images_metalearn import OUT as AF_DIR
from .images_train import METRICS, RUNS, SUMMARY
from .params import stage_params

OUT = Path("reports/figures/images")


def af_panels(dataset: str, tasks, activations) -> list[dict]:
    """One panel per task and init: the shared AF and the per-layer AFs learned from that init."""
    panels = {}
    for task in tasks:
        for name in activations:
            init, per_layer = parse_activation(name)
            if init is None:
                continue
            panel = panels.setdefault((task, init), {"task": task, "init": init, "shared": None, "per_layer": []})
            specs = load_specs(AF_DIR, dataset, task, name)
            if per_layer:
                panel["per_layer"] = specs
            else:
                panel["shared"] = specs[0]
    return list(panels.values())


def main() -> None:
    params = stage_params("images")
    metrics = json.loads(Path(METRICS).read_text())
    runs = json.loads(Path(RUNS).read_text())
    summary = json.loads(Path(SUMMARY).read_text())
    datasets = json.loads((Path(AF_DIR) / "datasets.json").read_text())["used"]
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob("*.png"):  # a set no longer used leaves no figure behind
        stale.unlink()
    save_figure(accuracy_bars(metrics, params["tasks"]), OUT / "fig2_accuracy.png")
    for dataset in datasets:
        panels = af_panels(dataset, params["tasks"], params["activations"])
        if panels:
            save_figure(learned_activations(panels, f"AFs learned on {dataset}"), OUT / f"fig3_afs_{dataset}.png")
        save_figure(accuracy_vs_tv(runs, dataset, summary["spearman"].get(dataset), params["tasks"]),
                    OUT / f"fig4_tv_{dataset}.png")


if __name__ == "__main__":
    main()
