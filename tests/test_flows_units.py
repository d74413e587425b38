"""Unit tests of pipeline.flows that need no Prefect server: config validation, device selection,
environment settings, cache-key components, artifact keys and tables, progress reporting."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipeline.flows.artifacts import artifact_key, markdown_table, table_rows
from pipeline.flows.device import GPUUnavailableError, select_device
from pipeline.flows.progress import Progress, terminal_enabled, track
from pipeline.flows.runners import RunnerConfig, make_task_runner

REPO = Path(__file__).resolve().parents[1]


# --- runner config ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"kind": "spark"}, "runner kind must be one of 'threads', 'dask', 'ray', got 'spark'"),
        ({"max_workers": 0}, "max_workers must be a positive int or null, got 0"),
        ({"n_workers": -1}, "n_workers must be a positive int or null, got -1"),
        ({"n_workers": True}, "n_workers must be a positive int or null, got True"),
        ({"kind": "dask", "gpus_per_task": 2}, "gpus_per_task must be 0 or 1, got 2"),
        ({"kind": "threads", "gpus_per_task": 1}, "needs kind 'dask' or 'ray'"),
        ({"kind": "threads", "address": "tcp://x:1"}, "address is for kinds 'dask' and 'ray'"),
        ({"kind": "dask", "address": ""}, "address must be a non-empty string"),
        ({"kind": "dask", "processes": "yes"}, "processes must be true or false"),
        ({"kind": "dask", "devices": ["0"]}, "devices applies to a local Dask cluster with gpus_per_task=1"),
        ({"kind": "dask", "gpus_per_task": 1, "devices": "0,1"}, "devices must be a list"),
        ({"kind": "dask", "worker_timeout": 0}, "worker_timeout must be positive"),
        ({"kind": "threads", "workers": 2}, "unknown runner config key(s) ['workers']; allowed keys: ['kind'"),
    ],
)
def test_runner_config_rejects_bad_values_naming_them(cfg, message):
    with pytest.raises(ValueError) as error:
        RunnerConfig.from_dict(cfg)
    assert message in str(error.value)


def test_runner_config_rejects_non_mapping():
    with pytest.raises(ValueError, match="must be a mapping, got list"):
        RunnerConfig.from_dict(["threads"])


def test_make_task_runner_builds_each_kind_without_starting_anything():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    threads = make_task_runner({"kind": "threads", "max_workers": 3})
    assert isinstance(threads, ThreadPoolTaskRunner) and threads._max_workers == 3
    assert isinstance(make_task_runner(None), ThreadPoolTaskRunner)
    local = make_task_runner({"kind": "dask", "n_workers": 2, "max_workers": 2, "processes": False})
    assert isinstance(local, DaskTaskRunner)
    assert local.cluster_kwargs == {"n_workers": 2, "threads_per_worker": 2, "processes": False}
    remote = make_task_runner({"kind": "dask", "address": "tcp://127.0.0.1:8786"})
    assert remote.address == "tcp://127.0.0.1:8786" and remote._cluster is None


def test_make_task_runner_gpu_local_cluster_from_explicit_devices():
    from pipeline.flows.clusters import LocalGPUCluster

    runner = make_task_runner({"kind": "dask", "gpus_per_task": 1, "devices": [0, 1], "max_workers": 2})
    assert runner.cluster_class is LocalGPUCluster
    assert runner.cluster_kwargs == {"devices": ["0", "1"], "n_workers": 2, "threads_per_worker": 2}
    with pytest.raises(ValueError, match=r"n_workers=3 exceeds the 2 GPU device\(s\)"):
        make_task_runner({"kind": "dask", "gpus_per_task": 1, "devices": ["0", "1"], "n_workers": 3})


@pytest.mark.skipif(select_device("auto").type == "cuda", reason="checks the CPU-only failure")
def test_gpus_per_task_without_cuda_fails_at_once():
    start = time.monotonic()
    with pytest.raises(GPUUnavailableError, match="torch sees no CUDA device"):
        make_task_runner({"kind": "dask", "gpus_per_task": 1})
    assert time.monotonic() - start < 5


def test_ray_without_the_extra_names_the_install_command():
    try:
        import prefect_ray  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install -e '\.\[ray\]'"):
            make_task_runner({"kind": "ray"})
    else:
        pytest.skip("prefect-ray is installed")


# --- device --------------------------------------------------------------------------------------


def test_select_device():
    import torch

    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert select_device("cuda") == torch.device("cuda")
    else:
        with pytest.raises(GPUUnavailableError, match="device 'cuda' was requested but torch sees no CUDA device"):
            select_device("cuda")
        assert issubclass(GPUUnavailableError, RuntimeError)


@pytest.mark.parametrize("spec", ["gpu", "CUDA", "cuda:0", "", None, 0])
def test_select_device_rejects_other_specs(spec):
    with pytest.raises(ValueError, match=r"device must be one of 'cpu', 'cuda', 'auto', got"):
        select_device(spec)


# --- settings --------------------------------------------------------------------------------------


def test_configure_environment_sets_defaults_keeps_user_values_and_reaches_prefect(tmp_path):
    """In a fresh interpreter (Prefect reads settings at import): defaults land, a user's value
    wins, and Prefect's settings see them, also when prefect was imported before the call."""
    script = textwrap.dedent(
        """
        import json, os, sys
        mode = sys.argv[2]
        if mode == "prefect-first":
            import prefect.context  # imported before the call: the call must refresh it
        from pipeline.flows.settings import configure_environment
        values = configure_environment(sys.argv[1])
        from prefect.settings import get_current_settings
        s = get_current_settings()
        print(json.dumps({
            "values": values,
            "home": str(s.home),
            "results": str(s.results.local_storage_path),
            "timeout": s.server.ephemeral.startup_timeout_seconds,
            "extra": s.logging.extra_loggers,
            "analytics": s.server.analytics_enabled,
            "api_url": s.api.url,
        }))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DVC_", "RAY_")) and k not in ("DO_NOT_TRACK", "ITERATIVE_DO_NOT_TRACK")}
    env["RAY_USAGE_STATS_ENABLED"] = "1"  # a user's explicit value must survive
    for mode in ("settings-first", "prefect-first"):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path), mode], env=env, capture_output=True, text=True, timeout=120, cwd=REPO
        )
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout.strip().splitlines()[-1])
        values = got["values"]
        assert values["DO_NOT_TRACK"] == "1" and values["DVC_NO_ANALYTICS"] == "1" and values["ITERATIVE_DO_NOT_TRACK"] == "1"
        assert values["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
        assert values["RAY_USAGE_STATS_ENABLED"] == "1", "configure_environment overrode the user's value"
        assert got["home"] == str(tmp_path / ".prefect"), mode
        assert got["results"] == str(tmp_path / ".prefect_results"), mode
        assert got["timeout"] == 60 and got["extra"] == ["pipeline"] and got["analytics"] is False, mode
        assert got["api_url"] is None  # no recorded server: ephemeral mode


# --- caching (cache-key components, no server) -------------------------------------------------


def test_file_contents_key_follows_file_contents_not_just_the_path(tmp_path):
    from pipeline.flows.caching import FileContents

    policy = FileContents()
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    first = policy.compute_key(None, {"data": data, "seed": 0}, {})
    assert first == policy.compute_key(None, {"data": data, "seed": 1}, {})  # only paths count
    data.write_text("a,b\n1,3\n")
    os.utime(data, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert policy.compute_key(None, {"data": data}, {}) != first
    nested = policy.compute_key(None, {"cfg": {"files": [data]}}, {})
    assert nested is not None
    assert policy.compute_key(None, {"data": str(data), "n": 3}, {}) is None  # a str is just text
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x.txt").write_text("1")
    before = policy.compute_key(None, {"d": folder}, {})
    (folder / "y.txt").write_text("2")
    assert policy.compute_key(None, {"d": folder}, {}) != before


def test_source_tree_key_and_unit_task_options():
    from prefect.cache_policies import CompoundCachePolicy

    from pipeline.flows.caching import SourceTree, library_modules, readable_run_name, unit_cache_policy, unit_task

    library = library_modules()
    assert "pipeline.nn" in library and "pipeline.fit" in library
    assert "pipeline.flows" not in library and "pipeline.figures" not in library
    key = SourceTree(modules=("pipeline.flows",)).compute_key(None, {}, {})
    assert key == SourceTree(modules=("pipeline.flows",)).compute_key(None, {}, {})
    assert key != SourceTree(modules=("pipeline.nn",)).compute_key(None, {}, {})
    with pytest.raises(ValueError, match="'no_such_module_xyz' is not an importable module"):
        SourceTree(modules=("no_such_module_xyz",)).compute_key(None, {}, {})
    policy = unit_cache_policy()
    assert isinstance(policy, CompoundCachePolicy)
    assert sorted(type(p).__name__ for p in policy.policies) == ["FileContents", "Inputs", "SourceTree", "TaskSource"]

    @unit_task(retries=2)
    def fetch(dataset_id: int) -> int:
        return dataset_id

    assert fetch.persist_result is True and fetch.retries == 2 and fetch.retry_delay_seconds == [2, 10]
    task_ctx = type("Ctx", (), {"task": fetch})()  # what Prefect hands a policy: the own module counts
    own = SourceTree(modules=()).compute_key(task_ctx, {}, {})
    assert own is not None and own != SourceTree(modules=("pipeline.nn",)).compute_key(task_ctx, {}, {})
    assert SourceTree(modules=(), own_module=False).compute_key(task_ctx, {}, {}) is None
    with pytest.raises(ValueError, match="code must be a list of module names, got the string 'pipeline'"):
        unit_task(code="pipeline")
    assert fetch.fn(7) == 7
    assert readable_run_name({"dataset": "adult", "seed": 0, "cfg": {"a": 1}, "p": Path("x/y.pq")}, prefix="train") == (
        "train(dataset=adult, seed=0, p=y.pq)"
    )
    with pytest.raises(ValueError, match="retries must be a non-negative int, got -1"):
        unit_task(retries=-1)


def test_atomic_write(tmp_path):
    from pipeline.flows.caching import atomic_write_text

    target = atomic_write_text(tmp_path / "sub" / "out.json", '{"a": 1}')
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]  # no temporary file left


# --- artifacts -------------------------------------------------------------------------------------


def test_artifact_keys_are_stable_lowercase_dashes():
    assert artifact_key("Tabular", "train", "results") == "tabular-train-results"
    assert artifact_key("images", "meta_learn", "summary") == "images-meta-learn-summary"
    assert artifact_key("my data/set", "x") == "my-data-set-x"
    with pytest.raises(ValueError, match=r"artifact key part '__' has no letter or digit"):
        artifact_key("tabular", "__")
    with pytest.raises(ValueError, match="at least one part"):
        artifact_key()


def test_table_rows_and_markdown_table():
    import numpy as np

    rows = table_rows({"model": ["relu", "af"], "acc": [np.float32(0.5), np.int64(3)]})
    assert rows == [{"model": "relu", "acc": 0.5}, {"model": "af", "acc": 3}]
    assert type(rows[1]["acc"]) is int
    assert table_rows([{"p": Path("a/b"), "x": float("inf")}]) == [{"p": "a/b", "x": "inf"}]
    with pytest.raises(ValueError, match="equal lengths"):
        table_rows({"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="must be a list of dicts"):
        table_rows("not a table")
    assert markdown_table([{"model": "relu", "acc": 0.91234, "n": None}]) == (
        "| model | acc | n |\n| --- | --- | --- |\n| relu | 0.9123 |  |"
    )


# --- progress --------------------------------------------------------------------------------------


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _capture_logger(name: str) -> tuple[logging.Logger, _ListHandler]:
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = _ListHandler()
    logger.addHandler(handler)
    return logger, handler


def test_progress_logs_every_n_percent_without_a_bar_off_a_tty(capsys):
    logger, handler = _capture_logger("pipeline.test.progress")
    progress = Progress(total=20, desc="demo", every=25, logger=logger)
    assert progress._bar is None  # pytest's stderr is not a terminal
    for _ in range(20):
        progress.update(loss=0.5)
    progress.close()
    assert [m.split(" elapsed")[0] for m in handler.messages] == [
        "demo: 5/20 (25%)",
        "demo: 10/20 (50%)",
        "demo: 15/20 (75%)",
        "demo: 20/20 (100%)",
    ]
    assert "loss=0.5" in handler.messages[-1]
    assert capsys.readouterr().err == ""


def test_progress_as_on_step_callback_and_track():
    logger, handler = _capture_logger("pipeline.test.progress2")
    progress = Progress(total=2, desc="meta", every=50, logger=logger, fields=["val_loss"])
    progress({"step": 1, "val_loss": 0.123456, "val_acc": 0.5})
    progress({"step": 2, "val_loss": 0.1, "val_acc": 0.6})
    assert progress.n == 2 and progress.info == {"val_loss": 0.1}
    assert handler.messages[0].startswith("meta: 1/2 (50%)") and "val_loss=0.1235" in handler.messages[0]
    assert list(track([1, 2, 3], desc="t", terminal=False, logger=logger)) == [1, 2, 3]
    assert handler.messages[-1].startswith("t: 3/3 (100%)")
    with pytest.raises(ValueError, match="every must be a percentage in \\(0, 100\\], got 0"):
        Progress(total=3, every=0)
    with pytest.raises(ValueError, match="total must be a non-negative int or None, got -1"):
        Progress(total=-1)


def test_terminal_bar_only_on_a_tty_and_not_in_ci(monkeypatch):
    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("CI", raising=False)
    assert terminal_enabled(FakeTTY()) is True
    assert terminal_enabled(io.StringIO()) is False
    monkeypatch.setenv("CI", "true")
    assert terminal_enabled(FakeTTY()) is False


def test_importing_pipeline_flows_is_light():
    code = (
        "import sys, pipeline.flows, pipeline.flows.settings, pipeline.flows.runners, pipeline.flows.progress, "
        "pipeline.flows.device, pipeline.flows.artifacts, pipeline.flows.server;"
        "print(sorted(m for m in ('prefect', 'dask', 'distributed', 'ray', 'prefect_dask', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
