"""Linear-spline activation functions (paper Sec. 2.3).

The kernel (:func:`spline_eval`) computes the knot index arithmetically (the knots are regularly
spaced, so no search is needed), evaluates the spline in one pass, and in the backward pass
recomputes the index from the saved input instead of keeping per-knot intermediates. Its backward
is written with differentiable torch operations, so gradients of gradients (needed by the
bi-level meta-learning of :mod:`pipeline.meta`) and ``torch.func`` transforms work through it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INITS = ("zeros", "relu", "identity", "gelu", "tanh")
EXTRAPOLATIONS = ("linear", "constant")


def _segment(x: Tensor, knots: Tensor, inv_h: float, extrapolation: str):
    """The segment index of each ``x``, its offset from the segment's left knot, an inside-mask.

    The offset is taken from the stored knot (not from ``(x - a) / h``) so that the spline is
    exact at the knots: ``x == knots[k]`` gives offset 0 and the value ``values[k]``.
    """
    n_knots = knots.shape[0]
    inside = None
    if extrapolation == "constant":
        inside = (x >= knots[0]) & (x <= knots[-1])
        x = x.clamp(knots[0].item(), knots[-1].item())
    idx = ((x.detach() - knots[0]) * inv_h).floor_().clamp_(0, n_knots - 2).long()
    return (x - knots[idx]) * inv_h, idx, inside


class _SplineEval(torch.autograd.Function):
    """y = v[i] + frac (v[i+1] - v[i]), i the segment of x, frac = (x - knot[i]) / h in [0, 1)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, values: Tensor, knots: Tensor, inv_h: float, extrapolation: str) -> Tensor:
        frac, idx, _ = _segment(x, knots, inv_h, extrapolation)
        slope = values[..., 1:] - values[..., :-1]
        return _gather(values, idx) + frac * _gather(slope, idx)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, values, knots, inv_h, extrapolation = inputs
        ctx.save_for_backward(x, values, knots)
        ctx.inv_h, ctx.extrapolation = inv_h, extrapolation

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, values, knots = ctx.saved_tensors
        frac, idx, inside = _segment(x, knots, ctx.inv_h, ctx.extrapolation)
        grad_x = grad_values = None
        if ctx.needs_input_grad[0]:
            slope = (values[..., 1:] - values[..., :-1]) * ctx.inv_h
            grad_x = grad_out * _gather(slope, idx)
            if inside is not None:
                grad_x = grad_x * inside
        if ctx.needs_input_grad[1]:
            right = grad_out * frac
            grad_values = _scatter_add(values, idx, grad_out - right) + _scatter_add(values, idx + 1, right)
        return grad_x, grad_values, None, None, None


def _gather(table: Tensor, idx: Tensor) -> Tensor:
    """table[..., idx] where table is (n,) or (d, n) and idx is (..., d) for the per-feature case."""
    if table.dim() == 1:
        return table[idx]
    return torch.gather(table.expand(*idx.shape[:-1], *table.shape), -1, idx.unsqueeze(-1)).squeeze(-1)


def _scatter_add(values: Tensor, idx: Tensor, src: Tensor) -> Tensor:
    """The gradient of the table: src summed into the knot each element used (bincount-style)."""
    if values.dim() == 1:
        return torch.zeros_like(values).index_add(0, idx.reshape(-1), src.reshape(-1))
    d, n = values.shape
    flat = (idx + n * torch.arange(d, device=idx.device)).reshape(-1)
    return torch.zeros(d * n, dtype=values.dtype, device=values.device).index_add(
        0, flat, src.reshape(-1)
    ).view(d, n)


def spline_eval(
    x: Tensor,
    values: Tensor,
    interval: tuple[float, float],
    extrapolation: str = "linear",
    knots: Tensor | None = None,
) -> Tensor:
    """Evaluate the linear spline through ``values`` at regularly spaced knots on ``interval``.

    **Shape**

    - ``x``: any shape ``(*)`` for a shared table ``values`` of shape ``(n_knots,)``; ``(*, d)``
      for a per-feature table of shape ``(d, n_knots)`` (one spline per last-axis feature).
    - ``knots``: optional ``(n_knots,)``, the grid (computed from ``interval`` when omitted).
    - Output: same shape as ``x``.
    """
    lo, hi = interval
    n_knots = values.shape[-1]
    if knots is None:
        knots = torch.linspace(lo, hi, n_knots, dtype=torch.float64).to(x.dtype).to(x.device)
    return _SplineEval.apply(x, values, knots.to(x.dtype), (n_knots - 1) / float(hi - lo), extrapolation)


def spline_eval_reference(
    x: Tensor, values: Tensor, interval: tuple[float, float], extrapolation: str = "linear"
) -> Tensor:
    """Plain-autograd twin of :func:`spline_eval` (bucketize + gather + lerp), for tests."""
    lo, hi = interval
    knots = torch.linspace(lo, hi, values.shape[-1], dtype=x.dtype, device=x.device)
    xe = x.clamp(lo, hi) if extrapolation == "constant" else x
    i = (torch.bucketize(xe.detach().contiguous(), knots, right=True) - 1).clamp(0, len(knots) - 2)
    x0, x1 = knots[i], knots[i + 1]
    v0, v1 = _gather(values, i), _gather(values, i + 1)
    return v0 + (xe - x0) / (x1 - x0) * (v1 - v0)


def _check_grid(n_knots: Any, interval: Any) -> tuple[float, float]:
    if isinstance(n_knots, bool) or not isinstance(n_knots, int) or n_knots < 2:
        raise ValueError(f"n_knots must be an integer >= 2, got {n_knots!r}")
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be a pair of numbers (a, b) with a < b, got {interval!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"interval must be finite with a < b, got {interval!r}")
    return lo, hi


def _check_extrapolation(extrapolation: str) -> str:
    if extrapolation not in EXTRAPOLATIONS:
        raise ValueError(f"extrapolation must be one of {EXTRAPOLATIONS}, got {extrapolation!r}")
    return extrapolation


def init_values(init: str, knots: Tensor) -> Tensor:
    """Knot values of a named initial function: one of ``zeros relu identity gelu tanh``."""
    table = {
        "zeros": torch.zeros_like,
        "relu": torch.relu,
        "identity": lambda k: k.clone(),
        "gelu": F.gelu,
        "tanh": torch.tanh,
    }
    if init not in table:
        raise ValueError(
            f"unknown init {init!r}: use one of {INITS}, or a path to a saved activation (.json)"
        )
    return table[init](knots)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class SplineActivation(nn.Module):
    """A learnable activation function: a linear spline on regularly spaced knots (paper Sec. 2.3).

    ``g(x)`` interpolates the learnable ``values`` linearly between ``n_knots`` knots spaced
    regularly on ``interval``; outside the interval it continues the end segments
    (``extrapolation="linear"``) or holds the end values (``"constant"``). Use one instance at
    every layer of a network to share the activation, or one instance per layer.

    **Shape**

    - Input: ``(*)``, any shape.
    - Output: ``(*)``, same shape as the input.

    Args:
        n_knots: number of knots (control points), at least 2. Paper: about 50; default 49 puts a
            knot every 0.2 on the default interval.
        interval: ``(a, b)``, the span of the knots.
        init: ``zeros``, ``relu``, ``identity``, ``gelu``, ``tanh``, or the path of a saved
            activation (JSON written by :meth:`save`) whose grid must match.
        extrapolation: ``linear`` (default) or ``constant``.

    Example::

        >>> act = SplineActivation(init="relu")
        >>> act(torch.tensor([-1.0, 0.5, 6.0]))
        tensor([0.0000, 0.5000, 6.0000], grad_fn=<_SplineEvalBackward>)
        >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), act, torch.nn.Linear(8, 1))
    """

    def __init__(
        self,
        n_knots: int = 49,
        interval: Sequence[float] = (-4.8, 4.8),
        init: str | os.PathLike = "zeros",
        extrapolation: str = "linear",
    ) -> None:
        super().__init__()
        lo, hi = _check_grid(n_knots, interval)
        self.interval = (lo, hi)
        self.extrapolation = _check_extrapolation(extrapolation)
        self.register_buffer("knots", torch.linspace(lo, hi, n_knots, dtype=torch.float64).float())
        self.meta: dict[str, Any] = {}
        if isinstance(init, (str, os.PathLike)) and str(init).endswith(".json"):
            loaded = SplineActivation.load(init)
            if loaded.n_knots != n_knots or not _close(loaded.interval, self.interval):
                raise ValueError(
                    f"saved activation {str(init)!r} has {loaded.n_knots} knots on {loaded.interval}, "
                    f"but n_knots={n_knots} and interval={self.interval} were asked for; "
                    "use SplineActivation.load(path) to keep its own grid"
                )
            values = loaded.values.detach().clone()
            self.init = loaded.init
            self.meta = dict(loaded.meta)
        else:
            values = init_values(str(init), torch.linspace(lo, hi, n_knots, dtype=torch.float64)).float()
            self.init = str(init)
        self.values = nn.Parameter(values)

    @property
    def n_knots(self) -> int:
        return self.values.shape[-1]

    def forward(self, x: Tensor) -> Tensor:
        return spline_eval(x, self.values.to(x.dtype), self.interval, self.extrapolation, self.knots)

    def extra_repr(self) -> str:
        return (
            f"n_knots={self.n_knots}, interval={self.interval}, init={self.init!r}, "
            f"extrapolation={self.extrapolation!r}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of DESIGN.md: knots, values, interval, extrapolation, init, trained_on, params."""
        return {
            "knots": self.knots.tolist(),
            "values": self.values.detach().cpu().double().tolist(),
            "interval": list(self.interval),
            "extrapolation": self.extrapolation,
            "init": self.init,
            "trained_on": self.meta.get("trained_on"),
            "params": self.meta.get("params", {}),
        }

    def save(self, path: str | os.PathLike, trained_on: str | None = None, params: dict | None = None) -> Path:
        """Write the activation as JSON (atomically); ``trained_on``/``params`` record provenance."""
        if trained_on is not None:
            self.meta["trained_on"] = trained_on
        if params is not None:
            self.meta["params"] = params
        path = Path(path)
        _atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, spec: dict[str, Any], source: str = "<dict>") -> "SplineActivation":
        missing = {"values", "interval"} - set(spec)
        if missing:
            raise ValueError(f"{source}: a saved activation needs keys {sorted(missing)}")
        values = spec["values"]
        knots = spec.get("knots")
        if knots is not None and len(knots) != len(values):
            raise ValueError(
                f"{source}: {len(knots)} knots but {len(values)} values; they must have the same length"
            )
        act = cls(
            n_knots=len(values),
            interval=tuple(spec["interval"]),
            init="zeros",
            extrapolation=spec.get("extrapolation", "linear"),
        )
        if knots is not None and not torch.allclose(torch.tensor(knots, dtype=torch.float32), act.knots, atol=1e-5):
            raise ValueError(
                f"{source}: knots are not {len(values)} regular points on {spec['interval']}"
            )
        with torch.no_grad():
            act.values.copy_(torch.tensor(values, dtype=torch.float64).float())
        act.init = spec.get("init", "zeros")
        act.meta = {"trained_on": spec.get("trained_on"), "params": spec.get("params", {})}
        return act

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SplineActivation":
        """Load an activation saved by :meth:`save`: ``act = SplineActivation.load("af.json")``."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no saved activation at {str(path)!r}")
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{str(path)!r} is not valid JSON: {err}") from None
        return cls.from_dict(spec, source=str(path))

    def plot(self, ax=None, span: Sequence[float] | None = None, **kwargs):
        """Draw the activation on ``span`` (default: the interval plus 10 %) into a matplotlib axis."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(3.2, 2.6))
        lo, hi = span or (self.interval[0] * 1.1, self.interval[1] * 1.1)
        xs = torch.linspace(lo, hi, 512)
        with torch.no_grad():
            ax.plot(xs.numpy(), self(xs).numpy(), **kwargs)
        ax.axhline(0, color="0.8", lw=0.5, zorder=0)
        ax.axvline(0, color="0.8", lw=0.5, zorder=0)
        return ax


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(abs(x - y) < 1e-6 for x, y in zip(a, b))
