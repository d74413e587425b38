"""Complexity landscapes (pipeline.complexity.landscape, paper Fig. 7b): plane geometry and the TV
measured at grid points."""

import pytest
import torch
from torch import nn

from pipeline.complexity import complexity_landscape, random_plane, total_variation, trajectory_plane


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))


def test_trajectory_plane_puts_init_at_1_0_and_solution_at_origin():
    model = _model()
    solution = {k: v.detach().clone() for k, v in model.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    init = {k: v + torch.randn(v.shape, generator=gen) for k, v in solution.items()}
    middle = {k: 0.5 * (init[k] + solution[k]) + 0.1 * torch.randn(v.shape, generator=gen) for k, v in solution.items()}
    d1, d2, coords = trajectory_plane([init, middle, solution], solution)
    assert coords[0].tolist() == pytest.approx([1.0, 0.0], abs=1e-6)
    assert coords[-1].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    flat = lambda p: torch.cat([p[k].reshape(-1).double() for k in sorted(p)])  # noqa: E731
    assert flat(d1).dot(flat(d2)).item() == pytest.approx(0.0, abs=1e-6)
    assert flat(d2).norm().item() == pytest.approx(flat(d1).norm().item(), rel=1e-6)
    # the middle checkpoint is reproduced by its coordinates up to the part off the plane
    assert abs(coords[1, 1].item()) > 0


def test_random_plane_is_filter_normalised_and_seeded():
    theta = {k: v.detach() for k, v in _model().named_parameters()}
    d1, d2 = random_plane(theta, seed=3)
    for name, p in theta.items():
        if p.dim() == 2:
            assert torch.allclose(d1[name].norm(dim=1), p.norm(dim=1), rtol=1e-5)
        else:
            assert d1[name].norm().item() == pytest.approx(p.norm().item(), rel=1e-5)
    again, _ = random_plane(theta, seed=3)
    assert all(torch.equal(d1[k], again[k]) for k in d1) and not torch.equal(d1["0.weight"], d2["0.weight"])


def test_landscape_at_the_origin_is_the_models_tv_and_leaves_the_model_unchanged():
    model = _model()
    theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    X = torch.randn(40, 3, generator=torch.Generator().manual_seed(2))
    d1, d2 = random_plane(theta, seed=0)
    grid = complexity_landscape(model, theta, d1, d2, [-1.0, 0.0, 1.0], [0.0, 0.5], X, n_paths=8, n_points=20, seed=4)
    assert grid.shape == (2, 3)
    expected = total_variation(lambda x: torch.softmax(model(x), -1), X, n_paths=8, n_points=20, seed=4)
    assert grid[0, 1].item() == pytest.approx(expected, rel=1e-5)
    assert all(torch.equal(v, theta[k]) for k, v in model.named_parameters())
    # a zero output function has no variation anywhere
    flat = complexity_landscape(model, theta, d1, d2, [0.0, 1.0], [0.0], X, n_paths=4, n_points=5,
                                output=lambda out: out * 0)
    assert flat.abs().max().item() == 0


def test_planes_reject_mismatched_parameters():
    theta = {k: v.detach() for k, v in _model().named_parameters()}
    with pytest.raises(ValueError, match="at least 2 checkpoints"):
        trajectory_plane([theta], theta)
    with pytest.raises(ValueError, match="parameter names differ"):
        trajectory_plane([{"w": torch.zeros(2)}, theta], theta)
