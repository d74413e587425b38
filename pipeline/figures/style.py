"""Shared look of the figures, and the one atomic PNG writer."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(context="paper", style="whitegrid", font_scale=0.9)
PALETTE = {"relu": "#4c72b0", "af": "#dd8452", "gelu": "#55a868", "tanh": "#8172b3", "sin": "#937860",
           "random_spline": "#da8bc3"}


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
