"""Fixed activations and the registry of activation names used by :func:`make_mlp` and params.yaml."""

from __future__ import annotations

import torch
from torch import Tensor, nn

class TanhScaled(nn.Module):
    """``tanh(alpha * x)``: the tunable-complexity baseline of paper Sec. 3.3 (alpha tuned on validation).

    **Shape**

    - Input: ``(*)``. Output: ``(*)``.

    Example::

        >>> TanhScaled(2.0)(torch.tensor([0.5]))
        tensor([0.7616])
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.alpha * x)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Sine(nn.Module):
    """``sin(frequency * x)``: a non-learned oscillating control for the grokking comparisons.

    **Shape**

    - Input: ``(*)``. Output: ``(*)``.
    """

    def __init__(self, frequency: float = 4.0) -> None:
        super().__init__()
        if not (isinstance(frequency, (int, float)) and frequency > 0):
            raise ValueError(f"frequency must be a positive number, got {frequency!r}")
        self.frequency = float(frequency)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.frequency * x)

    def extra_repr(self) -> str:
        return f"frequency={self.frequency}"


ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "tanh_scaled": TanhScaled,
    "sin": Sine,
    "identity": nn.Identity,
}


def make_activation(name: str, **kwargs) -> nn.Module:
    """A fresh activation module by name: one of :data:`ACTIVATIONS` (kwargs go to its constructor).

    >>> make_activation("tanh_scaled", alpha=3.0)
    TanhScaled(alpha=3.0)
    """
    if name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)} or a SplineActivation module"
        )
    return ACTIVATIONS[name](**kwargs)
