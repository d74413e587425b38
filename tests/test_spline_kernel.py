"""The spline kernel's paths (pipeline.nn.spline): fast first-order backward, frozen values,
differentiable backward for gradients of gradients, stacked tables for populations, torch.func
transforms; each against the plain-autograd reference (bucketize + gather + lerp)."""

import pytest
import torch
from torch.func import grad, vmap

from pipeline.nn import SplineActivation, spline_eval
from pipeline.nn.spline import spline_eval_reference, spline_eval_stacked

INTERVAL = (-3.0, 3.0)
EXTRAPOLATIONS = ["linear", "constant"]


def _inputs(shape, n_values=(13,), dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = 4 * torch.randn(shape, dtype=dtype, generator=gen)
    values = torch.randn(n_values, dtype=dtype, generator=gen)
    return x, values


def _grads(fn, x, values, weight):
    x, values = x.detach().requires_grad_(), values.detach().requires_grad_()
    out = fn(x, values)
    return (out, *torch.autograd.grad((out * weight).sum(), (x, values)))


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["shared", "per_feature"])
def test_forward_and_first_order_gradients_match_the_reference(extrapolation, dtype, layout):
    x, values = _inputs((64, 5), (13,) if layout == "shared" else (5, 13), dtype)
    weight = torch.randn(64, 5, dtype=dtype, generator=torch.Generator().manual_seed(1))
    got = _grads(lambda x, v: spline_eval(x, v, INTERVAL, extrapolation), x, values, weight)
    ref = _grads(lambda x, v: spline_eval_reference(x, v, INTERVAL, extrapolation), x, values, weight)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for a, b in zip(got, ref):
        assert torch.allclose(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_frozen_values_no_grad_and_odd_shapes(extrapolation):
    values = torch.randn(13, dtype=torch.float64)
    for shape in [(), (0,), (7,), (3, 4, 5)]:
        x = 4 * torch.randn(shape, dtype=torch.float64)
        ref = spline_eval_reference(x, values, INTERVAL, extrapolation)
        with torch.no_grad():
            assert torch.allclose(spline_eval(x, values, INTERVAL, extrapolation), ref, atol=1e-12)
        xx = x.clone().requires_grad_()
        out = spline_eval(xx, values, INTERVAL, extrapolation)  # frozen values: x-gradient only
        assert torch.allclose(out, ref, atol=1e-12)
        if x.numel():
            (gx,) = torch.autograd.grad(out.sum(), xx)
            xr = x.clone().requires_grad_()
            (gr,) = torch.autograd.grad(spline_eval_reference(xr, values, INTERVAL, extrapolation).sum(), xr)
            assert torch.allclose(gx, gr, atol=1e-12)
    x = 4 * torch.randn(6, 8, dtype=torch.float64).t()  # non-contiguous input
    assert torch.allclose(spline_eval(x, values, INTERVAL, extrapolation), spline_eval_reference(x, values, INTERVAL, extrapolation), atol=1e-12)


def test_nan_and_infinite_inputs_do_not_crash():
    values = torch.linspace(-1, 1, 13)
    x = torch.tensor([float("nan"), 0.5, float("inf"), -float("inf")])
    out = spline_eval(x, values, INTERVAL)
    assert torch.isnan(out[0]) and out[1] == pytest.approx(0.5 / 3) and out[2] == float("inf") and out[3] == -float("inf")
    xx = x.clone().requires_grad_()
    out = spline_eval(xx, values.clone().requires_grad_(), INTERVAL, "constant")
    assert torch.isnan(out[0]) and out[2] == 1 and out[3] == -1


def test_values_gradient_is_bitwise_deterministic():
    act = SplineActivation(init="gelu")
    gen = torch.Generator().manual_seed(0)
    x = 2 * torch.randn(512, 256, generator=gen)
    weight = torch.randn(512, 256, generator=gen)
    threads = torch.get_num_threads()
    grads = []
    try:
        for n_threads in (1, 2, 1, 2):
            torch.set_num_threads(n_threads)
            act.values.grad = None
            (act(x) * weight).sum().backward()
            grads.append(act.values.grad.clone())
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(grads[0], g) for g in grads[1:])


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_second_order_gradients_match_the_reference(extrapolation):
    """create_graph=True takes the differentiable backward: d/dv of a function of dy/dx."""
    x, values = _inputs((40, 3), (13,))
    results = []
    for fn in (spline_eval, spline_eval_reference):
        xx, vv = x.clone().requires_grad_(), values.clone().requires_grad_()
        (gx,) = torch.autograd.grad(fn(xx, vv, INTERVAL, extrapolation).pow(2).sum(), xx, create_graph=True)
        results.append(torch.autograd.grad(gx.pow(2).sum(), vv)[0])
    assert torch.allclose(*results, atol=1e-9)


def test_gradgradcheck_of_stacked_tables():
    gen = torch.Generator().manual_seed(3)
    x = (torch.randint(-14, 14, (3, 4, 2), generator=gen) * 0.5 + 0.1 + 0.2 * torch.rand(3, 4, 2, generator=gen)).double()
    for values in (torch.randn(3, 13, dtype=torch.float64, generator=gen), torch.randn(3, 2, 13, dtype=torch.float64, generator=gen)):
        fn = lambda x, v: spline_eval_stacked(x, v, INTERVAL)  # noqa: E731
        inputs = (x.clone().requires_grad_(), values.requires_grad_())
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_stacked_tables_equal_one_call_per_model(extrapolation):
    gen = torch.Generator().manual_seed(4)
    x = 4 * torch.randn(5, 6, 3, dtype=torch.float64, generator=gen)
    for values in (torch.randn(5, 13, dtype=torch.float64, generator=gen), torch.randn(5, 3, 13, dtype=torch.float64, generator=gen)):
        v = values.clone().requires_grad_()
        out = spline_eval_stacked(x, v, INTERVAL, extrapolation)
        (gv,) = torch.autograd.grad(out.sin().sum(), v)
        for k in range(5):
            vk = values[k].clone().requires_grad_()
            ref = spline_eval_reference(x[k], vk, INTERVAL, extrapolation)
            assert torch.allclose(out[k], ref, atol=1e-12)
            assert torch.allclose(gv[k], torch.autograd.grad(ref.sin().sum(), vk)[0], atol=1e-12)
    with pytest.raises(ValueError, match="do not fit"):
        spline_eval_stacked(x, torch.zeros(4, 13), INTERVAL)


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_vmap_over_value_tables_equals_a_loop(extrapolation):
    gen = torch.Generator().manual_seed(5)
    tables = torch.randn(4, 13, dtype=torch.float64, generator=gen)
    x = 4 * torch.randn(4, 10, dtype=torch.float64, generator=gen)
    looped = torch.stack([spline_eval_reference(x[k], tables[k], INTERVAL, extrapolation) for k in range(4)])
    assert torch.allclose(vmap(lambda xx, v: spline_eval(xx, v, INTERVAL, extrapolation))(x, tables), looped, atol=1e-12)
    assert torch.allclose(vmap(lambda v: spline_eval(x, v, INTERVAL, extrapolation))(tables), torch.stack(
        [spline_eval_reference(x, tables[k], INTERVAL, extrapolation) for k in range(4)]), atol=1e-12)
    per_sample = vmap(grad(lambda v, xx: spline_eval(xx, v, INTERVAL, extrapolation).sin().sum()))(tables, x)
    for k in range(4):
        vk = tables[k].clone().requires_grad_()
        ref = torch.autograd.grad(spline_eval_reference(x[k], vk, INTERVAL, extrapolation).sin().sum(), vk)[0]
        assert torch.allclose(per_sample[k], ref, atol=1e-12)


def test_nested_func_grad_is_exact():
    """torch.func.grad over torch.func.grad: the outer level differentiates the inner backward."""
    x, values = _inputs((7, 3), (13,))

    def inner(v):
        return grad(lambda xx: spline_eval(xx, v, INTERVAL).pow(2).sum())(x).pow(2).sum()

    got = grad(inner)(values)
    xx, vv = x.clone().requires_grad_(), values.clone().requires_grad_()
    (gx,) = torch.autograd.grad(spline_eval_reference(xx, vv, INTERVAL).pow(2).sum(), xx, create_graph=True)
    assert torch.allclose(got, torch.autograd.grad(gx.pow(2).sum(), vv)[0], atol=1e-8, rtol=1e-10)


def test_saved_state_is_compact():
    """Frozen values save one tensor the size of x (like ReLU); trainable ones add a uint8 index."""
    x = torch.randn(64, 32, requires_grad=True)
    for requires_grad, expected in ((False, {torch.float32: 1}), (True, {torch.uint8: 1})):
        values = torch.randn(49, requires_grad=requires_grad)
        saved = []

        def pack(t):
            saved.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            spline_eval(x, values, (-4.8, 4.8))
        big = [t for t in saved if t.numel() == x.numel() and t.data_ptr() != x.data_ptr()]
        counts = {}
        for t in big:
            counts[t.dtype] = counts.get(t.dtype, 0) + 1
        for dtype, n in expected.items():
            assert counts.get(dtype, 0) == n
        if not requires_grad:
            assert len(saved) == 1


@pytest.mark.parametrize("extrapolation", EXTRAPOLATIONS)
def test_values_gradient_alone_for_input_activations_on_data(extrapolation):
    x, values = _inputs((50, 3), (3, 13))  # data does not require a gradient; the IAF tables do
    results = []
    for fn in (spline_eval, spline_eval_reference):
        v = values.clone().requires_grad_()
        results.append(torch.autograd.grad(fn(x, v, INTERVAL, extrapolation).sin().sum(), v)[0])
    assert torch.allclose(*results, atol=1e-12)
