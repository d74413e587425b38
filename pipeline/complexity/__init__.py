"""Complexity measures of learned functions (paper Sec. 2.1-2.2)."""

from .slices import slice_1d, slice_2d
from .variation import evaluate, total_variation

__all__ = ["evaluate", "slice_1d", "slice_2d", "total_variation"]
