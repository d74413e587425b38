"""Stage tabular_figures: paper Fig. 5, 20, 6, 7 (a, b, c) and 8 from the runs, metrics, learned
activations and views -> reports/figures/tabular/."""

import json
from pathlib import Path

from pipeline.figures import tabular as figs
from pipeline.figures.style import save_figure

from .tabular_complexity import VIEWS
from .tabular_metalearn import LEARNED
from .tabular_prepare import DATASETS, tabular_params
from .tabular_train import METRICS, RUNS, SUMMARY

OUT = Path("reports/figures/tabular")


def main() -> None:
    params = tabular_params()
    info = json.loads(Path(DATASETS).read_text())
    metrics = json.loads(Path(METRICS).read_text())
    runs = json.loads(Path(RUNS).read_text())["runs"]
    datasets = [d for d in info["available"] if d in metrics]
    for old in OUT.glob("*.png"):  # figures of a previous profile or dataset list
        old.unlink()
    if datasets:
        save_figure(figs.model_types(metrics, datasets), OUT / "fig5_model_types.png")
        save_figure(figs.per_dataset(metrics, datasets), OUT / "fig20_per_dataset.png")
        search = [r for r in runs if r["purpose"] == "search"]
        save_figure(figs.accuracy_vs_complexity(search, datasets, metrics), OUT / "fig6_accuracy_vs_tv.png")
    focus7 = info["focus"]["fig7"]
    views = json.loads(Path(VIEWS).read_text())
    learned = json.loads(Path(LEARNED).read_text())
    if focus7 in learned:
        seed = str(params["seeds"][0])
        variants = learned[focus7][seed]
        afs = {v: variants[v]["learned"]["af"] for v in ("af_relu", "af_zeros") if v in variants}
        iaf_variant = next((v for v in ("iaf_relu", "iaf_af", "iaf_linear") if v in variants), None)
        iaf = variants[iaf_variant]["learned"]["iaf"] if iaf_variant else None
        trained = views.get("models", {}).get("iaf", {}).get("iaf") if views.get("dataset") == focus7 else None
        save_figure(figs.learned_activations(afs, iaf, focus7, trained_iaf=trained), OUT / "fig7a_learned_activations.png")
    if views.get("landscapes"):
        save_figure(figs.landscapes(views), OUT / "fig7b_landscapes.png")
        save_figure(figs.slices(views), OUT / "fig7c_slices.png")
    reuse_rows = [r for r in runs if r["purpose"] == "fig8"]
    if reuse_rows:
        # the per-width comparison the report states (pipeline.flows.tabular_summary.reuse_per_width)
        per_width = json.loads(Path(SUMMARY).read_text())["acceptance"].get("fig8_reuse", {}).get("per_width")
        save_figure(figs.reuse(reuse_rows, info["focus"]["fig8"], params["meta"], per_width), OUT / "fig8_reuse.png")


if __name__ == "__main__":
    main()
