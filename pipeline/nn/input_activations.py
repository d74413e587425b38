"""Input activation functions, IAFs (paper Sec. 3.3): one learnable spline per input feature."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .spline import SplineActivation, _check_extrapolation, _check_grid, init_values, spline_eval


class InputActivations(nn.Module):
    """One linear spline per input feature, applied to the data before a network (paper Sec. 3.3).

    At init every spline is the identity, inside the interval and (by linear extrapolation)
    outside it, so an untrained ``InputActivations`` leaves its input unchanged. Meta-learning
    (:func:`pipeline.meta.meta_learn`) shapes each feature's spline.

    **Shape**

    - Input: ``(*, n_features)``.
    - Output: ``(*, n_features)``.

    Args:
        n_features: number of input features ``d``.
        n_knots: knots per spline, at least 2.
        interval: ``(a, b)``, the span of the knots (inputs are quantile-normal, so most lie in it).
        init: ``identity`` (default) or another name of :data:`pipeline.nn.spline.INITS`.
        extrapolation: ``linear`` (default) or ``constant``.

    Example::

        >>> iaf = InputActivations(3)
        >>> x = torch.tensor([[-9.0, 0.3, 2.0]])
        >>> torch.allclose(iaf(x), x)
        True
        >>> iaf.values.shape
        torch.Size([3, 49])
    """

    def __init__(
        self,
        n_features: int,
        n_knots: int = 49,
        interval: Sequence[float] = (-4.8, 4.8),
        init: str = "identity",
        extrapolation: str = "linear",
    ) -> None:
        super().__init__()
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}")
        lo, hi = _check_grid(n_knots, interval)
        self.interval = (lo, hi)
        self.extrapolation = _check_extrapolation(extrapolation)
        self.init = init
        knots64 = torch.linspace(lo, hi, n_knots, dtype=torch.float64)
        self.register_buffer("knots", knots64.float())
        self.values = nn.Parameter(init_values(init, knots64).float().repeat(n_features, 1))

    @property
    def n_features(self) -> int:
        return self.values.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.n_features:
            raise ValueError(
                f"InputActivations expects {self.n_features} features in the last axis, got shape "
                f"{tuple(x.shape)}"
            )
        return spline_eval(x, self.values.to(x.dtype), self.interval, self.extrapolation, self.knots)

    @property
    def n_knots(self) -> int:
        return self.values.shape[1]

    def refined(self, n_knots: int) -> "InputActivations":
        """The same splines on a grid of ``n_knots`` knots over the same interval: each new knot
        takes the current spline's value there. The functions are unchanged when every current knot
        is also a new knot, i.e. ``n_knots - 1`` is a multiple of ``self.n_knots - 1`` (required).
        A finer grid lets training carve narrower intervals of a feature (the tree-like IAFs of
        paper Fig. 7); IAFs meta-learned on a coarse grid start fine-tuning from there.

        Example::

            >>> iaf = InputActivations(2, n_knots=5, interval=(-1, 1))
            >>> fine = iaf.refined(17)
            >>> fine.values.shape
            torch.Size([2, 17])
            >>> x = torch.tensor([[0.3, -0.7]])
            >>> torch.allclose(fine(x), iaf(x))
            True
        """
        current = self.n_knots
        if isinstance(n_knots, bool) or not isinstance(n_knots, int) or n_knots < 2 or (n_knots - 1) % (current - 1):
            raise ValueError(
                f"refined(n_knots={n_knots!r}): n_knots - 1 must be a positive multiple of {current - 1} (this "
                f"IAF's {current} knots less one), e.g. {(current - 1) * 32 + 1}, so that the functions are unchanged"
            )
        out = InputActivations(self.n_features, n_knots, self.interval, "identity", self.extrapolation)
        with torch.no_grad():
            coarse = self.values.detach().double()
            fine_knots = torch.linspace(*self.interval, n_knots, dtype=torch.float64)
            at = fine_knots.expand(self.n_features, n_knots).T  # (n_knots, d): one row per new knot
            out.values.copy_(spline_eval(at, coarse, self.interval, self.extrapolation).T.to(out.values.dtype))
        out.init = self.init
        out.values.requires_grad_(self.values.requires_grad)
        return out

    def feature(self, j: int) -> SplineActivation:
        """Feature ``j``'s spline as a standalone :class:`SplineActivation` (to plot or save it)."""
        act = SplineActivation(self.values.shape[1], self.interval, "zeros", self.extrapolation)
        with torch.no_grad():
            act.values.copy_(self.values[j])
        act.init = self.init
        return act

    def extra_repr(self) -> str:
        return f"n_features={self.n_features}, n_knots={self.values.shape[1]}, interval={self.interval}"
