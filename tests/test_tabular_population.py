"""The tabular train stage trains the configs of a family as populations (pipeline.fit.tabular
fit_networks, pipeline.flows.tabular train_config_rows): each config ends where the loop of
train_model ended it (float64: to rounding), and a config retrained alone (the Fig. 7 views) is
bit for bit the model the stage trained in its population (float32)."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pipeline.fit.population as population_module
import pipeline.fit.train as train_module
import pipeline.flows.tabular as T
from pipeline.complexity import total_variation
from pipeline.fit.population import population_groups
from pipeline.fit.tabular import build_model, fit_networks, softmax_function
from pipeline.fit.train import TrainConfig, evaluate_model, train_model
from pipeline.nn import SplineActivation

TV = {"n_paths": 10, "n_points": 12}
TRAIN = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 0.0, "batch_size": 32, "eval_every": 10, "steps": 60,
         "patience": 2, "tv": TV}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _split(n=240, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = ((X[:, 0] * X[:, 1] + np.sin(2 * X[:, 2])) > 0).astype(np.int64)
    a, b = n // 2, 3 * n // 4
    return SimpleNamespace(X_train=X[:a], y_train=y[:a], X_val=X[a:b], y_val=y[a:b], X_test=X[b:], y_test=y[b:], n_classes=2)


def _learned_afs():
    def af(shift):
        spec = SplineActivation(n_knots=13, interval=(-3, 3), init="relu").to_dict()
        spec["values"] = [v + shift * k / 12 for k, v in enumerate(spec["values"])]
        return spec

    return {"af_relu": {"af": af(0.1)}, "af_zeros": {"af": af(-0.2)}, "af_per_layer": {"af": [af(0.0), af(0.3)]}}


def _loop_reference(model, data, config, seed):
    """What fit_network computed before populations: train_model, then test accuracy and TV."""
    lean = SimpleNamespace(X_train=data.X_train, y_train=data.y_train, X_val=data.X_val, y_val=data.y_val,
                           X_test=data.X_test[:0], y_test=data.y_test[:0])
    result = train_model(model, lean, "classification", config, seed)
    dtype = next(model.parameters()).dtype
    _, test_acc = evaluate_model(model, torch.as_tensor(data.X_test, dtype=dtype), torch.as_tensor(data.y_test), "classification")
    tv = total_variation(softmax_function(model), torch.as_tensor(data.X_train, dtype=dtype), seed=seed, **TV)
    return {"val_acc": result.metrics["val_acc"], "train_acc": result.metrics["train_acc"], "test_acc": test_acc,
            "best_step": result.best_step, "steps_run": result.curve[-1]["step"], "tv": tv}


def test_configs_group_by_architecture_and_fine_tuning():
    data, learned = _split(), _learned_afs()
    configs = [{"variant": v, "depth": 2, "width": 8} for v in ("af_relu", "af_zeros", "af_per_layer")]
    models = [T.build_config_model("mlp_af", c, learned[c["variant"]], data, 0) for c in configs]
    assert population_groups(models, [T.train_config(TRAIN)] * 3) == [[0, 1], [2]]  # shared AF vs one per layer
    configs = [{"depth": d, "width": 8, "alpha": a} for d in (1, 2) for a in (1.0, 3.0)]
    models = [T.build_config_model("mlp_tanh_scaled", c, None, data, 0) for c in configs]
    assert population_groups(models, [T.train_config(TRAIN)] * 4) == [[0, 1], [2, 3]]
    finetune = [T.train_config(TRAIN, False), T.train_config(TRAIN, True)]
    assert population_groups(models[:2], finetune) == [[0], [1]]  # train_activations differs


@pytest.mark.parametrize("family", ["mlp_tanh_scaled", "mlp_af"])
def test_populations_of_a_search_equal_the_loop_in_float64(monkeypatch, family):
    original = train_module.as_tensors

    def as_float64(data, task):
        return {k: v.double() if v.is_floating_point() else v for k, v in original(data, task).items()}

    monkeypatch.setattr(train_module, "as_tensors", as_float64)
    monkeypatch.setattr(population_module, "as_tensors", as_float64)
    data, learned = _split(), _learned_afs()
    if family == "mlp_af":
        configs = [{"variant": v, "depth": 2, "width": 8} for v in ("af_relu", "af_zeros", "af_per_layer")]
    else:
        configs = [{"depth": 2, "width": 8, "alpha": a} for a in (0.5, 1.0, 3.0)]
    models = [T.build_config_model(family, c, learned.get(c.get("variant")), data, 3).double() for c in configs]
    config = T.train_config(TRAIN)
    config = TrainConfig(**{**config.to_dict(), "steps": TRAIN["steps"], "patience": TRAIN["patience"]})
    expected = [_loop_reference(copy.deepcopy(m), data, config, 3) for m in models]
    got = fit_networks(models, data, [config] * len(models), 3, tv=TV)
    # early stopping and checkpoint selection are exercised: models stop at different steps
    assert len({r["steps_run"] for r in expected}) > 1 and any(r["best_step"] < r["steps_run"] for r in expected)
    for g, e in zip(got, expected):
        assert {k: g[k] for k in ("best_step", "steps_run")} == {k: e[k] for k in ("best_step", "steps_run")}
        for key in ("train_acc", "val_acc", "test_acc"):
            assert g[key] == pytest.approx(e[key], abs=1e-12), key
        assert g["tv"] == pytest.approx(e["tv"], rel=1e-9)


def test_a_config_retrained_alone_is_the_model_its_population_trained():
    data = _split()
    configs = [{"depth": 1, "width": 16, "alpha": a} for a in (0.5, 2.0, 4.0)]
    rows = T.train_config_rows("mlp_tanh_scaled", configs, {}, data, TRAIN, seed=1)
    for config, row in zip(configs, rows):
        alone = T.train_config_row("mlp_tanh_scaled", config, None, data, TRAIN, seed=1, snapshots=True)
        for key in ("train_acc", "val_acc", "test_acc", "best_step", "steps_run", "tv"):
            assert alone[key] == row[key], key
        # the trajectory: init, then one point per evaluation (every 10 steps until stopping)
        assert len(alone["trajectory"]) == 1 + alone["steps_run"] // TRAIN["eval_every"]
    assert len({row["val_acc"] for row in rows}) > 1  # the alphas made different models


def test_config_models_built_in_threads_depend_on_their_seed_alone():
    # Units run in threads: builds of seed 3 interleaved with builds of seed 4 must still all draw
    # the weights of seed 3 (a bare torch.manual_seed would let the draws interleave).
    from concurrent.futures import ThreadPoolExecutor

    data = _split()
    config = {"depth": 2, "width": 64}
    build = lambda seed: T.build_config_model("mlp_relu", config, None, data, seed)  # noqa: E731
    with ThreadPoolExecutor(max_workers=8) as pool:
        models = list(pool.map(build, [3, 4] * 24))
    reference = {seed: build(seed) for seed in (3, 4)}
    for seed, model in zip([3, 4] * 24, models):
        for p, q in zip(model.parameters(), reference[seed].parameters()):
            assert torch.equal(p, q)
