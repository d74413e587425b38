"""Complexity of a learned function as total variation along paths (paper Sec. 2.2, Eq. 1-2)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Function = Callable[[Tensor], Tensor]


def _check_rows(X: Tensor, name: str = "X", at_least: int = 2) -> Tensor:
    X = torch.as_tensor(X)
    if X.dim() != 2 or X.shape[0] < at_least:
        raise ValueError(f"{name} must be a 2-D tensor (n, d) with n >= {at_least}, got shape {tuple(X.shape)}")
    return X


def _check_count(name: str, value, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
    return value


@torch.no_grad()
def evaluate(f: Function, points: Tensor, chunk: int = 65536) -> Tensor:
    """``f`` on ``(m, d)`` points in chunks, as ``(m, k)`` (a 1-D output becomes ``k = 1``)."""
    outs = []
    for start in range(0, points.shape[0], chunk):
        out = f(points[start : start + chunk])
        outs.append(out.reshape(out.shape[0], -1))
    return torch.cat(outs)


@torch.no_grad()
def total_variation(
    f: Function,
    X: Tensor,
    n_paths: int = 100,
    n_points: int = 100,
    seed: int = 0,
) -> float:
    """Total variation of ``f`` along straight paths between random pairs of rows of ``X`` (Eq. 2).

    TV(f, X) = mean over ``n_paths`` pairs ``(x1, x2)`` of sum_i |f(p_{i+1}) - f(p_i)|, with
    ``p_i`` the ``n_points`` equally spaced points of the segment ``x1 -> x2``. For an ``(n, k)``
    output one column per path is drawn at random (paper: a random output dimension). The paper
    does not state ``n_paths``/``n_points``; 100 and 100 are this project's defaults.

    **Shape**

    - ``X``: ``(n, d)`` with ``n >= 2``; ``f``: ``(m, d) -> (m,)`` or ``(m, k)``.

    Example::

        >>> X = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
        >>> round(total_variation(lambda x: x @ torch.tensor([3.0, -1.0]), X, n_paths=4), 6)
        1.0
    """
    X = _check_rows(X)
    _check_count("n_paths", n_paths, 1)
    _check_count("n_points", n_points, 2)
    gen = torch.Generator().manual_seed(seed)
    n = X.shape[0]
    first = torch.randint(n, (n_paths,), generator=gen)
    second = (first + torch.randint(1, n, (n_paths,), generator=gen)) % n  # a different row
    t = torch.linspace(0, 1, n_points, dtype=X.dtype, device=X.device)
    x1, x2 = X[first.to(X.device)], X[second.to(X.device)]
    points = x1[:, None, :] + t[None, :, None] * (x2 - x1)[:, None, :]  # (paths, points, d)
    out = evaluate(f, points.reshape(-1, X.shape[1])).reshape(n_paths, n_points, -1)
    column = torch.randint(out.shape[-1], (n_paths,), generator=gen).to(out.device)
    along = out[torch.arange(n_paths, device=out.device), :, column]  # (paths, points)
    return along.diff(dim=1).abs().sum(dim=1).mean().item()
