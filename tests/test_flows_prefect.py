"""pipeline.flows against the real components: a `prefect server` on 127.0.0.1 started by
pipeline.flows.server, flows on the thread-pool and Dask task runners, results read back through
the Prefect client API. One server for the module (about 10 s with a fresh database)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real Prefect server for this module, in a temporary repo (its own PREFECT_HOME and
    results folder), with this process's environment (inherited by Dask workers) and Prefect
    settings pointed at it; afterwards the server is stopped (no process left) and the
    environment, Prefect's global settings and the `pipeline` logger are restored."""
    from pipeline.flows.server import PrefectServer, free_port
    from pipeline.flows.settings import configure_environment

    repo = tmp_path_factory.mktemp("repo")
    library_logger = logging.getLogger("pipeline")
    saved_logger = (library_logger.level, list(library_logger.handlers))
    saved_env = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("PREFECT_")]:
        del os.environ[key]  # hermetic: no user profile, API URL or key leaks in
    configure_environment(repo)  # sets the env and refreshes Prefect's global settings
    manager = PrefectServer(repo, port=free_port())
    try:
        info = manager.__enter__()  # exports PREFECT_API_URL
        yield {"info": info, "repo": repo}
    finally:
        manager.__exit__(None, None, None)
        os.environ.clear()
        os.environ.update(saved_env)
        import prefect.context

        prefect.context.refresh_global_settings_context()
        library_logger.setLevel(saved_logger[0])  # undo configure_environment's logger wiring
        library_logger.handlers[:] = saved_logger[1]
    assert info.pid is not None and info.started
    assert _gone(info.pid), f"prefect server pid {info.pid} still running after stop"
    assert not (repo / ".prefect" / "server.json").exists()


def _gone(pid: int, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


# --- a small flow of unit tasks -----------------------------------------------------------------
# The tasks count their executions by appending to a file whose folder is passed as a *str*:
# a pathlib.Path argument would put the file's contents into the cache key (FileContents).
# Their code dependency is their own module only (`code=()`; the default adds the library's
# computing packages), so that a colleague saving a file in pipeline/ between two runs cannot
# change the cache keys.

from prefect import flow  # noqa: E402

from pipeline.flows.artifacts import markdown_table, publish_markdown, publish_table  # noqa: E402
from pipeline.flows.caching import unit_task  # noqa: E402
from pipeline.flows.progress import Progress  # noqa: E402


def _count(counter_dir: str, label: str) -> None:
    with open(Path(counter_dir) / "executions.txt", "a") as out:
        out.write(label + "\n")


@unit_task(code=())
def square(x: int, counter_dir: str) -> dict:
    _count(counter_dir, f"square:{x}")
    return {"x": x, "square": x * x}


@unit_task(task_run_name="summarize-{label}", code=())
def summarize(rows: list, label: str, counter_dir: str) -> dict:
    _count(counter_dir, "summarize")
    return {"label": label, "total": sum(row["square"] for row in rows)}


@flow(name="flows-test-demo")
def demo_flow(xs: list[int], counter_dir: str) -> dict:
    progress = Progress(total=len(xs), desc="squares", every=50)
    rows = []
    for future in square.map(xs, counter_dir=counter_dir):
        rows.append(future.result())
        progress.update()
    progress.close()
    summary = summarize(rows, label="demo", counter_dir=counter_dir)
    publish_table(rows, track="test", stage="demo", description="squares")
    publish_markdown(f"# Demo\n\ntotal {summary['total']}\n\n" + markdown_table(rows), track="test", stage="demo")
    logging.getLogger("pipeline.test_flows").info("library log line from the pipeline logger")
    return summary


def _executions(counter_dir: Path) -> list[str]:
    path = counter_dir / "executions.txt"
    lines = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return sorted(lines)


def _read_back(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        logs = []
        for _ in range(50):  # logs reach the API in batches
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            if any("library log line" in log.message for log in logs):
                break
            time.sleep(0.2)
    return flow_runs, task_runs, artifacts, logs


def _run(xs, counter_dir):
    state = demo_flow(xs, str(counter_dir), return_state=True)
    assert state.is_completed(), state
    return state.result(), state.state_details.flow_run_id


def test_flow_on_server_records_runs_artifacts_logs_and_caches_units(server, tmp_path):
    counter = tmp_path

    # 1st run: every unit executes; everything is recorded on the server.
    result, run_id = _run([1, 2, 3], counter)
    assert result == {"label": "demo", "total": 14}
    assert _executions(counter) == ["square:1", "square:2", "square:3", "summarize"]
    flow_runs, task_runs, artifacts, logs = _read_back(run_id)
    assert [(r.name is not None, r.state.type.value) for r in flow_runs] == [(True, "COMPLETED")]
    assert sorted(r.name for r in task_runs) == [
        "square(x=1, counter_dir=" + str(counter)[:40] + ")",
        "square(x=2, counter_dir=" + str(counter)[:40] + ")",
        "square(x=3, counter_dir=" + str(counter)[:40] + ")",
        "summarize-demo",
    ]
    assert {r.state.name for r in task_runs} == {"Completed"}
    assert sorted((a.key, a.type) for a in artifacts) == [("test-demo-results", "table"), ("test-demo-summary", "markdown")]
    messages = [log.message for log in logs]
    assert "library log line from the pipeline logger" in messages  # PREFECT_LOGGING_EXTRA_LOGGERS
    assert any(m.startswith("squares: 3/3 (100%)") for m in messages)  # Progress -> run logger
    results_dir = server["repo"] / ".prefect_results"
    assert results_dir.is_dir() and any(results_dir.iterdir())  # persisted under the repo

    # 2nd run, same inputs: no task body runs; all four task runs are Cached.
    result, run_id = _run([1, 2, 3], counter)
    assert result == {"label": "demo", "total": 14}
    assert _executions(counter) == []
    _, task_runs, artifacts, _ = _read_back(run_id)
    assert sorted(r.state.name for r in task_runs) == ["Cached"] * 4
    assert len(artifacts) == 2

    # 3rd run, one input changed: only that unit and the summary (whose input changed) run.
    result, run_id = _run([1, 2, 4], counter)
    assert result == {"label": "demo", "total": 21}
    assert _executions(counter) == ["square:4", "summarize"]
    _, task_runs, _, _ = _read_back(run_id)
    states = {r.name.split("(x=")[-1].split(",")[0] if r.name.startswith("square") else r.name: r.state.name for r in task_runs}
    assert states == {"1": "Cached", "2": "Cached", "4": "Completed", "summarize-demo": "Completed"}


def test_server_cli_reports_and_reuses_the_running_server(server):
    repo, info = server["repo"], server["info"]
    env = {**os.environ}
    env.pop("PREFECT_HOME", None)  # found through --repo
    cli = [sys.executable, "-m", "pipeline.flows.server", "--repo", str(repo)]
    status = subprocess.run([*cli, "status"], capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0 and status.stdout.strip() == info.api_url
    start = subprocess.run([*cli, "start"], capture_output=True, text=True, env=env, timeout=60)
    assert start.returncode == 0 and start.stdout.strip() == info.api_url and "reusing" in start.stderr
    run = subprocess.run(
        [*cli, "run", "--", sys.executable, "-c", "import os; print(os.environ['PREFECT_API_URL'])"],
        capture_output=True, text=True, env={k: v for k, v in env.items() if k != "PREFECT_API_URL"}, timeout=60,
    )
    assert run.returncode == 0 and run.stdout.strip() == info.api_url
    from pipeline.flows.server import server_status

    assert server_status(repo).pid == info.pid  # `run` reused the server and left it running



def test_server_run_passes_a_sigterm_on_and_stops_its_server(tmp_path):
    """`server run -- CMD` stopped by SIGTERM (a scheduler, `kill`): the command gets the signal
    and the server `run` started is stopped; nothing is left running."""
    import signal

    from pipeline.flows.server import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    marker = tmp_path / "child.pid"
    child = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "pipeline.flows.server", "--repo", str(tmp_path), "run", "--port", str(free_port()),
         "--", sys.executable, "-c", child],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and wrapper.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), wrapper.communicate(timeout=30)[0]
    time.sleep(0.3)  # the pid is written before the file is closed
    child_pid = int(marker.read_text())
    wrapper.send_signal(signal.SIGTERM)
    output, _ = wrapper.communicate(timeout=60)
    assert wrapper.returncode == 128 + signal.SIGTERM, output  # the command was killed by SIGTERM (as a shell says it)
    assert _gone(child_pid)
    from pipeline.flows.server import server_status

    assert server_status(tmp_path) is None
    assert not (tmp_path / ".prefect" / "server.json").exists()

# --- Dask: GPU placement through worker resources ---------------------------------------------

from prefect import task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from pipeline.flows.device import GPUUnavailableError  # noqa: E402
from pipeline.flows.runners import gpu_placement, make_task_runner  # noqa: E402


@task(cache_policy=NO_CACHE)
def probe(i: int, hold: float) -> dict:
    """Where and when this task ran."""
    from distributed import get_worker

    start = time.time()
    time.sleep(hold)
    worker = get_worker()
    return {
        "i": i,
        "worker": worker.address,
        "name": str(worker.name),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
        "start": start,
        "end": time.time(),
    }


@flow(name="flows-test-gpu-placement")
def placement_flow(runner_cfg: dict, n: int, hold: float) -> dict:
    with gpu_placement(runner_cfg):
        placed = probe.map(range(n), hold=hold)
    placed = [f.result() for f in placed]
    free = [f.result() for f in probe.map(range(n), hold=2 * hold)]  # control: no GPU annotation
    return {"placed": placed, "free": free}


def _overlaps(records: list[dict]) -> bool:
    records = sorted(records, key=lambda r: r["start"])
    return any(b["start"] < a["end"] for a, b in zip(records, records[1:]))


def _by_worker(records: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["worker"], []).append(record)
    return groups


def test_dask_gpu_tasks_run_one_per_gpu_worker_at_a_time(server):
    """LocalGPUCluster via make_task_runner: 2 worker processes with 2 threads each, resource GPU=1
    and CUDA_VISIBLE_DEVICES=0 / 1 (labels on this CPU machine). GPU-annotated tasks never overlap
    on a worker and use both; un-annotated ones (control) do overlap on the same workers."""
    cfg = {"kind": "dask", "n_workers": 2, "max_workers": 2, "gpus_per_task": 1, "devices": ["0", "1"]}
    result = placement_flow.with_options(task_runner=make_task_runner(cfg))(cfg, n=4, hold=0.5)
    placed, free = result["placed"], result["free"]
    assert len(placed) == 4 and len({r["i"] for r in placed}) == 4
    workers = _by_worker(placed)
    assert len(workers) == 2, f"both GPU workers should be used, got {sorted(workers)}"
    for address, records in workers.items():
        assert not _overlaps(records), f"two GPU tasks overlapped on worker {address}: {records}"
        assert {r["cuda_visible_devices"] for r in records} == {records[0]["name"]}  # its own device
        assert {r["pid"] for r in records} != {os.getpid()}  # a separate worker process
    assert sorted({r["cuda_visible_devices"] for r in placed}) == ["0", "1"]
    assert any(_overlaps(records) for records in _by_worker(free).values()), "control: 2 threads per worker should overlap"


def test_gpu_request_on_cluster_without_gpu_resources_fails_fast(server):
    from distributed import LocalCluster

    from pipeline.flows.runners import check_dask_gpus

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        cfg = {"kind": "dask", "address": cluster.scheduler_address, "gpus_per_task": 1}
        start = time.monotonic()
        with pytest.raises(GPUUnavailableError) as error:
            placement_flow.with_options(task_runner=make_task_runner(cfg))(cfg, n=1, hold=0.0)
        elapsed = time.monotonic() - start
    message = str(error.value)
    assert "none of the 1 worker(s)" in message and "declares a 'GPU' resource" in message
    assert "--resources GPU=1" in message and "gpus_per_task: 0" in message
    assert elapsed < 20, f"took {elapsed:.1f} s"

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty, empty.get_client() as client:
        start = time.monotonic()
        with pytest.raises(GPUUnavailableError, match="no Dask worker joined .* within 1 s"):
            check_dask_gpus(client, 1, worker_timeout=1)
        assert time.monotonic() - start < 5


def test_gpu_placement_refuses_a_thread_pool_flow(server):
    @flow(name="flows-test-threads-gpu")
    def threads_flow():
        with gpu_placement({"kind": "dask", "gpus_per_task": 1, "address": "tcp://127.0.0.1:1"}):
            pass

    with pytest.raises(RuntimeError, match="runs on ThreadPoolTaskRunner, which cannot place tasks on GPUs"):
        threads_flow()
    with pytest.raises(RuntimeError, match="must be used inside a flow run"):
        with gpu_placement({"kind": "dask", "gpus_per_task": 1, "address": "tcp://127.0.0.1:1"}):
            pass
    with gpu_placement({"kind": "threads"}):  # no GPUs: nothing to do, anywhere
        pass


# --- ephemeral mode (no server): Dask worker processes report to the flow's temporary server ----

_EPHEMERAL_SCRIPT = '''
import os, sys
from pipeline.flows.settings import configure_environment
configure_environment(sys.argv[1], use_running_server=False)
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from pipeline.flows.runners import make_task_runner

@task(cache_policy=NO_CACHE)
def where(i: int) -> str:
    return os.environ.get("PREFECT_API_URL", "")

@flow
def ephemeral_flow():
    urls = {f.result() for f in where.map(range(4))}
    return sorted(urls), str(FlowRunContext.get().client.api_url).rstrip("/")

if __name__ == "__main__":
    urls, own = ephemeral_flow.with_options(task_runner=make_task_runner({"kind": "dask", "n_workers": 2}))()
    print("RESULT", urls == [own], urls, own)
'''


@pytest.mark.slow
def test_dask_workers_use_the_flows_ephemeral_server(tmp_path):
    """Without PREFECT_API_URL, worker processes get the flow's temporary server URL instead of
    each starting a temporary server of its own."""
    script = tmp_path / "ephemeral_stage.py"
    script.write_text(_EPHEMERAL_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT True" in out.stdout, out.stdout + out.stderr[-3000:]
    assert (out.stdout + out.stderr).count("Starting temporary server") == 1
