"""Training: objectives, MLP training with early stopping, populations, baselines."""

from .objectives import TASKS, check_task, task_accuracy, task_loss
from .train import OPTIMIZERS, TrainConfig, TrainResult, as_tensors, evaluate_model, train_model, trainable_parameters

__all__ = [
    "OPTIMIZERS",
    "TASKS",
    "TrainConfig",
    "TrainResult",
    "as_tensors",
    "check_task",
    "evaluate_model",
    "task_accuracy",
    "task_loss",
    "train_model",
    "trainable_parameters",
]
