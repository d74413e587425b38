"""The training step of K stacked MLPs with a hand-written backward (no autograd).

A population of small MLPs (:mod:`pipeline.fit.population`) spends its step in batched matmuls
and in elementwise passes over ``(K, batch, width)`` activations. With autograd every pass
allocates a new tensor, and at K = 32, batch 256, width 64 those are 2 MiB blocks that the
allocator returns to the system and takes back each step: a page fault per 4 KiB, which made the
elementwise passes (bias, ReLU and their backward) cost as much as the matmuls. Here the forward
and the backward of MLPs of ``Linear`` layers with ReLU, tanh, sigmoid, ``tanh(alpha x)`` or a
frozen spline AF (and a frozen input activation) run by hand into buffers kept between steps, in
place where the arithmetic allows (a ReLU overwrites its input, the gradient of a hidden layer is
masked in place), with the loss's gradient in closed form.

The arithmetic is that of autograd on ``nn.Linear`` layers: ``baddbmm`` forward (addmm's),
weight gradient ``g^T a``, bias gradient ``g.sum(batch)``, input gradient ``g W``; cross-entropy's
gradient ``(softmax - onehot) / batch``; MSE's ``2 (out - y) / n``. In float64 a population
trained this way matches a loop of ``train_model`` to 1e-10 (tests/test_population.py).

Architectures with other modules (GELU, sine, trainable activations) keep the autograd path of
:mod:`pipeline.fit.population`: :meth:`StackedMLP.from_plan` returns ``None``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..nn.spline import _spline_forward

__all__ = ["StackedMLP", "Workspace"]

#: Elementwise ops of a plan this module differentiates by hand: their name in the plan's
#: ``("fn", function)`` entries, by function.
_BY_FUNCTION = {torch.relu: "relu", torch.tanh: "tanh", torch.sigmoid: "sigmoid"}


def _spline(tensors: dict[str, Tensor], spec: tuple, x: Tensor, keep: bool) -> tuple[Tensor, Tensor | None]:
    """A frozen stacked spline (``spec``: a plan's ``(values name, interval, extrapolation,
    knots)``) at ``x``, and with ``keep`` its slope ``dy/dx``: the arithmetic of
    :func:`pipeline.nn.spline.spline_eval_stacked` and of its backward for frozen values."""
    name, (lo, hi), extrapolation, knots = spec
    values = tensors[name].to(x.dtype)
    n = values.shape[-1]
    if knots is None:
        knots = torch.linspace(lo, hi, n, dtype=torch.float64)
    inv_h = (n - 1) / float(hi - lo)
    y, slope, _, _ = _spline_forward(x, values, knots.to(device=x.device, dtype=x.dtype), inv_h, extrapolation, True, keep)
    return y, slope


class Workspace:
    """Named buffers kept between steps: ``get(key, shape, like)`` returns the buffer ``key``,
    allocated anew only when the shape, dtype or device changed. Reusing them keeps the allocator
    from returning large blocks to the system and faulting them back in at every step."""

    def __init__(self):
        self._buffers: dict[str, Tensor] = {}

    def get(self, key: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        shape = tuple(shape)
        buf = self._buffers.get(key)
        if buf is None or tuple(buf.shape) != shape or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf


class StackedMLP:
    """Loss and gradients of K stacked MLPs on one minibatch each, with reusable buffers.

    Built from the plan of :func:`pipeline.fit.population._stacked_plan` (a list of
    ``("linear", weight name, bias name)``, ``("fn", function)`` and ``("scaled", name, function)``
    entries); buffers are allocated at the first step and reused while the shapes stay the same
    (a population that drops stopped models gets new ones once).

    **Shape**

    - ``x``: ``(K, batch, d_in)``; ``y``: ``(K, batch)`` class ids or float targets.
    - ``tensors``: ``{name: (K, *shape)}`` for every weight, bias and ``alpha`` of the plan.
    - :meth:`loss_and_grads` returns the per-model losses ``(K,)`` and ``{name: (K, *shape)}``
      gradients of the trainable names (buffers: valid until the next call).

    Example::

        >>> plan = [("linear", "0.weight", "0.bias"), ("fn", torch.relu), ("linear", "2.weight", "2.bias")]
        >>> net = StackedMLP.from_plan(plan, trainable=["0.weight", "0.bias", "2.weight", "2.bias"])
        >>> p = {"0.weight": torch.randn(3, 8, 4), "0.bias": torch.zeros(3, 8), "2.weight": torch.randn(3, 2, 8), "2.bias": torch.zeros(3, 2)}
        >>> losses, grads = net.loss_and_grads(p, torch.randn(3, 5, 4), torch.randint(2, (3, 5)), "classification")
        >>> losses.shape, grads["0.weight"].shape
        (torch.Size([3]), torch.Size([3, 8, 4]))
    """

    def __init__(self, layers: list[tuple[str, str | None, list[tuple]]], trainable: set[str], pre: list[tuple] = ()):
        self.layers = layers  # (weight name, bias name, [the elementwise op after it, if any])
        self.trainable = trainable
        self.pre = list(pre)  # a frozen input activation: applied to the data, no gradient needed
        self.work = Workspace()

    @classmethod
    def from_plan(cls, plan: list[tuple], trainable: list[str]) -> "StackedMLP | None":
        """The hand-differentiated form of ``plan``, or ``None`` when it has an op this module does
        not differentiate, a tied tensor, or a trainable tensor other than a Linear's."""
        layers: list[tuple[str, str | None, list[tuple]]] = []
        pre: list[tuple] = []  # frozen input activations (IAFs) before the first Linear
        for op in plan:
            if op[0] == "linear":
                layers.append((op[1], op[2], []))
            elif op[0] == "spline" and op[1] not in trainable and (not layers or not layers[-1][2]):
                (layers[-1][2] if layers else pre).append(("spline", op[1:]))
            elif not layers or layers[-1][2]:
                return None  # another op before the first Linear, or two ops in a row
            elif op[0] == "fn" and op[1] in _BY_FUNCTION:
                layers[-1][2].append((_BY_FUNCTION[op[1]], None))
            elif op[0] == "scaled" and op[2] is torch.tanh:
                layers[-1][2].append(("scaled_tanh", op[1]))
            else:
                return None
        if len(pre) > 1 or not layers or layers[-1][2]:
            return None  # the output must be a Linear's (the loss's gradient is taken there)
        linear_names = [n for w, b, _ in layers for n in (w, b) if n is not None]
        if len(set(linear_names)) != len(linear_names) or not set(trainable) <= set(linear_names):
            return None
        return cls(layers, set(trainable), pre)

    @torch.no_grad()
    def forward(self, tensors: dict[str, Tensor], x: Tensor) -> Tensor:
        """The outputs ``(K, n, d_out)`` of the K models on ``x`` ``(K, n, d_in)`` (a buffer: valid
        until the next call), for evaluation."""
        k, n = x.shape[0], x.shape[1]
        h = self._input(tensors, x)
        for i, (w_name, b_name, ops) in enumerate(self.layers):
            w = tensors[w_name]
            out = self.work.get(f"eval{i}_{n}", (k, n, w.shape[1]), x)  # per layer and chunk size: reused
            self._linear(tensors, w, b_name, h, out)
            h, _ = self._activate(tensors, ops, out, keep=False)
        return h

    def _input(self, tensors: dict[str, Tensor], x: Tensor) -> Tensor:
        for _, spec in self.pre:
            x = _spline(tensors, spec, x, keep=False)[0]
        return x

    @staticmethod
    def _linear(tensors: dict[str, Tensor], w: Tensor, b_name: str | None, h: Tensor, out: Tensor) -> None:
        if b_name is None:
            torch.bmm(h, w.transpose(1, 2), out=out)
        else:
            torch.baddbmm(tensors[b_name].unsqueeze(1), h, w.transpose(1, 2), out=out)

    @staticmethod
    def _activate(tensors: dict[str, Tensor], ops: list[tuple], out: Tensor, keep: bool) -> tuple[Tensor, Tensor | None]:
        """The op after a Linear, in place on ``out`` where it can be; returns the activation and,
        for a spline with ``keep``, its local slope (what the backward needs)."""
        for kind, name in ops:
            if kind == "relu":
                out.relu_()
            elif kind == "tanh":
                out.tanh_()
            elif kind == "sigmoid":
                out.sigmoid_()
            elif kind == "scaled_tanh":  # tanh(alpha x), alpha per model
                out.mul_(tensors[name].view(-1, 1, 1)).tanh_()
            else:
                return _spline(tensors, name, out, keep)
        return out, None

    def loss_and_grads(self, tensors: dict[str, Tensor], x: Tensor, y: Tensor, task: str) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-model mean loss on ``(x, y)`` and the gradients of its sum (each model's own loss)
        with respect to the trainable tensors. ``task``: ``classification`` or ``regression``."""
        if x.dim() != 3 or y.shape != x.shape[:2]:
            raise ValueError(f"x must be (K, batch, d) and y (K, batch), got {tuple(x.shape)} and {tuple(y.shape)}")
        k, batch = x.shape[0], x.shape[1]
        inputs, outputs = [], []  # per layer: its input, and its output after its elementwise ops
        slopes: list[Tensor | None] = []  # per layer: a spline's dy/dx
        h = self._input(tensors, x)
        for i, (w_name, b_name, ops) in enumerate(self.layers):
            w = tensors[w_name]
            out = self.work.get(f"out{i}", (k, batch, w.shape[1]), x)
            self._linear(tensors, w, b_name, h, out)
            out, slope = self._activate(tensors, ops, out, keep=i + 1 < len(self.layers))
            inputs.append(h)
            outputs.append(out)
            slopes.append(slope)
            h = out

        # The loss and its gradient g with respect to the output ((K, batch, d_out), maybe a view).
        out = outputs[-1]
        if task == "classification":
            # Classes along dim 1, (K, C, batch): log_softmax over a dim of 2-10 classes is ~10x
            # faster there than over the last dim; the gradient is then already the g^T the
            # weight gradient needs.
            logits_t = self.work.get("logits_t", (k, out.shape[2], batch), x)
            logits_t.copy_(out.transpose(1, 2))
            logp = torch.log_softmax(logits_t, dim=1)
            target = y.unsqueeze(1)
            losses = -logp.gather(1, target).squeeze(1).mean(1)
            g_t = logp.exp_().mul_(1.0 / batch)  # as autograd: the mean's gradient 1/batch, times the softmax
            g_t.scatter_add_(1, target, torch.full(target.shape, -1.0 / batch, dtype=g_t.dtype, device=g_t.device))
            g = g_t.transpose(1, 2)
        else:
            diff = out.view(k, batch) - y
            losses = (diff * diff).mean(1)
            g = out
            g.view(k, batch).copy_(diff).mul_(2.0 / batch)

        grads: dict[str, Tensor] = {}
        for i in range(len(self.layers) - 1, -1, -1):
            w_name, b_name, _ = self.layers[i]
            w = tensors[w_name]
            if w_name in self.trainable:
                grads[w_name] = torch.bmm(g.transpose(1, 2), inputs[i], out=self.work.get(f"gw{i}", tuple(w.shape), x))
            if b_name is not None and b_name in self.trainable:
                grads[b_name] = torch.sum(g, dim=1, out=self.work.get(f"gb{i}", (k, w.shape[1]), x))
            if i == 0:
                break
            g_in = torch.bmm(g, w, out=self.work.get(f"gx{i}", tuple(inputs[i].shape), x))
            a = inputs[i]  # the previous layer's output after its ops: what their derivatives need
            for kind, name in self.layers[i - 1][2]:  # at most one op per layer (from_plan)
                if kind == "relu":  # threshold_backward, in place (no mask tensor)
                    torch.ops.aten.threshold_backward.grad_input(g_in, a, 0, grad_input=g_in)
                elif kind == "tanh":
                    g_in.mul_(1 - a * a)
                elif kind == "sigmoid":
                    g_in.mul_(a * (1 - a))
                elif kind == "scaled_tanh":
                    g_in.mul_(1 - a * a).mul_(tensors[name].view(k, 1, 1))
                else:  # a frozen spline: dy/dx is its segment's slope (as its autograd backward)
                    g_in.mul_(slopes[i - 1])
            g = g_in
        return losses, grads
