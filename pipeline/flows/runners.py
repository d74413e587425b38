"""Task runners from a plain config, and GPU placement through the engine's own resources.

The ``runner`` section of ``params.yaml`` is a plain dict::

    runner:
      kind: threads        # threads | dask | ray
      max_workers: 2       # threads: pool size; dask (local): threads per worker (default 1)
      address: null        # dask: an existing scheduler (tcp://host:8786); ray: a cluster address
      n_workers: 2         # dask/ray (local): worker processes / Ray CPUs; with GPUs: <= GPUs
      gpus_per_task: 0     # 0 | 1: one GPU per unit-of-work task (dask or ray only)

Optional keys: ``processes`` (dask local, default true: worker processes rather than threads in
this process), ``devices`` (dask local with GPUs: ``CUDA_VISIBLE_DEVICES`` entries, one worker
each; default every visible GPU), ``worker_timeout`` (seconds to wait for a Dask worker to join
before the GPU check fails, default 10).

A stage builds the runner at run time and hands it to its flow, then places GPU tasks with
:func:`gpu_placement` inside the flow::

    runner = make_task_runner(params["runner"])
    train_flow.with_options(task_runner=runner)(params)

    @flow
    def train_flow(params):
        with gpu_placement(params["runner"]):
            futures = train_unit.map(units)

GPU placement is the engine's: Dask worker resources (``GPU=1`` on each GPU worker, tasks under
``dask.annotate(resources={"GPU": 1})``), Ray ``remote_options(num_gpus=1)``. Both schedulers would
wait forever for a resource no worker has, so :func:`gpu_placement` first checks that the cluster
declares GPUs and fails within seconds otherwise (:class:`~pipeline.flows.device.GPUUnavailableError`).

Worker processes: a script whose flow uses a process-based Dask cluster needs the
``if __name__ == "__main__":`` guard (workers are spawned and re-import the main module), and the
workers must reach the Prefect API. A local cluster passes it on (also in ephemeral mode, see
:mod:`pipeline.flows.clusters`); for a cluster at ``address``, start a server
(``python -m pipeline.flows.server start``) and export ``PREFECT_API_URL`` to the workers.

Dask and Ray are imported only when such a runner is made (``prefect_ray`` is an optional extra:
``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .device import GPUUnavailableError, cuda_device_count

__all__ = [
    "RUNNER_KINDS",
    "RunnerConfig",
    "check_dask_gpus",
    "gpu_placement",
    "make_task_runner",
]

log = logging.getLogger(__name__)

#: The accepted ``kind`` values.
RUNNER_KINDS = ("threads", "dask", "ray")


def _check_positive_int(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"runner {name} must be a positive int or null, got {value!r}")


@dataclass(frozen=True)
class RunnerConfig:
    """A validated runner config (see the module docstring for the meaning of each key).

    Raises:
        ValueError: an unknown key, or a value outside its allowed values; the message names both.

    Example::

        >>> RunnerConfig.from_dict({"kind": "threads", "max_workers": 2})
        RunnerConfig(kind='threads', max_workers=2, address=None, n_workers=None, gpus_per_task=0, processes=True, devices=None, worker_timeout=10.0)
    """

    kind: str = "threads"
    max_workers: int | None = None
    address: str | None = None
    n_workers: int | None = None
    gpus_per_task: int = 0
    processes: bool = True
    devices: tuple[str, ...] | None = None
    worker_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.kind not in RUNNER_KINDS:
            raise ValueError(f"runner kind must be one of {', '.join(map(repr, RUNNER_KINDS))}, got {self.kind!r}")
        _check_positive_int("max_workers", self.max_workers)
        _check_positive_int("n_workers", self.n_workers)
        if self.gpus_per_task not in (0, 1) or isinstance(self.gpus_per_task, bool):
            raise ValueError(f"runner gpus_per_task must be 0 or 1, got {self.gpus_per_task!r}")
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise ValueError(f"runner address must be a non-empty string or null, got {self.address!r}")
        if self.address is not None and self.kind == "threads":
            raise ValueError(f"runner address is for kinds 'dask' and 'ray', not 'threads' (got address {self.address!r})")
        if not isinstance(self.processes, bool):
            raise ValueError(f"runner processes must be true or false, got {self.processes!r}")
        if self.gpus_per_task and self.kind == "threads":
            raise ValueError(
                "runner gpus_per_task=1 needs kind 'dask' or 'ray' (GPU placement uses the engine's resources); "
                "got kind 'threads'"
            )
        if self.devices is not None:
            if isinstance(self.devices, (str, bytes)) or not all(isinstance(d, (str, int)) and not isinstance(d, bool) for d in self.devices):
                raise ValueError(f"runner devices must be a list of CUDA_VISIBLE_DEVICES entries or null, got {self.devices!r}")
            if not self.devices:
                raise ValueError("runner devices must not be empty (null: every visible GPU)")
            object.__setattr__(self, "devices", tuple(str(d) for d in self.devices))
            if self.kind != "dask" or self.address is not None or not self.gpus_per_task:
                raise ValueError(
                    "runner devices applies to a local Dask cluster with gpus_per_task=1 only, got "
                    f"kind={self.kind!r}, address={self.address!r}, gpus_per_task={self.gpus_per_task!r}"
                )
        if isinstance(self.worker_timeout, bool) or not isinstance(self.worker_timeout, (int, float)) or not self.worker_timeout > 0:
            raise ValueError(f"runner worker_timeout must be positive seconds, got {self.worker_timeout!r}")

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | RunnerConfig | None) -> RunnerConfig:
        """Validate a plain dict (``None``: the default threads runner)."""
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, Mapping):
            raise ValueError(f"runner config must be a mapping, got {type(cfg).__name__}: {cfg!r}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(cfg) - set(allowed))
        if unknown:
            raise ValueError(f"unknown runner config key(s) {unknown}; allowed keys: {allowed}")
        return cls(**cfg)


def make_task_runner(cfg: Mapping[str, Any] | RunnerConfig | None = None):
    """A Prefect task runner for a runner config.

    - ``threads``: ``prefect.task_runners.ThreadPoolTaskRunner(max_workers)``.
    - ``dask``: ``prefect_dask.DaskTaskRunner`` on the scheduler at ``address``, or on a
      ``distributed.LocalCluster`` of ``n_workers`` workers with ``max_workers`` threads each
      (default 1) created for the flow run (:func:`~pipeline.flows.clusters.local_cpu_cluster`:
      its worker processes report to the flow's Prefect API, also in ephemeral mode); with
      ``gpus_per_task: 1`` and no ``address``, a
      :class:`~pipeline.flows.clusters.LocalGPUCluster` (one worker process per GPU, each with
      the resource ``GPU=1`` and its own ``CUDA_VISIBLE_DEVICES``).
    - ``ray``: ``prefect_ray.RayTaskRunner`` on ``address`` or a local Ray started for the run
      (``n_workers`` CPUs, every visible GPU).

    Raises:
        ValueError: an invalid config (see :class:`RunnerConfig`).
        GPUUnavailableError: ``gpus_per_task: 1`` on a local Dask/Ray run where torch sees no CUDA
            device (raised here, at once, rather than leaving tasks waiting for a GPU).
        ImportError: ``kind: ray`` without the optional ``prefect-ray`` package.
    """
    config = RunnerConfig.from_dict(cfg)
    if config.kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=config.max_workers)
    if config.kind == "dask":
        return _dask_runner(config)
    return _ray_runner(config)


def _dask_runner(config: RunnerConfig):
    from prefect_dask import DaskTaskRunner

    if config.address is not None:
        if not os.environ.get("PREFECT_API_URL"):
            log.warning(
                "runner address %s without PREFECT_API_URL: the Dask workers need it in their environment to "
                "report task runs (start a server: python -m pipeline.flows.server start)", config.address
            )
        return DaskTaskRunner(address=config.address)
    threads = config.max_workers or 1
    if config.gpus_per_task:
        from .clusters import LocalGPUCluster, visible_gpu_devices

        devices = list(config.devices) if config.devices is not None else visible_gpu_devices()
        if not devices:
            raise GPUUnavailableError(
                "runner gpus_per_task=1 on a local Dask cluster, but torch sees no CUDA device on this machine; "
                "set gpus_per_task: 0, or give the address of a Dask cluster whose workers declare GPU resources"
            )
        if config.n_workers is not None and config.n_workers > len(devices):
            raise ValueError(f"runner n_workers={config.n_workers} exceeds the {len(devices)} GPU device(s) {devices}")
        kwargs = {"devices": devices, "n_workers": config.n_workers or len(devices), "threads_per_worker": threads}
        return DaskTaskRunner(cluster_class=LocalGPUCluster, cluster_kwargs=kwargs)
    from .clusters import local_cpu_cluster

    kwargs = {"threads_per_worker": threads, "processes": config.processes}
    if config.n_workers is not None:
        kwargs["n_workers"] = config.n_workers
    return DaskTaskRunner(cluster_class=local_cpu_cluster, cluster_kwargs=kwargs)


def _ray_runner(config: RunnerConfig):
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as error:
        raise ImportError(
            "runner kind 'ray' needs the optional extra prefect-ray (about 300 MB with Ray): "
            "pip install -e '.[ray]'; or use kind 'threads' or 'dask'"
        ) from error
    if config.address is not None:
        return RayTaskRunner(address=config.address)
    init_kwargs: dict[str, Any] = {}
    if config.n_workers is not None:
        init_kwargs["num_cpus"] = config.n_workers
    if config.gpus_per_task:
        n_gpus = cuda_device_count()
        if n_gpus == 0:
            raise GPUUnavailableError(
                "runner gpus_per_task=1 on a local Ray cluster, but torch sees no CUDA device on this machine; "
                "set gpus_per_task: 0, or give the address of a Ray cluster with GPUs"
            )
        init_kwargs["num_gpus"] = n_gpus
    return RayTaskRunner(init_kwargs=init_kwargs or None)


def check_dask_gpus(client, gpus_per_task: int = 1, worker_timeout: float = 10.0) -> dict[str, float]:
    """The workers of a Dask cluster that declare at least ``gpus_per_task`` ``GPU`` resources.

    Waits up to ``worker_timeout`` seconds for a first worker to join, then reads every worker's
    resources from the scheduler (``client.scheduler_info``).

    Returns:
        ``{worker address: GPU count}`` (never empty).

    Raises:
        GPUUnavailableError: no worker joined in time, or none declares a GPU resource; the
            message lists each worker's resources and how to declare GPUs.
    """
    scheduler = getattr(client, "scheduler", None)
    where = getattr(scheduler, "address", None) or "the Dask scheduler"
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    if not workers:
        try:
            client.wait_for_workers(1, timeout=worker_timeout)
        except TimeoutError as error:
            raise GPUUnavailableError(
                f"gpus_per_task={gpus_per_task}: no Dask worker joined {where} within {worker_timeout:g} s"
            ) from error
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
    resources = {address: dict(info.get("resources") or {}) for address, info in workers.items()}
    gpu_workers = {address: res["GPU"] for address, res in resources.items() if res.get("GPU", 0) >= gpus_per_task}
    if not gpu_workers:
        listing = ", ".join(f"{address}: {res or '{}'}" for address, res in sorted(resources.items()))
        raise GPUUnavailableError(
            f"gpus_per_task={gpus_per_task}, but none of the {len(resources)} worker(s) of {where} declares a "
            f"'GPU' resource (worker resources: {listing}); tasks would wait forever. Start one worker per GPU "
            "with `CUDA_VISIBLE_DEVICES=<i> dask worker <address> --nthreads 1 --resources GPU=1`, "
            "or set gpus_per_task: 0"
        )
    return gpu_workers


def _check_ray_gpus(gpus_per_task: int) -> None:
    import ray

    available = ray.cluster_resources().get("GPU", 0) if ray.is_initialized() else 0
    if available < gpus_per_task:
        raise GPUUnavailableError(
            f"gpus_per_task={gpus_per_task}, but the Ray cluster declares {available:g} GPU(s) "
            f"(cluster resources: {ray.cluster_resources() if ray.is_initialized() else 'ray not initialised'}); "
            "tasks would wait forever. Start Ray with GPUs (`ray start --num-gpus N`), or set gpus_per_task: 0"
        )


@contextlib.contextmanager
def gpu_placement(cfg: Mapping[str, Any] | RunnerConfig | None) -> Iterator[None]:
    """Place the tasks submitted (``.submit``/``.map``) inside the block one per GPU.

    Use inside a flow running on :func:`make_task_runner` of the same config. With
    ``gpus_per_task: 0`` it does nothing. Otherwise it checks, before anything is submitted, that
    the flow's cluster declares GPUs (:func:`check_dask_gpus`; Ray's ``cluster_resources``), then
    annotates the submissions: Dask ``dask.annotate(resources={"GPU": n})``, Ray
    ``remote_options(num_gpus=n)``. Inside the task, ``select_device("cuda")`` is its GPU.

    Raises:
        GPUUnavailableError: the cluster declares no GPU (within ``worker_timeout`` seconds).
        RuntimeError: used outside a flow run, or the flow's task runner cannot place GPUs
            (a thread pool).
    """
    config = RunnerConfig.from_dict(cfg)
    if not config.gpus_per_task:
        yield
        return
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.task_runner is None:
        raise RuntimeError("gpu_placement must be used inside a flow run (around task .submit / .map calls)")
    runner = context.task_runner
    runner_type = type(runner).__name__
    if runner_type == "DaskTaskRunner":
        import dask

        check_dask_gpus(runner.client, config.gpus_per_task, config.worker_timeout)
        with dask.annotate(resources={"GPU": config.gpus_per_task}):
            yield
    elif runner_type == "RayTaskRunner":
        from prefect_ray.context import remote_options

        _check_ray_gpus(config.gpus_per_task)
        with remote_options(num_gpus=config.gpus_per_task):
            yield
    else:
        raise RuntimeError(
            f"gpus_per_task={config.gpus_per_task} but the flow runs on {runner_type}, which cannot place tasks on GPUs; "
            "run the flow with make_task_runner(cfg) of kind 'dask' or 'ray'"
        )


def limit_torch_threads(cfg: Mapping[str, Any] | RunnerConfig | None) -> int:
    """Give each concurrent task of a ``threads`` runner its share of the cores (torch's intra-op
    pool is process-wide: two tasks with a full pool each oversubscribe the machine, measured 3x
    slower on 2 cores). Other runners place tasks in their own processes and are left alone.
    Returns the number of threads set (0: unchanged)."""
    config = RunnerConfig.from_dict(cfg)
    if config.kind != "threads":
        return 0
    import torch

    threads = max(1, (os.cpu_count() or 1) // (config.max_workers or 1))
    torch.set_num_threads(threads)
    return threads
