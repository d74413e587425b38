"""Prefect flows of the algorithmic track (paper Sec. 3.5, 4): meta-learn one AF per task, then
train ReLU, the learned AF and the non-learned controls on each task and seed.

Units of work return plain dicts (the AF's JSON form, learning curves) so that Prefect caches them
and the flow, not the task, writes the stage's outs: DVC deletes outs before a stage runs, and a
cached task would not write its file again.
"""

from __future__ import annotations

import copy
import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import torch
from prefect import flow

from ..data.synthetic import PAPER_TASKS, algorithmic_task, is_algorithmic_task
from ..fit.grokking import CONTROLS, Recipe, control_activation, describe_activation, grok_runs, learn_task_activation
from ..meta import MetaConfig
from ..meta.algorithm import KEEP
from ..nn import INITS, SplineActivation
from .artifacts import markdown_table, publish_markdown, publish_table
from .checks import require_known
from .caching import atomic_write_text, unit_task
from .progress import Progress
from .runners import gpu_placement

TRACK = "algorithmic"

_NUMBER = (int, float)
_STOP = (int, type(None))
_PROFILE = {
    "tasks": list, "train_fraction": _NUMBER, "seeds": list, "steps": int,
    "sweep": {"task": str, "fractions": list, "widths": list, "seeds": list, "steps": int, "stop_after_95": _STOP},
    "transfer": {"tasks": list, "seeds": list, "steps": int, "stop_after_95": _STOP},
}
PROFILES = ("quick", "cpu", "paper")
#: The shape of params.yaml's ``algorithmic`` section (checked by stages.params before any work).
SCHEMA = {
    "profile": (str, type(None)),
    "recipe": {"width": int, "lr": _NUMBER, "weight_decay": _NUMBER, "betas": list, "eval_every": int},
    "meta": {"n_max": int, "truncation": (int, type(None)), "episodes_per_step": int, "outer_lr": _NUMBER,
             "init": INITS, "n_knots": int, "interval": list, "keep": KEEP},
    "controls": list,
    "sin_frequency": _NUMBER,
    "profiles": {name: _PROFILE for name in PROFILES},
}


def check_names(section: dict, where: str) -> None:
    """Reject unknown profile, task and activation names in the ``algorithmic`` section, naming them."""
    if section["profile"] is not None and section["profile"] not in PROFILES:
        raise ValueError(f"{where}.profile = {section['profile']!r}; use null (the global profile) or one of {list(PROFILES)}")
    for profile, block in section["profiles"].items():
        for task in [*block["tasks"], block["sweep"]["task"], *block["transfer"]["tasks"]]:
            if not is_algorithmic_task(task):
                raise ValueError(f"{where}.profiles.{profile}.tasks has unknown task {task!r}; "
                                 f"use names like {', '.join(PAPER_TASKS[:3])} (any of {list(PAPER_TASKS)})")
    require_known(section["controls"], CONTROLS, f"{where}.controls", "activation")


def _recipe(recipe: dict) -> Recipe:
    return Recipe(**{**recipe, "betas": tuple(recipe["betas"])})


def _meta_config(meta: dict, recipe: dict) -> MetaConfig:
    return MetaConfig(
        n_max=meta["n_max"], truncation=meta["truncation"], episodes_per_step=meta["episodes_per_step"],
        inner=_recipe(recipe).inner_optimizer(), outer_lr=meta["outer_lr"], patience=None, keep=meta["keep"],
    )


def _task_data(task: str, fraction: float, seed: int) -> SimpleNamespace:
    data = algorithmic_task(task, train_fraction=fraction, seed=seed)
    # No model selection in the grokking runs (the last checkpoint is kept): V is the test set.
    return SimpleNamespace(X_train=data.X_train, y_train=data.y_train, X_val=data.X_test, y_val=data.y_test,
                           X_test=data.X_test, y_test=data.y_test, n_classes=data.n_classes)


ALL_TASKS = "all_tasks"


# Units take only the values they use, so that adding a task or a seed to params.yaml leaves the
# cache keys of the existing units unchanged (Prefect then reruns only the new units). A train unit
# is a group of runs (unit_groups): adding a control reruns the main units, adding a transfer task
# the transfer rows (each gains a column), but never the units of another seed or setting.
@unit_task(task_run_name="metalearn-{name}")
def metalearn_unit(name: str, tasks: list[str], fraction: float, meta: dict, recipe: dict, seed: int = 0) -> dict:
    """Algorithm 1 on the training pairs of one task, or of several at once (one shared AF, each
    episode drawn from one task: the all-task AF of paper Sec. 4). Returns the AF (JSON form)."""
    datasets = [_task_data(task, fraction, seed) for task in tasks]
    progress = Progress(total=meta["n_max"], desc=f"meta-learn AF on {name}")
    with progress:
        act, history = learn_task_activation(
            [(torch.as_tensor(d.X_train), torch.as_tensor(d.y_train), d.n_classes) for d in datasets],
            _recipe(recipe), _meta_config(meta, recipe), init=meta["init"], n_knots=meta["n_knots"],
            interval=tuple(meta["interval"]), seed=seed,
            on_step=lambda row: progress.update(val_loss=row["val_loss"], horizon=row["horizon"]),
        )
    spec = act.to_dict()
    spec.update(trained_on=name if len(tasks) == 1 else f"{name}: {', '.join(tasks)}",
                params={"meta": meta, "recipe": recipe, "train_fraction": fraction})
    return {"name": name, "activation": spec, "history": history}


@unit_task(task_run_name="train-{task}-f{fraction}-w{width}-s{seed}-n{steps}-stop{stop_after_95}")
def train_unit(task: str, fraction: float, width: int, seed: int, steps: int, stop_after_95: int | None,
               runs: list[dict], recipe: dict) -> list[dict]:
    """The grokking runs of one :func:`unit_groups` group (same data, architecture, budget and
    stopping rule) as populations (:func:`pipeline.fit.grokking.grok_runs`: every spline AF of the
    group, learned or ``random_spline``, in one batched computation; each other activation type in
    its own). Each run of ``runs`` is ``{activation_name, activation_spec, sin_frequency}``: a
    control activation, or a learned AF (``activation_spec``, its JSON form). With
    ``stop_after_95`` a run ends once test accuracy has held >= 95 % for that many evaluations.

    Runs that are the same computation (the sweeps' and the transfer matrix's run of one task's AF,
    or of ReLU, at the main setting) train once. Returns one result dict per run, in order."""
    data = _task_data(task, fraction, seed)
    unique: dict[str, int] = {}  # what a run computes -> its index among the runs trained
    trained, which = [], []
    for run in runs:
        key = json.dumps({"spec": run["activation_spec"], "sin_frequency": run["sin_frequency"],
                          "control": None if run["activation_spec"] is not None else run["activation_name"]},
                         sort_keys=True)
        if key not in unique:
            unique[key] = len(trained)
            trained.append(run)
        which.append(unique[key])
    activations = []
    for run in trained:
        if run["activation_spec"] is not None:
            activation = SplineActivation.from_dict(run["activation_spec"], source=f"AF {run['activation_name']}")
            activation.values.requires_grad_(False)
        else:
            activation = control_activation(run["activation_name"], seed=seed, frequency=run["sin_frequency"] or 4.0)
        activations.append(activation)
    results = grok_runs(data, data.n_classes, activations, _recipe(recipe), steps, seed, width=width,
                        stop_after_target=stop_after_95)
    return [{"task": task, "activation": run["activation_name"], "seed": seed, "fraction": fraction, "width": width,
             **copy.deepcopy(results[i])} for run, i in zip(runs, which)]


def unit_groups(plan: list[dict]) -> list[tuple[tuple, list[int]]]:
    """The runs of :func:`planned_runs` by (task, fraction, width, seed, steps, stop_after_95):
    ``[(key, [indices into plan])]`` in the order of their first run. A group's runs share their
    data and architecture (they can train as populations) and their budget and stopping rule (so
    the main runs, which keep the whole budget for Fig. 11, stay apart from the sweep and transfer
    runs: an edit of the sweep or transfer params leaves the main units' cache keys alone, while
    the sweeps' and the transfer matrix's identical runs at the main setting still meet)."""
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(plan):
        groups.setdefault((r["task"], r["fraction"], r["width"], r["seed"], r["steps"], r["stop_after_95"]), []).append(i)
    return list(groups.items())


def af_names(params: dict) -> dict[str, list[str]]:
    """Every AF the profile needs, by name: one per task (main tasks, sweep task, transfer tasks)
    and, with a transfer block, the all-task AF."""
    names = [*params["tasks"], params["sweep"]["task"], *params["transfer"]["tasks"]]
    needed = {name: [name] for name in dict.fromkeys(names)}
    if params["transfer"]["tasks"]:
        needed[ALL_TASKS] = list(params["transfer"]["tasks"])
    return needed


@flow(name="algorithmic-metalearn", log_prints=True)
def metalearn_flow(params: dict, out_dir: str) -> dict:
    """Meta-learn every AF of :func:`af_names`; write ``<out_dir>/<name>.json`` (the AF) and
    ``<out_dir>/<name>.history.json``."""
    out = Path(out_dir)
    needed = af_names(params)
    with gpu_placement(params["runner"]):
        futures = [metalearn_unit.submit(name, tasks, params["train_fraction"], params["meta"], params["recipe"])
                   for name, tasks in needed.items()]
    results = [f.result() for f in futures]
    rows = []
    for r in results:
        atomic_write_text(out / f"{r['name']}.json", json.dumps(r["activation"], indent=1))
        atomic_write_text(out / f"{r['name']}.history.json", json.dumps(r["history"]))
        last = r["history"][-1]
        rows.append({"af": r["name"], "outer_steps": len(r["history"]), "val_loss": last["val_loss"],
                     "val_acc": last["val_acc"], "knots_visited": last["knots_visited_total"]})
    publish_table(rows, track=TRACK, stage="metalearn", description="Meta-learning runs (Algorithm 1)")
    return {"afs": list(needed)}


def planned_runs(params: dict) -> list[dict]:
    """Every training run of the profile: the grokking comparison (tasks x [af, controls] x seeds),
    the sweeps over train fraction and width (ReLU and the sweep task's AF), and the transfer
    matrix (transfer tasks x [each task's AF, the all-task AF, ReLU]). The main runs use the whole
    budget (their curves are Fig. 11); sweep and transfer runs may stop once converged."""
    recipe, fraction, width = params["recipe"], params["train_fraction"], params["recipe"]["width"]
    runs = []
    for task in params["tasks"]:
        for name in ["af", *params["controls"]]:
            for seed in params["seeds"]:
                runs.append(dict(group="main", task=task, activation_name=name, af=task if name == "af" else None,
                                 fraction=fraction, width=width, steps=params["steps"], seed=seed, stop_after_95=None))
    sweep = params["sweep"]
    for axis, values in (("fraction", sweep["fractions"]), ("width", sweep["widths"])):
        for value in values:
            for name in ("relu", "af"):
                for seed in sweep["seeds"]:
                    runs.append(dict(group=f"sweep_{axis}", task=sweep["task"], activation_name=name,
                                     af=sweep["task"] if name == "af" else None,
                                     fraction=value if axis == "fraction" else fraction,
                                     width=value if axis == "width" else width, steps=sweep["steps"], seed=seed,
                                     stop_after_95=sweep["stop_after_95"]))
    transfer = params["transfer"]
    columns = [*transfer["tasks"], ALL_TASKS] if transfer["tasks"] else []
    for row in transfer["tasks"]:
        for column in [*columns, "relu"]:
            for seed in transfer["seeds"]:
                runs.append(dict(group="transfer", task=row, activation_name=column if column == "relu" else f"af_{column}",
                                 af=None if column == "relu" else column, fraction=fraction, width=width,
                                 steps=transfer["steps"], seed=seed, stop_after_95=transfer["stop_after_95"]))
    return runs


@flow(name="algorithmic-train", log_prints=True)
def train_flow(params: dict, af_dir: str, runs_path: str, metrics_path: str) -> dict:
    """Run :func:`planned_runs`; write all runs and the metrics of the output contract
    (``steps_to_95`` per task and model: median over seeds; ``transfer``: the score matrix)."""
    plan = planned_runs(params)
    specs = {name: json.loads((Path(af_dir) / f"{name}.json").read_text()) for name in af_names(params)}
    progress = Progress(total=len(plan), desc="algorithmic training runs")
    groups = unit_groups(plan)
    with progress, gpu_placement(params["runner"]):
        futures = []
        for (task, fraction, width, seed, steps, stop), members in groups:
            runs_of_unit = [{"activation_name": plan[i]["activation_name"],
                             "activation_spec": specs[plan[i]["af"]] if plan[i]["af"] else None,
                             "sin_frequency": params["sin_frequency"] if plan[i]["activation_name"] == "sin" else None}
                            for i in members]
            futures.append(train_unit.submit(task, fraction, width, seed, steps, stop, runs_of_unit, params["recipe"]))
        results: list[dict | None] = [None] * len(plan)
        for (_, members), future in zip(groups, futures):
            for i, result in zip(members, future.result()):
                results[i] = {"group": plan[i]["group"], **result}
            progress.update(len(members))
        runs = results  # in the order of planned_runs, as before
    atomic_write_text(Path(runs_path), json.dumps(runs))
    metrics = summarise([r for r in runs if r["group"] == "main"])
    transfer_runs = [r for r in runs if r["group"] == "transfer"]
    if transfer_runs:
        metrics["transfer"] = transfer_scores(transfer_runs)
    atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=1, sort_keys=True))
    table = [{"task": t, "model": m, **{k: v for k, v in values.items() if not isinstance(v, (list, dict))}}
             for t, models in metrics.items() if t != "transfer" for m, values in models.items()]
    publish_table(table, track=TRACK, stage="train", description="Steps to 95 % test accuracy and final accuracy")
    publish_markdown(markdown_table(table), track=TRACK, stage="train")
    return metrics


def _median_steps(rs: list[dict]) -> float | None:
    """Median steps to 95 % over seeds; a seed that never got there counts as the budget + 1, and
    the median is ``None`` (never) when it lands there."""
    budget = max(r["curve"][-1]["step"] for r in rs) + 1
    median = statistics.median(r["steps_to_95"] if r["steps_to_95"] is not None else budget for r in rs)
    return None if median >= budget else median


def summarise(runs: list[dict]) -> dict:
    """Per task and model: test accuracy mean/std, TV, median ``steps_to_95`` (``None`` when a
    majority of seeds never reached it), final train accuracy, seeds."""
    out: dict[str, dict] = {}
    for (task, model), rs in sorted(_group(runs).items()):
        accs = [r["final_test_acc"] for r in rs]
        out.setdefault(task, {})[model] = {
            "test_acc": statistics.fmean(accs),
            "test_acc_std": statistics.pstdev(accs),
            "n_seeds": len(rs),
            "tv": statistics.fmean(r["tv"] for r in rs),
            "steps_to_95": _median_steps(rs),
            "steps_to_95_per_seed": [r["steps_to_95"] for r in rs],
            "final_train_acc": statistics.fmean(r["final_train_acc"] for r in rs),
        }
    return out


def transfer_scores(runs: list[dict]) -> dict:
    """The transfer matrix of paper Fig. 14. Score of column c on row task t: the fraction of the
    best convergence speed on t, ``min_c' steps(t, c') / steps(t, c)``, when some column reached
    95 % test accuracy on t (a column that did not scores 0); otherwise the fraction of the best
    final test accuracy. Column means are the paper's summary (54.0 task-specific, 19.9 ReLU,
    61.5 all-task, in %)."""
    cells: dict[str, dict[str, dict]] = {}
    for (task, column), rs in _group(runs).items():
        cells.setdefault(task, {})[column] = {"steps": _median_steps(rs),
                                              "acc": statistics.fmean(r["final_test_acc"] for r in rs)}
    scores: dict[str, dict[str, float]] = {}
    for task, row in cells.items():
        reached = [c["steps"] for c in row.values() if c["steps"] is not None]
        best_acc = max(c["acc"] for c in row.values()) or 1.0
        scores[task] = {
            column: (min(reached) / c["steps"] if c["steps"] is not None else 0.0) if reached else c["acc"] / best_acc
            for column, c in row.items()
        }
    def mean(values):
        return 100 * statistics.fmean(values) if values else None
    return {
        "scores": scores,
        "column_mean": {
            "task_specific": mean([row[f"af_{task}"] for task, row in scores.items() if f"af_{task}" in row]),
            "relu": mean([row["relu"] for row in scores.values() if "relu" in row]),
            "all_tasks": mean([row[f"af_{ALL_TASKS}"] for row in scores.values() if f"af_{ALL_TASKS}" in row]),
        },
        "paper_column_mean": {"task_specific": 54.0, "relu": 19.9, "all_tasks": 61.5},
    }


def _group(runs: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["activation"]), []).append(run)
    return groups
