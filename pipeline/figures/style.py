"""Shared look of the figures, and the one atomic PNG writer."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
PALETTE = {"relu": "#1f4e9c", "af": "#e6550d", "gelu": "#31a354", "tanh": "#9e9ac8", "sin": "#8c6d31",
           "random_spline": "#de77ae"}


def color(name: str) -> str:
    return PALETTE.get(name, "#333333")


def save_figure(fig, path: str | os.PathLike, dpi: int = 130) -> Path:
    """Write ``fig`` as PNG atomically (a reader never sees a half-written image) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)
    return path
