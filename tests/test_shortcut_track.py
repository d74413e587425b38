"""The shortcut-learning track (paper Sec. 3.4) on tiny bundled collages: the units produce
test_acc_mnist / test_acc_cifar and trajectories of both, upper bounds see only their tile, the
figure is written, bad names are rejected."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.flows import shortcut

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "data"
HAVE_MIRROR = (MIRROR / "manifest.json").is_file()

TINY = {
    "model": {"depth": 2, "width": 16},
    "train": {"batch_size": 64, "lr": 0.003, "weight_decay": 0.0, "eval_every": 10, "held_out": 0.1, "steps": 30},
    "meta": {"truncation": 3, "episodes_per_step": 1, "inner_lr": 0.01, "inner_batch_size": 64, "episode_size": 100,
             "outer_lr": 0.01, "init": "zeros", "n_knots": 49, "interval": [-4.8, 4.8], "n_max": 3, "width": 16},
    "iaf_meta": {"n_max": 3, "inner_optimizer": "sgd", "inner_lr": 0.1, "outer_lr": 0.1, "n_knots": 11, "interval": [0.0, 1.0]},
    "tv": {"n_paths": 8, "n_points": 10},
    "collage_data": "auto", "data_source": "offline", "n_train": 200, "n_val": 60, "n_test": 80,
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PIPELINE_DATA_CACHE", str(tmp_path_factory.mktemp("prepared")))
    mp.delenv("PIPELINE_DATA_MIRROR", raising=False)
    torch.set_num_threads(1)
    try:
        learned = {m: shortcut.metalearn_unit.fn(m, TINY, None) for m in shortcut.LEARNED}
        specs = {m: learned[m]["spec"] if m in learned else None for m in shortcut.MODELS}
        views = {"ambiguous": ["relu", *shortcut.CONTROLS, *shortcut.LEARNED], **{m: [m] for m in shortcut.UPPER_BOUNDS}}
        runs = [r for view, models in views.items() for seed in (0, 1)
                for r in shortcut.train_unit.fn(view, models, {m: specs[m] for m in models}, seed, TINY, None)]
        yield learned, runs
    finally:
        mp.undo()


def test_without_a_mirror_the_collages_come_from_bundled_digits_and_say_so(tiny):
    learned, runs = tiny
    assert {r["data"] for r in runs} == {"bundled_digits"}
    assert learned["af_cifar"]["data"] == "bundled_digits"
    assert "V = val_complex" in learned["af_cifar"]["spec"]["trained_on"]


def test_units_produce_accuracy_on_both_unambiguous_test_sets(tiny):
    _, runs = tiny
    metrics = shortcut.summarise(runs)
    assert list(metrics) == ["collages/bundled_digits"]
    entries = metrics["collages/bundled_digits"]
    assert set(entries) == set(shortcut.MODELS)
    for entry in entries.values():
        assert {"test_acc_mnist", "test_acc_cifar", "test_acc_mnist_std", "test_acc_cifar_std", "n_seeds", "tv"} <= set(entry)
        assert "test_acc" not in entry and entry["n_seeds"] == 2
        assert 0 <= entry["test_acc_mnist"] <= 1 and 0 <= entry["test_acc_cifar"] <= 1
    for run in runs:  # the trajectory of both test sets, over the whole budget
        assert run["curve"][-1]["step"] == TINY["train"]["steps"]
        assert {"step", "test_acc_mnist", "test_acc_cifar"} <= set(run["curve"][0])
    json.dumps(metrics)


def test_controls_train_on_the_ambiguous_collages_with_their_own_fixed_activation(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_CACHE", str(tmp_path))
    data = shortcut.load_collages(TINY, None, seed=0)
    assert {shortcut.view_name(m) for m in ("relu", *shortcut.CONTROLS)} == {"ambiguous"}
    view, nets = shortcut.view_models(data, ["relu", *shortcut.CONTROLS], {}, 0, {**TINY, "train": TINY["train"]})
    kinds = [sorted({type(m).__name__ for m in net.modules()} - {"Sequential", "Linear"}) for net in nets]
    assert kinds == [["ReLU"], ["GELU"], ["Tanh"], ["Sine"]]
    x = torch.as_tensor(view.X_train[:4])
    first = [net[1](net[0](x)) for net in nets]  # same seed: same first layer, only the activation differs
    pre = nets[0][0](x)
    for got, f in zip(first, (torch.relu, torch.nn.functional.gelu, torch.tanh, lambda v: torch.sin(4 * v))):
        assert torch.allclose(got, f(pre), atol=1e-6)


def test_upper_bound_views_keep_only_their_tile(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_CACHE", str(tmp_path))
    data = shortcut.load_collages(TINY, None, seed=0)
    X, y = data.splits["train"]
    s = data.meta["tile_size"]
    for model, kept in (("relu_upper_bound_mnist", "simple"), ("relu_upper_bound_cifar", "complex")):
        view = shortcut.training_view(data, model, 0.1, seed=0)
        top, bottom = (view.X_train[:, : s * s], view.X_train[:, s * s:])
        orig_top, orig_bottom = X[: len(view.X_train), : s * s], X[: len(view.X_train), s * s:]
        assert np.array_equal(top if kept == "simple" else bottom, orig_top if kept == "simple" else orig_bottom)
        assert not np.array_equal(bottom if kept == "simple" else top, orig_bottom if kept == "simple" else orig_top)
        assert len(view.X_val) == 20 and np.array_equal(view.y_train, y[:180])
    ambiguous = shortcut.training_view(data, "relu", 0.1, seed=0)
    assert np.array_equal(ambiguous.X_train, X[:180])


def test_bad_names_are_rejected():
    section = yaml.safe_load((ROOT / "params.yaml").read_text())["shortcut"]
    shortcut.check_names(section, "params.yaml: shortcut")
    for edit, needle in [
        (lambda s: s["profiles"]["quick"].update(models=["relu", "af_svhn"]), "'af_svhn'"),
        (lambda s: s["profiles"]["quick"].update(seeds=[]), "seeds"),
        (lambda s: s["train"].update(held_out=1.5), "held_out"),
    ]:
        bad = copy.deepcopy(section)
        edit(bad)
        with pytest.raises(ValueError, match=needle):
            shortcut.check_names(bad, "params.yaml: shortcut")


def test_figure_is_written(tiny, tmp_path):
    from pipeline.figures.shortcut import report_section, shortcut_learning
    from pipeline.figures.style import save_figure

    _, runs = tiny
    entries = shortcut.summarise(runs)["collages/bundled_digits"]
    curves = {}
    for run in runs:
        curves.setdefault(run["model"], []).append(run["curve"])
    path = save_figure(shortcut_learning(entries, curves, "bundled_digits"), tmp_path / "fig9.png")
    assert path.stat().st_size > 5000
    text = "\n".join(report_section({"collages/bundled_digits": entries}, {"chance": 0.5}))
    assert "AF-cifar on the CIFAR-predictive set" in text and "points vs ReLU" in text
    lift = 100 * (entries["iaf_cifar"]["test_acc_cifar"] - entries["relu"]["test_acc_cifar"])
    assert (f"- IAF-cifar on the CIFAR-predictive set: {100 * entries['iaf_cifar']['test_acc_cifar']:.1f} % "
            f"({lift:+.1f} points vs ReLU") in text
    assert f"- IAF-mnist on the MNIST-predictive set: {100 * entries['iaf_mnist']['test_acc_mnist']:.1f} %" in text


@pytest.mark.parametrize("block,key,value,needle", [
    ("meta", "keep", "first", "keep = 'first'.*'best', 'last'"),
    ("meta", "val_objective", "accuracy", "val_objective = 'accuracy'.*'loss', 'margin'"),
    ("iaf_meta", "inner_optimizer", "rmsprop", "inner_optimizer = 'rmsprop'.*'sgd', 'adam'"),
    ("train", "optimizer", "lbfgs", "optimizer = 'lbfgs'.*'adamw', 'adam', 'sgd'"),
])
def test_bad_meta_objective_keep_or_optimizer_is_rejected_before_any_work(tmp_path, block, key, value, needle):
    from stages.params import load_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert load_params(ROOT / "params.yaml")["shortcut"]["meta"]["keep"] in ("best", "last")
    params["shortcut"][block][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ValueError, match=needle):
        load_params(tmp_path / "params.yaml")


def test_a_unit_rejects_models_of_another_view():
    with pytest.raises(ValueError, match="relu_upper_bound_mnist"):
        shortcut.train_unit.fn("ambiguous", ["relu", "relu_upper_bound_mnist"], {}, 0, TINY, None)
    with pytest.raises(ValueError, match="af_svhn"):
        shortcut.view_name("af_svhn")


def _spec(shift):
    from pipeline.nn import SplineActivation

    spec = SplineActivation(49, (-4.8, 4.8), init="zeros").to_dict()
    spec["values"] = [shift * float(np.sin(k / 4)) + 0.05 * k for k in range(49)]
    return spec


def test_models_of_the_ambiguous_view_as_populations_equal_the_per_model_runs_in_float64(tmp_path, monkeypatch):
    """fit_view (the learned AFs as one population, the trajectory on the CIFAR-predictive set
    through on_state) against the per-model unit before populations: train_model from
    seeded_mlp(seed) with an on_eval that evaluates the training net on that set; float64."""
    import pipeline.fit.population as population_module
    import pipeline.fit.train as train_module
    from pipeline.complexity import total_variation
    from pipeline.fit import evaluate_model, train_model
    from pipeline.fit.population import population_groups

    monkeypatch.setenv("PIPELINE_DATA_CACHE", str(tmp_path))
    original = train_module.as_tensors

    def as_float64(data, task):
        return {k: v.double() if v.is_floating_point() else v for k, v in original(data, task).items()}

    monkeypatch.setattr(train_module, "as_tensors", as_float64)
    monkeypatch.setattr(population_module, "as_tensors", as_float64)
    params = {**TINY, "train": {**TINY["train"], "steps": 60}}
    data = shortcut.load_collages(params, None, seed=1)
    models = ["relu", "af_mnist", "af_cifar"]
    view, nets = shortcut.view_models(data, models, {"af_mnist": _spec(0.4), "af_cifar": _spec(-0.3)}, 1, params)
    nets = [n.double() for n in nets]
    cfg = shortcut.train_config(params["train"], params["train"]["lr"], dense_early_evals=True)
    assert population_groups(nets, [cfg] * 3) == [[0], [1, 2]]  # the two learned AFs share a population
    Xc, yc = (torch.as_tensor(a) for a in data.splits["test_complex"])
    expected = []
    for net in copy.deepcopy(nets):
        def also_cifar(row, net=net):
            row["test_acc_cifar"] = evaluate_model(net, Xc.double(), yc, "classification")[1]

        result = train_model(net, view, "classification", cfg, 1, on_eval=also_cifar)
        expected.append({"best_step": result.best_step, "curve": result.curve, "test_acc_mnist": result.metrics["test_acc"],
                         "test_acc_cifar": evaluate_model(net, Xc.double(), yc, "classification")[1],
                         "val_acc": result.metrics["val_acc"], "train_acc": result.metrics["train_acc"],
                         "tv": total_variation(net, torch.as_tensor(view.X_train, dtype=torch.float64), seed=1, **params["tv"])})
    got = shortcut.fit_view(data, view, models, nets, 1, params)
    assert [g["model"] for g in got] == models
    # the two AFs train differently (their curves differ), and both curves are dense early on
    assert got[1]["curve"] != got[2]["curve"] and [r["step"] for r in got[1]["curve"]][:3] == [1, 2, 3]
    for g, e in zip(got, expected):
        assert g["best_step"] == e["best_step"]
        assert [r["step"] for r in g["curve"]] == [r["step"] for r in e["curve"]]
        for r, q in zip(g["curve"], e["curve"]):
            for key in ("train_acc", "val_acc"):
                assert r[key] == pytest.approx(q[key], abs=1e-9), key
            assert r["test_acc_mnist"] == pytest.approx(q["test_acc"], abs=1e-9)
            assert r["test_acc_cifar"] == pytest.approx(q["test_acc_cifar"], abs=1e-9)
        for key in ("test_acc_mnist", "test_acc_cifar", "val_acc", "train_acc"):
            assert g[key] == pytest.approx(e[key], abs=1e-9), key
        assert g["tv"] == pytest.approx(e["tv"], rel=1e-9)


def test_ten_class_collages_train_ten_way_models_and_state_their_chance(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_CACHE", str(tmp_path))
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    params = {**TINY, "classes": "ten", "n_train": 600, "n_val": 100, "n_test": 200,
              "train": {**TINY["train"], "steps": 200, "eval_every": 50}}
    learned = shortcut.metalearn_unit.fn("af_cifar", params, None)
    assert learned["data"] == "bundled_digits-10class"
    rows = shortcut.train_unit.fn("ambiguous", ["relu", "af_cifar"], {"relu": None, "af_cifar": learned["spec"]}, 0,
                                  params, None)
    assert {r["dataset"] for r in rows} == {"collages/bundled_digits-10class"}
    data = shortcut.load_collages(params, None, 0)
    view, nets = shortcut.view_models(data, ["relu"], {}, 0, params)
    assert data.n_classes == 10 and nets[0](torch.as_tensor(view.X_train[:2])).shape == (2, 10)
    relu = rows[0]  # chance is 10 %; measured 49 % on the simple tile (a 16-unit MLP, 200 steps)
    assert relu["model"] == "relu" and relu["test_acc_mnist"] > 0.3
    assert all(0 <= r[k] <= 1 for r in rows for k in ("test_acc_mnist", "test_acc_cifar"))


def test_iaf_models_are_relu_mlps_behind_the_frozen_per_pixel_activations_they_learned(tiny):
    """IAF-mnist / IAF-cifar: one spline per pixel, meta-learned with V = their unambiguous set, saved in
    the IAF JSON form, and trained frozen in front of the ReLU MLP that ReLU itself starts from."""
    from pipeline.fit.tabular import iaf_from_dict
    from pipeline.nn import InputActivations

    learned, runs = tiny
    data = shortcut.load_collages(TINY, None, seed=0)
    d = data.splits["train"][0].shape[1]
    for model, split in (("iaf_mnist", "val_simple"), ("iaf_cifar", "val_complex")):
        spec = learned[model]["spec"]
        assert spec["kind"] == "input_activations" and f"V = {split}" in spec["trained_on"]
        assert np.asarray(spec["values"]).shape == (d, TINY["iaf_meta"]["n_knots"])
        assert spec["interval"] == TINY["iaf_meta"]["interval"] and spec["params"]["iaf_meta"] == TINY["iaf_meta"]
        assert len(learned[model]["history"]) == TINY["iaf_meta"]["n_max"]
        # meta-learning moved the splines away from their identity init
        assert not torch.allclose(iaf_from_dict(spec).values, InputActivations(d, 11, (0.0, 1.0)).values)
    specs = {m: learned[m]["spec"] for m in ("iaf_mnist", "iaf_cifar")}
    view, nets = shortcut.view_models(data, ["relu", "iaf_mnist", "iaf_cifar"], specs, 0, TINY)
    relu, iaf_m, iaf_c = nets
    for net, model in ((iaf_m, "iaf_mnist"), (iaf_c, "iaf_cifar")):
        assert isinstance(net[0], InputActivations) and not net[0].values.requires_grad
        assert torch.equal(net[0].values, torch.tensor(specs[model]["values"]).float())
        # same first weights as ReLU: only the input activations differ
        assert torch.equal(net[1].weight, relu[0].weight) and torch.equal(net[-1].weight, relu[-1].weight)
    rows = [r for r in runs if r["model"] in ("iaf_mnist", "iaf_cifar")]
    assert len(rows) == 4 and all(0 <= r["test_acc_cifar"] <= 1 and r["curve"] for r in rows)
    with pytest.raises(ValueError, match="iaf_cifar needs its learned input activations"):
        shortcut.view_models(data, ["iaf_cifar"], {}, 0, TINY)


@pytest.mark.skipif(not HAVE_MIRROR, reason=f"no data mirror at {MIRROR} (../shared/data)")
def test_on_mirror_collages_iaf_cifar_moves_the_mlp_off_the_mnist_tile(tmp_path, monkeypatch):
    """params.yaml's quick profile on MNIST/CIFAR-10 collages, one seed: ReLU relies on the MNIST tile
    (CIFAR-predictive accuracy near chance); ReLU behind the IAFs meta-learned with V = CIFAR-predictive
    does not. Measured (seed 0, as in the record images-shortcut-quick-mirror): ReLU 51.7 % CIFAR-predictive
    / 99.3 % MNIST-predictive, IAF-cifar 58.9 % / 69.7 %."""
    from stages.params import stage_params

    monkeypatch.setenv("PIPELINE_DATA_CACHE", str(tmp_path))
    monkeypatch.setenv("PIPELINE_DATA_MIRROR", str(MIRROR))
    torch.set_num_threads(1)
    params = shortcut.unit_params({**stage_params("shortcut", ROOT / "params.yaml"), "collage_data": "mirror"})
    learned = shortcut.metalearn_unit.fn("iaf_cifar", params, None)
    assert learned["data"] == "mnist_cifar"
    relu, iaf = shortcut.train_unit.fn("ambiguous", ["relu", "iaf_cifar"], {"relu": None, "iaf_cifar": learned["spec"]},
                                       0, params, None)
    assert relu["test_acc_cifar"] < 0.56 and relu["test_acc_mnist"] > 0.98
    assert iaf["test_acc_cifar"] > relu["test_acc_cifar"] + 0.05
    assert iaf["test_acc_mnist"] < relu["test_acc_mnist"] - 0.1


def test_iaf_pass_through_maps_say_which_tile_the_input_activations_keep(tiny, tmp_path):
    """Per pixel, the std of the learned input activation's output over the collages divided by the
    pixel's std, laid out as the collage: the identity gives 1, a tile whose values all map to one
    output 0, a doubled tile 2; the report prints both tiles' means and the IAF maps draw them."""
    from pipeline.figures.shortcut import iaf_maps, report_section
    from pipeline.figures.style import save_figure
    from pipeline.fit.tabular import iaf_to_dict
    from pipeline.nn import InputActivations

    learned, _ = tiny
    data = shortcut.load_collages(TINY, None, seed=0)
    X, side = data.splits["train"][0], data.meta["tile_size"]
    iaf = InputActivations(2 * side * side, 11, (0.0, 1.0))
    grid = shortcut.iaf_pass_through(iaf_to_dict(iaf), X, side)
    constant = X.std(axis=0) <= 1e-6
    assert grid.shape == (2 * side, side) and np.array_equal(np.isnan(grid).ravel(), constant)
    assert np.allclose(grid[~np.isnan(grid)], 1.0, atol=1e-4)
    with torch.no_grad():
        iaf.values[: side * side] = 0.3  # every pixel of the simple tile maps to one value
        iaf.values[side * side:] *= 2.0  # the complex tile's are doubled
    grid = shortcut.iaf_pass_through(iaf_to_dict(iaf), X, side)
    assert shortcut.tile_means(grid) == pytest.approx({"simple": 0.0, "complex": 2.0}, abs=1e-4)
    with pytest.raises(ValueError, match="not n rows of two 4 x 4 tiles"):
        shortcut.iaf_pass_through(iaf_to_dict(iaf), X, 4)
    maps = {m: shortcut.iaf_pass_through(learned[m]["spec"], X, side) for m in shortcut.INPUT_ACTIVATIONS}
    assert save_figure(iaf_maps(maps, data_label="bundled_digits"), tmp_path / "fig9_iafs.png").stat().st_size > 5000
    tables = {"chance": 0.5, "iaf_pass_through": {"iaf_cifar": {"simple": 0.0, "complex": 2.0}}}
    text = "\n".join(report_section({"collages/bundled_digits": {}}, tables))
    assert "- iaf_cifar passes 0.00 of the MNIST tile's pixel variation and 2.00 of the CIFAR tile's" in text
