"""Device selection: the one place where the pipeline decides between CPU and GPU.

Tasks placed on a GPU by :func:`pipeline.flows.runners.gpu_placement` run in a worker that sees
exactly its GPU(s) through ``CUDA_VISIBLE_DEVICES``, so ``select_device("cuda")`` (device
``cuda``, i.e. the first visible one) is the right device there without any index bookkeeping.
"""

from __future__ import annotations

import os

__all__ = ["DEVICE_SPECS", "GPUUnavailableError", "cuda_device_count", "select_device"]

#: The accepted device specs.
DEVICE_SPECS = ("cpu", "cuda", "auto")


class GPUUnavailableError(RuntimeError):
    """A GPU was asked for (a ``cuda`` device, ``gpus_per_task: 1``) where there is none."""


def cuda_device_count() -> int:
    """The number of CUDA devices torch can use in this process (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def select_device(spec: str = "auto"):
    """The ``torch.device`` for a device spec.

    Args:
        spec: ``"cpu"``; ``"cuda"`` (the first visible CUDA device; an error without one);
            ``"auto"`` (``cuda`` when available, else ``cpu``).

    Returns:
        ``torch.device("cpu")`` or ``torch.device("cuda")``.

    Raises:
        ValueError: ``spec`` is not one of :data:`DEVICE_SPECS`.
        GPUUnavailableError: ``"cuda"`` was asked for but torch sees no CUDA device (a
            ``RuntimeError``).

    Example::

        >>> select_device("cpu")
        device(type='cpu')
    """
    if not isinstance(spec, str) or spec not in DEVICE_SPECS:
        raise ValueError(f"device must be one of {', '.join(map(repr, DEVICE_SPECS))}, got {spec!r}")
    import torch

    if spec == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if spec == "auto":
        return torch.device("cpu")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    raise GPUUnavailableError(
        "device 'cuda' was requested but torch sees no CUDA device "
        f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none: a CPU-only build'}, "
        f"CUDA_VISIBLE_DEVICES={visible!r}); use device 'cpu' or 'auto', or install a CUDA build of torch"
    )
