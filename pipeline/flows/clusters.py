"""Local Dask clusters for the ``dask`` runner: CPU workers, or one worker process per GPU.

Both report to the flow's Prefect API: a worker process reads ``PREFECT_API_URL`` from its
environment, so when the flow runs in Prefect's ephemeral mode (no ``PREFECT_API_URL`` exported)
the cluster hands the flow's own temporary server URL to its workers
(:func:`prefect_worker_env`). Without that each worker process would start a temporary server
of its own (about 10 s each, and runs scattered over several servers).

:class:`LocalGPUCluster`: each worker is a separate process (a ``Nanny``) started with

- the Dask worker resource ``GPU=1``, so that a task submitted inside
  ``dask.annotate(resources={"GPU": 1})`` (see :func:`pipeline.flows.runners.gpu_placement`)
  runs only there and at most one such task runs on a worker at a time, and
- its own ``CUDA_VISIBLE_DEVICES=<its device>``, so that inside the task ``cuda`` (device 0,
  :func:`pipeline.flows.device.select_device`) is that worker's GPU and no other is visible.

This is what ``dask_cuda.LocalCUDACluster(resources={"GPU": 1})`` sets up too (dask-cuda rotates
the device list per worker instead of hiding the others, and adds RAPIDS memory management);
this class needs nothing beyond ``distributed``. For GPUs on several machines, start one worker
per GPU by hand and give the runner the scheduler's ``address``::

    dask scheduler                                   # prints tcp://HOST:8786
    CUDA_VISIBLE_DEVICES=0 dask worker tcp://HOST:8786 --nworkers 1 --nthreads 1 --resources GPU=1
    CUDA_VISIBLE_DEVICES=1 dask worker tcp://HOST:8786 --nworkers 1 --nthreads 1 --resources GPU=1

(or ``dask cuda worker tcp://HOST:8786 --resources GPU=1`` with dask-cuda installed).

Importing this module imports ``distributed``; :mod:`pipeline.flows.runners` imports it lazily.
A process that creates the cluster needs the ``if __name__ == "__main__":`` guard in scripts
(worker processes are spawned and re-import the main module).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence

from distributed import LocalCluster
from distributed.worker_memory import parse_memory_limit

__all__ = ["LocalGPUCluster", "local_cpu_cluster", "prefect_worker_env", "visible_gpu_devices"]


def prefect_worker_env() -> dict[str, str]:
    """Environment for worker processes so their tasks report to this flow's Prefect API:
    ``{}`` when ``PREFECT_API_URL`` is exported (children inherit it), else
    ``{"PREFECT_API_URL": <the running flow's client URL>}`` (the ephemeral server)."""
    if os.environ.get("PREFECT_API_URL"):
        return {}
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    client = getattr(context, "client", None)
    url = str(getattr(client, "api_url", "") or "").rstrip("/")
    return {"PREFECT_API_URL": url} if url else {}


def _with_worker_env(kwargs: dict) -> dict:
    env = {**prefect_worker_env(), **(kwargs.pop("env", None) or {})}
    return {**kwargs, "env": env} if env else kwargs


def local_cpu_cluster(**kwargs) -> LocalCluster:
    """``distributed.LocalCluster(**kwargs)`` whose worker processes report to the flow's
    Prefect API (see :func:`prefect_worker_env`); the cluster factory of the CPU ``dask`` runner."""
    if kwargs.get("processes", True):
        kwargs = _with_worker_env(kwargs)
    return LocalCluster(**kwargs)


def visible_gpu_devices() -> list[str]:
    """The CUDA devices of this machine as ``CUDA_VISIBLE_DEVICES`` entries: the entries of an
    exported ``CUDA_VISIBLE_DEVICES`` when torch sees CUDA, else ``0..n-1`` for torch's
    ``torch.cuda.device_count()`` devices; ``[]`` without CUDA."""
    from .device import cuda_device_count

    count = cuda_device_count()
    if count == 0:
        return []
    exported = os.environ.get("CUDA_VISIBLE_DEVICES")
    if exported:
        entries = [entry.strip() for entry in exported.split(",") if entry.strip()]
        return entries[:count]
    return [str(i) for i in range(count)]


class LocalGPUCluster(LocalCluster):
    """A ``distributed.LocalCluster`` with one worker process per GPU device.

    Worker ``i`` is named after its device, declares the resource ``GPU=1`` and runs with
    ``CUDA_VISIBLE_DEVICES=devices[i]``.

    Args:
        devices: ``CUDA_VISIBLE_DEVICES`` entries (indices or ``GPU-...`` UUIDs), one per worker;
            default :func:`visible_gpu_devices`. Given explicitly they are used as they are (no
            CUDA check), which is also how a CPU-only test checks the placement.
        n_workers: how many of ``devices`` to start workers for (default: all).
        threads_per_worker: threads per worker (default 1). With more, CPU tasks may share a
            worker; GPU-annotated tasks still run one at a time per worker.
        **kwargs: passed to ``LocalCluster`` (not ``processes``: a GPU worker must be a process
            to have its own ``CUDA_VISIBLE_DEVICES``).

    Raises:
        ValueError: no devices, ``n_workers`` out of ``1..len(devices)``, ``processes=False``.

    Example::

        >>> with LocalGPUCluster(devices=["0", "1"]) as cluster:  # doctest: +SKIP
        ...     sorted(cluster.workers)
        ['0', '1']
    """

    def __init__(
        self,
        devices: Sequence[str | int] | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        **kwargs,
    ) -> None:
        devices = visible_gpu_devices() if devices is None else [str(d) for d in devices]
        if not devices:
            raise ValueError(
                "LocalGPUCluster needs at least one GPU device, got none (torch sees no CUDA device "
                f"and no devices were given; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
            )
        if len(set(devices)) != len(devices):
            raise ValueError(f"devices must be distinct, got {devices}")
        if n_workers is None:
            n_workers = len(devices)
        if not isinstance(n_workers, int) or isinstance(n_workers, bool) or not 1 <= n_workers <= len(devices):
            raise ValueError(f"n_workers must be an int in 1..{len(devices)} (one worker per device {devices}), got {n_workers!r}")
        if not kwargs.pop("processes", True):
            raise ValueError("processes=False is not allowed: each GPU worker needs its own process and CUDA_VISIBLE_DEVICES")
        resources = dict(kwargs.pop("resources", None) or {})
        resources["GPU"] = 1
        kwargs.setdefault("memory_limit", parse_memory_limit("auto", 1, n_workers, logger=logging.getLogger(__name__)))
        kwargs = _with_worker_env(kwargs)
        self.devices = devices
        super().__init__(
            n_workers=0,
            threads_per_worker=threads_per_worker,
            processes=True,
            resources=resources,
            **kwargs,
        )
        self.scale(n_workers)
        self.sync(self._correct_state)

    def new_worker_spec(self) -> dict:
        """The spec of the next worker: named after the first device without a worker, with
        that device as its ``CUDA_VISIBLE_DEVICES``."""
        free = [device for device in self.devices if device not in self.worker_spec]
        if not free:
            raise ValueError(f"cannot start more workers than GPU devices {self.devices}")
        spec = copy.deepcopy(self.new_spec)
        options = spec["options"]
        options["env"] = {**(options.get("env") or {}), "CUDA_VISIBLE_DEVICES": free[0]}
        return {free[0]: spec}
