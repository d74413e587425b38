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


@pytest.fixture
def float64_runs(monkeypatch):
    """grok_runs in float64 (data and models): there a population and a loop of train_model agree
    to rounding, without float32's amplification of last-bit differences over many Adam steps."""
    import pipeline.fit.grokking as grokking
    import pipeline.fit.population as population_module
    import pipeline.fit.train as train_module

    original, build = train_module.as_tensors, grokking._one_hot_mlp

    def as_float64(data, task):
        return {k: v.double() if v.is_floating_point() else v for k, v in original(data, task).items()}

    monkeypatch.setattr(train_module, "as_tensors", as_float64)
    monkeypatch.setattr(population_module, "as_tensors", as_float64)
    monkeypatch.setattr(grokking, "_one_hot_mlp", lambda *args: build(*args).double())


def _transfer_like_group():
    """A transfer row in small: four spline AFs (random knot values, one per 'task') and ReLU twice
    (a main run, the whole budget, and a sweep run, which may stop), each with its own
    stop_after_target."""
    from pipeline.fit.grokking import control_activation

    splines = [control_activation("random_spline", seed=seed) for seed in range(4)]
    for act in splines:
        act.values.requires_grad_(False)  # as the flow loads a learned AF
    return [*splines, torch.nn.ReLU(), torch.nn.ReLU()], [3, 2, None, 5, None, 3]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_grok_runs_train_each_run_as_train_model_in_float64(float64_runs):
    from pipeline.fit.grokking import _one_hot_mlp, grok_runs
    from pipeline.fit.train import train_model
    from pipeline.nn import seeded

    data = _data()
    recipe = Recipe(width=64, eval_every=10, lr=3e-2)  # random-spline MLPs reach 95 % at ~90 steps here
    activations, stops = _transfer_like_group()
    steps = 200  # longer, float64 rounding differences grow past 1e-9 (grokking dynamics are chaotic)
    batched = grok_runs(data, data.n_classes, activations, recipe, steps, seed=0, stop_after_target=stops)
    for activation, stop, result in zip(activations, stops, batched):
        with seeded(0):  # as grok_run drew its weights before populations
            model = _one_hot_mlp(data.X_train.shape[1], data.n_classes, 64, activation)
        looped = train_model(model, data, "classification", recipe.train_config(steps, stop), seed=0)
        assert [r["step"] for r in result["curve"]] == [r["step"] for r in looped.curve]
        for key in ("train_acc", "val_acc", "test_acc", "train_loss"):
            assert [r[key] for r in result["curve"]] == pytest.approx([r[key] for r in looped.curve], abs=1e-9)
        assert result["steps_to_95"] == looped.steps_to_target
        assert result["final_test_acc"] == pytest.approx(looped.curve[-1]["test_acc"], abs=1e-9)
        assert result["final_train_acc"] == pytest.approx(looped.curve[-1]["train_acc"], abs=1e-9)
    # Each stopped run left the population on its own: `stop` evaluations at >= 95 %, not one more.
    ends = [r["curve"][-1]["step"] for r in batched]
    assert ends[2] == ends[4] == ends[5] == steps and len(set(ends[:4])) == 4, ends
    for result, stop in zip(batched, stops):
        if result["curve"][-1]["step"] < steps:
            assert all(row["test_acc"] >= 0.95 for row in result["curve"][-stop:])
            assert result["curve"][-stop - 1]["test_acc"] < 0.95
    assert batched[4]["steps_to_95"] is None and batched[5]["steps_to_95"] is None  # ReLU: not yet


def test_a_run_trains_alike_alone_and_in_its_group():
    # float32, as the flow trains: a run's numbers barely depend on the population it trained in
    # (observed: bit-identical on this project's CPU machine; batched kernels may round the rows of
    # a population differently elsewhere, hence the tolerances), so the unit grouping, and any later
    # regrouping, leaves the runs' results as they were.
    from pipeline.fit.grokking import grok_runs

    data = _data()
    recipe = Recipe(width=64, eval_every=10)
    activations, stops = _transfer_like_group()
    together = grok_runs(data, data.n_classes, activations, recipe, 300, seed=0, stop_after_target=stops)
    for activation, stop, run in zip(activations, stops, together):
        alone = grok_run(data, data.n_classes, activation, recipe, 300, seed=0, stop_after_target=stop)
        assert [r["step"] for r in run["curve"]] == [r["step"] for r in alone["curve"]]
        for key in ("train_acc", "test_acc"):
            assert [r[key] for r in run["curve"]] == pytest.approx([r[key] for r in alone["curve"]], abs=1e-6)
        assert [r["train_loss"] for r in run["curve"]] == pytest.approx([r["train_loss"] for r in alone["curve"]], rel=1e-5)
        assert run["steps_to_95"] == alone["steps_to_95"] and run["tv"] == pytest.approx(alone["tv"], rel=1e-5)
        assert ("character" in run) == (not isinstance(activation, torch.nn.ReLU))
        if "character" in run:
            assert run["character"]["dominant_frequency"] == pytest.approx(alone["character"]["dominant_frequency"])


def test_units_are_the_runs_that_share_data_architecture_budget_and_stopping_rule():
    from pipeline.flows.algorithmic import unit_groups

    # cpu: the main runs, 4 tasks x 3 seeds; the sweep runs, 8 fractions + 3 other widths (256 is
    # the main width, at the main fraction) x 3 seeds; the 12 transfer rows at seed 0 (a budget of
    # their own there). quick: the main runs per seed (3); the sweep's 2 fractions and other width,
    # the add_mod27 transfer row meeting the sweep's runs at the main setting (same budget and
    # stop: one unit); the sub_mod27 row.
    for profile, n_units in (("quick", 3 + 3 + 1), ("cpu", 4 * 3 + (8 + 3) * 3 + 12)):
        params = copy.deepcopy(load_params())
        params["algorithmic"]["profile"] = profile
        plan = planned_runs(track_params(params, "algorithmic"))
        groups = unit_groups(plan)
        assert sorted(i for _, members in groups for i in members) == list(range(len(plan)))
        fields = ("task", "fraction", "width", "seed", "steps", "stop_after_95")
        for key, members in groups:
            assert {tuple(plan[i][f] for f in fields) for i in members} == {key}
        assert len(groups) == n_units, (profile, len(groups))
    quick = copy.deepcopy(load_params())
    quick["algorithmic"]["profile"] = "quick"
    plan = planned_runs(track_params(quick, "algorithmic"))
    by_key = dict(unit_groups(plan))
    assert [plan[i]["group"] for i in by_key[("add_mod27", 0.55, 256, 0, 2000, None)]] == ["main"] * 6
    # the fraction and width sweeps' ReLU and AF runs at the main setting, and the add_mod27 transfer row
    converged = [plan[i]["activation_name"] for i in by_key[("add_mod27", 0.55, 256, 0, 2000, 8)]]
    assert sorted(converged) == sorted(["relu", "af"] * 2 + ["af_add_mod27", "af_sub_mod27", "af_all_tasks", "relu"])


def test_train_unit_trains_a_group_once_per_distinct_run_and_keeps_the_run_rows(monkeypatch):
    from pipeline.flows import algorithmic
    from pipeline.fit.grokking import control_activation

    spec = control_activation("random_spline", seed=5).to_dict()
    run = lambda name, spec=None: {"activation_name": name, "activation_spec": spec,  # noqa: E731
                                   "sin_frequency": 4 if name == "sin" else None}
    runs = [run("af", spec), run("relu"), run("sin"), run("af_add_mod27", spec), run("tanh"), run("relu"),
            run("af_sub_mod27", control_activation("random_spline", seed=6).to_dict())]
    recipe = {"width": 32, "lr": 1e-2, "weight_decay": 1.0, "betas": [0.9, 0.98], "eval_every": 10}
    calls = []
    original = algorithmic.grok_runs

    def counting(*args, **kwargs):
        calls.append(len(args[2]))
        return original(*args, **kwargs)

    monkeypatch.setattr(algorithmic, "grok_runs", counting)
    rows = algorithmic.train_unit.fn("add_mod27", 0.5, 32, 1, 30, 2, runs, recipe)
    assert calls == [5]  # 7 runs, 5 distinct: the repeated ReLU and AF runs train once
    assert [r["activation"] for r in rows] == [r["activation_name"] for r in runs]
    for row in rows:
        assert {"task", "activation", "seed", "fraction", "width", "steps_to_95", "final_train_acc", "final_test_acc",
                "tv", "curve"} <= set(row)
        assert (row["task"], row["seed"], row["fraction"], row["width"]) == ("add_mod27", 1, 0.5, 32)
        assert ("character" in row) == row["activation"].startswith("af")
        assert row["curve"][-1]["step"] == 30
    assert rows[0]["curve"] == rows[3]["curve"] and rows[1]["curve"] == rows[5]["curve"]
    assert rows[0]["curve"] is not rows[3]["curve"]  # copies: a caller editing one row leaves the other
    assert rows[0]["curve"] != rows[6]["curve"]  # another AF: another run
