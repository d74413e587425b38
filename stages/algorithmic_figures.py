"""Stage algorithmic_figures: paper Fig. 11 and 12 from the runs -> reports/figures/algorithmic/."""

import json
from pathlib import Path

from pipeline.figures.algorithmic import learned_activations, learning_curves
from pipeline.figures.style import save_figure

from .algorithmic_train import RUNS
from .params import stage_params

OUT = Path("reports/figures/algorithmic")


def main() -> None:
    params = stage_params("algorithmic")
    runs = json.loads(Path(RUNS).read_text())
    for task in params["tasks"]:
        curves = {}
        for run in runs:
            if run["task"] == task:
                curves.setdefault(run["activation"], []).append(run["curve"])
        save_figure(learning_curves(curves, f"{task}: accuracy, mean and range over seeds"),
                    OUT / f"fig11_curves_{task}.png")
    panels = []
    for task in params["tasks"]:
        spec = json.loads((Path("artifacts/algorithmic/afs") / f"{task}.json").read_text())
        history = json.loads((Path("artifacts/algorithmic/afs") / f"{task}.history.json").read_text())
        character = next(r["character"] for r in runs if r["task"] == task and r["activation"] == "af")
        panels.append({"task": task, "knots": spec["knots"], "values": spec["values"],
                       "visited_range": character["visited_range"],
                       "dominant_frequency": character["dominant_frequency"],
                       "knots_visited": history[-1]["knots_visited_total"]})
    save_figure(learned_activations(panels), OUT / "fig12_learned_afs.png")


if __name__ == "__main__":
    main()
