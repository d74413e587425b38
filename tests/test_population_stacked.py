"""The hand-differentiated step of stacked ReLU/tanh MLPs (pipeline.fit.stacked_mlp): the path
train_population takes for plain MLPs gives the models a loop of train_model gives, and its
gradients are autograd's."""

import copy

import pytest
import torch
from torch import nn

from pipeline.fit.population import _functional_base, _stacked_plan, population_configs, train_population
from pipeline.fit.stacked_mlp import StackedMLP
from pipeline.fit.train import TrainConfig, train_model, trainable_parameters
from pipeline.nn import InputActivations, SplineActivation, TanhScaled, make_mlp

from test_population import _data, _max_diff, float64_data  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stacked(models, train_activations=False):
    """The plan, the StackedMLP and the stacked tensors of ``models`` (as train_population builds
    them: learned activations frozen unless ``train_activations``)."""
    base, scalars = _functional_base(models[0])
    plan = _stacked_plan(base)
    names = [n for n, _ in models[0].named_parameters()]
    trainable = [n for n, p in models[0].named_parameters() if any(p is q for q in trainable_parameters(models[0], train_activations))]
    tensors = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in names}
    for key, (module, attr) in scalars.items():
        tensors[key] = torch.tensor([float(getattr(m.get_submodule(module), attr)) for m in models], dtype=torch.float64)
    return plan, StackedMLP.from_plan(plan, trainable) if plan is not None else None, tensors


def _activation(name, alpha):
    if name == "tanh_scaled":
        return TanhScaled(alpha)
    if name == "sigmoid":
        return nn.Sigmoid()
    if name in ("spline", "spline_and_iaf"):
        act = SplineActivation(n_knots=9, interval=(-2, 2), init="relu")
        with torch.no_grad():  # a different AF per model; inputs also fall outside the grid
            act.values.add_(alpha * torch.linspace(-1, 1, 9))
        return act
    return name


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "tanh_scaled", "spline", "spline_and_iaf"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_gradients_equal_autograd(activation, task):
    d_out = 3 if task == "classification" else 1
    models = []
    for seed, alpha in ((0, 0.5), (1, 2.0)):
        torch.manual_seed(seed)
        iaf = None
        if activation == "spline_and_iaf":
            iaf = InputActivations(4, n_knots=9, interval=(-2, 2))
            with torch.no_grad():
                iaf.values.mul_(1 + 0.1 * alpha)
        models.append(make_mlp(4, d_out, 2, 8, activation=_activation(activation, alpha), input_activation=iaf).double())
    plan, net, tensors = _stacked(models)
    assert net is not None
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(d_out, (2, 16), generator=gen) if task == "classification" else torch.randn(2, 16, generator=gen, dtype=torch.float64)
    losses, grads = net.loss_and_grads(tensors, x, y, task)
    for k, model in enumerate(models):
        out = model(x[k])
        loss = nn.functional.cross_entropy(out, y[k]) if task == "classification" else nn.functional.mse_loss(out.squeeze(1), y[k])
        trainable = trainable_parameters(model, False)
        expected = torch.autograd.grad(loss, trainable)
        assert losses[k].item() == pytest.approx(loss.item(), rel=1e-12)
        names = {id(p): n for n, p in model.named_parameters()}
        assert sorted(grads) == sorted(names[id(p)] for p in trainable)  # no gradient for frozen AFs
        for p, g in zip(trainable, expected):
            assert torch.allclose(grads[names[id(p)]][k], g, rtol=0, atol=1e-13), names[id(p)]


def test_only_plain_mlps_take_the_hand_written_path():
    assert _stacked([make_mlp(4, 2, 1, 8)])[1] is not None
    assert _stacked([make_mlp(4, 2, 1, 8, activation="gelu")])[1] is None
    spline_mlp = make_mlp(4, 2, 1, 8, activation=SplineActivation(init="relu"), input_activation=InputActivations(4))
    assert _stacked([spline_mlp])[1] is not None  # frozen learned activations
    assert _stacked([spline_mlp], train_activations=True)[1] is None  # trained ones: autograd
    plan, _, _ = _stacked([make_mlp(4, 2, 1, 8)])
    assert StackedMLP.from_plan(plan, ["0.weight", "not_a_linear"]) is None  # a trainable non-Linear tensor


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_relu_population_equals_loop(float64_data, optimizer):
    base = TrainConfig(steps=40, batch_size=16, eval_every=10, patience=2, optimizer=optimizer, target_accuracy=0.6)
    configs = population_configs(base, lr=[1e-2, 3e-3, 3e-2], weight_decay=[0.0, 0.1, 1e-3])
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(make_mlp(4, 2, 2, 8).double())
    looped = [train_model(copy.deepcopy(m), _data(), "classification", c, s) for m, c, s in zip(models, configs, (5, 6, 7))]
    batched = train_population(models, _data(), "classification", configs, [5, 6, 7])
    for b, l in zip(batched, looped):
        assert _max_diff(b.model, l.model) <= 1e-10
        assert b.best_step == l.best_step and b.steps_to_target == l.steps_to_target
        assert [r["val_acc"] for r in b.curve] == pytest.approx([r["val_acc"] for r in l.curve], abs=1e-12)
        assert b.metrics == pytest.approx(l.metrics, rel=1e-9, abs=1e-12)


def test_full_batch_regression_population_equals_loop(float64_data):
    config = TrainConfig(steps=20, batch_size=None, eval_every=5, patience=None, lr=1e-2)
    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        models.append(make_mlp(4, 1, 1, 8, activation="tanh").double())
    looped = [train_model(copy.deepcopy(m), _data("regression"), "regression", config, s) for m, s in zip(models, (0, 1))]
    batched = train_population(models, _data("regression"), "regression", config, [0, 1])
    for b, l in zip(batched, looped):
        assert _max_diff(b.model, l.model) <= 1e-10
        assert b.metrics == pytest.approx(l.metrics, rel=1e-9, abs=1e-12)
