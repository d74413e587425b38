"""Task objectives shared by training and meta-learning: the loss and the accuracy of a task."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

TASKS = ("classification", "regression")


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: use one of {TASKS}")
    return task


def task_loss(task: str, output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy over ``(n, k)`` logits, or MSE of a ``(n, 1)``/``(n,)`` output against ``(n,)``."""
    if task == "classification":
        return F.cross_entropy(output, target)
    return F.mse_loss(output.reshape(target.shape), target)


@torch.no_grad()
def task_accuracy(task: str, output: Tensor, target: Tensor) -> Tensor:
    """Share of correct predictions: argmax for classification; for regression on class ids
    (paper Sec. 3.2) the prediction rounded to the nearest id. Returns a 0-dim tensor."""
    if task == "classification":
        return (output.argmax(-1) == target).float().mean()
    return (output.reshape(target.shape).round() == target).float().mean()
