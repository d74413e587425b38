"""Progress of long loops, in the terminal and in the run logs.

- Terminal: a ``tqdm`` bar on stderr, shown only when stderr is a terminal, ``CI`` is not
  ``true`` and the code does not run in a Dask worker (DVC pipes, CI logs and workers get no bar).
- Logs: a line every ``every`` percent (and at the end) to Prefect's run logger when called
  inside a flow or task run, so it shows in the UI, else to the ``pipeline.progress`` logger.
  With an unknown total, a line every ``interval`` seconds instead.

Example::

    for unit in track(units, desc="train tabular"):
        ...

    progress = Progress(total=config.n_max, desc="meta-learn adult")
    meta_learn(model, X, y, config=config, on_step=progress)   # one update per history row
    progress.close()
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

__all__ = ["Progress", "run_logger", "terminal_enabled", "track"]

T = TypeVar("T")
_FALLBACK_LOGGER = "pipeline.progress"


def _in_dask_worker() -> bool:
    if "distributed" not in sys.modules:
        return False
    try:
        sys.modules["distributed"].get_worker()
    except ValueError:
        return False
    return True


def terminal_enabled(stream=None) -> bool:
    """True when a progress bar belongs on ``stream`` (default stderr): a TTY, ``CI`` unset or
    not true, and not inside a Dask worker (whose bars would garble the terminal they share)."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        return False
    if _in_dask_worker():
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run, else the ``pipeline.progress`` logger.

    Prefect is consulted only if something imported it already (this module stays light)."""
    if "prefect" in sys.modules:
        from prefect.context import FlowRunContext, TaskRunContext

        if TaskRunContext.get() is not None or FlowRunContext.get() is not None:
            from prefect.logging import get_run_logger

            return get_run_logger()
    return logging.getLogger(_FALLBACK_LOGGER)


def _format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """A progress counter that draws a terminal bar and writes log lines.

    Args:
        total: the number of steps (``None``: unknown).
        desc: what is progressing (shown in the bar and each log line).
        every: log every this many percent of ``total`` (in ``(0, 100]``).
        interval: with ``total=None``, log every this many seconds.
        terminal: force the bar on or off (default :func:`terminal_enabled`).
        logger: where log lines go (default :func:`run_logger`, resolved at creation).
        fields: keys of the mapping given to :meth:`__call__` to show as postfix (default the
            first three numeric ones).

    Raises:
        ValueError: ``total`` negative or not an int, ``every`` outside ``(0, 100]``,
            ``interval`` not positive.

    Thread-safe: tasks in a thread pool may share one instance.
    """

    def __init__(
        self,
        total: int | None = None,
        desc: str = "",
        *,
        every: float = 10.0,
        interval: float = 30.0,
        terminal: bool | None = None,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"total must be a non-negative int or None, got {total!r}")
        if not 0 < every <= 100:
            raise ValueError(f"every must be a percentage in (0, 100], got {every!r}")
        if not interval > 0:
            raise ValueError(f"interval must be positive seconds, got {interval!r}")
        self.total, self.desc, self.every, self.interval = total, desc, every, interval
        self.fields = tuple(fields) if fields is not None else None
        self.n = 0
        self.info: dict[str, Any] = {}
        self.logger = logger if logger is not None else run_logger()
        self._lock = threading.Lock()
        self._start = self._last_log = time.monotonic()
        self._next_percent = every
        self._closed = False
        self._bar = None
        if terminal if terminal is not None else terminal_enabled():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=True)

    def update(self, n: int = 1, **info: Any) -> None:
        """Advance by ``n`` steps; ``info`` (e.g. ``loss=0.3``) is shown beside the count."""
        with self._lock:
            self.n += n
            if info:
                self.info.update(info)
            if self._bar is not None:
                self._bar.update(n)
                if info:
                    self._bar.set_postfix(self.info, refresh=False)
            line = self._due_line()
        if line is not None:
            self.logger.info(line)

    def __call__(self, row: Mapping[str, Any] | None = None) -> None:
        """One step, showing chosen values of ``row``: the ``on_step`` callback of
        :func:`pipeline.meta.meta_learn` (called with each history row)."""
        info = {}
        if row:
            keys = self.fields if self.fields is not None else [
                k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"
            ][:3]
            for key in keys:
                value = row.get(key)
                info[key] = round(value, 4) if isinstance(value, float) else value
        self.update(1, **info)

    def _due_line(self) -> str | None:
        now = time.monotonic()
        if self.total:
            percent = 100.0 * self.n / self.total
            if percent + 1e-9 < self._next_percent:
                return None
            while self._next_percent <= percent + 1e-9:
                self._next_percent += self.every
        elif now - self._last_log < self.interval:
            return None
        self._last_log = now
        return self._line(now)

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        if self.total:
            rate = self.n / elapsed if elapsed > 0 else math.nan
            eta = (self.total - self.n) / rate if rate and math.isfinite(rate) and rate > 0 else math.nan
            head = f"{self.desc}: {self.n}/{self.total} ({100.0 * self.n / self.total:.0f}%) elapsed {_format_seconds(elapsed)} eta {_format_seconds(eta)}"
        else:
            head = f"{self.desc}: {self.n} done, elapsed {_format_seconds(elapsed)}"
        if self.info:
            head += " " + ", ".join(f"{k}={v}" for k, v in self.info.items())
        return head

    def close(self) -> None:
        """Close the bar; log a final line if the last milestone was not logged yet."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._bar is not None:
                self._bar.close()
            final = self.total is None or (self.total and self.n < self.total) or self.total == 0
            line = self._line(time.monotonic()) if final else None
        if line is not None:
            self.logger.info(line)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def track(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str = "",
    *,
    every: float = 10.0,
    terminal: bool | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Iterator[T]:
    """Iterate over ``iterable`` with a :class:`Progress` (``total`` defaults to ``len(iterable)``
    when it has one).

    Example::

        >>> sum(track(range(5), desc="demo", terminal=False))
        10
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with Progress(total, desc, every=every, terminal=terminal, logger=logger) as progress:
        for item in iterable:
            yield item
            progress.update()
