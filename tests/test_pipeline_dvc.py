"""The DVC pipeline on a copy of the repository with a tiny profile: editing a param reruns
exactly the stages that read it, and adding a task reruns only the new units (Prefect cache hits
for the rest). Uses one real Prefect server for all stage runs."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)


#: Set per repository by pipeline.flows.settings.configure_environment (which this test process ran
#: for the working copy when it imported ``stages``): a copy must set its own, or it would share
#: the working copy's server, database and task cache (units cached by an earlier run of the same
#: test would come back "Cached" where the test expects them to run).
REPO_ENV = ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_RESULTS_LOCAL_STORAGE_PATH", "PIPELINE_DATA_MIRROR",
            "PIPELINE_DATA_CACHE")


def _copy_env() -> dict:
    """The environment for running the pipeline in a repository copy (:data:`REPO_ENV` removed)."""
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1", "CI": "true"}
    for key in REPO_ENV:
        env.pop(key, None)
    return env


def _tiny_profile(params: dict, tasks: list[str]) -> dict:
    algorithmic = params["algorithmic"]
    algorithmic["meta"].update(n_max=3, truncation=2)
    algorithmic["recipe"].update(width=16, eval_every=10)
    algorithmic["controls"] = ["relu"]
    algorithmic["profiles"]["quick"] = {
        "tasks": tasks, "train_fraction": 0.6, "seeds": [0], "steps": 20,
        "sweep": {"task": tasks[0], "fractions": [0.6], "widths": [16], "seeds": [0], "steps": 20, "stop_after_95": 2},
        "transfer": {"tasks": [], "seeds": [0], "steps": 20, "stop_after_95": 2},
    }
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    dest = tmp_path_factory.mktemp("repo")
    _copy_repo(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(_tiny_profile(params, ["add_mod5"])))
    env = _copy_env()
    server = [sys.executable, "-m", "pipeline.flows.server"]
    subprocess.run([*server, "start"], cwd=dest, env=env, check=True, capture_output=True)
    yield dest, env
    subprocess.run([*server, "stop"], cwd=dest, env=env, capture_output=True)


def _repro(repo, env, target="algorithmic_figures") -> str:
    cmd = [sys.executable, "-m", "pipeline.flows.server", "run", "--", "dvc", "repro", target]
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _stages_run(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([a-z_]+)'", log))


def _edit(repo, fn):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    fn(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))


def test_param_edit_reruns_exactly_the_dependent_stages_and_new_task_reruns_only_new_units(repo):
    repo, env = repo
    first = _repro(repo, env)
    assert _stages_run(first) == {"algorithmic_metalearn", "algorithmic_train", "algorithmic_figures"}
    assert (repo / "reports/metrics/algorithmic.json").is_file()

    assert _stages_run(_repro(repo, env)) == set()  # unchanged tree: nothing reruns

    # sin_frequency is read by the train stage only (the figures stage reruns because its input changed)
    _edit(repo, lambda p: p["algorithmic"].update(sin_frequency=3))
    second = _repro(repo, env)
    assert "algorithmic_metalearn" not in _stages_run(second)
    assert {"algorithmic_train"} <= _stages_run(second)

    # a new task: the metalearn stage reruns, but only the new task's unit executes
    _edit(repo, lambda p: p["algorithmic"]["profiles"]["quick"].update(tasks=["add_mod5", "add_mod7"]))
    third = _repro(repo, env)
    assert {"algorithmic_metalearn", "algorithmic_train"} <= _stages_run(third)
    finished = dict(re.findall(r"Task run '((?:metalearn|train)-[^']+)' - Finished in state (\w+)", third))
    assert finished["metalearn-add_mod5"] == "Cached" and finished["metalearn-add_mod7"] == "Completed"
    new = {name: state for name, state in finished.items() if name.startswith("train-add_mod7")}
    old = {name: state for name, state in finished.items() if name.startswith("train-add_mod5")}
    assert new and set(new.values()) == {"Completed"}
    assert old and set(old.values()) == {"Cached"}
