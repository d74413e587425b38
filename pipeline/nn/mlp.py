"""Multi-layer perceptrons with any activation, shared or per layer, and an optional IAF in front."""

from __future__ import annotations

from typing import Sequence

import torch  # noqa: F401  (used by the doctest)
from torch import nn

from .activations import make_activation
from .input_activations import InputActivations


def make_mlp(
    d_in: int,
    d_out: int,
    depth: int,
    width: int,
    activation: str | nn.Module | Sequence[nn.Module] = "relu",
    input_activation: InputActivations | str | None = None,
) -> nn.Sequential:
    """An MLP ``[IAF] -> (Linear -> act) x depth -> Linear`` (the models of paper Sec. 3).

    Args:
        d_in: input features.
        d_out: outputs: the number of classes for classification, 1 for scalar regression.
        depth: hidden layers; 0 gives a linear model (with an IAF: "IAF & linear").
        width: units per hidden layer.
        activation: a name (``relu gelu tanh tanh_scaled sin identity``: a fresh module per
            layer), one module used at every layer (a shared :class:`SplineActivation`), or a
            sequence of ``depth`` modules (one per layer).
        input_activation: an :class:`InputActivations` module, ``"iaf"`` for a fresh identity
            one, or ``None``.

    **Shape**

    - Input: ``(n, d_in)``. Output: ``(n, d_out)``.

    Example::

        >>> from pipeline.nn import SplineActivation
        >>> model = make_mlp(8, 2, depth=2, width=16, activation=SplineActivation(init="relu"))
        >>> model(torch.zeros(5, 8)).shape
        torch.Size([5, 2])
    """
    for name, value, lowest in (("d_in", d_in, 1), ("d_out", d_out, 1), ("depth", depth, 0), ("width", width, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
    layers: list[nn.Module] = []
    if input_activation is not None:
        if isinstance(input_activation, str):
            if input_activation != "iaf":
                raise ValueError(f"input_activation must be 'iaf', an InputActivations module or None, got {input_activation!r}")
            input_activation = InputActivations(d_in)
        if not isinstance(input_activation, InputActivations) or input_activation.n_features != d_in:
            raise ValueError(f"input_activation must be InputActivations({d_in}), got {input_activation!r}")
        layers.append(input_activation)
    acts = _per_layer(activation, depth)
    fan_in = d_in
    for act in acts:
        layers += [nn.Linear(fan_in, width), act]
        fan_in = width
    layers.append(nn.Linear(fan_in, d_out))
    return nn.Sequential(*layers)


def _per_layer(activation, depth: int) -> list[nn.Module]:
    if isinstance(activation, str):
        return [make_activation(activation) for _ in range(depth)]
    if isinstance(activation, nn.Module):
        return [activation] * depth  # the same module at every layer: one shared activation
    acts = list(activation)
    if len(acts) != depth or not all(isinstance(a, nn.Module) for a in acts):
        raise ValueError(
            f"a per-layer activation needs exactly depth={depth} modules, got {len(acts)}: {acts!r}"
        )
    return acts
