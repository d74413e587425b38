"""Prefect flows of the image track (paper Sec. 3.1 classification, Sec. 3.2 regression).

For each available image set and each task (``classification``: cross-entropy over the 10
classes; ``regression``: the class id as a scalar target with MSE, accuracy = the prediction
rounded to the nearest id), the track

1. meta-learns spline activations with Algorithm 1 (``metalearn_flow``): one per init (``relu``,
   ``zeros``) and sharing (one AF shared by the network, or one per layer), on a template MLP;
2. trains fresh MLPs (``train_flow``) with ReLU and with each frozen learned AF over a small
   hyperparameter grid (width x learning rate) and several seeds, measuring the test accuracy and
   the total variation (TV, paper Eq. 2) of every model. Each (activation, width, lr, seed) is one
   marker of the accuracy-vs-complexity plot (paper Fig. 4); the metrics of the output contract
   report, per activation, the grid point of best mean validation accuracy (mean/std over seeds).
   One unit trains a grid cell (set, task, width, seed): its activations x learning rates, those
   of one architecture as one population (:func:`pipeline.fit.population.train_population`), each
   model ending where its own ``train_model`` run would end (to rounding).

Data preparation is folded into the units (``pipeline.data.prepare_dataset`` caches the prepared
arrays on disk); complexity is measured inside the training unit. Units return plain dicts so
that Prefect caches them; the flows write the outs.

Activation names (params ``activations``): ``relu`` (also ``gelu``, ``tanh``: fixed
activations) and ``af_<init>_init`` / ``af_<init>_init_per_layer`` (learned; ``<init>`` one of
:data:`pipeline.nn.INITS`), e.g. ``af_relu_init``, ``af_zeros_init_per_layer``.

Data sources (``data_source`` in the profile): ``offline`` uses the bundled sets and, when one is
configured (params ``data:`` section or ``$PIPELINE_DATA_MIRROR``), the mirror or files source,
never the network; ``configured`` uses the ``data:`` section's source (``source_from_config``). A set the
source cannot provide is skipped with a note (``on_missing: skip``) or stops the stage (``fail``).
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import torch
from prefect import flow
from torch import nn

from ..complexity import total_variation
from ..data import BUNDLED, IMAGE_DATASETS, DatasetUnavailable, PreparedData, prepare_dataset, source_from_config
from ..data.registry import ALIASES
from ..data.sources import MIRROR_ENV, Source
from ..fit import TrainConfig
from ..fit.population import population_groups, train_population
from ..meta import InnerOptimizer, MetaConfig, meta_learn
from ..nn import ACTIVATIONS, INITS, SplineActivation, make_mlp, seeded
from .artifacts import markdown_table, publish_markdown, publish_table
from .checks import require_known
from .caching import atomic_write_text, unit_task
from .progress import Progress
from .runners import gpu_placement, limit_torch_threads

TRACK = "images"
TASKS = ("classification", "regression")
FIXED_ACTIVATIONS = ("relu", "gelu", "tanh")
BUNDLED_IMAGES = ("digits",)
DATA_SOURCES = ("offline", "configured")
ON_MISSING = ("skip", "fail")
CHANNELS = ("grayscale", "rgb")
_AF_NAME = re.compile(r"^af_(?P<init>[a-z]+)_init(?P<per_layer>_per_layer)?$")

_NUMBER = (int, float)
_OPT_INT = (int, type(None))
_PROFILE = {
    "datasets": list, "data_source": DATA_SOURCES, "on_missing": ON_MISSING, "tasks": list, "activations": list,
    "grid": {"width": list, "lr": list}, "seeds": list, "n_train": _OPT_INT, "n_val": _OPT_INT, "n_test": _OPT_INT,
    "channels": CHANNELS, "n_max": int, "steps": int,
}
#: The shape of params.yaml's ``images`` section (checked by stages.params before any work).
SCHEMA = {
    "model": {"depth": int},
    "train": {"batch_size": _OPT_INT, "weight_decay": _NUMBER, "eval_every": int, "patience": _OPT_INT},
    "meta": {"truncation": _OPT_INT, "episodes_per_step": int, "inner_lr": _NUMBER,
             "inner_batch_size": _OPT_INT, "episode_size": _OPT_INT, "outer_lr": _NUMBER, "width": int,
             "n_knots": int, "interval": list},
    "tv": {"n_paths": int, "n_points": int},
    "profiles": {"quick": _PROFILE, "paper": _PROFILE},
}


# --- names -----------------------------------------------------------------------------------


def parse_activation(name: str) -> tuple[str | None, bool]:
    """``(init, per_layer)`` of a learned-AF name (``af_zeros_init_per_layer`` -> ``("zeros", True)``),
    ``(None, False)`` for a fixed activation (``relu``, ``gelu``, ``tanh``).

    Raises:
        ValueError: any other name, listing the accepted forms.
    """
    if name in FIXED_ACTIVATIONS:
        return None, False
    m = _AF_NAME.match(str(name))
    if m and m.group("init") in INITS:
        return m.group("init"), bool(m.group("per_layer"))
    raise ValueError(f"unknown activation {name!r}: use one of {list(FIXED_ACTIVATIONS)} or af_<init>_init"
                     f"[_per_layer] with <init> in {list(INITS)} (e.g. af_relu_init, af_zeros_init_per_layer)")


def check_names(section: dict, where: str) -> None:
    """Reject unknown dataset, task and activation names and empty grids, naming them."""
    known = (*BUNDLED_IMAGES, *IMAGE_DATASETS, *ALIASES)
    for profile, block in section["profiles"].items():
        at = f"{where}.profiles.{profile}"
        require_known(block["datasets"], known, f"{at}.datasets", "image set")
        require_known(block["tasks"], TASKS, f"{at}.tasks", "task")
        for name in block["activations"]:
            try:
                parse_activation(name)
            except ValueError as err:
                raise ValueError(f"{at}.activations: {err}") from None
        for key in ("width", "lr", "seeds"):
            values = block["grid"][key] if key != "seeds" else block["seeds"]
            if not values or not all(isinstance(v, _NUMBER) and not isinstance(v, bool) and v >= 0 for v in values):
                raise ValueError(f"{at}: {'grid.' if key != 'seeds' else ''}{key} must be a non-empty list of "
                                 f"non-negative numbers, got {values!r}")


# --- data ------------------------------------------------------------------------------------


def resolve_data_config(data: dict | None) -> dict:
    """params.yaml's ``data`` section with the mirror folder resolved (``null`` ->
    ``$PIPELINE_DATA_MIRROR``, made absolute), so that the folder is part of the units' cache keys
    and a unit never depends on the environment it runs in."""
    cfg = {"source": None, "mirror": None, "openml_cache": None, "files": None, **(data or {})}
    if cfg["mirror"] is None and os.environ.get(MIRROR_ENV):
        cfg["mirror"] = os.environ[MIRROR_ENV]
    if cfg["mirror"] is not None:
        cfg["mirror"] = str(Path(cfg["mirror"]).expanduser().resolve())
    if cfg["openml_cache"] is None and os.environ.get("OPENML_CACHE_DIR"):
        cfg["openml_cache"] = os.environ["OPENML_CACHE_DIR"]
    return cfg


def offline_source_configured(data_cfg: dict | None) -> bool:
    """Whether a local (mirror or files) source is configured in a resolved ``data`` section."""
    cfg = dict(data_cfg or {})
    kind = cfg.get("source")
    if kind in ("mirror", "files"):
        return True
    return kind is None and bool(cfg.get("mirror"))


@lru_cache(maxsize=8)
def _source(cfg_json: str, mode: str) -> Source | None:
    cfg = json.loads(cfg_json)
    if mode == "offline" and not offline_source_configured(cfg):
        return None
    return source_from_config({k: cfg.get(k) for k in ("source", "mirror", "openml_cache", "files")})


def data_source(data_cfg: dict | None, mode: str = "offline") -> Source | None:
    """The source of non-bundled sets: ``None`` (bundled only) in ``offline`` mode when no mirror or
    files source is configured; else ``source_from_config(data_cfg)``."""
    if mode not in DATA_SOURCES:
        raise ValueError(f"data_source={mode!r}; allowed: {DATA_SOURCES}")
    return _source(json.dumps(data_cfg or {}, sort_keys=True), mode)


def load_images(dataset: str, task: str, params: dict, data_cfg: dict | None, seed: int) -> PreparedData:
    """One image set prepared for ``task`` (cached on disk by ``prepare_dataset``).

    Raises:
        DatasetUnavailable: the set is neither bundled nor provided by the source.
    """
    options = {"task": task, "n_train": params["n_train"], "n_val": params["n_val"], "n_test": params["n_test"],
               "grayscale": params["channels"] == "grayscale"}
    if dataset in BUNDLED:
        return prepare_dataset(dataset, seed=seed, **options)
    source = data_source(data_cfg, params["data_source"])
    if source is None:
        raise DatasetUnavailable(
            f"image set {dataset!r}: no offline source is configured (data_source: offline); set "
            f"${MIRROR_ENV} or params data.mirror to a folder laid out like ../shared/data, or use "
            "data_source: configured to read OpenML")
    return prepare_dataset(dataset, source=source, seed=seed, **options)


def resolve_datasets(params: dict, data_cfg: dict | None) -> tuple[list[str], dict[str, dict], dict[str, str]]:
    """Which sets of the profile can be used: ``(used, provenance, skipped)``; ``skipped`` maps a
    set to the reason. With ``on_missing: fail`` an unavailable set raises instead."""
    used, provenance, skipped = [], {}, {}
    for dataset in params["datasets"]:
        try:
            data = load_images(dataset, params["tasks"][0], params, data_cfg, seed=0)
        except DatasetUnavailable as err:
            if params["on_missing"] == "fail":
                raise
            skipped[dataset] = str(err)
            continue
        used.append(dataset)
        provenance[dataset] = {"provenance": data.provenance, "rows": data.rows,
                               "image_shape": data.meta.get("image_shape"), "split_rule": data.meta.get("split_rule")}
    return used, provenance, skipped


# --- models ----------------------------------------------------------------------------------


def _tensors(data: PreparedData, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.as_tensor(data.X_train, dtype=torch.float32)
    y = torch.as_tensor(data.y_train, dtype=torch.long if task == "classification" else torch.float32)
    return X, y


def _d_out(data: PreparedData, task: str) -> int:
    return int(data.n_classes) if task == "classification" else 1


def image_mlp(d_in: int, d_out: int, depth: int, width: int, activation: str | Sequence[nn.Module],
              input_activation: nn.Module | None = None) -> nn.Sequential:
    """The track's MLP: ``depth`` hidden layers (``depth: 2`` = the paper's 3-layer MLP, three
    linear layers); ``activation`` a fixed name, or learned AFs: one module (shared) or ``depth``;
    ``input_activation``: per-pixel input activations in front (the shortcut track's IAF models)."""
    if not isinstance(activation, str):
        acts = list(activation)
        activation = acts[0] if len(acts) == 1 else acts
    return make_mlp(d_in, d_out, depth, width, activation, input_activation=input_activation)


def seeded_mlp(seed: int, *args, **kwargs) -> nn.Sequential:
    """:func:`image_mlp` whose initial weights depend on ``seed`` only: drawn under ``seed`` while
    holding the global-generator lock, so that units running in threads do not interleave draws;
    the global generator's state is restored afterwards."""
    with seeded(seed):
        return image_mlp(*args, **kwargs)


def meta_config(meta: dict, train: dict) -> MetaConfig:
    """Algorithm 1's settings from params: the inner loop trains with Adam at ``meta.inner_lr``;
    ``meta.val_objective`` (optional, default ``loss``) is what the outer step minimises on V and
    ``meta.keep`` (optional, default ``best``) which values are returned (:class:`MetaConfig`)."""
    return MetaConfig(
        n_max=meta["n_max"], truncation=meta["truncation"], episodes_per_step=meta["episodes_per_step"],
        inner=InnerOptimizer("adam", lr=meta["inner_lr"], weight_decay=train["weight_decay"]),
        inner_batch_size=meta["inner_batch_size"], episode_size=meta["episode_size"], outer_lr=meta["outer_lr"],
        patience=None, val_objective=meta.get("val_objective", "loss"), keep=meta.get("keep", "best"),
    )


def learn_image_activation(
    X: torch.Tensor, y: torch.Tensor, task: str, d_out: int, init: str, per_layer: bool, params: dict,
    seed: int = 0, X_val: torch.Tensor | None = None, y_val: torch.Tensor | None = None, on_step=None,
) -> tuple[list[SplineActivation], list[dict]]:
    """Algorithm 1 on an MLP template of ``meta.width`` units: returns the learned AFs (one, or one
    per layer) frozen, and the meta-learning history. ``X_val``/``y_val``: V from another
    distribution (the shortcut track); otherwise episodes split the training rows.

    **Shape**

    - ``X``: ``(n, d)``; ``y``: ``(n,)`` (class ids, or floats for regression).
    """
    meta = params["meta"]
    n = params["model"]["depth"] if per_layer else 1
    acts = [SplineActivation(meta["n_knots"], tuple(meta["interval"]), init=init) for _ in range(n)]
    model = image_mlp(X.shape[1], d_out, params["model"]["depth"], meta["width"], acts)
    result = meta_learn(model, X, y, X_val=X_val, y_val=y_val, task=task,
                        config=meta_config(meta, params["train"]), seed=seed, on_step=on_step)
    for act in acts:
        act.values.requires_grad_(False)
    return acts, result.history


def train_config(train: dict, lr: float, **overrides: Any) -> TrainConfig:
    """Training from a params ``train`` block: ``optimizer`` optional (default AdamW), ``patience``
    optional (none = the whole budget)."""
    options = {"steps": train["steps"], "batch_size": train["batch_size"], "optimizer": train.get("optimizer", "adamw"),
               "lr": lr, "weight_decay": train["weight_decay"], "eval_every": train["eval_every"],
               "patience": train.get("patience")}
    return TrainConfig(**{**options, **overrides})


def activation_from_specs(name: str, specs: list[dict] | None) -> str | list[SplineActivation]:
    if specs is None:
        return name
    acts = [SplineActivation.from_dict(s, source=f"learned AF {name}") for s in specs]
    for act in acts:
        act.values.requires_grad_(False)
    return acts


def fit_and_measure(data: PreparedData, task: str, activation, width: int, lr: float, seed: int, params: dict) -> dict:
    """Train one MLP (early stopping on validation accuracy) and measure its TV on the training
    inputs. Returns accuracies, TV, the kept step and the seconds taken.

    This is :func:`fit_grid` with one model: a model trains bit for bit alike alone and inside a
    population (float32, CPU), so a grid point retrained alone is the model the stage trained. Against
    ``train_model`` it agrees to rounding (float64: 1e-9); in float32 the rounding differences of the
    batched kernels can grow over hundreds of steps and move the early-stopping step."""
    result = fit_grid(data, task, [("model", activation)], width, [lr], seed, params)[0]
    del result["activation"], result["lr"]
    return result


def grid_models(data: PreparedData, task: str, activations: Sequence[tuple[str, Any]], width: int,
                lrs: Sequence[float], seed: int, params: dict) -> tuple[list[nn.Module], list[TrainConfig]]:
    """The models and configs of one (set, task, width, seed) grid cell, activation-major: one MLP
    per (activation, lr), each drawn under ``seeded(seed)`` (the models of one activation start
    from the same weights, as the per-model units drew them), with ``train_config(lr)``."""
    d_in, d_out, depth = data.n_features, _d_out(data, task), params["model"]["depth"]
    models, configs = [], []
    for _, activation in activations:
        for lr in lrs:
            models.append(seeded_mlp(seed, d_in, d_out, depth, width, activation))
            configs.append(train_config(params["train"], lr))
    return models, configs


def fit_grid(data: PreparedData, task: str, activations: Sequence[tuple[str, Any]], width: int, lrs: Sequence[float],
             seed: int, params: dict, models: Sequence[nn.Module] | None = None) -> list[dict]:
    """Train the MLPs of one grid cell, every (activation, lr) of ``activations`` (``(name,
    activation)`` pairs: a fixed name or frozen learned AFs) x ``lrs``, and measure each one's TV on
    the training inputs. The models that share an architecture (all lrs of an activation; the
    learned AFs of one sharing, whose knot values become per-model numbers) train as one
    population (:func:`pipeline.fit.population.train_population`: per-model learning rate, early
    stopping and kept checkpoint), each ending where ``train_model(model, data, task,
    train_config(lr), seed)`` would end it (to rounding: float64 agrees to 1e-9). ``models``:
    prebuilt ones in :func:`grid_models`' order (tests pass float64 copies); ``seconds`` is the
    population's time shared equally plus the model's own TV time.

    Returns one dict per model, activation-major: ``activation`` (the name), ``lr``, ``test_acc``,
    ``val_acc``, ``train_acc``, ``test_loss``, ``tv``, ``best_step``, ``seconds``.

    **Shape**

    - ``data.X_*``: ``(n, d)``; ``data.y_*``: ``(n,)`` (class ids, or floats for regression).
    """
    if not activations or not lrs:
        raise ValueError(f"fit_grid needs at least one activation and one lr, got activations="
                         f"{[a for a, _ in activations]!r}, lrs={list(lrs)!r}")
    built, configs = grid_models(data, task, activations, width, lrs, seed, params) if models is None else (
        list(models), [train_config(params["train"], lr) for _ in activations for lr in lrs])
    if len(built) != len(activations) * len(lrs):
        raise ValueError(f"{len(built)} models for {len(activations)} activations x {len(lrs)} lrs")
    labels = [(name, lr) for name, _ in activations for lr in lrs]
    out: list[dict | None] = [None] * len(built)
    for group in population_groups(built, configs):
        started = time.perf_counter()
        trained = train_population([built[i] for i in group], data, task, [configs[i] for i in group], [seed] * len(group))
        seconds = (time.perf_counter() - started) / len(group)  # the population's time, shared equally
        for i, result in zip(group, trained):
            tv_started = time.perf_counter()
            model = result.model
            X_paths = torch.as_tensor(data.X_train, dtype=next(model.parameters()).dtype)
            tv = total_variation(model, X_paths, n_paths=params["tv"]["n_paths"], n_points=params["tv"]["n_points"],
                                 seed=seed)
            m = result.metrics
            out[i] = {"activation": labels[i][0], "lr": labels[i][1], "test_acc": m["test_acc"], "val_acc": m["val_acc"],
                      "train_acc": m["train_acc"], "test_loss": m["test_loss"], "tv": tv, "best_step": result.best_step,
                      "seconds": seconds + time.perf_counter() - tv_started}
    return out


def unit_params(params: dict) -> dict:
    """What the units read, with the profile's budgets in place (``meta.n_max``, ``train.steps``),
    so that the runner config and the profile's lists do not enter the units' cache keys."""
    keys = ("model", "tv", "n_train", "n_val", "n_test", "channels", "data_source", "tasks")
    return {**{k: params[k] for k in keys}, "meta": {**params["meta"], "n_max": params["n_max"]},
            "train": {**params["train"], "steps": params["steps"]}}


def af_key(dataset: str, task: str, activation: str) -> str:
    return f"{dataset}__{task}__{activation}"


# --- units -----------------------------------------------------------------------------------


@unit_task(task_run_name="metalearn-{dataset}-{task}-{activation}")
def metalearn_unit(dataset: str, task: str, activation: str, params: dict, data_cfg: dict | None, seed: int = 0) -> dict:
    """Algorithm 1 on one image set and task for one learned-AF variant; returns the AF(s) in
    their JSON form, the history and the data's provenance."""
    init, per_layer = parse_activation(activation)
    data = load_images(dataset, task, params, data_cfg, seed)
    X, y = _tensors(data, task)
    progress = Progress(total=params["meta"]["n_max"], desc=f"meta-learn {activation} on {dataset}/{task}")
    with progress:
        acts, history = learn_image_activation(
            X, y, task, _d_out(data, task), init, per_layer, params, seed=seed,
            on_step=lambda row: progress.update(val_loss=row["val_loss"], horizon=row["horizon"]))
    specs = []
    for layer, act in enumerate(acts):
        spec = act.to_dict()
        spec.update(init=init, trained_on=f"{dataset}/{task}",
                    params={"meta": params["meta"], "model": params["model"], "layer": layer if per_layer else "shared",
                            "data": data.provenance})
        specs.append(spec)
    return {"dataset": dataset, "task": task, "activation": activation, "specs": specs, "history": history}


@unit_task(task_run_name="train-{dataset}-{task}-w{width}-s{seed}")
def train_unit(dataset: str, task: str, activations: list[str], specs: dict[str, list[dict] | None], width: int,
               lrs: list[float], seed: int, params: dict, data_cfg: dict | None) -> list[dict]:
    """The MLPs of one grid cell on one image set: every activation x lr at one width and seed,
    trained as populations (:func:`fit_grid`); accuracies and TV per model (``specs``: the learned
    AF(s) by activation name, ``None`` for a fixed activation). Returns one run row per model,
    activation-major."""
    missing = [a for a in activations if a not in specs]
    if missing:
        raise ValueError(f"train_unit: no specs entry for activations {missing} (give None for a fixed activation)")
    data = load_images(dataset, task, params, data_cfg, seed)
    pairs = [(a, activation_from_specs(a, specs[a])) for a in activations]
    results = fit_grid(data, task, pairs, width, lrs, seed, params)
    return [{"dataset": dataset, "task": task, "activation": r.pop("activation"), "width": width, "lr": r.pop("lr"),
             "seed": seed, **r} for r in results]


# --- flows -----------------------------------------------------------------------------------


@flow(name="images-metalearn", log_prints=True)
def metalearn_flow(params: dict, data_cfg: dict | None, out_dir: str) -> dict:
    """Meta-learn every learned-AF variant of the profile on every available set and task; write
    ``<out_dir>/<dataset>__<task>__<activation>.json`` (a shared AF; per layer: ``.layer<i>.json``),
    its ``.history.json``, and ``datasets.json`` (sets used, their provenance, sets skipped)."""
    limit_torch_threads(params["runner"])
    out = Path(out_dir)
    used, provenance, skipped = resolve_datasets(params, data_cfg)
    for dataset, reason in skipped.items():
        print(f"images: skipping {dataset}: {reason}")
    learned = [a for a in params["activations"] if parse_activation(a)[0] is not None]
    units = [(d, t, a) for d in used for t in params["tasks"] for a in learned]
    up = unit_params(params)
    progress = Progress(total=len(units), desc="images: meta-learning runs")
    with progress, gpu_placement(params["runner"]):
        futures = [metalearn_unit.submit(d, t, a, up, data_cfg) for d, t, a in units]
        results = []
        for future in futures:
            results.append(future.result())
            progress.update()
    rows = []
    for r in results:
        key = af_key(r["dataset"], r["task"], r["activation"])
        if len(r["specs"]) == 1 and not parse_activation(r["activation"])[1]:
            atomic_write_text(out / f"{key}.json", json.dumps(r["specs"][0], indent=1))
        else:
            for layer, spec in enumerate(r["specs"]):
                atomic_write_text(out / f"{key}.layer{layer}.json", json.dumps(spec, indent=1))
        atomic_write_text(out / f"{key}.history.json", json.dumps(r["history"]))
        last = r["history"][-1]
        rows.append({"dataset": r["dataset"], "task": r["task"], "activation": r["activation"],
                     "outer_steps": len(r["history"]), "val_loss": last["val_loss"], "val_acc": last["val_acc"],
                     "knots_visited": last["knots_visited_total"]})
    atomic_write_text(out / "datasets.json", json.dumps({"used": used, "provenance": provenance, "skipped": skipped},
                                                        indent=1, default=str))
    publish_table(rows or [{"note": "no learned activations"}], track=TRACK, stage="metalearn",
                  description="Meta-learning runs (Algorithm 1) per image set, task and AF variant")
    return {"datasets": used, "skipped": sorted(skipped), "runs": len(results)}


def load_specs(af_dir: str | Path, dataset: str, task: str, activation: str) -> list[dict]:
    """The learned AF(s) of one variant as written by :func:`metalearn_flow`."""
    folder, key = Path(af_dir), af_key(dataset, task, activation)
    shared = folder / f"{key}.json"
    if shared.is_file():
        return [json.loads(shared.read_text())]
    layers = sorted(folder.glob(f"{key}.layer*.json"), key=lambda p: int(p.name[len(key) + 6: -5]))
    if not layers:
        raise FileNotFoundError(f"no learned activation {key} under {folder}: run the images_metalearn stage")
    return [json.loads(p.read_text()) for p in layers]


@flow(name="images-train", log_prints=True)
def train_flow(params: dict, data_cfg: dict | None, af_dir: str, runs_path: str, metrics_path: str,
               summary_path: str) -> dict:
    """Train every activation x grid point x seed on every set and task the meta-learning stage
    used; write all runs, the metrics of the output contract and a summary (Spearman correlation of
    test accuracy and TV across models per set and task, the mean accuracy and TV of each
    activation's models, the data's provenance, skipped sets)."""
    limit_torch_threads(params["runner"])
    datasets = json.loads((Path(af_dir) / "datasets.json").read_text())
    up = unit_params(params)
    activations, lrs = list(params["activations"]), list(params["grid"]["lr"])
    # One unit per grid cell (set, task, width, seed): its activations x lrs share the data and the
    # seed, and those of one architecture train as one population. Widths stay separate units
    # (different shapes never share a population, and the units run in parallel).
    units = [(d, t, w, s) for d in datasets["used"] for t in params["tasks"] for w in params["grid"]["width"]
             for s in params["seeds"]]
    specs = {(d, t): {a: (load_specs(af_dir, d, t, a) if parse_activation(a)[0] is not None else None)
                      for a in activations} for d in datasets["used"] for t in params["tasks"]}
    progress = Progress(total=len(units) * len(activations) * len(lrs), desc="images: training runs")
    with progress, gpu_placement(params["runner"]):
        futures = [train_unit.submit(d, t, activations, specs[(d, t)], w, lrs, s, up, data_cfg) for d, t, w, s in units]
        runs = []
        for future in futures:
            rows = future.result()
            runs.extend(rows)
            progress.update(len(rows))
    runs.sort(key=run_order(datasets["used"], params))
    atomic_write_text(Path(runs_path), json.dumps(runs))
    metrics = summarise(runs)
    summary = {"spearman": spearman_by_dataset(runs), "by_activation": activation_means(runs),
               "data": datasets["provenance"], "skipped": datasets["skipped"], "profile": params["profile"]}
    atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=1, sort_keys=True))
    atomic_write_text(Path(summary_path), json.dumps(summary, indent=1, sort_keys=True, default=str))
    table = [{"dataset": d, "model": m, **{k: v for k, v in e.items() if not isinstance(v, (list, dict))}}
             for d, models in metrics.items() for m, e in models.items()]
    publish_table(table or [{"note": "no runs"}], track=TRACK, stage="train",
                  description="Test accuracy (selected grid point, mean over seeds) and TV per activation")
    publish_markdown(markdown_table(table) if table else "no runs", track=TRACK, stage="train")
    return metrics


def run_order(datasets: Sequence[str], params: dict):
    """Sort key of runs.json rows: set, task, activation, width, lr, seed in the profile's order
    (the order of the per-model units before populations, so that runs.json reads as before)."""
    axes = [list(datasets), params["tasks"], params["activations"], params["grid"]["width"], params["grid"]["lr"],
            params["seeds"]]
    index = [{v: i for i, v in enumerate(axis)} for axis in axes]
    fields = ("dataset", "task", "activation", "width", "lr", "seed")
    return lambda r: tuple(ix[r[f]] for ix, f in zip(index, fields))


def summarise(runs: list[dict]) -> dict:
    """The output contract: ``{"<dataset>/<task>": {activation: entry}}``. Per activation, the grid
    point (width, lr) with the best validation accuracy averaged over seeds is kept; its entry
    holds ``test_acc`` (mean over seeds), ``test_acc_std`` (population std), ``n_seeds``, ``tv``
    (mean), plus ``val_acc``, ``width``, ``lr``, ``n_models`` (runs in the grid) and
    ``test_acc_grid_max`` (best mean test accuracy of any grid point, for reference)."""
    groups: dict[tuple[str, str], dict[tuple[int, float], list[dict]]] = {}
    for r in runs:
        groups.setdefault((f"{r['dataset']}/{r['task']}", r["activation"]), {}).setdefault((r["width"], r["lr"]), []).append(r)
    out: dict[str, dict] = {}
    for (key, model), grid in sorted(groups.items()):
        mean = lambda rs, k: statistics.fmean(r[k] for r in rs)  # noqa: E731
        (width, lr), best = max(grid.items(), key=lambda item: (mean(item[1], "val_acc"), -item[0][0], item[0][1]))
        accs = [r["test_acc"] for r in best]
        out.setdefault(key, {})[model] = {
            "test_acc": statistics.fmean(accs),
            "test_acc_std": statistics.pstdev(accs),
            "n_seeds": len(best),
            "tv": mean(best, "tv"),
            "val_acc": mean(best, "val_acc"),
            "width": width,
            "lr": lr,
            "n_models": sum(len(rs) for rs in grid.values()),
            "test_acc_grid_max": max(mean(rs, "test_acc") for rs in grid.values()),
        }
    return out


def spearman_by_dataset(runs: list[dict]) -> dict:
    """Spearman rank correlation of test accuracy and TV across all models (activations x grid x
    seeds) of each set and task: ``{dataset: {task: {"rho", "p", "n"}}}`` (``rho`` NaN -> null)."""
    from scipy.stats import spearmanr

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["task"]), []).append(r)
    out: dict[str, dict] = {}
    for (dataset, task), rs in sorted(groups.items()):
        rho, p = (math.nan, math.nan)
        if len(rs) >= 3:
            res = spearmanr([r["test_acc"] for r in rs], [r["tv"] for r in rs])
            rho, p = float(res.statistic), float(res.pvalue)
        out.setdefault(dataset, {})[task] = {"rho": None if math.isnan(rho) else rho,
                                             "p": None if math.isnan(p) else p, "n": len(rs)}
    return out


def activation_means(runs: list[dict]) -> dict:
    """Per set, task and activation, means over all its models (grid x seeds): ``{dataset: {task:
    {activation: {"test_acc", "train_acc", "tv", "n"}}}}``. Why: the Spearman correlation pools the
    activations, and these means show whether a correlation (or its absence) comes from between
    activations (e.g. learned AFs both more complex and more accurate than ReLU) or from within one."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["task"], r["activation"]), []).append(r)
    out: dict[str, dict] = {}
    for (dataset, task, activation), rs in sorted(groups.items()):
        out.setdefault(dataset, {}).setdefault(task, {})[activation] = {
            "test_acc": statistics.fmean(r["test_acc"] for r in rs),
            "train_acc": statistics.fmean(r["train_acc"] for r in rs),
            "tv": statistics.fmean(r["tv"] for r in rs), "n": len(rs)}
    return out
