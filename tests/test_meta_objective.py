"""The outer objective on V of Algorithm 1: the task loss (default) or the normalised margin."""

import pytest
import torch

from pipeline.meta import InnerOptimizer, MetaConfig, fresh_weights, meta_learn, meta_modules_of, unrolled_validation_loss
from pipeline.meta.algorithm import VAL_OBJECTIVES, normalized_margin_objective
from pipeline.nn import SplineActivation, make_mlp


def test_normalized_margin_values_and_scale_invariance():
    out = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.5], [3.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    # margins: 2 - 1 = 1, 1 - 0.5 = 0.5, 0 - 3 = -3 -> -(-1.5 / 3) / (4.5 / 3) = 1/3
    assert normalized_margin_objective(out, y).item() == pytest.approx(1 / 3, rel=1e-6)
    assert normalized_margin_objective(7.5 * out, y).item() == pytest.approx(1 / 3, rel=1e-6)
    assert normalized_margin_objective(out[:2], y[:2]).item() == pytest.approx(-1.0, rel=1e-6)
    assert normalized_margin_objective(out[2:], y[2:]).item() == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match=r"\(n, k >= 2\).*\(3, 1\)"):
        normalized_margin_objective(out[:, :1], y)


def test_bad_val_objective_names_the_allowed_values():
    with pytest.raises(ValueError, match=r"val_objective.*'accuracy'.*'loss', 'margin'"):
        MetaConfig(val_objective="accuracy")
    assert VAL_OBJECTIVES == ("loss", "margin") and MetaConfig().val_objective == "loss"


def test_margin_objective_is_refused_for_regression():
    model = make_mlp(1, 1, 1, 8, activation=SplineActivation(n_knots=9, interval=(-2, 2), init="relu"))
    X = torch.linspace(-1, 1, 32).unsqueeze(1)
    with pytest.raises(ValueError, match="val_objective='margin' needs classification.*regression"):
        meta_learn(model, X, X[:, 0], task="regression", config=MetaConfig(n_max=2, val_objective="margin"))


def test_episode_returns_the_margin_objective_and_its_hypergradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(0)
    act = SplineActivation(n_knots=13, interval=(-3, 3), init="relu").double()
    model = make_mlp(2, 3, depth=2, width=8, activation=act).double()
    theta0 = fresh_weights(model, meta_modules_of(model), seed=1)
    X = torch.randn(40, 2, dtype=torch.float64, generator=gen)
    y = torch.randint(3, (40,), generator=gen)
    batches = [(X[:20], y[:20])] * 4
    name = next(n for n, p in model.named_parameters() if p is act.values)
    inner = InnerOptimizer("sgd", lr=0.5)

    def objective(values, which="margin"):
        return unrolled_validation_loss(model, {name: values}, theta0, batches, X[20:], y[20:], "classification",
                                        inner, None, which)

    psi = act.values.detach().clone().requires_grad_()
    value, acc = objective(psi)
    assert -1.0 <= value.item() <= 1.0 and value.item() != pytest.approx(objective(psi.detach(), "loss")[0].item())
    (grad,) = torch.autograd.grad(value, psi)
    direction = torch.randn(13, dtype=torch.float64, generator=gen)
    eps = 1e-6
    fd = (objective(psi.detach() + eps * direction)[0] - objective(psi.detach() - eps * direction)[0]) / (2 * eps)
    assert grad.abs().max() > 1e-5
    assert (grad @ direction).item() == pytest.approx(fd.item(), rel=1e-4, abs=1e-9)


def test_meta_learning_with_the_margin_objective_raises_the_validation_margin():
    # a zero AF gives every row the same output (the last bias): no separation of V at all
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(200, 2, generator=gen)
    y = (X[:, 0] + X[:, 1] > 0).long()
    Xv = torch.randn(200, 2, generator=gen)
    yv = (Xv[:, 0] + Xv[:, 1] > 0).long()
    model = make_mlp(2, 2, 1, 16, activation=SplineActivation(n_knots=13, interval=(-3, 3), init="zeros"))
    config = MetaConfig(n_max=12, patience=None, val_objective="margin", inner=InnerOptimizer("adam", 0.05),
                        episodes_per_step=2, outer_lr=0.05)
    result = meta_learn(model, X, y, Xv, yv, config=config, seed=0)
    values = [row["val_loss"] for row in result.history]
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert abs(values[0]) < 0.2  # constant outputs: margins +-b on the two classes
    assert min(values[-5:]) < -0.5  # a network that separates V on most rows


def test_keep_last_returns_the_final_values_where_best_returns_the_first_steps_for_an_out_of_distribution_v():
    # T' labels follow feature 0, V's follow feature 1: the longer the inner run, the worse V's loss,
    # whatever the AF, so "best" falls on the first outer steps (shortcut learning's V behaves so)
    gen = torch.Generator().manual_seed(0)
    X, Xv = torch.randn(120, 2, generator=gen), torch.randn(120, 2, generator=gen)
    y, yv = (X[:, 0] > 0).long(), (Xv[:, 1] > 0).long()
    results, finals = {}, {}
    for keep in ("best", "last"):
        act = SplineActivation(n_knots=13, interval=(-3, 3), init="relu")
        model = make_mlp(2, 2, 1, 16, activation=act)
        config = MetaConfig(n_max=10, patience=None, smoothing=0.0, keep=keep, inner=InnerOptimizer("adam", 0.05))
        results[keep] = meta_learn(model, X, y, Xv, yv, config=config, seed=0)
        finals[keep] = act.values.detach().clone()
    assert [r["val_loss"] for r in results["best"].history] == [r["val_loss"] for r in results["last"].history]
    assert results["best"].best_step <= 3 and results["last"].best_step == 10
    assert not torch.allclose(finals["best"], finals["last"])
    with pytest.raises(ValueError, match=r"keep.*'first'.*'best', 'last'"):
        MetaConfig(keep="first")
