"""Functional inner-loop optimisers whose updates stay differentiable in the meta-parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

Params = dict[str, Tensor]

INNER_OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class InnerOptimizer:
    """SGD or Adam(W) over a dict of tensors, as pure functions ``init`` and ``step``.

    In Adam the second moment is detached from the graph (PAPER.md, implementation notes):
    with an activation at zeros most weight gradients are exactly 0 at step 1, and the
    derivative of ``sqrt(v)`` at ``v = 0`` is infinite. The first moment keeps its graph, so
    the update still carries the meta-gradient.
    """

    name: str = "adam"
    lr: float = 1e-2
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        if self.name not in INNER_OPTIMIZERS:
            raise ValueError(f"unknown inner optimizer {self.name!r}: use one of {INNER_OPTIMIZERS}")
        if not self.lr > 0:
            raise ValueError(f"inner lr must be > 0, got {self.lr!r}")

    def init(self, params: Params) -> dict:
        if self.name == "sgd":
            return {"t": 0}
        return {
            "t": 0,
            "m": {k: torch.zeros_like(v) for k, v in params.items()},
            "v": {k: torch.zeros_like(v) for k, v in params.items()},
        }

    def step(self, params: Params, grads: Params, state: dict) -> tuple[Params, dict]:
        t = state["t"] + 1
        new = {}
        if self.name == "sgd":
            for k, p in params.items():
                new[k] = p - self.lr * (grads[k] + self.weight_decay * p)
            return new, {"t": t}
        b1, b2 = self.betas
        m, v = {}, {}
        for k, p in params.items():
            g = grads[k]
            m[k] = b1 * state["m"][k] + (1 - b1) * g
            v[k] = b2 * state["v"][k] + (1 - b2) * g.detach() ** 2
            m_hat = m[k] / (1 - b1**t)
            v_hat = v[k] / (1 - b2**t)
            new[k] = p * (1 - self.lr * self.weight_decay) - self.lr * m_hat / (v_hat.sqrt() + self.eps)
        return new, {"t": t, "m": m, "v": v}

    @staticmethod
    def detach_state(state: dict) -> dict:
        return {
            k: ({n: t.detach() for n, t in v.items()} if isinstance(v, dict) else v) for k, v in state.items()
        }
