"""A local Prefect server shared by every process of a run (``make repro``, a test session).

Without ``PREFECT_API_URL`` each process that runs a flow starts Prefect's ephemeral server, about
6-7 s per process. One ``prefect server start --host 127.0.0.1 --port P`` shared by all DVC stages
costs about 4 s once, and its UI shows every run, log and artifact.

As a command::

    python -m pipeline.flows.server start         # start (or reuse) and print the API URL
    python -m pipeline.flows.server status        # print the API URL, exit 1 if none is running
    python -m pipeline.flows.server stop          # stop the server this repo started
    python -m pipeline.flows.server run -- dvc repro   # start or reuse, run, stop if started

``run`` exports ``PREFECT_API_URL`` to the command it runs; besides, every process that calls
:func:`pipeline.flows.settings.configure_environment` finds a running server through the state
file ``<PREFECT_HOME>/server.json`` (``{"pid", "api_url", "host", "port", "home", "log"}``).

As a context manager (tests, scripts)::

    with PrefectServer(repo_root) as server:   # exports PREFECT_API_URL inside the block
        my_flow()

The server runs in its own process group with ``PREFECT_HOME`` repo-local (its SQLite database,
its log ``server.log``); stopping it sends SIGTERM to that group, SIGKILL after a grace period.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .settings import TELEMETRY_OFF, api_healthy, find_repo_root, prefect_home, server_state_file

__all__ = [
    "PrefectServer",
    "ServerInfo",
    "free_port",
    "server_status",
    "start_server",
    "stop_server",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200

# Servers started by this process, by pid: kept so they are reaped (and not reported by Python as
# "still running" when the Popen object is collected) when stop_server ends them.
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class ServerInfo:
    """A running Prefect server.

    Attributes:
        api_url: the value for ``PREFECT_API_URL`` (``http://host:port/api``).
        pid: the server process (also its process group); ``None`` for a server not started here.
        host, port: where it listens.
        home: its ``PREFECT_HOME`` (database, state file, ``server.log``).
        started: True when this call started it, False when an already running one is reused.
    """

    api_url: str
    pid: int | None
    host: str
    port: int
    home: str
    started: bool = False

    @property
    def ui_url(self) -> str:
        """The dashboard's address."""
        return self.api_url.removesuffix("/api")

    @property
    def log(self) -> Path:
        """The server's combined stdout/stderr."""
        return Path(self.home) / "server.log"


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port on ``host`` that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _resolve_home(repo_root: str | os.PathLike | None, home: str | os.PathLike | None) -> Path:
    if home is not None:
        return Path(home).resolve()
    if repo_root is None and "PREFECT_HOME" in os.environ:
        return Path(os.environ["PREFECT_HOME"]).resolve()
    return prefect_home(find_repo_root() if repo_root is None else repo_root)


def _read_state(home: Path) -> dict | None:
    try:
        return json.loads(server_state_file(home).read_text())
    except (OSError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_server(pid: int) -> bool:
    """True when ``pid`` is a live ``prefect server start`` (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return _process_alive(pid)  # no /proc (macOS): trust the state file
    return b"prefect" in cmdline and b"server" in cmdline and b"start" in cmdline


def server_status(repo_root: str | os.PathLike | None = None, *, home: str | os.PathLike | None = None) -> ServerInfo | None:
    """The healthy server recorded under ``home`` (default ``<repo>/.prefect``), else ``None``."""
    home_path = _resolve_home(repo_root, home)
    state = _read_state(home_path)
    if not state or not api_healthy(state.get("api_url", "")):
        return None
    return ServerInfo(
        api_url=state["api_url"], pid=state.get("pid"), host=state["host"], port=state["port"], home=str(home_path)
    )


@contextlib.contextmanager
def _locked(home: Path):
    """An exclusive lock on ``<home>/server.lock``: two stages starting at once start one server."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_server(
    repo_root: str | os.PathLike | None = None,
    *,
    home: str | os.PathLike | None = None,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    timeout: float = 90.0,
    reuse: bool = True,
) -> ServerInfo:
    """Start ``prefect server start --host HOST --port PORT`` in the background and wait for
    ``/api/health``; with ``reuse``, return the healthy server already recorded instead.

    Args:
        repo_root: the repository (default: found from the working directory).
        home: the server's ``PREFECT_HOME`` (default ``<repo>/.prefect``); holds its database,
            ``server.json`` and ``server.log``.
        host: the interface to listen on (default loopback only).
        port: default 4200 when free, else any free port.
        timeout: seconds to wait for health (a fresh database runs migrations: about 10 s).
        reuse: reuse a healthy recorded server rather than starting a second one.

    Raises:
        ValueError: ``port`` outside 1..65535, or ``timeout`` not positive.
        RuntimeError: the server exited or did not become healthy in time (with its log's tail).
    """
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise ValueError(f"port must be an int in 1..65535 or None, got {port!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive seconds, got {timeout!r}")
    home_path = _resolve_home(repo_root, home)
    with _locked(home_path):
        if reuse and (running := server_status(home=home_path)) is not None:
            return running
        if port is None:
            port = DEFAULT_PORT if _port_free(host, DEFAULT_PORT) else free_port(host)
        elif not _port_free(host, port):
            raise RuntimeError(f"port {port} on {host} is in use; choose another port or omit it")
        api_url = f"http://{host}:{port}/api"
        env = {**os.environ, **{k: v for k, v in TELEMETRY_OFF.items() if k not in os.environ}}
        env["PREFECT_HOME"] = str(home_path)
        env.pop("PREFECT_API_URL", None)  # the server must not try to report to another server
        log_path = home_path / "server.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port), "--analytics-off"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # own process group: stop_server ends exactly it
            )
        _CHILDREN[process.pid] = process
        info = ServerInfo(api_url=api_url, pid=process.pid, host=host, port=port, home=str(home_path), started=True)
        deadline = time.monotonic() + timeout
        try:
            while not api_healthy(api_url, timeout=1.0):
                if process.poll() is not None:
                    raise RuntimeError(
                        f"prefect server exited with code {process.returncode} before it became healthy; "
                        f"log {log_path}:\n{_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"prefect server at {api_url} not healthy after {timeout:.0f} s; log {log_path}:\n{_tail(log_path)}"
                    )
                time.sleep(0.25)
        except BaseException:  # also Ctrl-C while waiting: leave no orphaned server behind
            _terminate_group(process.pid, grace=5.0)
            raise
        state = {k: v for k, v in asdict(info).items() if k != "started"} | {"log": str(log_path)}
        server_state_file(home_path).write_text(json.dumps(state, indent=2) + "\n")
        return info


def stop_server(
    repo_root: str | os.PathLike | None = None,
    *,
    home: str | os.PathLike | None = None,
    grace: float = 15.0,
) -> bool:
    """Stop the server recorded under ``home`` (SIGTERM to its process group, SIGKILL after
    ``grace`` seconds) and remove the state file. Returns False when none was recorded."""
    home_path = _resolve_home(repo_root, home)
    with _locked(home_path):
        state = _read_state(home_path)
        server_state_file(home_path).unlink(missing_ok=True)
        pid = (state or {}).get("pid")
        if not isinstance(pid, int) or not _process_alive(pid) or not _is_our_server(pid):
            return False
        _terminate_group(pid, grace=grace)
        return True


def _terminate_group(pid: int, grace: float) -> None:
    """SIGTERM the process group led by ``pid`` (started with ``start_new_session``), wait,
    then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        child = _CHILDREN.get(pid)
        if child is not None and child.poll() is not None:  # our child: poll() reaps it
            break
        if child is None and not _process_alive(pid):
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()


def _tail(path: Path, n_chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n_chars:]
    except OSError:
        return "<no log>"


class PrefectServer(contextlib.AbstractContextManager):
    """Start (or reuse) a local server for the duration of a ``with`` block and export its
    ``PREFECT_API_URL`` to this process (the environment, so children inherit it, and Prefect's
    global settings when ``prefect`` is imported). On exit, restores the previous value and stops
    the server if this block started it.

    If ``PREFECT_API_URL`` is already set and answers, that server is used and nothing starts.

    Example::

        >>> with PrefectServer(repo_root) as server:  # doctest: +SKIP
        ...     print(server.ui_url)
    """

    def __init__(
        self,
        repo_root: str | os.PathLike | None = None,
        *,
        home: str | os.PathLike | None = None,
        host: str = DEFAULT_HOST,
        port: int | None = None,
        timeout: float = 90.0,
    ) -> None:
        self._kwargs = dict(repo_root=repo_root, home=home, host=host, port=port, timeout=timeout)
        self.info: ServerInfo | None = None
        self._previous_url: str | None = None

    def __enter__(self) -> ServerInfo:
        self._previous_url = os.environ.get("PREFECT_API_URL")
        if self._previous_url and api_healthy(self._previous_url):
            self.info = ServerInfo(api_url=self._previous_url, pid=None, host="", port=0, home="")
            return self.info
        self.info = start_server(**self._kwargs)
        os.environ["PREFECT_API_URL"] = self.info.api_url
        _refresh_prefect_settings()
        return self.info

    def __exit__(self, *exc_info) -> None:
        if self.info is None or self.info.pid is None:
            return None
        if self._previous_url is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = self._previous_url
        if self.info.started:
            drain_prefect_clients()
            stop_server(home=self.info.home)
        _refresh_prefect_settings()
        return None


def drain_prefect_clients(timeout: float = 10.0) -> None:
    """Send this process's queued run logs and events to the server now (Prefect's background
    services), so that stopping the server loses none and the process does not retry against a
    stopped server at exit. A no-op when Prefect was not imported."""
    for module_name, class_name in (("prefect.logging.handlers", "APILogWorker"), ("prefect.events.worker", "EventsWorker")):
        module = sys.modules.get(module_name)
        if module is not None:
            with contextlib.suppress(Exception):
                getattr(module, class_name).drain_all(timeout=timeout, at_exit=False)


def _refresh_prefect_settings() -> None:
    if "prefect.context" in sys.modules:
        sys.modules["prefect.context"].refresh_global_settings_context()


def main(argv: list[str] | None = None) -> int:
    """The command line: ``start | stop | status | run -- CMD...``."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.flows.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=None, help="repository root (default: found from the working directory)")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start or reuse a server; print its API URL")
    run = sub.add_parser("run", help="run a command with PREFECT_API_URL of a started or reused server")
    for p in (start, run):
        p.add_argument("--host", default=DEFAULT_HOST)
        p.add_argument("--port", type=int, default=None)
        p.add_argument("--timeout", type=float, default=90.0)
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    sub.add_parser("stop", help="stop the server started for this repo")
    sub.add_parser("status", help="print the API URL of the running server; exit 1 if none")
    args = parser.parse_args(argv)

    if args.command == "start":
        info = start_server(args.repo, host=args.host, port=args.port, timeout=args.timeout)
        verb = "started" if info.started else "reusing"
        print(f"{verb} Prefect server (UI {info.ui_url}, log {info.log})", file=sys.stderr)
        print(info.api_url)
        return 0
    if args.command == "stop":
        stopped = stop_server(args.repo)
        print("stopped" if stopped else "no server was running", file=sys.stderr)
        return 0
    if args.command == "status":
        info = server_status(args.repo)
        if info is None:
            print("no server is running", file=sys.stderr)
            return 1
        print(info.api_url)
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("run needs a command after --, e.g. `run -- dvc repro`")
    info = start_server(args.repo, host=args.host, port=args.port, timeout=args.timeout)
    print(f"Prefect UI: {info.ui_url}", file=sys.stderr)
    try:
        return _run_child(cmd, {**os.environ, "PREFECT_API_URL": info.api_url})
    finally:
        if info.started:
            stop_server(home=info.home)


def _run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` to completion and return its exit status (128 + N when signal N killed it, as
    a shell reports it). A SIGTERM or SIGHUP sent to this
    process (a job scheduler's stop, a closed terminal) is passed on to the command and waited
    for, so that the command stops cleanly and the caller's ``finally`` stops the server: by
    default Python would die at once and leave both running."""
    try:
        child = subprocess.Popen(cmd, env=env)
    except FileNotFoundError:
        print(f"command not found: {cmd[0]}", file=sys.stderr)
        return 127

    def forward(signum, _frame):
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                status = child.wait()
                return 128 - status if status < 0 else status  # killed by signal N: the shell's 128 + N
            except KeyboardInterrupt:  # Ctrl-C reached the command too (same process group): let it finish
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
