"""Prefect flows of the algorithmic track (paper Sec. 3.5, 4): meta-learn one AF per task, then
train ReLU, the learned AF and the non-learned controls on each task and seed.

Units of work return plain dicts (the AF's JSON form, learning curves) so that Prefect caches them
and the flow, not the task, writes the stage's outs: DVC deletes outs before a stage runs, and a
cached task would not write its file again.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import torch
from prefect import flow

from ..data.synthetic import PAPER_TASKS, algorithmic_task, is_algorithmic_task
from ..fit.grokking import CONTROLS, Recipe, control_activation, describe_activation, grok_run, learn_task_activation
from ..meta import MetaConfig
from ..nn import INITS, SplineActivation
from .artifacts import markdown_table, publish_markdown, publish_table
from .caching import atomic_write_text, unit_task
from .progress import Progress
from .runners import gpu_placement

TRACK = "algorithmic"

_NUMBER = (int, float)
_PROFILE = {"tasks": list, "train_fraction": _NUMBER, "seeds": list, "steps": int}
#: The shape of params.yaml's ``algorithmic`` section (checked by stages.params before any work).
SCHEMA = {
    "recipe": {"width": int, "lr": _NUMBER, "weight_decay": _NUMBER, "betas": list, "eval_every": int},
    "meta": {"n_max": int, "truncation": (int, type(None)), "episodes_per_step": int, "outer_lr": _NUMBER,
             "init": INITS, "n_knots": int, "interval": list},
    "controls": list,
    "sin_frequency": _NUMBER,
    "profiles": {"quick": _PROFILE, "paper": _PROFILE},
}


def check_names(section: dict, where: str) -> None:
    """Reject unknown task and activation names in the ``algorithmic`` section, naming them."""
    for profile, block in section["profiles"].items():
        for task in block["tasks"]:
            if not is_algorithmic_task(task):
                raise ValueError(f"{where}.profiles.{profile}.tasks has unknown task {task!r}; "
                                 f"use names like {', '.join(PAPER_TASKS[:3])} (any of {list(PAPER_TASKS)})")
    for name in section["controls"]:
        if name not in CONTROLS:
            raise ValueError(f"{where}.controls has unknown activation {name!r}; use any of {list(CONTROLS)}")


def _recipe(params: dict) -> Recipe:
    recipe = dict(params["recipe"])
    recipe["betas"] = tuple(recipe["betas"])
    return Recipe(**recipe)


def _meta_config(params: dict) -> MetaConfig:
    meta = params["meta"]
    return MetaConfig(
        n_max=meta["n_max"], truncation=meta["truncation"], episodes_per_step=meta["episodes_per_step"],
        inner=_recipe(params).inner_optimizer(), outer_lr=meta["outer_lr"], patience=None,
    )


def _task_data(task: str, fraction: float, seed: int) -> SimpleNamespace:
    data = algorithmic_task(task, train_fraction=fraction, seed=seed)
    # No model selection in the grokking runs (the last checkpoint is kept): V is the test set.
    return SimpleNamespace(X_train=data.X_train, y_train=data.y_train, X_val=data.X_test, y_val=data.y_test,
                           X_test=data.X_test, y_test=data.y_test, n_classes=data.n_classes)


@unit_task(task_run_name="metalearn-{task}")
def metalearn_unit(task: str, params: dict, seed: int = 0) -> dict:
    """Algorithm 1 on a task's training pairs; returns the AF (JSON form), its history and character."""
    data = _task_data(task, params["train_fraction"], seed)
    meta = params["meta"]
    progress = Progress(total=meta["n_max"], desc=f"meta-learn AF on {task}")
    with progress:
        act, history = learn_task_activation(
            torch.as_tensor(data.X_train), torch.as_tensor(data.y_train), data.n_classes, _recipe(params),
            _meta_config(params), init=meta["init"], n_knots=meta["n_knots"], interval=tuple(meta["interval"]),
            seed=seed, on_step=lambda row: progress.update(val_loss=row["val_loss"], horizon=row["horizon"]),
        )
    spec = act.to_dict()
    spec.update(trained_on=task, params={"meta": meta, "recipe": params["recipe"], "train_fraction": params["train_fraction"]})
    return {"task": task, "activation": spec, "history": history}


@unit_task(task_run_name="train-{task}-{activation_name}-s{seed}")
def train_unit(task: str, activation_name: str, activation_spec: dict | None, params: dict, seed: int) -> dict:
    """One grokking run: a fresh MLP with the named activation (``af``: the learned one)."""
    data = _task_data(task, params["train_fraction"], seed)
    if activation_spec is not None:
        activation = SplineActivation.from_dict(activation_spec, source=f"learned AF of {task}")
        activation.values.requires_grad_(False)
    else:
        activation = control_activation(activation_name, seed=seed, frequency=params["sin_frequency"])
    result = grok_run(data, data.n_classes, activation, _recipe(params), params["steps"], seed)
    return {"task": task, "activation": activation_name, "seed": seed, **result}


@flow(name="algorithmic-metalearn", log_prints=True)
def metalearn_flow(params: dict, out_dir: str) -> dict:
    """Meta-learn one AF per task of the active profile; write ``<out_dir>/<task>.json`` (the AF)
    and ``<out_dir>/<task>.history.json``."""
    out = Path(out_dir)
    with gpu_placement(params["runner"]):
        futures = [metalearn_unit.submit(task, params) for task in params["tasks"]]
    results = [f.result() for f in futures]
    rows = []
    for r in results:
        atomic_write_text(out / f"{r['task']}.json", json.dumps(r["activation"], indent=1))
        atomic_write_text(out / f"{r['task']}.history.json", json.dumps(r["history"]))
        last = r["history"][-1]
        rows.append({"task": r["task"], "outer_steps": len(r["history"]), "val_loss": last["val_loss"],
                     "val_acc": last["val_acc"], "knots_visited": last["knots_visited_total"]})
    publish_table(rows, track=TRACK, stage="metalearn", description="Meta-learning runs (Algorithm 1)")
    return {"tasks": [r["task"] for r in results]}


@flow(name="algorithmic-train", log_prints=True)
def train_flow(params: dict, af_dir: str, runs_path: str, metrics_path: str) -> dict:
    """Train ReLU, the learned AF and the controls on every task and seed; write all runs and the
    metrics of the output contract (``steps_to_95`` per task and model: median over seeds)."""
    names = ["af", *params["controls"]]
    units = [(task, name, seed) for task in params["tasks"] for name in names for seed in params["seeds"]]
    specs = {task: json.loads((Path(af_dir) / f"{task}.json").read_text()) for task in params["tasks"]}
    progress = Progress(total=len(units), desc="algorithmic training runs")
    with progress, gpu_placement(params["runner"]):
        futures = [train_unit.submit(t, n, specs[t] if n == "af" else None, params, s) for t, n, s in units]
        runs = []
        for future in futures:
            runs.append(future.result())
            progress.update()
    atomic_write_text(Path(runs_path), json.dumps(runs))
    metrics = summarise(runs)
    atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=1, sort_keys=True))
    table = [{"task": t, "model": m, **v} for t, models in metrics.items() for m, v in models.items()]
    publish_table(table, track=TRACK, stage="train", description="Steps to 95 % test accuracy and final accuracy")
    publish_markdown(markdown_table(table), track=TRACK, stage="train")
    return metrics


def summarise(runs: list[dict]) -> dict:
    """Per task and model: test accuracy mean/std, TV, median ``steps_to_95`` (``None`` when a
    majority of seeds never reached it), final train accuracy, seeds."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["activation"]), []).append(run)
    out: dict[str, dict] = {}
    for (task, model), rs in sorted(groups.items()):
        accs = [r["final_test_acc"] for r in rs]
        budget = max(r["curve"][-1]["step"] for r in rs) + 1
        steps = sorted(r["steps_to_95"] if r["steps_to_95"] is not None else budget for r in rs)
        median = statistics.median(steps)
        out.setdefault(task, {})[model] = {
            "test_acc": statistics.fmean(accs),
            "test_acc_std": statistics.pstdev(accs),
            "n_seeds": len(rs),
            "tv": statistics.fmean(r["tv"] for r in rs),
            "steps_to_95": None if median >= budget else median,
            "steps_to_95_per_seed": [r["steps_to_95"] for r in rs],
            "final_train_acc": statistics.fmean(r["final_train_acc"] for r in rs),
        }
    return out
