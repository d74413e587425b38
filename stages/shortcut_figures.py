"""Stage shortcut_figures: paper Fig. 9 from the runs, and the learned input activations per pixel
-> reports/figures/shortcut/."""

import json
from pathlib import Path

import numpy as np

from pipeline.figures.shortcut import iaf_maps, shortcut_learning
from pipeline.figures.style import save_figure

from .shortcut_metalearn import OUT as AF_DIR
from .shortcut_train import METRICS, RUNS, SUMMARY

OUT = Path("reports/figures/shortcut")
TILES = {"mnist_cifar": ("MNIST", "CIFAR"), "bundled_digits": ("digits 0/1", "noisy digits 3/8"),
         "mnist_cifar-10class": ("MNIST", "CIFAR"), "bundled_digits-10class": ("digits k", "noisy digits k+5")}


def main() -> None:
    metrics = json.loads(Path(METRICS).read_text())
    runs = json.loads(Path(RUNS).read_text())
    summary = json.loads(Path(SUMMARY).read_text())
    data = summary["data"]["provenance"]["data"]
    curves = {}
    for run in runs:
        curves.setdefault(run["model"], []).append(run["curve"])
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob("*.png"):
        stale.unlink()
    entries = metrics[summary["data"]["key"]]
    save_figure(shortcut_learning(entries, curves, data, TILES.get(data, ("MNIST", "CIFAR")), summary.get("chance", 0.5)),
                OUT / "fig9_shortcut.png")
    maps = {path.name.split(".")[0]: np.array(json.loads(path.read_text())["map"], dtype=float)
            for path in sorted(Path(AF_DIR).glob("*.pass_through.json"))}
    maps = {m: grid for m, grid in maps.items() if m in entries}
    if maps:
        save_figure(iaf_maps(maps, TILES.get(data, ("MNIST", "CIFAR")), data), OUT / "fig9_iafs.png")


if __name__ == "__main__":
    main()
