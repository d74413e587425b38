"""Meta-learning of activation functions: Algorithm 1 of the paper (Sec. 2.3)."""

from .algorithm import (
    MetaConfig,
    MetaProblem,
    MetaResult,
    fresh_weights,
    meta_learn,
    meta_learn_problems,
    meta_modules_of,
    unrolled_validation_loss,
)
from .inner import INNER_OPTIMIZERS, InnerOptimizer

__all__ = [
    "INNER_OPTIMIZERS",
    "InnerOptimizer",
    "MetaConfig",
    "MetaProblem",
    "MetaResult",
    "fresh_weights",
    "meta_learn",
    "meta_learn_problems",
    "meta_modules_of",
    "unrolled_validation_loss",
]
