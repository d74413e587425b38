"""Complexity landscapes: total variation over a 2-D plane in parameter space (paper Sec. 3.3,
Fig. 7b).

Like loss landscapes (Li et al. 2018), but the height is the complexity of the function the
parameters implement. Two planes, both through the trained solution ``theta*``:

- a *global* plane along the training trajectory (:func:`trajectory_plane`): its first axis points
  from ``theta*`` to the initial weights, its second is the main direction of the rest of the
  trajectory (PCA of the recorded checkpoints, orthogonal to the first); coordinates ``(0, 0)`` are
  the solution and ``(1, 0)`` the initialisation;
- a *local* random plane (:func:`random_plane`): two Gaussian directions, filter-normalised (each
  row of a weight matrix scaled to the norm of that row of ``theta*``), so that coordinate 1 is a
  perturbation as large as the weights themselves.

:func:`complexity_landscape` evaluates ``total_variation`` of the model at
``theta* + a d1 + b d2`` over a grid, without touching the model's own parameters
(``torch.func.functional_call``). Parameters not named in the directions (e.g. frozen learned
activations) keep their values.

Example::

    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> theta = {k: v.detach().clone() for k, v in model.named_parameters()}
    >>> d1, d2 = random_plane(theta, seed=0)
    >>> grid = complexity_landscape(model, theta, d1, d2, [-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0],
    ...                             torch.randn(20, 2), n_paths=5, n_points=10)
    >>> grid.shape
    torch.Size([3, 3])
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .variation import total_variation

Params = dict[str, Tensor]

__all__ = ["complexity_landscape", "random_plane", "trajectory_plane"]


def _flat(params: Params, names: Sequence[str]) -> Tensor:
    return torch.cat([params[n].detach().reshape(-1).double() for n in names])


def _unflat(vector: Tensor, like: Params, names: Sequence[str]) -> Params:
    out, start = {}, 0
    for n in names:
        size = like[n].numel()
        out[n] = vector[start : start + size].reshape(like[n].shape).to(like[n].dtype)
        start += size
    return out


def _check_same_keys(a: Params, b: Params, what: str) -> None:
    if set(a) != set(b):
        raise ValueError(f"{what}: parameter names differ: {sorted(set(a) ^ set(b))}")


def trajectory_plane(trajectory: Sequence[Params], solution: Params) -> tuple[Params, Params, Tensor]:
    """The plane through ``solution`` spanned by the training trajectory.

    Args:
        trajectory: checkpoints in training order, the first being the initial weights (at least
            2, each with the same names as ``solution``).
        solution: the trained parameters ``theta*``.

    Returns:
        ``(d1, d2, coords)``: ``d1 = theta_0 - theta*``; ``d2`` the first principal direction of the
        checkpoints' offsets from ``theta*`` once their ``d1`` component is removed, scaled to the
        norm of ``d1`` (a random orthogonal direction if the trajectory is a straight line); and
        the checkpoints' ``(a, b)`` coordinates in the plane, **Shape** ``(len(trajectory), 2)``.
    """
    if len(trajectory) < 2:
        raise ValueError(f"trajectory_plane needs at least 2 checkpoints, got {len(trajectory)}")
    names = sorted(solution)
    for i, point in enumerate(trajectory):
        _check_same_keys(point, solution, f"trajectory checkpoint {i}")
    origin = _flat(solution, names)
    offsets = torch.stack([_flat(p, names) - origin for p in trajectory])
    u1 = offsets[0]
    n1 = u1.norm()
    if n1 == 0:
        raise ValueError("the first checkpoint equals the solution: no trajectory to span a plane")
    e1 = u1 / n1
    residual = offsets - (offsets @ e1)[:, None] * e1[None, :]
    e2 = None
    if residual.norm() > 1e-12 * n1:
        # first right-singular vector of the residuals = main direction of the rest of the path
        _, _, vh = torch.linalg.svd(residual, full_matrices=False)
        e2 = vh[0]
        e2 = e2 - (e2 @ e1) * e1
        if e2.norm() < 1e-12:
            e2 = None
    if e2 is None:
        gen = torch.Generator().manual_seed(0)
        e2 = torch.randn(origin.shape, generator=gen, dtype=origin.dtype)
        e2 = e2 - (e2 @ e1) * e1
    e2 = e2 / e2.norm()
    d1, d2 = e1 * n1, e2 * n1
    coords = torch.stack([offsets @ e1 / n1, offsets @ e2 / n1], dim=1)
    return _unflat(d1, solution, names), _unflat(d2, solution, names), coords


def random_plane(params: Params, seed: int = 0, filter_normalize: bool = True) -> tuple[Params, Params]:
    """Two random Gaussian directions (seeded) around ``params``; with ``filter_normalize`` each row
    of a 2-D tensor (one unit's incoming weights) is scaled to that row's norm in ``params`` and
    each 1-D tensor to its own norm (Li et al. 2018)."""
    gen = torch.Generator().manual_seed(seed)
    planes = []
    for _ in range(2):
        direction = {}
        for name in sorted(params):
            p = params[name].detach()
            d = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            if filter_normalize:
                if p.dim() >= 2:
                    rows_p = p.reshape(p.shape[0], -1).norm(dim=1, keepdim=True)
                    rows_d = d.reshape(d.shape[0], -1).norm(dim=1, keepdim=True).clamp_min(1e-12)
                    d = (d.reshape(d.shape[0], -1) * rows_p / rows_d).reshape(p.shape)
                else:
                    d = d * p.norm() / d.norm().clamp_min(1e-12)
            direction[name] = d
        planes.append(direction)
    return planes[0], planes[1]


@torch.no_grad()
def complexity_landscape(
    model: nn.Module,
    origin: Params,
    d1: Params,
    d2: Params,
    a_values: Sequence[float],
    b_values: Sequence[float],
    X: Tensor,
    n_paths: int = 50,
    n_points: int = 50,
    seed: int = 0,
    output: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Total variation of ``model`` at ``origin + a d1 + b d2`` for every ``(a, b)`` of the grid.

    Args:
        model: the architecture (its own parameters are left untouched; names not in ``origin``
            keep the model's values).
        origin, d1, d2: parameters and directions by name (as from :func:`trajectory_plane` or
            :func:`random_plane`).
        a_values, b_values: the grid's coordinates.
        X: the rows between which TV paths run (the training inputs), **Shape** ``(n, d)``.
        n_paths, n_points, seed: of :func:`~pipeline.complexity.total_variation` (the same paths
            at every grid point).
        output: applied to the model's output before measuring (default: softmax over the last
            axis, i.e. class probabilities).

    Returns:
        TV per grid point, **Shape** ``(len(b_values), len(a_values))`` (image order: row = b).
    """
    _check_same_keys(d1, origin, "d1")
    _check_same_keys(d2, origin, "d2")
    if not len(a_values) or not len(b_values):
        raise ValueError("complexity_landscape needs at least one value on each axis")
    output = output or (lambda out: torch.softmax(out, dim=-1))
    X = torch.as_tensor(X, dtype=torch.float32)
    grid = torch.empty(len(b_values), len(a_values), dtype=torch.float64)
    for i, b in enumerate(b_values):
        for j, a in enumerate(a_values):
            params = {k: origin[k] + float(a) * d1[k] + float(b) * d2[k] for k in origin}

            def f(x: Tensor, params: Params = params) -> Tensor:
                return output(functional_call(model, params, (x,)))

            grid[i, j] = total_variation(f, X, n_paths=n_paths, n_points=n_points, seed=seed)
    return grid
