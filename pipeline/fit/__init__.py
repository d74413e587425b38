"""Training: objectives, MLP training with early stopping, populations, baselines."""

from .objectives import TASKS, check_task, task_accuracy, task_loss
from .population import PER_MODEL_FIELDS, population_configs, train_population
from .train import OPTIMIZERS, TrainConfig, TrainResult, as_tensors, evaluate_model, train_model, trainable_parameters

__all__ = [
    "OPTIMIZERS",
    "PER_MODEL_FIELDS",
    "TASKS",
    "TrainConfig",
    "TrainResult",
    "as_tensors",
    "check_task",
    "evaluate_model",
    "population_configs",
    "task_accuracy",
    "task_loss",
    "train_model",
    "train_population",
    "trainable_parameters",
]
