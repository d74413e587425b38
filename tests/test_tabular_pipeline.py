"""The tabular track through DVC on a copy of the repository with a tiny profile: a user's CSV
(string target) declared in params.yaml runs with no code change next to a bundled set, every
output of the contract and every figure is written, an unchanged tree reruns nothing, and adding a
dataset reruns only the new units (Prefect cache hits for the rest). Slow: several stage runs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from test_pipeline_dvc import _copy_env, _copy_repo, _stages_run

pytestmark = pytest.mark.slow

CONTRACT_KEYS = "linear knn xgboost random_forest mlp_relu mlp_tanh mlp_tanh_scaled mlp_af iaf_linear iaf_relu iaf_af".split()


def _tiny(params: dict, datasets: list[str]) -> dict:
    t = params["tabular"]
    t["profile"] = "quick"
    t["tv"] = {"n_paths": 10, "n_points": 10}
    t["baseline_search"].update(linear_C=[1.0], knn_k=[3], xgboost_trees=20, forest_max_trees=10)
    t["meta"].update(width=8, truncation=2)
    t["focus"] = {"fig7": ["my_csv"], "fig8": ["my_csv"]}
    t["profiles"]["quick"] = {
        "datasets": datasets, "seeds": [0], "max_train": 300, "max_eval": 300,
        "families": ["mlp_relu", "mlp_tanh", "mlp_tanh_scaled", "mlp_af", "iaf_linear", "iaf_relu", "iaf_af"],
        "baselines": ["linear", "knn", "xgboost", "random_forest"], "af_variants": ["af_relu"], "finetune": [True],
        "iaf_knots": [97],
        "depths": [1], "widths": [8], "n_arch": 1, "alphas": [1.0], "steps": 30, "patience": 2,
        "meta_n_max": 2, "meta_episode_size": 64, "xgboost_configs": 1, "forest_configs": 1,
        "fig8": {"widths": [8], "depths": [1], "seeds": [0]},
        "landscape": {"resolution": 3, "n_paths": 5, "n_points": 5},
    }
    params["data"]["files"] = {"my_csv": {"path": "user_data/mine.csv", "target": "label"}}
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    dest = tmp_path_factory.mktemp("repo")
    _copy_repo(dest)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=600), "b": rng.uniform(size=600), "c": rng.normal(size=600)})
    frame["label"] = np.where(frame["a"] + (frame["b"] > 0.5) > 0.3, "high", "low")
    frame["session"] = np.repeat(np.arange(60), 10)  # a group column (protocol.group_by)
    (dest / "user_data").mkdir()
    frame.to_csv(dest / "user_data/mine.csv", index=False)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(_tiny(params, ["my_csv", "tree_task"])))
    env = _copy_env()
    server = [sys.executable, "-m", "pipeline.flows.server"]
    subprocess.run([*server, "start"], cwd=dest, env=env, check=True, capture_output=True)
    yield dest, env
    subprocess.run([*server, "stop"], cwd=dest, env=env, capture_output=True)


def _repro(repo, env, target="tabular_figures") -> str:
    cmd = [sys.executable, "-m", "pipeline.flows.server", "run", "--", "dvc", "repro", target]
    done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_a_users_csv_runs_through_the_whole_track_and_only_new_units_rerun(repo):
    repo, env = repo
    first = _repro(repo, env)
    assert _stages_run(first) == {"tabular_prepare", "tabular_metalearn", "tabular_train", "tabular_complexity",
                                  "tabular_figures"}
    metrics = json.loads((repo / "reports/metrics/tabular.json").read_text())
    assert set(metrics) == {"my_csv", "tree_task"}
    for dataset in metrics:
        assert set(CONTRACT_KEYS) <= set(metrics[dataset])
    figures = {p.name for p in (repo / "reports/figures/tabular").glob("*.png")}
    assert figures == {"fig5_model_types.png", "fig20_per_dataset.png", "fig6_accuracy_vs_tv.png", "fig8_reuse.png",
                       "fig7a_learned_activations.png", "fig7b_landscapes.png", "fig7c_slices.png"}
    assert (repo / "artifacts/tabular/activations/my_csv/iaf_relu.s0.json").is_file()
    # the selected IAF & ReLU models' IAFs as trained (fine-tuned on 97 knots), of every dataset; Fig. 8 reuses my_csv's.
    # Retrained alone, the source model is bit for bit the one the search selected (trained in a population).
    for dataset in ("my_csv", "tree_task"):
        trained = json.loads((repo / f"artifacts/tabular/trained_iafs/{dataset}/iaf_relu.s0.json").read_text())
        assert "IAF & ReLU 1 x 8, fine-tuned on 97 knots" in trained["trained_on"] and len(trained["values"][0]) == 97
        assert trained["params"]["source_test_acc"] == metrics[dataset]["iaf_relu"]["test_acc"]  # one seed: its own
        assert trained["params"]["source_val_acc"] == metrics[dataset]["iaf_relu"]["val_acc"]
    runs = json.loads((repo / "artifacts/tabular/runs.json").read_text())["runs"]
    assert {r["family"] for r in runs if r["purpose"] == "fig8"} == {"mlp_relu", "mlp_af", "iaf_relu"}

    assert _stages_run(_repro(repo, env)) == set()  # unchanged tree: nothing reruns

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tabular"]["profiles"]["quick"]["datasets"] = ["my_csv", "tree_task", "breast_cancer"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    second = _repro(repo, env)
    assert {"tabular_prepare", "tabular_metalearn", "tabular_train"} <= _stages_run(second)
    finished = dict(re.findall(r"Task run '((?:metalearn|train|baseline)-[^']+)' - Finished in state (\w+)", second))
    old = {k: v for k, v in finished.items() if "my_csv" in k or "tree_task" in k}
    new = {k: v for k, v in finished.items() if "breast_cancer" in k}
    assert old and set(old.values()) == {"Cached"}
    assert new and set(new.values()) == {"Completed"}
    assert "breast_cancer" in json.loads((repo / "reports/metrics/tabular.json").read_text())

    # splitting one dataset by whole groups reruns that dataset's units only
    params["tabular"]["protocol"]["group_by"] = {"my_csv": "session"}
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    third = _repro(repo, env)
    finished = dict(re.findall(r"Task run '((?:prepare|metalearn|train|baseline)-[^']+)' - Finished in state (\w+)", third))
    mine = {k: v for k, v in finished.items() if "my_csv" in k}
    others = {k: v for k, v in finished.items() if "my_csv" not in k}
    assert mine and set(mine.values()) == {"Completed"}
    assert others and set(others.values()) == {"Cached"}
    info = json.loads((repo / "artifacts/tabular/datasets.json").read_text())
    assert info["datasets"]["my_csv"]["group_by"] == "session" and info["datasets"]["tree_task"]["group_by"] is None
    tables = json.loads((repo / "reports/tables/tabular.json").read_text())
    assert tables["group_by"] == {"my_csv": "session"}
