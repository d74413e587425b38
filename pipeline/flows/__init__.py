"""Orchestration: Prefect flows' building blocks (see DESIGN.md, Orchestration).

Modules, one concept each:

- :mod:`~pipeline.flows.settings`: ``configure_environment``, called first by every entry point
  (telemetry off, repo-local Prefect home and results, the shared server's URL);
- :mod:`~pipeline.flows.server`: a local ``prefect server`` shared by all stages (CLI and context
  manager);
- :mod:`~pipeline.flows.runners`: ``make_task_runner(cfg)`` (threads, dask, ray) and
  ``gpu_placement(cfg)``; :mod:`~pipeline.flows.clusters`: one Dask worker per GPU;
- :mod:`~pipeline.flows.device`: ``select_device('cpu'|'cuda'|'auto')``;
- :mod:`~pipeline.flows.caching`: ``unit_task``, the cached, persisted unit-of-work task;
- :mod:`~pipeline.flows.artifacts`: results tables and markdown summaries under stable keys;
- :mod:`~pipeline.flows.progress`: ``track`` / ``Progress`` for the terminal and the run logs.

Importing this package imports none of Prefect, Dask or Ray: Prefect reads its settings from
the environment when it is imported, so :func:`configure_environment` must run first. The names
below are loaded on first access (``from pipeline.flows import unit_task`` imports Prefect then).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "configure_environment": "settings",
    "PrefectServer": "server",
    "start_server": "server",
    "stop_server": "server",
    "server_status": "server",
    "RunnerConfig": "runners",
    "make_task_runner": "runners",
    "gpu_placement": "runners",
    "GPUUnavailableError": "device",
    "select_device": "device",
    "unit_task": "caching",
    "atomic_write_bytes": "caching",
    "atomic_write_text": "caching",
    "artifact_key": "artifacts",
    "publish_table": "artifacts",
    "publish_markdown": "artifacts",
    "markdown_table": "artifacts",
    "Progress": "progress",
    "track": "progress",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.flows' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
