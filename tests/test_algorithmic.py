"""The algorithmic track's training runs: early stop once converged, and which runs may use it."""

import copy

import pytest
import torch

from pipeline.data.synthetic import algorithmic_task
from pipeline.fit import TrainConfig
from pipeline.fit.grokking import Recipe, grok_run
from pipeline.flows.algorithmic import planned_runs
from stages.params import load_params, track_params


def _data(task="add_mod27", fraction=0.8):
    d = algorithmic_task(task, train_fraction=fraction, seed=0)
    d.X_val, d.y_val = d.X_test, d.y_test
    return d


def test_stop_after_target_ends_the_run_once_test_accuracy_has_held():
    data = _data()
    recipe = Recipe(width=64, eval_every=10)
    full = grok_run(data, data.n_classes, torch.nn.ReLU(), recipe, steps=1300, seed=0)
    assert full["steps_to_95"] is not None and full["curve"][-1]["step"] == 1300  # ReLU groks at ~1000 here
    stopped = grok_run(data, data.n_classes, torch.nn.ReLU(), recipe, steps=1300, seed=0, stop_after_target=3)
    steps = [row["step"] for row in stopped["curve"]]
    # Same run up to the stop: the first crossing is unchanged, and it ends 3 evaluations later
    # (those evaluations all at >= 95 %).
    assert stopped["steps_to_95"] == full["steps_to_95"]
    assert steps == [row["step"] for row in full["curve"]][: len(steps)]
    assert len(steps) < len(full["curve"])
    assert all(row["test_acc"] >= 0.95 for row in stopped["curve"][-3:])
    assert stopped["curve"][-4]["test_acc"] < 0.95


def test_stop_after_target_needs_a_target():
    with pytest.raises(ValueError, match="stop_after_target needs a target_accuracy"):
        TrainConfig(stop_after_target=3)
    with pytest.raises(ValueError, match="stop_after_target has an invalid value 0"):
        TrainConfig(stop_after_target=0, target_accuracy=0.9)


def test_main_runs_keep_the_whole_budget_and_sweeps_may_stop():
    params = copy.deepcopy(load_params())
    params["algorithmic"]["profile"] = "cpu"
    runs = planned_runs(track_params(params, "algorithmic"))
    groups = {r["group"] for r in runs}
    assert groups == {"main", "sweep_fraction", "sweep_width", "transfer"}
    assert all(r["stop_after_95"] is None for r in runs if r["group"] == "main")
    assert all(r["stop_after_95"] == 8 for r in runs if r["group"] != "main")
    # 4 tasks x (AF + 5 controls) x 3 seeds; (8 fractions + 4 widths) x 2 x 3 seeds; 12 x (12 + 2) x 1
    assert len(runs) == 72 + 72 + 168


def test_grok_runs_in_threads_depend_on_the_seed_only():
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.fit.grokking import _one_hot_mlp
    from pipeline.nn import seeded

    def build(seed):
        with seeded(seed):
            model = _one_hot_mlp(54, 27, 64, torch.nn.ReLU())
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    alone = {seed: build(seed) for seed in range(4)}
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(build, [s % 4 for s in range(40)]))
    assert all(torch.equal(w, alone[s % 4]) for s, w in enumerate(threaded))
    assert not torch.equal(alone[0], alone[1])
    with pytest.raises(ValueError, match="seed must be an int, got 1.5"):
        with seeded(1.5):
            pass
