"""Stage algorithmic_figures: paper Fig. 11-14 from the runs -> reports/figures/algorithmic/."""

import json
from pathlib import Path

from pipeline.figures.algorithmic import learned_activations, learning_curves, steps_to_target, transfer_matrix
from pipeline.figures.style import plt, save_figure

from .algorithmic_metalearn import OUT as AF_DIR
from .algorithmic_train import METRICS, RUNS
from .params import stage_params

OUT = Path("reports/figures/algorithmic")


def main() -> None:
    params = stage_params("algorithmic")
    runs = json.loads(Path(RUNS).read_text())
    main_runs = [r for r in runs if r["group"] == "main"]
    for task in params["tasks"]:
        curves = {}
        for run in main_runs:
            if run["task"] == task:
                curves.setdefault(run["activation"], []).append(run["curve"])
        save_figure(learning_curves(curves, f"{task}: accuracy, mean and range over seeds"), OUT / f"fig11_curves_{task}.png")
    panels = []
    for task in params["tasks"]:
        spec = json.loads((Path(AF_DIR) / f"{task}.json").read_text())
        history = json.loads((Path(AF_DIR) / f"{task}.history.json").read_text())
        character = next(r["character"] for r in main_runs if r["task"] == task and r["activation"] == "af")
        panels.append({"task": task, "knots": spec["knots"], "values": spec["values"],
                       "visited_range": character["visited_range"],
                       "dominant_frequency": character["dominant_frequency"],
                       "knots_visited": history[-1]["knots_visited_total"]})
    save_figure(learned_activations(panels), OUT / "fig12_learned_afs.png")
    sweep = params["sweep"]
    for axis, label in (("fraction", "train fraction"), ("width", "hidden width")):
        rows = [r for r in runs if r["group"] == f"sweep_{axis}"]
        if rows:
            fig = steps_to_target(rows, axis, label, sweep["steps"])
            fig.axes[0].set_title(f"{sweep['task']}: steps to 95 % against the {label}", fontsize=8)
            save_figure(fig, OUT / f"fig13_steps_{axis}.png")
    metrics = json.loads(Path(METRICS).read_text())
    if "transfer" in metrics:
        save_figure(transfer_matrix(metrics["transfer"]), OUT / "fig14_transfer.png")
    plt.close("all")


if __name__ == "__main__":
    main()
