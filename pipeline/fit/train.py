"""Ordinary training of a network with a fixed activation: early stopping, checkpoint selection,
and a learning curve (train / validation / test accuracy against steps)."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..nn import InputActivations, SplineActivation
from .objectives import check_task, task_accuracy, task_loss

log = logging.getLogger(__name__)

OPTIMIZERS = ("adamw", "adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained once its activation is chosen (the paper does not state these;
    every value is a parameter in params.yaml).

    Attributes:
        steps: maximum optimisation steps.
        batch_size: minibatch size (``None``: full batch).
        optimizer: ``adamw`` (default), ``adam`` or ``sgd``.
        lr, weight_decay, betas: the optimiser's settings.
        eval_every: steps between evaluations (curve points and early-stopping checks).
        patience: stop after this many evaluations without a better validation accuracy
            (``None``: train for ``steps``); the best checkpoint is restored.
        target_accuracy: the test accuracy whose first crossing is reported as ``steps_to_target``
            (the grokking track uses 0.95).
        train_activations: also train the activation's values (learned AFs are frozen by default:
            paper Sec. 2.3, the AF is reused like any activation).
        keep_best: restore the checkpoint of best validation accuracy (``False``: keep the last,
            as in the grokking runs, which have no model selection).
        dense_early_evals: also evaluate at roughly log-spaced early steps (every step up to 10,
            every 2 up to 100, ...), for curves on a log axis and a precise ``steps_to_target``.
        stop_after_target: end the run once test accuracy has stayed >= ``target_accuracy`` for
            this many consecutive evaluations (``None``: train for ``steps``). For runs whose only
            use is ``steps_to_target`` (the grokking sweeps and transfer matrix), whose budget is
            otherwise spent on a model that has already converged.
    """

    steps: int = 2000
    batch_size: int | None = 256
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eval_every: int = 50
    patience: int | None = 10
    target_accuracy: float | None = None
    train_activations: bool = False
    keep_best: bool = True
    dense_early_evals: bool = False
    stop_after_target: int | None = None

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}: use one of {OPTIMIZERS}")
        for key, ok in {
            "steps": self.steps >= 1,
            "batch_size": self.batch_size is None or self.batch_size >= 1,
            "lr": self.lr > 0,
            "weight_decay": self.weight_decay >= 0,
            "eval_every": self.eval_every >= 1,
            "patience": self.patience is None or self.patience >= 1,
            "stop_after_target": self.stop_after_target is None or self.stop_after_target >= 1,
        }.items():
            if not ok:
                raise ValueError(f"TrainConfig.{key} has an invalid value {getattr(self, key)!r}")
        if self.stop_after_target is not None and self.target_accuracy is None:
            raise ValueError("TrainConfig.stop_after_target needs a target_accuracy to stop at; set both or neither")
        object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """The selected checkpoint and how training went.

    Attributes:
        model: the model at the best validation accuracy (the checkpoint kept).
        best_step: the step of that checkpoint.
        metrics: ``train_acc``, ``val_acc``, ``test_acc``, ``train_loss``, ``val_loss``,
            ``test_loss`` of the kept checkpoint.
        curve: one dict per evaluation: ``step``, ``train_acc``, ``val_acc``, ``test_acc``,
            ``train_loss``.
        steps_to_target: the first evaluated step with test accuracy >= ``target_accuracy``
            (``None`` when never reached or not asked for).
    """

    model: nn.Module
    best_step: int
    metrics: dict[str, float]
    curve: list[dict] = field(default_factory=list)
    steps_to_target: int | None = None


def as_tensors(data: Any, task: str) -> dict[str, Tensor]:
    """``X_train y_train X_val y_val X_test y_test`` of a prepared dataset as float32 / long tensors."""
    out = {}
    for split in ("train", "val", "test"):
        X, y = getattr(data, f"X_{split}"), getattr(data, f"y_{split}")
        out[f"X_{split}"] = torch.as_tensor(X, dtype=torch.float32)
        out[f"y_{split}"] = torch.as_tensor(y, dtype=torch.long if task == "classification" else torch.float32)
    return out


def _evaluate_at(step: int, config: TrainConfig) -> bool:
    if step % config.eval_every == 0 or step == config.steps:
        return True
    if not config.dense_early_evals:
        return False
    spacing = max(1, 10 ** (len(str(step)) - 1) // 4)  # 1 below 10, 2 below 100, 25 below 1000, ...
    return spacing < config.eval_every and step % spacing == 0


def _make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay, momentum=0.9)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas)


def trainable_parameters(model: nn.Module, train_activations: bool) -> list[nn.Parameter]:
    """The parameters to optimise: all, or all but those of learned activations (frozen)."""
    if train_activations:
        return list(model.parameters())
    frozen = {id(p) for m in model.modules() if isinstance(m, (SplineActivation, InputActivations)) for p in m.parameters()}
    return [p for p in model.parameters() if id(p) not in frozen]


@torch.no_grad()
def evaluate_model(model: nn.Module, X: Tensor, y: Tensor, task: str, chunk: int = 8192) -> tuple[float, float]:
    """(loss, accuracy) of ``model`` on ``(X, y)``, in chunks."""
    if X.shape[0] == 0:
        return math.nan, math.nan
    outs = torch.cat([model(X[i : i + chunk]) for i in range(0, X.shape[0], chunk)])
    return task_loss(task, outs, y).item(), task_accuracy(task, outs, y).item()


def train_model(
    model: nn.Module,
    data: Any,
    task: str = "classification",
    config: TrainConfig = TrainConfig(),
    seed: int = 0,
    on_eval: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.X_train`` with early stopping on validation accuracy.

    ``data`` is anything with ``X_train y_train X_val y_val X_test y_test`` (numpy arrays or
    tensors): a :class:`pipeline.data.PreparedData` or a simple namespace. Minibatches are drawn
    from a generator seeded by ``seed``; the model's own initialisation is the caller's.

    **Shape**

    - ``X_*``: ``(n, d)``; ``y_*``: ``(n,)`` class ids (classification) or floats (regression).

    Example::

        >>> from types import SimpleNamespace
        >>> from pipeline.nn import make_mlp
        >>> X = torch.randn(90, 2); y = (X[:, 0] > 0).long()
        >>> data = SimpleNamespace(X_train=X[:60], y_train=y[:60], X_val=X[60:75], y_val=y[60:75], X_test=X[75:], y_test=y[75:])
        >>> result = train_model(make_mlp(2, 2, 1, 16), data, config=TrainConfig(steps=200, lr=1e-2))
        >>> result.metrics["val_acc"] > 0.8
        True
    """
    check_task(task)
    t = as_tensors(data, task)
    gen = torch.Generator().manual_seed(seed)
    trainable = trainable_parameters(model, config.train_activations)
    optimizer = _make_optimizer(trainable, config)
    # Frozen activations need no gradient: skipping it makes a spline step ~1.2x ReLU instead of ~1.4x.
    trainable_ids = {id(p) for p in trainable}
    frozen = [p for p in model.parameters() if id(p) not in trainable_ids and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    n = t["X_train"].shape[0]
    best = {"val_acc": -math.inf, "step": 0, "state": copy.deepcopy(model.state_dict())}
    curve, since_best, steps_to_target, at_target = [], 0, None, 0
    model.train()
    for step in range(1, config.steps + 1):
        if config.batch_size is None or config.batch_size >= n:
            Xb, yb = t["X_train"], t["y_train"]
        else:
            idx = torch.randint(n, (config.batch_size,), generator=gen)
            Xb, yb = t["X_train"][idx], t["y_train"][idx]
        optimizer.zero_grad(set_to_none=True)
        loss = task_loss(task, model(Xb), yb)
        loss.backward()
        optimizer.step()
        if not _evaluate_at(step, config):
            continue
        row = {"step": step, "train_loss": loss.item()}
        for split in ("train", "val", "test"):
            _, row[f"{split}_acc"] = evaluate_model(model, t[f"X_{split}"], t[f"y_{split}"], task)
        curve.append(row)
        if on_eval is not None:
            on_eval(row)
        reached = config.target_accuracy is not None and row["test_acc"] >= config.target_accuracy
        if steps_to_target is None and reached:
            steps_to_target = step
        at_target = at_target + 1 if reached else 0
        if row["val_acc"] > best["val_acc"]:
            best = {"val_acc": row["val_acc"], "step": step, "state": copy.deepcopy(model.state_dict())}
            since_best = 0
        else:
            since_best += 1
            if config.patience is not None and since_best >= config.patience:
                break
        if config.stop_after_target is not None and at_target >= config.stop_after_target:
            break
        if not math.isfinite(row["train_loss"]):
            log.warning("training diverged at step %d (loss %s); keeping step %d", step, row["train_loss"], best["step"])
            break
    for p in frozen:
        p.requires_grad_(True)
    if config.keep_best:
        model.load_state_dict(best["state"])
    else:
        best["step"] = curve[-1]["step"]
    model.eval()
    metrics = {}
    for split in ("train", "val", "test"):
        metrics[f"{split}_loss"], metrics[f"{split}_acc"] = evaluate_model(model, t[f"X_{split}"], t[f"y_{split}"], task)
    return TrainResult(model=model, best_step=best["step"], metrics=metrics, curve=curve, steps_to_target=steps_to_target)
