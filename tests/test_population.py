"""Model populations (pipeline.fit.population): K models trained as one batched computation give
the models a Python loop of train_model gives (same seeds -> same weights), with per-model
hyperparameters, per-model activations, per-model early stopping and checkpoint selection."""

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import pipeline.fit.population as population_module
import pipeline.fit.train as train_module
from pipeline.fit.population import population_configs, train_population
from pipeline.fit.train import TrainConfig, train_model
from pipeline.nn import InputActivations, SplineActivation, TanhScaled, make_mlp


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def float64_data(monkeypatch):
    """Train in float64 on both sides (train_model converts data to float32): there the batched and
    the looped arithmetic agree to rounding, without float32's chaotic amplification by Adam."""
    original = train_module.as_tensors

    def as_float64(data, task):
        return {k: v.double() if v.is_floating_point() else v for k, v in original(data, task).items()}

    monkeypatch.setattr(train_module, "as_tensors", as_float64)
    monkeypatch.setattr(population_module, "as_tensors", as_float64)


def _data(task="classification", n=160, d=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen)
    score = X[:, 0] * X[:, 1] + torch.sin(2 * X[:, 2]) + 0.3 * torch.randn(n, generator=gen)
    y = (score > 0).long() if task == "classification" else score
    a, b = n // 2, 3 * n // 4
    return SimpleNamespace(X_train=X[:a], y_train=y[:a], X_val=X[a:b], y_val=y[a:b], X_test=X[b:], y_test=y[b:])


def _spline_mlp(seed, shift, d=4, d_out=2, dtype=torch.float64, **kwargs):
    torch.manual_seed(seed)
    act = SplineActivation(n_knots=13, interval=(-3, 3), init="relu")
    with torch.no_grad():
        act.values.add_(shift * torch.linspace(-1, 1, 13))  # a different activation per model
    return make_mlp(d, d_out, 2, 8, activation=act, **kwargs).to(dtype)


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def _compare(models, data, task, configs, seeds, atol):
    looped_models = [copy.deepcopy(m) for m in models]
    batched = train_population(models, data, task, configs, seeds)
    configs = configs if isinstance(configs, list) else [configs] * len(models)
    looped = [train_model(m, data, task, c, s) for m, c, s in zip(looped_models, configs, seeds)]
    for b, l in zip(batched, looped):
        assert _max_diff(b.model, l.model) <= atol
        assert b.best_step == l.best_step
        assert [r["step"] for r in b.curve] == [r["step"] for r in l.curve]
        assert [r["val_acc"] for r in b.curve] == pytest.approx([r["val_acc"] for r in l.curve], abs=1e-9)
        assert b.metrics == pytest.approx(l.metrics, rel=1e-6, abs=1e-9)
        assert b.steps_to_target == l.steps_to_target
    return batched, looped


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_batched_equals_looped_with_per_model_lr_wd_seed_and_activation(float64_data, optimizer):
    base = TrainConfig(steps=40, batch_size=16, eval_every=10, patience=2, optimizer=optimizer, target_accuracy=0.6)
    configs = population_configs(base, lr=[1e-2, 3e-3, 3e-2], weight_decay=[0.0, 0.1, 1e-3], betas=[(0.9, 0.999), (0.8, 0.99), (0.9, 0.98)])
    models = [_spline_mlp(seed, shift) for seed, shift in ((0, 0.0), (1, 0.2), (2, -0.3))]
    _compare(models, _data(), "classification", configs, [5, 6, 7], atol=1e-10)


def test_float32_weights_agree_to_1e5():
    base = TrainConfig(steps=20, batch_size=16, eval_every=5, patience=None)
    configs = population_configs(base, lr=[1e-2, 3e-3, 1e-3, 5e-3])
    models = [_spline_mlp(seed, 0.1 * seed, dtype=torch.float32) for seed in range(4)]
    batched = train_population([copy.deepcopy(m) for m in models], _data(), "classification", configs, [0, 1, 2, 3])
    looped = [train_model(m, _data(), "classification", c, s) for m, c, s in zip(models, configs, range(4))]
    assert max(_max_diff(b.model, l.model) for b, l in zip(batched, looped)) <= 1e-5


def test_per_model_early_stopping_and_checkpoints(float64_data):
    # lr 1e-7 cannot improve validation after the first evaluation: that model stops after
    # `patience` evaluations; the others train on. Each keeps its own best checkpoint.
    base = TrainConfig(steps=60, batch_size=16, eval_every=5, patience=2)
    configs = population_configs(base, lr=[1e-7, 3e-2, 1e-2])
    models = [_spline_mlp(seed, 0.0) for seed in range(3)]
    batched, _ = _compare(models, _data(), "classification", configs, [0, 1, 2], atol=1e-10)
    lengths = [len(r.curve) for r in batched]
    assert lengths[0] == 3 and max(lengths) > lengths[0]
    assert batched[0].best_step == 5
    for r in batched:  # the kept checkpoint is the best validation accuracy of the curve
        assert r.metrics["val_acc"] == pytest.approx(max(row["val_acc"] for row in r.curve))


def test_per_model_activation_values_are_kept_apart(float64_data):
    models = [_spline_mlp(0, shift) for shift in (0.0, 0.5)]  # same weights, different AFs
    before = [m[1].values.detach().clone() for m in models]
    results = train_population(models, _data(), "classification", TrainConfig(steps=10, batch_size=16, eval_every=5), [0, 0])
    assert torch.equal(results[0].model[1].values, before[0]) and torch.equal(results[1].model[1].values, before[1])
    assert _max_diff(results[0].model, results[1].model) > 1e-3  # the activation made them differ


def test_tanh_scaled_alpha_per_model_and_generic_architecture(float64_data):
    class Wrapped(nn.Module):  # not an nn.Sequential: the generic vmap(functional_call) path
        def __init__(self, alpha):
            super().__init__()
            self.net = make_mlp(4, 2, 1, 8, activation=TanhScaled(alpha))

        def forward(self, x):
            return self.net(x) * 2.0

    base = TrainConfig(steps=20, batch_size=16, eval_every=5, patience=None)
    for build in (lambda alpha: make_mlp(4, 2, 2, 8, activation=TanhScaled(alpha)), Wrapped):
        models = []
        for seed, alpha in ((0, 0.5), (1, 3.0)):
            torch.manual_seed(seed)
            models.append(build(alpha).double())
        _compare(models, _data(), "classification", base, [0, 1], atol=1e-10)


def test_regression_full_batch_iaf_and_trained_activations(float64_data):
    def build(seed):
        torch.manual_seed(seed)
        iaf = InputActivations(4, n_knots=9, interval=(-3, 3))
        with torch.no_grad():
            iaf.values.add_(0.05 * seed)
        return make_mlp(4, 1, 1, 8, activation=SplineActivation(n_knots=9, interval=(-3, 3), init="relu"), input_activation=iaf).double()

    config = TrainConfig(steps=15, batch_size=None, eval_every=5, patience=None, train_activations=True, lr=1e-2)
    models = [build(seed) for seed in (0, 1)]
    initial = [m[0].values.detach().clone() for m in models]
    batched, _ = _compare(models, _data("regression"), "regression", config, [0, 1], atol=1e-10)
    assert not torch.equal(batched[0].model[0].values, initial[0])  # the IAFs were trained


def test_builder_with_seeds_equals_seeded_loop(float64_data):
    def build(seed):
        return make_mlp(4, 2, 1, 8).double()

    config = TrainConfig(steps=10, batch_size=16, eval_every=5, patience=None)
    batched = train_population(build, _data(), configs=config, seeds=[3, 4])
    for seed, result in zip((3, 4), batched):
        torch.manual_seed(seed)
        looped = train_model(build(seed), _data(), config=config, seed=seed)
        assert _max_diff(result.model, looped.model) <= 1e-10


def test_bad_populations_are_rejected():
    data = _data()
    with pytest.raises(ValueError, match="TrainConfig.steps"):
        train_population([make_mlp(4, 2, 1, 8)] * 2, data, configs=[TrainConfig(steps=5), TrainConfig(steps=6)])
    with pytest.raises(ValueError, match="differs in architecture"):
        train_population([make_mlp(4, 2, 1, 8), make_mlp(4, 2, 1, 16)], data)
    with pytest.raises(ValueError, match="seeds"):
        train_population(lambda seed: make_mlp(4, 2, 1, 8), data)
    with pytest.raises(ValueError, match="same length"):
        population_configs(TrainConfig(), lr=[1e-3, 1e-2], weight_decay=[0.0])
    with pytest.raises(ValueError, match="only"):
        population_configs(TrainConfig(), steps=[1, 2])


def test_keep_last_and_dense_early_evaluations(float64_data):
    config = TrainConfig(steps=30, batch_size=16, eval_every=20, patience=None, keep_best=False, dense_early_evals=True)
    models = [_spline_mlp(seed, 0.1 * seed) for seed in range(2)]
    batched, looped = _compare(models, _data(), "classification", config, [0, 1], atol=1e-10)
    assert [r["step"] for r in batched[0].curve][:10] == list(range(1, 11))
    assert batched[0].best_step == 30


def _compare_curves(batched, looped):
    """Each model's whole curve as train_model's: same evaluated steps, accuracies to 1e-9."""
    for b, l in zip(batched, looped):
        assert [r["step"] for r in b.curve] == [r["step"] for r in l.curve]
        for key in ("train_acc", "val_acc", "test_acc", "train_loss"):
            assert [r[key] for r in b.curve] == pytest.approx([r[key] for r in l.curve], abs=1e-9)


def test_per_model_stop_after_target_leaves_the_batch_as_train_model_stops(float64_data):
    # The grokking runs' config (full batch, AdamW, keep the last step, dense early evaluations,
    # no patience) with a different stop_after_target per model: one trains the whole budget.
    base = TrainConfig(steps=120, batch_size=None, lr=1e-2, weight_decay=1.0, betas=(0.9, 0.98), eval_every=10,
                       patience=None, target_accuracy=0.75, keep_best=False, dense_early_evals=True)
    configs = population_configs(base, stop_after_target=[None, 2, 5, 1])
    models = [_spline_mlp(0, shift) for shift in (0.0, 0.2, -0.3, 0.1)]  # one seed: the grokking groups' init
    batched, looped = _compare(models, _data(), "classification", configs, [0] * 4, atol=1e-10)
    _compare_curves(batched, looped)
    lengths = [r.curve[-1]["step"] for r in looped]
    assert lengths[0] == 120 and all(s is not None for s in (r.steps_to_target for r in looped))
    assert len(set(lengths)) >= 3, lengths  # the models left the batch at different steps
    for result, hold in zip(batched[1:], (2, 5, 1)):
        assert all(row["test_acc"] >= 0.75 for row in result.curve[-hold:])
        assert result.curve[-hold - 1]["test_acc"] < 0.75  # it stopped at the first chance
        assert result.best_step == result.curve[-1]["step"]  # keep_best=False: the last step


def test_unimplemented_config_fields_are_rejected(monkeypatch):
    monkeypatch.setattr(population_module, "IMPLEMENTED_FIELDS",
                        tuple(f for f in population_module.IMPLEMENTED_FIELDS if f != "stop_after_target"))
    config = TrainConfig(steps=5, target_accuracy=0.9, stop_after_target=2)
    with pytest.raises(ValueError, match="TrainConfig.stop_after_target = 2 is not implemented by train_population"):
        train_population([make_mlp(4, 2, 1, 8)], _data(), configs=config)
    # At its default the field changes nothing, so it is accepted.
    train_population([make_mlp(4, 2, 1, 8)], _data(), configs=TrainConfig(steps=5))


def test_accuracies_are_train_models_bit_for_bit_also_in_chunks(float64_data):
    # 600 validation and test rows in chunks of 256 (eval_rows): each accuracy is the float32
    # count / n that train_model's mean over all rows gives, so a threshold decides alike.
    data = _data(n=2400)
    config = TrainConfig(steps=20, batch_size=64, eval_every=5, patience=None)
    models = [_spline_mlp(seed, 0.1 * seed) for seed in range(2)]
    looped = [train_model(copy.deepcopy(m), data, "classification", config, s) for s, m in enumerate(models)]
    batched = train_population(models, data, "classification", config, [0, 1], eval_rows=256)
    for b, l in zip(batched, looped):
        for key in ("train_acc", "val_acc", "test_acc"):
            assert [r[key] for r in b.curve] == [r[key] for r in l.curve]
        assert b.metrics["test_acc"] == l.metrics["test_acc"]
