"""SplineActivation, InputActivations, TanhScaled and make_mlp (issue: core library)."""

import json

import pytest
import torch
import torch.nn.functional as F

from pipeline.nn import InputActivations, SplineActivation, TanhScaled, make_mlp, spline_eval
from pipeline.nn.spline import spline_eval_reference

INTERVAL = (-4.8, 4.8)


def test_value_at_each_knot_is_the_stored_value_float64():
    values = torch.randn(49, dtype=torch.float64)
    knots = torch.linspace(*INTERVAL, 49, dtype=torch.float64)
    assert torch.allclose(spline_eval(knots, values, INTERVAL), values, rtol=0, atol=1e-12)


def test_between_knots_is_the_linear_interpolant():
    values = torch.randn(49, dtype=torch.float64)
    knots = torch.linspace(*INTERVAL, 49, dtype=torch.float64)
    s = torch.rand(48, dtype=torch.float64)
    x = knots[:-1] + s * (knots[1:] - knots[:-1])
    expected = values[:-1] + s * (values[1:] - values[:-1])
    assert torch.allclose(spline_eval(x, values, INTERVAL), expected, rtol=0, atol=1e-12)


def test_float32_module_exact_at_knots_to_float_precision():
    act = SplineActivation(init="tanh")
    with torch.no_grad():
        assert (act(act.knots) - act.values).abs().max().item() < 1e-6


def test_linear_and_constant_extrapolation():
    values = torch.randn(11, dtype=torch.float64)
    x = torch.tensor([-9.0, -5.5, 5.5, 9.0], dtype=torch.float64)
    h = 2.0 / 10
    left_slope, right_slope = (values[1] - values[0]) / h, (values[-1] - values[-2]) / h
    linear = spline_eval(x, values, (-1, 1), "linear")
    assert torch.allclose(linear[:2], values[0] + left_slope * (x[:2] + 1))
    assert torch.allclose(linear[2:], values[-1] + right_slope * (x[2:] - 1))
    constant = spline_eval(x, values, (-1, 1), "constant")
    assert torch.allclose(constant, torch.stack([values[0], values[0], values[-1], values[-1]]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("extrapolation", ["linear", "constant"])
def test_kernel_matches_bucketize_reference(extrapolation):
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(3, 49, dtype=torch.float64, generator=gen)
    x = 4 * torch.randn(200, 3, dtype=torch.float64, generator=gen)
    for v, xx in ((values[0], x[:, 0]), (values, x)):
        got = spline_eval(xx, v, INTERVAL, extrapolation)
        assert torch.allclose(got, spline_eval_reference(xx, v, INTERVAL, extrapolation), atol=1e-12)


@pytest.mark.parametrize("extrapolation", ["linear", "constant"])
def test_gradcheck_and_gradgradcheck_float64(extrapolation):
    gen = torch.Generator().manual_seed(1)
    # Inputs away from knots: the spline is piecewise linear, so finite differences across a kink
    # would not match the one-sided derivative.
    x = (torch.randint(-30, 30, (40,), generator=gen) * 0.2 + 0.1 + 0.05 * torch.rand(40, generator=gen))
    x = x.double().requires_grad_()
    values = torch.randn(49, dtype=torch.float64, generator=gen, requires_grad=True)
    fn = lambda x, v: spline_eval(x, v, INTERVAL, extrapolation)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, values))
    assert torch.autograd.gradgradcheck(fn, (x, values))
    per_feature = torch.randn(2, 49, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x.detach().reshape(20, 2).requires_grad_(), per_feature))


def test_any_input_shape():
    act = SplineActivation(init="gelu")
    for shape in [(), (7,), (2, 3, 4, 5)]:
        x = torch.randn(shape)
        assert act(x).shape == x.shape


def test_relu_init_equals_torch_relu():
    act = SplineActivation(init="relu")
    x = torch.linspace(-4.8, 4.8, 100_001)
    with torch.no_grad():
        assert (act(x) - torch.relu(x)).abs().max().item() <= 1e-6


@pytest.mark.parametrize("init,fn", [("zeros", torch.zeros_like), ("identity", lambda x: x), ("gelu", F.gelu), ("tanh", torch.tanh)])
def test_named_inits_match_at_knots(init, fn):
    act = SplineActivation(init=init)
    with torch.no_grad():
        assert torch.allclose(act(act.knots), fn(act.knots), atol=1e-6)


def test_save_then_load_gives_identical_outputs(tmp_path):
    act = SplineActivation(n_knots=31, interval=(-3, 3), init="relu")
    with torch.no_grad():
        act.values.add_(0.1 * torch.randn(31))
    path = act.save(tmp_path / "af.json", trained_on="unit-test", params={"n_max": 5})
    spec = json.loads(path.read_text())
    assert set(spec) >= {"knots", "values", "interval", "extrapolation", "init", "trained_on", "params"}
    assert spec["trained_on"] == "unit-test" and len(spec["knots"]) == 31
    loaded = SplineActivation.load(path)
    x = 5 * torch.randn(1000)
    with torch.no_grad():
        assert torch.equal(loaded(x), act(x))
    from_file = SplineActivation(n_knots=31, interval=(-3, 3), init=path)
    assert torch.equal(from_file.values, act.values)


def test_shared_and_per_layer_activations():
    shared = SplineActivation(init="relu")
    model = make_mlp(4, 3, depth=3, width=8, activation=shared)
    assert sum(p.numel() for p in model.parameters() if p is shared.values) == 49
    assert len([m for m in model if m is shared]) == 3
    per_layer = [SplineActivation(init="relu") for _ in range(3)]
    model = make_mlp(4, 3, depth=3, width=8, activation=per_layer)
    assert len({id(m) for m in model if isinstance(m, SplineActivation)}) == 3


def test_make_mlp_shapes_heads_and_iaf():
    assert make_mlp(5, 1, depth=0, width=1)(torch.randn(2, 5)).shape == (2, 1)
    model = make_mlp(5, 4, depth=2, width=16, activation="tanh_scaled", input_activation="iaf")
    assert isinstance(model[0], InputActivations)
    assert model(torch.randn(3, 5)).shape == (3, 4)
    assert TanhScaled(2.0)(torch.tensor([0.5])).item() == pytest.approx(torch.tanh(torch.tensor(1.0)).item())


def test_iaf_is_identity_at_init_inside_and_far_outside():
    iaf = InputActivations(6)
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.5, 1, 3, 10, 100, 1e3])
    with torch.no_grad():
        out = iaf(x)
    assert torch.allclose(out, x, rtol=1e-5, atol=1e-5)
    assert iaf.values.shape == (6, 49)


def test_iaf_features_are_independent_splines():
    iaf = InputActivations(2)
    with torch.no_grad():
        iaf.values[1] = torch.relu(iaf.knots)
        out = iaf(torch.tensor([[-2.0, -2.0], [1.0, 1.0]]))
    assert torch.allclose(out, torch.tensor([[-2.0, 0.0], [1.0, 1.0]]), atol=1e-6)
    assert torch.allclose(iaf.feature(1).values, iaf.values[1])


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"n_knots": 1}, "n_knots"),
        ({"n_knots": 2.5}, "n_knots"),
        ({"interval": (1.0, 1.0)}, "(1.0, 1.0)"),
        ({"interval": (2.0, -2.0)}, "(2.0, -2.0)"),
        ({"interval": ()}, "interval"),
        ({"init": "swish"}, "'swish'"),
        ({"extrapolation": "cubic"}, "'cubic'"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, needle):
    with pytest.raises(ValueError) as err:
        SplineActivation(**kwargs)
    assert needle in str(err.value)


def test_bad_activation_and_saved_file(tmp_path):
    with pytest.raises(ValueError, match="'swish'"):
        make_mlp(3, 2, depth=1, width=4, activation="swish")
    with pytest.raises(ValueError, match="depth=2"):
        make_mlp(3, 2, depth=2, width=4, activation=[SplineActivation()])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"knots": [0, 1, 2], "values": [0, 1], "interval": [0, 2]}))
    with pytest.raises(ValueError, match="3 knots but 2 values"):
        SplineActivation.load(bad)
    with pytest.raises(ValueError, match="no saved activation"):
        SplineActivation.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="n_knots=49"):
        SplineActivation(init=SplineActivation(n_knots=5).save(tmp_path / "five.json"))


def test_plot_draws_the_curve():
    import matplotlib

    matplotlib.use("Agg")
    ax = SplineActivation(init="relu").plot()
    xs, ys = ax.lines[0].get_data()
    assert len(xs) == 512 and ys[-1] == pytest.approx(xs[-1], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu():
    act = SplineActivation(init="gelu")
    x = 6 * torch.randn(4, 1000)
    cuda_act = SplineActivation(init="gelu").cuda()
    out = cuda_act(x.cuda().requires_grad_())
    out.sum().backward()
    with torch.no_grad():
        assert torch.allclose(out.cpu(), act(x), atol=1e-6)
    assert cuda_act.values.grad.device.type == "cuda"
