"""The cache policy of every unit-of-work task, and the ``unit_task`` decorator that applies it.

A unit of work (dataset x model x seed, one meta-learning run) is a Prefect task whose result is
persisted under ``PREFECT_RESULTS_LOCAL_STORAGE_PATH`` (``<repo>/.prefect_results``, set by
:func:`pipeline.flows.settings.configure_environment`) and reused by a later run when its cache
key is unchanged. The key hashes:

- ``INPUTS``: the task's arguments (plain dicts, numbers, strings, paths);
- ``TASK_SOURCE``: the task function's source;
- :class:`FileContents`: the *contents* of every existing ``pathlib.Path`` among the arguments
  (nested in dicts/lists too): a path whose file was rewritten gives a new key. A path passed as a
  ``str`` counts as text only;
- :class:`SourceTree`: the source of the code the task runs: the module that defines the task
  (its helper functions) and the library's computing packages (by default every subpackage of
  ``pipeline`` except ``flows`` and ``figures``: ``nn``, ``meta``, ``fit``, ``complexity``,
  ``data``, ...). Prefect's ``TASK_SOURCE`` sees only the task's own lines; without this an edit
  to, say, ``pipeline/fit`` would make DVC rerun the stage and Prefect return stale results.
  A stage may narrow ``code`` to the packages its ``dvc.yaml`` deps list, so that an edit
  elsewhere in the library does not invalidate its units.

Results should be small (dicts of metrics, paths). A task that returns a path must write that file
atomically (:func:`atomic_write_bytes`) and somewhere a rerun does not delete: DVC removes a
stage's ``outs`` before running it, and a cached result does not write its file again.

Example::

    from pipeline.flows.caching import unit_task

    @unit_task(retries=2)                      # retries for a network-touching task
    def fetch(dataset_id: int) -> dict: ...

    @unit_task(task_run_name="train-{dataset}-{model}-s{seed}")
    def train(dataset: str, model: str, seed: int, data: Path) -> dict: ...
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.tasks import task as prefect_task

from ..data.digest import file_sha256

__all__ = [
    "FileContents",
    "NON_COMPUTING",
    "SourceTree",
    "atomic_write_bytes",
    "atomic_write_text",
    "library_modules",
    "module_source_digest",
    "readable_run_name",
    "unit_cache_policy",
    "unit_task",
]

#: Subpackages of ``pipeline`` whose code cannot change a unit's result (orchestration, plots);
#: the others are the default code dependency of every unit (see :func:`library_modules`).
NON_COMPUTING = ("flows", "figures")


def library_modules() -> tuple[str, ...]:
    """The default code dependency of a unit: every module or subpackage of ``pipeline`` except
    :data:`NON_COMPUTING` (found on disk, so a new room is included without a change here)."""
    import pkgutil

    import pipeline

    return tuple(
        sorted(f"pipeline.{info.name}" for info in pkgutil.iter_modules(pipeline.__path__) if info.name not in NON_COMPUTING)
    )

def _tree_digest(root: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """Digest of a folder: the sorted relative names and contents of its files."""
    digest = hashlib.blake2b(digest_size=20)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts or (suffixes is not None and path.suffix not in suffixes):
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + file_sha256(path).encode())
    return digest.hexdigest()


def _path_digest(path: Path) -> str:
    if path.is_file():
        return file_sha256(path)
    if path.is_dir():
        return "dir:" + _tree_digest(path)
    return "missing"


def _paths_in(value: Any) -> Iterable[PurePath]:
    if isinstance(value, PurePath):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _paths_in(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _paths_in(item)


@dataclass
class FileContents(CachePolicy):
    """Cache-key component: the contents of the ``pathlib.Path`` arguments (files and folders,
    also inside dicts and lists). ``None`` (no component) when a task has no path argument."""

    exclude: list[str] = field(default_factory=list)

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        digests = {}
        for name, value in sorted((inputs or {}).items()):
            if name in self.exclude:
                continue
            for path in _paths_in(value):
                digests[f"{name}:{path}"] = _path_digest(Path(path))
        if not digests:
            return None
        return hashlib.blake2b(repr(sorted(digests.items())).encode(), digest_size=20).hexdigest()


@dataclass
class SourceTree(CachePolicy):
    """Cache-key component: the ``.py`` sources of code the task runs.

    Attributes:
        modules: modules or packages (a package contributes every ``.py`` file below its folder);
            ``None``: :func:`library_modules`.
        own_module: add the module that defines the task (skipped for ``__main__``, whose
            task source ``TASK_SOURCE`` covers).
    """

    modules: tuple[str, ...] | None = None
    own_module: bool = True

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any) -> str | None:
        names = set(library_modules() if self.modules is None else self.modules)
        fn = getattr(getattr(task_ctx, "task", None), "fn", None)
        module = getattr(fn, "__module__", None)
        if self.own_module and module and module != "__main__":
            names.add(module)
        if not names:
            return None
        digest = hashlib.blake2b(digest_size=20)
        for name in sorted(names):
            digest.update(name.encode() + b"\0" + module_source_digest(name).encode() + b"\0")
        return digest.hexdigest()


def module_source_digest(name: str) -> str:
    """Digest of the source of module or package ``name`` (found without importing it when it
    is not imported yet).

    Raises:
        ValueError: no such module, or it has no Python source.
    """
    loaded = sys.modules.get(name)
    if loaded is not None and not hasattr(loaded, "__path__") and str(getattr(loaded, "__file__", "")).endswith(".py"):
        return file_sha256(Path(loaded.__file__))
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise ValueError(f"cache code dependency {name!r} is not an importable module")
    if spec.submodule_search_locations:
        return "pkg:" + ":".join(_tree_digest(Path(loc), (".py",)) for loc in sorted(spec.submodule_search_locations))
    if spec.origin and spec.origin.endswith(".py"):
        return file_sha256(Path(spec.origin))
    raise ValueError(f"cache code dependency {name!r} has no Python source (origin {spec.origin!r})")


def unit_cache_policy(code: Iterable[str] | None = None) -> CachePolicy:
    """``INPUTS + TASK_SOURCE + FileContents() + SourceTree(code)``: the units' cache policy.

    Args:
        code: the modules whose source is part of the key besides the task's own module;
            ``None``: :func:`library_modules`; ``()``: the task's module only.
    """
    if code is not None:
        if isinstance(code, str):
            raise ValueError(f"code must be a list of module names, got the string {code!r}")
        code = tuple(code)
        for name in code:
            if not isinstance(name, str) or not name:
                raise ValueError(f"code must name modules (e.g. 'pipeline.fit'), got {name!r} in {code!r}")
    return INPUTS + TASK_SOURCE + FileContents() + SourceTree(modules=code)


def readable_run_name(parameters: dict[str, Any], *, prefix: str, max_length: int = 100) -> str:
    """``prefix(key=value, ...)`` from the scalar parameters (str, int, float, bool, path):
    the default task-run name of :func:`unit_task`, e.g. ``train(dataset=adult, seed=0)``."""
    shown = []
    for key, value in parameters.items():
        if isinstance(value, (str, int, float, bool, PurePath)):
            text = value.name if isinstance(value, PurePath) else str(value)
            shown.append(f"{key}={text[:40]}")
    name = f"{prefix}({', '.join(shown)})"
    return name if len(name) <= max_length else name[: max_length - 2] + "…)"


class _RunName:
    """A picklable ``task_run_name`` callable (tasks travel to Dask workers)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, parameters: dict[str, Any]) -> str:
        return readable_run_name(parameters, prefix=self.prefix)


def unit_task(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    task_run_name: str | Callable | None = None,
    retries: int = 0,
    retry_delay_seconds: float | list[float] | None = None,
    code: Iterable[str] | None = None,
    **task_kwargs: Any,
):
    """``prefect.task`` with the units' defaults: cached by :func:`unit_cache_policy`, result
    persisted, readable run names. Usable bare (``@unit_task``) or called (``@unit_task(...)``).

    Args:
        name: the task name (default: the function's name).
        task_run_name: a format string over the parameters (``"train-{dataset}-s{seed}"``) or a
            callable; default :func:`readable_run_name` of the scalar parameters.
        retries: retries on failure, for tasks touching the network (default 0).
        retry_delay_seconds: delay(s) between retries; default 2, 10, 30, ... seconds with jitter.
        code: modules whose source is part of the cache key besides the task's own module
            (default :func:`library_modules`: ``pipeline`` without ``flows`` and ``figures``;
            e.g. ``("pipeline.fit", "pipeline.nn")`` to match a stage's ``dvc.yaml`` deps).
        **task_kwargs: any other ``prefect.task`` option (e.g. ``cache_policy`` to override,
            ``timeout_seconds``, ``tags``).

    Raises:
        ValueError: ``retries`` not a non-negative int, or ``code`` naming no module.
    """
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative int, got {retries!r}")
    options: dict[str, Any] = {
        "cache_policy": unit_cache_policy(code),
        "persist_result": True,
        "retries": retries,
    }
    if retries:
        options["retry_delay_seconds"] = retry_delay_seconds if retry_delay_seconds is not None else [2, 10, 30][:retries] + [30] * max(0, retries - 3)
        options["retry_jitter_factor"] = task_kwargs.pop("retry_jitter_factor", 0.5)
    options.update(task_kwargs)

    def decorate(function: Callable):
        task_name = name or function.__name__
        run_name = task_run_name if task_run_name is not None else _RunName(task_name)
        return prefect_task(function, name=task_name, task_run_name=run_name, **options)

    return decorate(fn) if fn is not None else decorate


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so a
    reader (or a crash) never sees half a file. Creates the folder. Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """:func:`atomic_write_bytes` for text."""
    return atomic_write_bytes(path, text.encode(encoding))
