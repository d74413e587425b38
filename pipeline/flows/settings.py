"""Process environment for Prefect, DVC and Ray: telemetry off, repo-local state, shared server.

Prefect reads most of its settings from the environment **when it is imported** (the root settings
context of ``prefect.context`` and the logging configuration are built then). So the entry point of
every process that runs flows (each ``stages/*.py`` module, a script, a notebook's first cell) calls
:func:`configure_environment` *before* anything imports ``prefect``::

    from pipeline.flows.settings import configure_environment
    configure_environment()          # first thing: nothing has imported prefect yet
    from pipeline.flows.runners import make_task_runner  # noqa: E402  (imports prefect lazily)

Every variable is set with ``setdefault``: a value the user exported wins. If ``prefect`` was
imported already, :func:`configure_environment` refreshes Prefect's process-global settings
context (``prefect.context.refresh_global_settings_context``) and attaches the ``pipeline``
logger to Prefect's API log handler, so the values still apply to flows started afterwards;
settings captured earlier (an active ``temporary_settings`` block, a running flow) are unchanged.

Children (DVC stage commands, Dask worker processes) inherit the environment, which is why the
settings are environment variables and not in-process overrides.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import urllib.request
from pathlib import Path

__all__ = [
    "TELEMETRY_OFF",
    "configure_environment",
    "find_repo_root",
    "prefect_home",
    "results_path",
    "server_state_file",
]

#: Environment that switches off usage reporting of every tool the pipeline drives.
TELEMETRY_OFF: dict[str, str] = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "ITERATIVE_DO_NOT_TRACK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}

#: The logger namespace of the library; its records are forwarded to Prefect's run logs.
LIBRARY_LOGGER = "pipeline"

_REPO_MARKERS = ("dvc.yaml", ".git", "pyproject.toml")


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding
    ``dvc.yaml``, ``.git`` or ``pyproject.toml``; ``start`` itself when none does."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in _REPO_MARKERS):
            return folder
    return here


def prefect_home(repo_root: str | os.PathLike) -> Path:
    """The repo-local ``PREFECT_HOME``: ``<repo>/.prefect`` (database, profiles, server state)."""
    return Path(repo_root).resolve() / ".prefect"


def results_path(repo_root: str | os.PathLike) -> Path:
    """Where task results and cache records are persisted: ``<repo>/.prefect_results``."""
    return Path(repo_root).resolve() / ".prefect_results"


def server_state_file(home: str | os.PathLike) -> Path:
    """The file in which :mod:`pipeline.flows.server` records the running server (pid, URL)."""
    return Path(home) / "server.json"


def configure_environment(
    repo_root: str | os.PathLike | None = None,
    *,
    use_running_server: bool = True,
) -> dict[str, str]:
    """Set the environment of this process (and its children) for running the pipeline's flows.

    Sets, each only if not already set:

    - telemetry off: ``DO_NOT_TRACK=1``, ``PREFECT_SERVER_ANALYTICS_ENABLED=false``,
      ``DVC_NO_ANALYTICS=1``, ``ITERATIVE_DO_NOT_TRACK=1``, ``RAY_USAGE_STATS_ENABLED=0``;
    - ``PREFECT_HOME=<repo>/.prefect`` so that Prefect's database and profiles stay in the repo;
    - ``PREFECT_RESULTS_LOCAL_STORAGE_PATH=<repo>/.prefect_results`` (task results and caches);
    - ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=60`` (the default 20 s is exceeded on a
      loaded 2-core machine);
    - ``PREFECT_LOGGING_EXTRA_LOGGERS=pipeline``, so the library's ``logging.getLogger("pipeline.*")``
      records appear in the run logs, and ``PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW=ignore``, so
      the same records outside a flow run produce no warning;
    - ``PREFECT_API_URL`` of the server recorded by ``python -m pipeline.flows.server start`` in
      ``<PREFECT_HOME>/server.json`` when that server answers (``use_running_server``), so that all
      stages of a ``dvc repro`` report to one server instead of each starting an ephemeral one.

    Persisting results is switched on per task by :func:`pipeline.flows.caching.unit_task`
    (``persist_result=True``), so ``PREFECT_RESULTS_PERSIST_BY_DEFAULT`` is left alone.

    Args:
        repo_root: the repository; default :func:`find_repo_root` of the working directory.
        use_running_server: point ``PREFECT_API_URL`` at a healthy server recorded for this repo.

    Returns:
        The values now in force for the variables above (whether set here or by the user).
    """
    root = find_repo_root() if repo_root is None else Path(repo_root).resolve()
    wanted = dict(TELEMETRY_OFF)
    wanted.update(
        {
            "PREFECT_HOME": str(prefect_home(root)),
            "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(results_path(root)),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "60",
            "PREFECT_LOGGING_EXTRA_LOGGERS": LIBRARY_LOGGER,
            "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
        }
    )
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    if use_running_server and "PREFECT_API_URL" not in os.environ:
        url = _recorded_server_url(Path(os.environ["PREFECT_HOME"]))
        if url is not None:
            os.environ["PREFECT_API_URL"] = url
            wanted["PREFECT_API_URL"] = url
    _apply_to_imported_prefect()
    return {key: os.environ[key] for key in wanted}


def _recorded_server_url(home: Path) -> str | None:
    """The API URL in ``<home>/server.json`` if that server answers its health check."""
    try:
        url = json.loads(server_state_file(home).read_text())["api_url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if api_healthy(url) else None


def api_healthy(api_url: str, timeout: float = 1.0) -> bool:
    """True when ``GET <api_url>/health`` answers 200 within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def _apply_to_imported_prefect() -> None:
    """Make the environment take effect in a process that imported ``prefect`` already."""
    if "prefect.context" in sys.modules:
        sys.modules["prefect.context"].refresh_global_settings_context()
    configuration = sys.modules.get("prefect.logging.configuration")
    if configuration is not None and configuration.PROCESS_LOGGING_CONFIG:
        # Logging was configured before PREFECT_LOGGING_EXTRA_LOGGERS was set: attach now what
        # Prefect's setup_logging attaches to extra loggers (the API handler of prefect.extra).
        library = logging.getLogger(LIBRARY_LOGGER)
        for handler in logging.getLogger("prefect.extra").handlers:
            if handler not in library.handlers:
                library.addHandler(handler)
    library = logging.getLogger(LIBRARY_LOGGER)
    if library.level == logging.NOTSET:
        # Without a level the library's INFO records would be cut by the root logger's WARNING.
        library.setLevel(os.environ.get("PREFECT_LOGGING_LEVEL", "INFO").upper())
