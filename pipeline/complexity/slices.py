"""1-D and 2-D slices of a function through training points (paper Sec. 2.1, Fig. 7)."""

from __future__ import annotations

import torch
from torch import Tensor

from .variation import Function, _check_count, evaluate


@torch.no_grad()
def slice_1d(f: Function, x1: Tensor, x2: Tensor, n_points: int = 200, margin: float = 0.0) -> tuple[Tensor, Tensor]:
    """``f`` along the line through ``x1`` (t = 0) and ``x2`` (t = 1), paper Sec. 2.1 / Fig. 7.

    **Shape**

    - ``x1``, ``x2``: ``(d,)``. Returns ``t``: ``(n_points,)`` on ``[-margin, 1 + margin]`` and
      the outputs ``(n_points, k)``.
    """
    _check_count("n_points", n_points, 2)
    t = torch.linspace(-margin, 1 + margin, n_points, dtype=x1.dtype, device=x1.device)
    points = x1[None, :] + t[:, None] * (x2 - x1)[None, :]
    return t, evaluate(f, points)


@torch.no_grad()
def slice_2d(
    f: Function, x1: Tensor, x2: Tensor, x3: Tensor, resolution: int = 64, margin: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """``f`` over the plane through three points, ``p(u, v) = x1 + u (x2 - x1) + v (x3 - x1)``.

    The triangle of the three training points is ``u, v >= 0, u + v <= 1``; the grid spans
    ``[-margin, 1 + margin]`` on both axes so that the triangle sits inside it.

    **Shape**

    - ``x1``, ``x2``, ``x3``: ``(d,)``. Returns ``u``, ``v``: ``(resolution,)`` and the outputs
      ``(resolution, resolution, k)`` indexed ``[v, u]`` (image order).
    """
    _check_count("resolution", resolution, 2)
    u = torch.linspace(-margin, 1 + margin, resolution, dtype=x1.dtype, device=x1.device)
    vv, uu = torch.meshgrid(u, u, indexing="ij")
    points = x1 + uu.reshape(-1, 1) * (x2 - x1) + vv.reshape(-1, 1) * (x3 - x1)
    return u, u.clone(), evaluate(f, points).reshape(resolution, resolution, -1)
