"""total_variation (paper Eq. 2) against closed forms, and the slice helpers."""

import math

import pytest
import torch

from pipeline.complexity import slice_1d, slice_2d, total_variation


def _pairs(X, n_paths, seed):
    # The same pair draw as total_variation, to compute the closed form per path.
    gen = torch.Generator().manual_seed(seed)
    n = X.shape[0]
    first = torch.randint(n, (n_paths,), generator=gen)
    second = (first + torch.randint(1, n, (n_paths,), generator=gen)) % n
    return X[first], X[second]


def test_linear_function_tv_is_abs_projection_of_the_path():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(50, 7, dtype=torch.float64, generator=gen)
    w = torch.randn(7, dtype=torch.float64, generator=gen)
    x1, x2 = _pairs(X, 64, seed=3)
    expected = ((x2 - x1) @ w).abs().mean().item()
    got = total_variation(lambda x: x @ w, X, n_paths=64, n_points=5, seed=3)
    assert got == pytest.approx(expected, rel=1e-10)


def test_sine_tv_approaches_analytic_value():
    # Along the path x1 = 0 -> x2 = 1 in 1-D, f = sin(k t) has TV = integral |k cos(k t)| dt.
    k = 7.0
    X = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    analytic = _tv_sine(k)
    errors = []
    for n_points in (10, 100, 10_000):
        tv = total_variation(lambda x: torch.sin(k * x[:, 0]), X, n_paths=8, n_points=n_points)
        errors.append(abs(tv - analytic))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-6 * analytic


def _tv_sine(k: float) -> float:
    # sin(k t) on [0, 1]: sum of |differences| between successive extrema and the end points.
    pts = [0.0] + [(math.pi / 2 + j * math.pi) / k for j in range(int(k / math.pi) + 2)] + [1.0]
    pts = sorted(p for p in pts if 0 <= p <= 1)
    return sum(abs(math.sin(k * b) - math.sin(k * a)) for a, b in zip(pts, pts[1:]))


def test_multi_output_uses_one_random_column_per_path():
    X = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    W = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    tv = total_variation(lambda x: x @ W, X, n_paths=2000, n_points=3, seed=0)
    x1, x2 = _pairs(X, 2000, seed=0)
    full = (x2 - x1)[:, 0].abs().mean().item()
    assert 0.4 * full < tv < 0.6 * full  # half the paths see the constant column


def test_deterministic_and_bad_input():
    X = torch.randn(10, 2)
    f = lambda x: torch.sin(3 * x).sum(1)  # noqa: E731
    assert total_variation(f, X, seed=5) == total_variation(f, X, seed=5)
    with pytest.raises(ValueError, match="n_points"):
        total_variation(f, X, n_points=1)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        total_variation(f, torch.zeros(3))


def test_slices_pass_through_the_points():
    f = lambda x: x.sum(1, keepdim=True) ** 2  # noqa: E731
    x1, x2, x3 = torch.tensor([0.0, 1.0]), torch.tensor([2.0, 0.0]), torch.tensor([-1.0, -1.0])
    t, out = slice_1d(f, x1, x2, n_points=11)
    assert out.shape == (11, 1) and out[0, 0] == 1.0 and out[-1, 0] == 4.0
    u, v, grid = slice_2d(f, x1, x2, x3, resolution=5)
    assert grid.shape == (5, 5, 1)
    assert grid[0, 0, 0] == 1.0 and grid[0, -1, 0] == 4.0 and grid[-1, 0, 0] == 4.0
