"""Episodes of one outer step run stacked (MetaConfig.batch_episodes) give the results of running
them one after the other: same episodes, same meta-gradients, same learned values."""

import dataclasses

import pytest
import torch

from pipeline.meta import MetaConfig, MetaProblem, meta_learn, meta_learn_problems
from pipeline.meta.algorithm import InnerOptimizer, stackable, stacked_forward
from pipeline.nn import InputActivations, SplineActivation, make_mlp, seeded


def _learn(model_fn, X, y, batch, task="classification", **cfg):
    with seeded(0):
        model = model_fn().double()  # the activations' values too (they are stored in float32 by default)
    config = MetaConfig(n_max=6, truncation=3, episodes_per_step=3, patience=None, batch_episodes=batch, **cfg)
    result = meta_learn(model, X, y, task=task, config=config, seed=5)
    values = torch.cat([p.detach().flatten() for m in result.activations.values() for p in m.parameters()])
    return values, result.history


@pytest.mark.parametrize("case", ["shared_af", "iaf_and_per_layer_af", "minibatch_regression"])
def test_stacked_episodes_equal_one_by_one_in_float64(case):
    torch.set_default_dtype(torch.float64)
    try:
        gen = torch.Generator().manual_seed(0)
        X = torch.randn(120, 5, generator=gen)
        y = (X[:, 0] * X[:, 1] > 0).long()
        kwargs = {}
        if case == "shared_af":
            model_fn = lambda: make_mlp(5, 2, 2, 16, activation=SplineActivation(init="relu"))  # noqa: E731
        elif case == "iaf_and_per_layer_af":
            model_fn = lambda: make_mlp(5, 2, 2, 16, activation=[SplineActivation(init="relu"), SplineActivation(init="zeros")],  # noqa: E731
                                        input_activation=InputActivations(5))
        else:
            y = torch.sin(3 * X[:, 0])
            model_fn = lambda: make_mlp(5, 1, 1, 16, activation=SplineActivation(init="relu"))  # noqa: E731
            kwargs = {"task": "regression", "inner_batch_size": 32, "inner": InnerOptimizer("sgd", lr=0.05)}
        batched, hist_b = _learn(model_fn, X, y, True, **kwargs)
        looped, hist_l = _learn(model_fn, X, y, False, **kwargs)
    finally:
        torch.set_default_dtype(torch.float32)
    assert (batched - looped).abs().max().item() < 1e-10
    assert (batched != 0).any()
    for b, l in zip(hist_b, hist_l):
        assert b["val_loss"] == pytest.approx(l["val_loss"], rel=1e-10)
        assert b["meta_grad_norm"] == pytest.approx(l["meta_grad_norm"], rel=1e-8)
        assert b["knots_visited"] == l["knots_visited"]


def test_stacked_forward_matches_each_copy():
    with seeded(1):
        model = make_mlp(4, 3, 2, 8, activation=SplineActivation(init="relu"))
    copies = []
    for seed in range(3):
        with seeded(seed):
            copies.append({n: torch.randn_like(p) for n, p in model.named_parameters() if "values" not in n})
    psi = {n: p for n, p in model.named_parameters() if "values" in n}
    x = torch.randn(3, 10, 4)
    out = stacked_forward(model, {**{k: torch.stack([c[k] for c in copies]) for k in copies[0]}, **psi}, x)
    for e, c in enumerate(copies):
        expect = torch.func.functional_call(model, {**c, **psi}, (x[e],))
        assert torch.allclose(out[e], expect, atol=1e-6)


def test_models_that_cannot_be_stacked_run_one_by_one():
    class Custom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.act = SplineActivation(init="relu")
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(self.act(x))

    model = Custom()
    assert not stackable(model, {"act": model.act})
    assert stackable(make_mlp(3, 2, 1, 4, activation=SplineActivation()), {}) is False  # the AF is not declared meta
    X, y = torch.randn(40, 3), torch.randint(2, (40,))
    result = meta_learn(model, X, y, config=MetaConfig(n_max=2, episodes_per_step=2, patience=None))
    assert len(result.history) == 2


def test_batch_episodes_must_be_a_bool():
    with pytest.raises(ValueError, match="MetaConfig.batch_episodes has an invalid value 'yes'"):
        MetaConfig(batch_episodes="yes")


def test_several_problems_group_by_problem():
    """The all-task AF: episodes of different problems (shapes) run in separate groups."""
    results = {}
    for batch in (True, False):
        act = SplineActivation(init="relu").double()
        problems = []
        gen = torch.Generator().manual_seed(0)
        for d, k in ((6, 3), (8, 4)):
            X = torch.randn(50, d, generator=gen, dtype=torch.float64)
            with seeded(d):
                model = make_mlp(d, k, 1, 8, activation=act).double()
            problems.append(MetaProblem(model, X, torch.randint(k, (50,), generator=gen)))
        r = meta_learn_problems(problems, MetaConfig(n_max=4, episodes_per_step=4, patience=None, batch_episodes=batch), seed=3)
        results[batch] = (act.values.detach().clone(), [h["val_loss"] for h in r.history])
    assert (results[True][0] - results[False][0]).abs().max().item() < 1e-10
    assert (results[True][0] != SplineActivation(init="relu").values.double()).any()
    assert results[True][1] == pytest.approx(results[False][1], rel=1e-10)
