"""Complexity measures of learned functions (paper Sec. 2.1-2.2) and complexity landscapes (Sec. 3.3)."""

from .landscape import complexity_landscape, random_plane, trajectory_plane
from .slices import slice_1d, slice_2d
from .variation import evaluate, total_variation

__all__ = ["complexity_landscape", "evaluate", "random_plane", "slice_1d", "slice_2d", "total_variation",
           "trajectory_plane"]
