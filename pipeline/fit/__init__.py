"""Training: objectives, MLP training and populations, baselines."""

from .objectives import TASKS, check_task, task_accuracy, task_loss

__all__ = ["TASKS", "check_task", "task_accuracy", "task_loss"]
