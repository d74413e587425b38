"""Linear-spline activation functions (paper Sec. 2.3).

The kernel (:func:`spline_eval`) computes the knot index arithmetically (the knots are regularly
spaced, so no search is needed) and evaluates ``y = v[i] + (x - knot[i]) s[i]`` in about ten
passes over ``x``, three of them gathers (``index_select``) from tables of ``n_knots`` entries.
The forward keeps only what the backward needs: the local slope, so that the gradient of the
input is one multiply (like ReLU's backward); and, only when the knot values require a gradient,
a compact knot index (``uint8`` up to 256 knots) and the offset from the knot. The gradient of the
values is a weighted bincount (no per-knot intermediate; bit-for-bit deterministic on CPU). When
gradients of gradients are asked for (``create_graph=True``, or ``torch.func.grad`` transforms:
the bi-level meta-learning of :mod:`pipeline.meta`), the backward recomputes from the saved input
in differentiable torch operations, so every order of derivative is exact.

Value tables: one shared table ``(n,)``; one per feature ``(d, n)`` (the last axis of ``x``); and,
for a population of ``K`` stacked models (:func:`spline_eval_stacked`), ``(K, n)`` or
``(K, d, n)`` with the models on the first axis of ``x``.

``torch.compile`` was measured on CPU and is not used: a compiled forward (one fused loop) ran no
faster than this eager one in isolation (its scalar gather loop is slower than ``index_select``)
and about 4 % faster inside a training step, for 6-30 s of compilation per process; its
``scatter_add`` would not be deterministic across threads.
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


def _compact_dtype(n_knots: int) -> torch.dtype:
    """The smallest integer dtype that holds a knot index (saved between forward and backward)."""
    if n_knots <= 256:
        return torch.uint8
    if n_knots <= 2**15:
        return torch.int16
    return torch.int32


def _table_offsets(x: Tensor, values: Tensor, stacked: bool, dtype: torch.dtype) -> Tensor | None:
    """Offsets of each element's table in ``values.reshape(-1)``, broadcastable against ``x``:
    ``None`` for a shared table; ``n j`` for feature ``j`` (last axis of ``x``) of a ``(d, n)``
    table; ``n k`` for model ``k`` (first axis) of a stacked ``(K, n)`` table; ``n (k d + j)``
    for a stacked ``(K, d, n)`` table."""
    n = values.shape[-1]
    if values.dim() == 1:
        return None
    offsets = torch.arange(0, values.numel(), n, device=x.device, dtype=dtype)
    if not stacked:
        return offsets  # (d,): broadcasts over the last axis
    if values.dim() == 2:
        return offsets.view(-1, *([1] * (x.dim() - 1)))
    return offsets.view(values.shape[0], *([1] * (x.dim() - 2)), values.shape[1])


def _flat(idx: Tensor, offsets: Tensor | None) -> Tensor:
    return (idx if offsets is None else idx + offsets).reshape(-1)


def _check_stacked(x: Tensor, values: Tensor) -> None:
    k = values.shape[0] if values.dim() in (2, 3) else None
    ok = k is not None and x.dim() >= values.dim() - 1 and x.shape[0] == k
    if ok and values.dim() == 3:
        ok = x.shape[-1] == values.shape[1]
    if not ok:
        raise ValueError(
            f"stacked values of shape {tuple(values.shape)} do not fit x of shape {tuple(x.shape)}: "
            "expected values (K, n) with x (K, *), or values (K, d, n) with x (K, *, d)"
        )


def _spline_forward(
    x: Tensor,
    values: Tensor,
    knots: Tensor,
    inv_h: float,
    extrapolation: str,
    stacked: bool,
    keep: bool,
    transformed: bool = False,
    nan_safe: bool = False,
):
    """The spline at ``x`` and, when ``keep``, what the backward needs: the local slope ``dy/dx``,
    the compact knot index and the offset ``x - knot[i]``. Not differentiable itself.

    ``y = v[i] + (x - knot[i]) s[i]`` with ``i = floor((x - a) / h)`` clamped to ``[0, n - 2]``
    (after the clamp a truncating cast is the floor) and ``s`` the per-segment slope table. The
    offset is taken from the *stored* knot, so the spline is exact at the knots. Buffers are reused
    in place unless a ``torch.func`` transform is active. A NaN input gives a NaN output.
    """
    n = values.shape[-1]
    constant = extrapolation == "constant"
    xc = x.clamp(knots[0], knots[-1]) if constant else x
    slopes = (values[..., 1:] - values[..., :-1]) * inv_h
    if values.dim() > 1:
        slopes = F.pad(slopes, (0, 1))  # rows of length n: one flat index serves both tables
    if transformed:  # out-of-place operations only: in-place ones have no batching rules
        t = ((xc - knots[0]) * inv_h).nan_to_num(0.0).clamp(0, n - 2)
    else:
        t = torch.sub(xc, knots[0]).mul_(inv_h)
        if nan_safe or x.device.type != "cpu":
            t = t.nan_to_num_(0.0)  # on a GPU an out-of-range index would be a device-side assert
        t = t.clamp_(0, n - 2)
    idx = t.to(torch.int32)  # int32: index_select takes it, half the traffic of int64
    flat = _flat(idx, _table_offsets(x, values, stacked, torch.int32))
    try:
        if transformed:
            offset = xc - knots.index_select(0, idx.reshape(-1)).view(x.shape)
            slope = slopes.reshape(-1).index_select(0, flat).view(x.shape)
            y = values.reshape(-1).index_select(0, flat).view(x.shape) + offset * slope
        else:
            buf = t if t.is_contiguous() else torch.empty(x.shape, dtype=t.dtype, device=t.device)
            torch.index_select(knots, 0, idx.reshape(-1), out=buf.view(-1))  # t is dead: reuse it
            offset = torch.sub(xc, buf, out=buf)
            slope = slopes.reshape(-1).index_select(0, flat).view(x.shape)
            y = values.reshape(-1).index_select(0, flat).view(x.shape).addcmul_(offset, slope)
    except IndexError:
        if nan_safe:
            raise
        # A NaN in x (CPU) casts to the index INT_MIN: redo with NaN mapped to segment 0.
        return _spline_forward(x, values, knots, inv_h, extrapolation, stacked, keep, transformed, nan_safe=True)
    if not keep:
        return y, None, None, None
    if constant:
        slope = slope * ((x >= knots[0]) & (x <= knots[-1]))
    return y, slope, idx.to(_compact_dtype(n)), offset


def _save(ctx, x, values, knots, slope, idx, offset):
    if ctx.needs_input_grad[1]:
        # x and values for the differentiable (create_graph) backward; idx and offset for the
        # fast values-gradient; the slope only if x needs a gradient (not for an IAF on data).
        ctx.save_for_backward(x, values, knots, slope if ctx.needs_input_grad[0] else None, idx, offset)
    else:
        # Frozen values: dy/dx is piecewise constant, so grad_x = grad_y * slope is exact to
        # every order of regular autograd and nothing else is needed.
        ctx.save_for_backward(slope)


def _backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None]:
    if grad_out is None:
        return None, None
    if not ctx.needs_input_grad[1]:
        (slope,) = ctx.saved_tensors
        return (grad_out * slope if ctx.needs_input_grad[0] else None), None
    x, values, knots, slope, idx, offset = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: gradients of gradients will be asked for
        return _backward_differentiable(ctx, grad_out, x, values, knots, idx)
    grad_x = grad_out * slope if ctx.needs_input_grad[0] else None
    return grad_x, _values_grad(ctx, x, values, idx, grad_out, offset)


class _SplineEval(torch.autograd.Function):
    """y = v[i] + frac (v[i+1] - v[i]), i the segment of x, frac = (x - knot[i]) / h in [0, 1).

    The fast path for plain tensors: the forward saves its intermediates directly (one output).
    """

    @staticmethod
    def forward(ctx, x: Tensor, values: Tensor, knots: Tensor, inv_h: float, extrapolation: str, stacked: bool):
        y, slope, idx, offset = _spline_forward(x, values, knots, inv_h, extrapolation, stacked, True)
        ctx.inv_h, ctx.extrapolation, ctx.stacked, ctx.transformed = inv_h, extrapolation, stacked, False
        _save(ctx, x, values, knots, slope, idx, offset)
        return y

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        return _backward(ctx, grad_out) + (None,) * 4


class _SplineEvalFunc(torch.autograd.Function):
    """The same under ``torch.func`` transforms (``vmap``, ``grad``, ``functional_call`` inside
    them): ``setup_context`` style with a generated vmap rule, so the intermediates are extra
    outputs ``(y, slope, idx, offset)`` of which only ``y`` is differentiable.

    ``exact`` (a ``grad``/``jvp`` transform is active): an outer transform may differentiate the
    backward itself with respect to tensors this level does not see, so the backward always
    recomputes from the saved ``x`` and ``values`` in differentiable operations.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, values: Tensor, knots: Tensor, inv_h: float, extrapolation: str, stacked: bool, exact: bool):
        return _spline_forward(x, values, knots, inv_h, extrapolation, stacked, True, transformed=True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, values, knots, inv_h, extrapolation, stacked, exact = inputs
        _, slope, idx, offset = output
        ctx.mark_non_differentiable(slope, idx, offset)
        ctx.set_materialize_grads(False)
        ctx.inv_h, ctx.extrapolation, ctx.stacked, ctx.transformed, ctx.exact = inv_h, extrapolation, stacked, True, exact
        if exact:
            ctx.save_for_backward(x, values, knots, idx)
        else:
            _save(ctx, x, values, knots, slope, idx, offset)

    @staticmethod
    def backward(ctx, grad_out: Tensor, *_):
        if grad_out is not None and ctx.exact:
            x, values, knots, idx = ctx.saved_tensors
            return _backward_differentiable(ctx, grad_out, x, values, knots, idx) + (None,) * 5
        return _backward(ctx, grad_out) + (None,) * 5


def _values_grad(ctx, x: Tensor, values: Tensor, idx: Tensor, grad_out: Tensor, offset: Tensor) -> Tensor:
    """d loss / d values: each element adds ``g (1 - frac)`` to its left knot and ``g frac`` to its
    right knot, ``frac = offset / h``. Two weighted bincounts, of ``g`` and of ``g offset``, into
    the left knots; the right-knot share is then shifted by one knot. No per-knot intermediate;
    on CPU ``bincount`` reads the compact index directly and sums in element order, so the result
    is bit-for-bit deterministic. (Under ``torch.func`` transforms and on GPUs: ``scatter_add``,
    deterministic on CUDA under ``torch.use_deterministic_algorithms(True)``.)"""
    numel = values.numel()
    weighted = torch.mul(grad_out, offset).reshape(-1)
    if not ctx.transformed and values.device.type == "cpu":
        offsets = _table_offsets(x, values, ctx.stacked, torch.int32)
        flat = idx.reshape(-1) if offsets is None else _flat(idx.int(), offsets)
        total = torch.bincount(flat, grad_out.reshape(-1), numel).to(values.dtype).view(values.shape)
        right = torch.bincount(flat, weighted, numel).to(values.dtype).view(values.shape)
    else:
        flat = _flat(idx.long(), _table_offsets(x, values, ctx.stacked, torch.int64))
        zeros = values.new_zeros(numel)
        total = zeros.scatter_add(0, flat, grad_out.reshape(-1)).view(values.shape)
        right = zeros.scatter_add(0, flat, weighted).view(values.shape)
    if ctx.transformed:
        right = right * ctx.inv_h
        return total - right + F.pad(right[..., :-1], (1, 0))
    right = right.mul_(ctx.inv_h)
    grad = total.sub_(right)
    grad[..., 1:] += right[..., :-1]
    return grad


def _backward_differentiable(ctx, grad_out: Tensor, x: Tensor, values: Tensor, knots: Tensor, idx: Tensor):
    """The backward in differentiable torch operations, recomputed from the saved input (used
    for gradients of gradients)."""
    inv_h = ctx.inv_h
    idx = idx.long()
    inside = None
    if ctx.extrapolation == "constant":
        inside = (x >= knots[0]) & (x <= knots[-1])
        x = x.clamp(knots[0], knots[-1])
    frac = (x - knots[idx]) * inv_h
    flat = _flat(idx, _table_offsets(x, values, ctx.stacked, torch.int64))
    grad_x = grad_values = None
    if ctx.needs_input_grad[0]:
        slope = (values[..., 1:] - values[..., :-1]) * inv_h
        if values.dim() > 1:
            slope = F.pad(slope, (0, 1))
        grad_x = grad_out * slope.reshape(-1)[flat].view(x.shape)
        if inside is not None:
            grad_x = grad_x * inside
    if ctx.needs_input_grad[1]:
        right = (grad_out * frac).reshape(-1)
        left = grad_out.reshape(-1) - right
        zeros = values.new_zeros(values.numel())
        grad_values = (zeros.index_add(0, flat, left) + zeros.index_add(0, flat + 1, right)).view(values.shape)
    return grad_x, grad_values


def _gather(table: Tensor, idx: Tensor) -> Tensor:
    """table[..., idx] where table is (n,) or (d, n) and idx is (..., d) for the per-feature case."""
    if table.dim() == 1:
        return table[idx]
    return torch.gather(table.expand(*idx.shape[:-1], *table.shape), -1, idx.unsqueeze(-1)).squeeze(-1)


def _apply(x: Tensor, values: Tensor, interval, extrapolation: str, knots: Tensor | None, stacked: bool) -> Tensor:
    lo, hi = interval
    n_knots = values.shape[-1]
    if knots is None:
        knots = torch.linspace(lo, hi, n_knots, dtype=torch.float64).to(x.dtype).to(x.device)
    knots = knots.to(x.dtype)
    inv_h = (n_knots - 1) / float(hi - lo)
    transforms = torch._C._functorch.get_interpreter_stack()
    if transforms:
        exact = any(t.key() != torch._C._functorch.TransformType.Vmap for t in transforms)
        return _SplineEvalFunc.apply(x, values, knots, inv_h, extrapolation, stacked, exact)[0]
    if torch.is_grad_enabled() and (x.requires_grad or values.requires_grad):
        return _SplineEval.apply(x, values, knots, inv_h, extrapolation, stacked)
    return _spline_forward(x, values, knots, inv_h, extrapolation, stacked, False)[0]


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
    return _apply(x, values, interval, extrapolation, knots, stacked=False)


def spline_eval_stacked(
    x: Tensor,
    values: Tensor,
    interval: tuple[float, float],
    extrapolation: str = "linear",
    knots: Tensor | None = None,
) -> Tensor:
    """:func:`spline_eval` for ``K`` stacked models, each with its own value table (a population
    trained as one batch, :mod:`pipeline.fit.population`): slice ``k`` of the output is
    ``spline_eval(x[k], values[k], ...)``.

    **Shape**

    - ``x``: ``(K, *)`` with ``values`` ``(K, n_knots)`` (one shared activation per model), or
      ``(K, *, d)`` with ``values`` ``(K, d, n_knots)`` (one spline per feature and model).
    - Output: same shape as ``x``.

    Example::

        >>> values = torch.stack([torch.zeros(5), torch.linspace(-1, 1, 5)])
        >>> spline_eval_stacked(torch.full((2, 3), 0.5), values, (-1, 1))
        tensor([[0.0000, 0.0000, 0.0000],
                [0.5000, 0.5000, 0.5000]])
    """
    _check_stacked(x, values)
    return _apply(x, values, interval, extrapolation, knots, stacked=True)


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
