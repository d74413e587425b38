"""The image track (paper Sec. 3.1-3.2) on tiny data: names are checked, regression accuracy rounds
to the nearest class id, the units produce the output contract's keys, figures are written."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.fit import task_accuracy
from pipeline.flows import images

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "model": {"depth": 2},
    "train": {"batch_size": 64, "weight_decay": 0.0, "eval_every": 10, "patience": 2, "steps": 30},
    "meta": {"truncation": 3, "episodes_per_step": 1, "inner_lr": 0.01, "inner_batch_size": 64, "episode_size": 200,
             "outer_lr": 0.01, "width": 16, "n_knots": 49, "interval": [-4.8, 4.8], "n_max": 3},
    "tv": {"n_paths": 8, "n_points": 10},
    "n_train": 300, "n_val": 100, "n_test": 150, "channels": "grayscale", "data_source": "offline",
    "tasks": ["classification", "regression"],
}


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_CACHE", str(tmp_path / "prepared"))
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)


def test_regression_accuracy_rounds_to_the_nearest_class_id():
    out = torch.tensor([[0.4], [0.6], [2.49], [8.51], [-0.4]])
    target = torch.tensor([0.0, 0.0, 2.0, 9.0, 0.0])  # 0.6 rounds to 1: the only miss
    assert task_accuracy("regression", out, target).item() == pytest.approx(0.8)
    assert task_accuracy("regression", torch.tensor([[1.49], [1.51]]), torch.tensor([1.0, 1.0])).item() == 0.5


def test_activation_names_parse_and_bad_names_are_rejected():
    assert images.parse_activation("relu") == (None, False)
    assert images.parse_activation("af_zeros_init_per_layer") == ("zeros", True)
    assert images.parse_activation("af_relu_init") == ("relu", False)
    with pytest.raises(ValueError, match="af_<init>_init"):
        images.parse_activation("af_swish_init")
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["images"]
    images.check_names(section, "params.yaml: images")
    for edit, needle in [
        (lambda s: s["profiles"]["quick"].update(datasets=["digits", "imagenet"]), "'imagenet'"),
        (lambda s: s["profiles"]["quick"].update(tasks=["segmentation"]), "'segmentation'"),
        (lambda s: s["profiles"]["quick"].update(activations=["relu", "af_foo_init"]), "'af_foo_init'"),
        (lambda s: s["profiles"]["quick"]["grid"].update(width=[]), "grid.width"),
    ]:
        bad = copy.deepcopy(section)
        edit(bad)
        with pytest.raises(ValueError, match=needle):
            images.check_names(bad, "params.yaml: images")


def test_without_a_mirror_only_bundled_sets_are_used_and_the_rest_skipped_with_a_reason():
    params = {**TINY, "datasets": ["digits", "mnist_784"], "on_missing": "skip"}
    used, provenance, skipped = images.resolve_datasets(params, images.resolve_data_config(None))
    assert used == ["digits"] and provenance["digits"]["provenance"]["source"] == "bundled"
    assert "mnist_784" in skipped and "PIPELINE_DATA_MIRROR" in skipped["mnist_784"]
    with pytest.raises(images.DatasetUnavailable):
        images.resolve_datasets({**params, "on_missing": "fail"}, None)


def _tiny_runs():
    runs, specs = [], {}
    for task in ("classification", "regression"):
        for name in ("af_relu_init", "af_zeros_init", "af_zeros_init_per_layer"):
            r = images.metalearn_unit.fn("digits", task, name, TINY, None)
            assert len(r["specs"]) == (2 if name.endswith("per_layer") else 1) and len(r["history"]) == 3
            specs[(task, name)] = r["specs"]
        names = ["relu", "af_relu_init", "af_zeros_init", "af_zeros_init_per_layer"]
        for width, seed in ((16, 0), (8, 1)):  # one grid cell per unit: every activation at lr 0.01
            runs += images.train_unit.fn("digits", task, names, {n: specs.get((task, n)) for n in names}, width, [0.01],
                                         seed, TINY, None)
    return runs, specs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PIPELINE_DATA_CACHE", str(tmp_path_factory.mktemp("prepared")))
    torch.set_num_threads(1)
    try:
        yield _tiny_runs()
    finally:
        mp.undo()


def test_units_produce_the_output_contract(tiny):
    runs, _ = tiny
    metrics = images.summarise(runs)
    assert sorted(metrics) == ["digits/classification", "digits/regression"]
    for key, models in metrics.items():
        assert {"relu", "af_relu_init", "af_zeros_init"} <= set(models)
        for entry in models.values():
            assert {"test_acc", "test_acc_std", "n_seeds", "tv"} <= set(entry)
            assert 0.0 <= entry["test_acc"] <= 1.0 and entry["tv"] >= 0
            assert entry["n_models"] == 2 and entry["n_seeds"] == 1 and (entry["width"], entry["lr"]) in ((16, 0.01), (8, 0.01))
    json.dumps(metrics)  # plain JSON
    rho = images.spearman_by_dataset(runs)
    assert set(rho["digits"]) == {"classification", "regression"} and rho["digits"]["regression"]["n"] == 8
    assert rho["digits"]["regression"]["rho"] is None or -1 <= rho["digits"]["regression"]["rho"] <= 1


def test_selection_uses_validation_accuracy_not_test():
    runs = [{"dataset": "d", "task": "regression", "activation": "relu", "width": w, "lr": 0.01, "seed": s,
             "val_acc": va, "test_acc": ta, "tv": 1.0}
            for w, va, ta in ((8, 0.9, 0.1), (16, 0.5, 0.99)) for s in (0, 1)]
    entry = images.summarise(runs)["d/regression"]["relu"]
    assert entry["width"] == 8 and entry["test_acc"] == pytest.approx(0.1) and entry["test_acc_grid_max"] == pytest.approx(0.99)


def test_figures_are_written(tiny, tmp_path):
    from pipeline.figures.images import accuracy_bars, accuracy_vs_tv, learned_activations
    from pipeline.figures.style import save_figure

    runs, specs = tiny
    metrics = images.summarise(runs)
    panels = [{"task": t, "init": i, "shared": specs[(t, f"af_{i}_init")][0],
               "per_layer": specs.get((t, f"af_{i}_init_per_layer"), [])} for t in ("classification", "regression")
              for i in ("relu", "zeros")]
    rho = images.spearman_by_dataset(runs)["digits"]
    for fig, name in ((accuracy_bars(metrics), "fig2.png"), (learned_activations(panels, "digits"), "fig3.png"),
                      (accuracy_vs_tv(runs, "digits", rho), "fig4.png")):
        path = save_figure(fig, tmp_path / name)
        assert path.stat().st_size > 5000


def test_learned_af_files_round_trip_through_the_public_loader(tiny, tmp_path):
    from pipeline.nn import SplineActivation

    _, specs = tiny
    spec = specs[("regression", "af_zeros_init")][0]
    path = tmp_path / "af.json"
    path.write_text(json.dumps(spec))
    act = SplineActivation.load(path)
    assert act.n_knots == 49 and act.meta["trained_on"] == "digits/regression"
    with torch.no_grad():
        assert not math.isnan(float(act(torch.linspace(-6, 6, 7)).sum()))


def test_activation_means_pool_all_models_of_each_activation():
    runs = [{"dataset": "d", "task": "regression", "activation": a, "test_acc": acc, "train_acc": tr, "tv": tv}
            for a, acc, tr, tv in [("relu", 0.4, 0.6, 3.0), ("relu", 0.6, 0.8, 5.0), ("af_zeros_init", 0.9, 1.0, 7.0)]]
    means = images.activation_means(runs)["d"]["regression"]
    assert means["relu"] == pytest.approx({"test_acc": 0.5, "train_acc": 0.7, "tv": 4.0, "n": 2})
    assert means["af_zeros_init"] == pytest.approx({"test_acc": 0.9, "train_acc": 1.0, "tv": 7.0, "n": 1})


def test_seeded_mlp_weights_depend_on_the_seed_only_also_when_built_in_threads():
    from concurrent.futures import ThreadPoolExecutor

    def weights(seed):
        return torch.cat([p.detach().flatten() for p in images.seeded_mlp(seed, 30, 3, 2, 64, "relu").parameters()])

    reference = {s: weights(s) for s in range(3)}
    assert not torch.equal(reference[0], reference[1])
    with ThreadPoolExecutor(3) as pool:
        seeds = [0, 1, 2] * 20
        built = list(pool.map(weights, seeds))
    assert all(torch.equal(w, reference[s]) for s, w in zip(seeds, built))


def _spec(init, shift):
    from pipeline.nn import SplineActivation

    spec = SplineActivation(49, (-4.8, 4.8), init=init).to_dict()
    spec["values"] = [v + shift * math.sin(k / 5) for k, v in enumerate(spec["values"])]
    return spec


GRID_SPECS = {"relu": None, "af_relu_init": [_spec("relu", 0.2)], "af_zeros_init": [_spec("zeros", 0.5)],
              "af_zeros_init_per_layer": [_spec("zeros", 0.3), _spec("relu", -0.1)]}


def test_a_grid_cell_groups_its_models_by_architecture(tmp_path):
    data = images.load_images("digits", "classification", TINY, None, seed=0)
    pairs = [(a, images.activation_from_specs(a, s)) for a, s in GRID_SPECS.items()]
    models, configs = images.grid_models(data, "classification", pairs, 8, [0.01, 0.003], 0, TINY)
    from pipeline.fit.population import population_groups

    # ReLU's lrs; the shared learned AFs (per-model knot values) with their lrs; the per-layer AFs
    assert population_groups(models, configs) == [[0, 1], [2, 3, 4, 5], [6, 7]]
    assert [c.lr for c in configs] == [0.01, 0.003] * 4
    # the models of one activation start from the same weights (the seed's), as the per-model units drew them
    assert torch.equal(models[0][0].weight, models[1][0].weight) and torch.equal(models[0][0].weight, models[2][0].weight)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_grid_cell_trained_as_populations_equals_the_per_model_runs_in_float64(monkeypatch, task):
    """fit_grid (populations) against what the per-model unit computed before: train_model from
    seeded_mlp(seed), then TV on the training inputs; float64, so only rounding may differ."""
    import pipeline.fit.population as population_module
    import pipeline.fit.train as train_module
    from pipeline.complexity import total_variation
    from pipeline.fit import train_model

    original = train_module.as_tensors

    def as_float64(data, task):
        return {k: v.double() if v.is_floating_point() else v for k, v in original(data, task).items()}

    monkeypatch.setattr(train_module, "as_tensors", as_float64)
    monkeypatch.setattr(population_module, "as_tensors", as_float64)
    params = {**TINY, "train": {**TINY["train"], "steps": 80, "patience": 2}}
    data = images.load_images("digits", task, params, None, seed=2)
    pairs = [(a, images.activation_from_specs(a, s)) for a, s in GRID_SPECS.items()]
    lrs = [0.01, 0.003]
    models, configs = images.grid_models(data, task, pairs, 8, lrs, 2, params)
    models = [m.double() for m in models]
    expected = []
    for model, config in zip(copy.deepcopy(models), configs):
        result = train_model(model, data, task, config, 2)
        tv = total_variation(model, torch.as_tensor(data.X_train, dtype=torch.float64), seed=2, **params["tv"])
        expected.append({**{k: result.metrics[k] for k in ("train_acc", "val_acc", "test_acc", "test_loss")},
                         "best_step": result.best_step, "tv": tv})
    got = images.fit_grid(data, task, pairs, 8, lrs, 2, params, models=models)
    assert [(g["activation"], g["lr"]) for g in got] == [(a, lr) for a in GRID_SPECS for lr in lrs]
    # early stopping and checkpoint selection are exercised: the kept steps differ between models
    assert len({e["best_step"] for e in expected}) > 1
    for g, e in zip(got, expected):
        assert g["best_step"] == e["best_step"], (g["activation"], g["lr"])
        for key in ("train_acc", "val_acc", "test_acc"):
            assert g[key] == pytest.approx(e[key], abs=1e-9), key
        assert g["test_loss"] == pytest.approx(e["test_loss"], rel=1e-9)
        assert g["tv"] == pytest.approx(e["tv"], rel=1e-9)


def test_a_grid_point_retrained_alone_is_the_model_its_population_trained():
    # float32, as the stage runs: batched kernels are batch-invariant on CPU, so fit_and_measure
    # (a population of one) reproduces the row of the grid cell bit for bit
    params = {**TINY, "train": {**TINY["train"], "steps": 40}}
    data = images.load_images("digits", "classification", params, None, seed=0)
    pairs = [(a, images.activation_from_specs(a, GRID_SPECS[a])) for a in ("af_relu_init", "af_zeros_init")]
    rows = images.fit_grid(data, "classification", pairs, 16, [0.01, 0.003], 0, params)
    alone = images.fit_and_measure(data, "classification", pairs[1][1], 16, 0.003, 0, params)
    assert rows[3]["activation"] == "af_zeros_init" and rows[3]["lr"] == 0.003
    for key in ("test_acc", "val_acc", "train_acc", "test_loss", "tv", "best_step"):
        assert alone[key] == rows[3][key], key
    assert len({r["val_acc"] for r in rows}) > 1  # the AFs and lrs made different models
