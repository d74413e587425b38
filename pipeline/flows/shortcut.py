"""Prefect flows of the shortcut-learning track (paper Sec. 3.4, Fig. 9).

Data: MNIST/CIFAR collages (:mod:`pipeline.data.collages`): a simple tile (MNIST 0 vs 1) on top of
a complex one (CIFAR-10 automobile vs truck). In the training set both tiles agree with the label
(ambiguous); each unambiguous set keeps one tile predictive and randomises the other. Without a
source holding MNIST and CIFAR-10, the collages are built from bundled data (digits 0/1 as the
simple tile, noisy digits 3/8 as the harder one); every result says which (``data``).

Models (the output contract's keys): ``relu``; the controls ``gelu``, ``tanh`` and ``sin``, fixed
activations trained like ReLU (does any pointwise activation, without meta-learning, move the
reliance between the tiles?); ``af_mnist`` and ``af_cifar``, MLPs whose AF was
meta-learned by Algorithm 1 on the ambiguous training set with V = the MNIST-predictive or the
CIFAR-predictive validation set; ``iaf_mnist`` and ``iaf_cifar``, ReLU MLPs behind input
activations (one spline per pixel, paper Sec. 3.3's IAFs) meta-learned the same way (a shared
hidden-layer AF acts on pre-activations that mix both tiles; a pixel's IAF sees one tile); and the
upper bounds ``relu_upper_bound_mnist`` /
``relu_upper_bound_cifar``, ReLU MLPs trained on unambiguous collages (the training collages with
the other tile shuffled across rows, so that it carries no label information).

Each training run holds out ``held_out`` of its training collages (same distribution) for model
selection, trains for the whole budget, keeps the checkpoint of best held-out accuracy, and
records the accuracy on both unambiguous test sets along the whole trajectory (paper Fig. 9,
right). Entries carry ``test_acc_mnist`` and ``test_acc_cifar`` instead of ``test_acc``. One unit
trains the models of one seed that share a training view (``relu``, ``af_mnist``, ``af_cifar`` on
the ambiguous collages; each upper bound on its own), those of one architecture (the learned AFs)
as one population.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from prefect import flow

from ..complexity import total_variation
from ..data import PreparedData, prepare_dataset, split_tiles
from ..data.collages import CLASS_CHOICES, DATA_CHOICES
from ..fit import OPTIMIZERS as TRAIN_OPTIMIZERS
from ..fit import evaluate_model
from ..fit.population import population_groups, train_population
from ..fit.tabular import iaf_from_dict, iaf_to_dict
from ..meta import INNER_OPTIMIZERS, InnerOptimizer, MetaConfig, meta_learn
from ..meta.algorithm import KEEP, VAL_OBJECTIVES
from ..nn import INITS, InputActivations
from .artifacts import markdown_table, publish_markdown, publish_table
from .checks import require_known
from .caching import atomic_write_text, unit_task
from .images import (DATA_SOURCES, activation_from_specs, data_source, learn_image_activation, meta_config, seeded_mlp,
                     train_config)
from .progress import Progress
from .runners import gpu_placement, limit_torch_threads

TRACK = "shortcut"
#: Learned activations and the unambiguous validation set each one is meta-learned on: ``af_*`` one
#: AF shared by the hidden layers, ``iaf_*`` per-pixel input activations in front of a ReLU MLP.
LEARNED = {"af_mnist": "val_simple", "af_cifar": "val_complex", "iaf_mnist": "val_simple", "iaf_cifar": "val_complex"}
INPUT_ACTIVATIONS = ("iaf_mnist", "iaf_cifar")
UPPER_BOUNDS = {"relu_upper_bound_mnist": "simple", "relu_upper_bound_cifar": "complex"}
#: Fixed activations (by their name in :func:`pipeline.nn.make_mlp`) trained on the ambiguous
#: collages like ReLU: controls that tell a shift of reliance due to meta-learning from one that any
#: smooth, saturating or periodic activation would give (``sin``: sin(4x), :class:`pipeline.nn.Sine`).
CONTROLS = ("gelu", "tanh", "sin")
MODELS = ("relu", *CONTROLS, *LEARNED, *UPPER_BOUNDS)

_NUMBER = (int, float)
_OPT_INT = (int, type(None))
_PROFILE = {"collage_data": DATA_CHOICES, "classes": CLASS_CHOICES, "data_source": DATA_SOURCES, "n_train": int,
            "n_val": int, "n_test": int, "seeds": list, "models": list, "n_max": int, "steps": int}
#: The shape of params.yaml's ``shortcut`` section (checked by stages.params before any work).
SCHEMA = {
    "model": {"depth": int, "width": int},
    "train": {"optimizer": TRAIN_OPTIMIZERS, "batch_size": _OPT_INT, "lr": _NUMBER, "weight_decay": _NUMBER,
              "eval_every": int, "held_out": _NUMBER},
    "meta": {"truncation": _OPT_INT, "episodes_per_step": int, "inner_lr": _NUMBER,
             "inner_batch_size": _OPT_INT, "episode_size": _OPT_INT, "outer_lr": _NUMBER, "init": INITS,
             "n_knots": int, "interval": list, "val_objective": VAL_OBJECTIVES, "keep": KEEP},
    "iaf_meta": {"n_max": int, "inner_optimizer": INNER_OPTIMIZERS, "inner_lr": _NUMBER, "outer_lr": _NUMBER,
                 "n_knots": int, "interval": list},
    "tv": {"n_paths": int, "n_points": int},
    "profiles": {"quick": _PROFILE, "paper": _PROFILE},
}


def check_names(section: dict, where: str) -> None:
    """Reject unknown model names, empty seed lists and a bad held-out fraction, naming them."""
    for profile, block in section["profiles"].items():
        require_known(block["models"], MODELS, f"{where}.profiles.{profile}.models", "model")
        if not block["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in block["seeds"]):
            raise ValueError(f"{where}.profiles.{profile}.seeds must be a non-empty list of non-negative ints, "
                             f"got {block['seeds']!r}")
    if not 0 < section["train"]["held_out"] < 1:
        raise ValueError(f"{where}.train.held_out must lie in (0, 1), got {section['train']['held_out']!r}")


# --- data ------------------------------------------------------------------------------------


def load_collages(params: dict, data_cfg: dict | None, seed: int) -> PreparedData:
    """The five collage sets for ``seed`` (cached on disk by ``prepare_dataset``): from the
    configured source when it holds MNIST and CIFAR-10 (``collage_data: auto``/``mirror``), else
    the bundled fallback (``auto``/``bundled``)."""
    source = data_source(data_cfg, params["data_source"]) if params["collage_data"] != "bundled" else None
    return prepare_dataset("collages", source=source, seed=seed, n_train=params["n_train"], n_val=params["n_val"],
                           n_test=params["n_test"], data=params["collage_data"], classes=params.get("classes", "binary"))


def collage_key(data: PreparedData) -> str:
    """The metrics' dataset key: ``collages/mnist_cifar`` or ``collages/bundled_digits``."""
    return f"collages/{data.provenance['data']}"


def shuffle_tile(X: np.ndarray, tile: str, tile_size: int, seed: int) -> np.ndarray:
    """Collages whose ``tile`` (``simple``: top, ``complex``: bottom) is permuted across rows, so
    that only the other tile predicts the label. **Shape**: ``(n, 2*s*s)`` -> same."""
    top, bottom = split_tiles(X, tile_size)
    perm = np.random.default_rng(seed).permutation(len(X))
    top, bottom = (top[perm], bottom) if tile == "simple" else (top, bottom[perm])
    return np.ascontiguousarray(np.concatenate([top, bottom], axis=1))


def training_view(data: PreparedData, model: str, held_out: float, seed: int) -> SimpleNamespace:
    """Train / held-out validation (same distribution) / test (MNIST-predictive) for one model:
    the ambiguous collages, or for an upper bound, unambiguous ones keeping only its tile."""
    X, y = data.splits["train"]
    if model in UPPER_BOUNDS:
        other = "complex" if UPPER_BOUNDS[model] == "simple" else "simple"
        X = shuffle_tile(X, other, data.meta["tile_size"], seed)
    cut = len(X) - max(1, int(round(held_out * len(X))))
    Xs, ys = data.splits["test_simple"]
    return SimpleNamespace(X_train=X[:cut], y_train=y[:cut], X_val=X[cut:], y_val=y[cut:], X_test=Xs, y_test=ys)


# --- units -----------------------------------------------------------------------------------


def iaf_meta_config(params: dict) -> MetaConfig:
    """Algorithm 1's settings for the per-pixel IAFs: the AFs' (:func:`meta_config` of ``meta``) with
    ``iaf_meta``'s outer steps, inner optimiser and learning rates."""
    iaf = params["iaf_meta"]
    return dataclasses.replace(
        meta_config(params["meta"], params["train"]), n_max=iaf["n_max"], outer_lr=iaf["outer_lr"],
        inner=InnerOptimizer(iaf["inner_optimizer"], lr=iaf["inner_lr"], weight_decay=params["train"]["weight_decay"]),
    )


def learn_input_activations(X: torch.Tensor, y: torch.Tensor, n_classes: int, params: dict, seed: int,
                            X_val: torch.Tensor, y_val: torch.Tensor, on_step=None) -> tuple[InputActivations, list[dict]]:
    """Algorithm 1 for one spline per pixel (:class:`pipeline.nn.InputActivations`, init identity) in
    front of a ReLU MLP of the track's size, with V = (``X_val``, ``y_val``); returns the IAFs frozen
    and the meta-learning history.

    **Shape**

    - ``X``: ``(n, d)`` collages; ``y``: ``(n,)`` class ids; the IAFs map ``(*, d)`` to ``(*, d)``.
    """
    iaf_p, model_p = params["iaf_meta"], params["model"]
    iaf = InputActivations(X.shape[1], iaf_p["n_knots"], tuple(iaf_p["interval"]))
    template = seeded_mlp(seed, X.shape[1], n_classes, model_p["depth"], model_p["width"], "relu", input_activation=iaf)
    result = meta_learn(template, X, y, X_val=X_val, y_val=y_val, task="classification", config=iaf_meta_config(params),
                        seed=seed, on_step=on_step)
    iaf.values.requires_grad_(False)
    return iaf, result.history


@unit_task(task_run_name="metalearn-shortcut-{model}")
def metalearn_unit(model: str, params: dict, data_cfg: dict | None, seed: int = 0) -> dict:
    """Algorithm 1 on the ambiguous training collages with V = the unambiguous validation set of
    ``model`` (``*_mnist``: MNIST-predictive, ``*_cifar``: CIFAR-predictive): the hidden layers' AF
    (``af_*``) or the per-pixel input activations (``iaf_*``)."""
    if model not in LEARNED:
        raise ValueError(f"metalearn_unit: {model!r} is not a learned activation; known: {list(LEARNED)}")
    data = load_collages(params, data_cfg, seed)
    X, y = (torch.as_tensor(a) for a in data.splits["train"])
    Xv, yv = (torch.as_tensor(a) for a in data.splits[LEARNED[model]])
    n_max = params["iaf_meta"]["n_max"] if model in INPUT_ACTIVATIONS else params["meta"]["n_max"]
    progress = Progress(total=n_max, desc=f"meta-learn {model} on collages")
    trained_on = f"{collage_key(data)} (V = {LEARNED[model]})"
    with progress:
        on_step = lambda row: progress.update(val_loss=row["val_loss"], val_acc=row["val_acc"])  # noqa: E731
        if model in INPUT_ACTIVATIONS:
            iaf, history = learn_input_activations(X, y, data.n_classes, params, seed, Xv, yv, on_step)
            spec = iaf_to_dict(iaf, trained_on=trained_on, params={"meta": params["meta"], "iaf_meta": params["iaf_meta"],
                                                                   "model": params["model"], "data": data.provenance})
        else:
            acts, history = learn_image_activation(X, y, "classification", data.n_classes, params["meta"]["init"], False,
                                                   params, seed=seed, X_val=Xv, y_val=yv, on_step=on_step)
            spec = acts[0].to_dict()
            spec.update(trained_on=trained_on, params={"meta": params["meta"], "model": params["model"], "data": data.provenance})
    return {"model": model, "spec": spec, "history": history, "data": data.provenance["data"]}


def view_name(model: str) -> str:
    """The training view a model sees: ``ambiguous`` (``relu`` and the learned AFs) or its own
    (an upper bound's unambiguous collages)."""
    if model not in MODELS:
        raise ValueError(f"unknown shortcut model {model!r}; known: {list(MODELS)}")
    return model if model in UPPER_BOUNDS else "ambiguous"


def view_models(data: PreparedData, models: list[str], specs: dict[str, dict | None], seed: int,
                params: dict) -> tuple[SimpleNamespace, list[torch.nn.Module]]:
    """The training view shared by ``models`` and one MLP per model drawn under ``seeded(seed)``
    (``specs``: the learned AF of ``af_*`` models, ``None`` for the others: ReLU, or a control's own
    activation).

    Raises:
        ValueError: the models do not share one training view.
    """
    views = {view_name(m) for m in models}
    if len(views) != 1:
        raise ValueError(f"models {models} see different training views {sorted(views)}: train them in separate units")
    view = training_view(data, models[0], params["train"]["held_out"], seed)
    nets = []
    depth, width, d = params["model"]["depth"], params["model"]["width"], view.X_train.shape[1]
    for m in models:
        spec = specs.get(m)
        if m in INPUT_ACTIVATIONS:
            if spec is None:
                raise ValueError(f"view_models: {m} needs its learned input activations in specs")
            activation, iaf = "relu", iaf_from_dict(spec).requires_grad_(False)
        else:
            fixed = m if m in CONTROLS else "relu"
            activation = activation_from_specs(fixed if spec is None else m, None if spec is None else [spec])
            iaf = None
        nets.append(seeded_mlp(seed, d, data.n_classes, depth, width, activation, input_activation=iaf))
    return view, nets


def fit_view(data: PreparedData, view: SimpleNamespace, models: list[str], nets: list[torch.nn.Module], seed: int,
             params: dict) -> list[dict]:
    """Train ``nets`` (one per name of ``models``) on one training view, those of one architecture
    (the learned AFs: per-model frozen knot values) as one population
    (:func:`pipeline.fit.population.train_population`), each for the whole budget keeping its
    checkpoint of best held-out accuracy, as ``train_model(net, view, ..., seed)`` would (to
    rounding: float64 agrees to 1e-9; a model trains bit for bit alike alone or in a population); records
    the accuracy on both unambiguous test sets at every evaluation (``on_state``: the population
    hands each model's weights at its evaluations) and the TV of the kept model.

    Returns one dict per model, in order: ``model``, ``test_acc_mnist``, ``test_acc_cifar``,
    ``val_acc``, ``train_acc``, ``best_step``, ``tv``, ``curve``, ``seconds``.

    **Shape**

    - ``view.X_*``: ``(n, 2 s^2)`` collages; ``view.y_*``: ``(n,)`` class ids in {0, ..., k-1}.
    """
    if len(models) != len(nets) or not nets:
        raise ValueError(f"fit_view needs one net per model name, got {len(nets)} nets for models {models!r}")
    Xc, yc = (torch.as_tensor(a) for a in data.splits["test_complex"])
    # no patience: the whole trajectory, with dense early evaluations (the early dynamics on a log axis)
    cfg = train_config(params["train"], params["train"]["lr"], dense_early_evals=True)
    out: list[dict | None] = [None] * len(nets)
    for group in population_groups(nets, [cfg] * len(nets)):
        started = time.perf_counter()
        members = [nets[i] for i in group]
        # Weights at each evaluation go into a probe copy of the model (its frozen AF included),
        # evaluated on the CIFAR-predictive set: the curve's test_acc is the MNIST-predictive one.
        probes = [copy.deepcopy(m) for m in members]
        last_row: dict[int, dict] = {}

        def remember(k: int, row: dict) -> None:
            last_row[k] = row

        def also_cifar(k: int, state: dict[str, torch.Tensor]) -> None:
            probe = probes[k]
            with torch.no_grad():
                for name, param in probe.named_parameters():
                    if name in state:
                        param.copy_(state[name])
            dtype = next(probe.parameters()).dtype
            last_row[k]["test_acc_cifar"] = evaluate_model(probe, Xc.to(dtype), yc, "classification")[1]

        trained = train_population(members, view, "classification", cfg, [seed] * len(group), on_eval=remember,
                                   on_state=also_cifar)
        seconds = (time.perf_counter() - started) / len(group)  # the population's time, shared equally
        for i, result in zip(group, trained):
            own = time.perf_counter()
            net = result.model
            dtype = next(net.parameters()).dtype
            curve = [{"step": r["step"], "train_acc": r["train_acc"], "val_acc": r["val_acc"], "test_acc_mnist": r["test_acc"],
                      "test_acc_cifar": r["test_acc_cifar"]} for r in result.curve]
            tv = total_variation(net, torch.as_tensor(view.X_train, dtype=dtype), n_paths=params["tv"]["n_paths"],
                                 n_points=params["tv"]["n_points"], seed=seed)
            out[i] = {"model": models[i], "test_acc_mnist": result.metrics["test_acc"],
                      "test_acc_cifar": evaluate_model(net, Xc.to(dtype), yc, "classification")[1],
                      "val_acc": result.metrics["val_acc"], "train_acc": result.metrics["train_acc"],
                      "best_step": result.best_step, "tv": tv, "curve": curve,
                      "seconds": seconds + time.perf_counter() - own}
    return out


@unit_task(task_run_name="train-shortcut-{view}-s{seed}")
def train_unit(view: str, models: list[str], specs: dict[str, dict | None], seed: int, params: dict,
               data_cfg: dict | None) -> list[dict]:
    """The MLPs of one seed that see one training view (``ambiguous``: ``relu``, the controls and the
    learned AFs; an upper bound: its own), trained as populations (:func:`fit_view`): final accuracy on both
    unambiguous test sets (checkpoint of best held-out accuracy), the trajectory of both along
    training, and TV. Returns one run row per model, in order."""
    bad = [m for m in models if view_name(m) != view]
    if bad:
        raise ValueError(f"train_unit(view={view!r}): models {bad} do not train on that view")
    data = load_collages(params, data_cfg, seed)
    training, nets = view_models(data, models, specs, seed, params)
    rows = fit_view(data, training, models, nets, seed, params)
    return [{"model": r.pop("model"), "seed": seed, "data": data.provenance["data"], "dataset": collage_key(data), **r}
            for r in rows]


def unit_params(params: dict) -> dict:
    """What the units read, with the profile's budgets in place (``meta.n_max``, ``train.steps``)
    and the template width of Algorithm 1 = the model's width."""
    keys = ("model", "tv", "iaf_meta", "collage_data", "classes", "data_source", "n_train", "n_val", "n_test")
    return {**{k: params[k] for k in keys},
            "meta": {**params["meta"], "n_max": params["n_max"], "width": params["model"]["width"]},
            "train": {**params["train"], "steps": params["steps"]}}


# --- flows -----------------------------------------------------------------------------------


@flow(name="shortcut-metalearn", log_prints=True)
def metalearn_flow(params: dict, data_cfg: dict | None, out_dir: str) -> dict:
    """Meta-learn AF-mnist, AF-cifar, IAF-mnist and IAF-cifar (those the profile's ``models`` name);
    write ``<out_dir>/<model>.json``, ``<model>.history.json``, for the IAFs
    ``<model>.pass_through.json`` (:func:`iaf_pass_through` on the training collages, per pixel and
    per tile) and ``data.json`` (the collages' provenance)."""
    limit_torch_threads(params["runner"])
    out = Path(out_dir)
    up = unit_params(params)
    data = load_collages(up, data_cfg, seed=0)
    print(f"shortcut: collages from {data.provenance['data']} ({data.provenance.get('location')})")
    learned = [m for m in params["models"] if m in LEARNED]
    with gpu_placement(params["runner"]):
        futures = [metalearn_unit.submit(m, up, data_cfg) for m in learned]
    results = [f.result() for f in futures]
    rows = []
    for r in results:
        atomic_write_text(out / f"{r['model']}.json", json.dumps(r["spec"], indent=1))
        atomic_write_text(out / f"{r['model']}.history.json", json.dumps(r["history"]))
        if r["model"] in INPUT_ACTIVATIONS:
            grid = iaf_pass_through(r["spec"], data.splits["train"][0], data.meta["tile_size"])
            atomic_write_text(out / f"{r['model']}.pass_through.json", json.dumps(
                {"tiles": tile_means(grid), "map": np.where(np.isnan(grid), None, grid).tolist(),
                 "collages": "the training collages Algorithm 1 used (seed 0)"}))
        last = r["history"][-1]
        rows.append({"model": r["model"], "outer_steps": len(r["history"]), "val_loss": last["val_loss"],
                     "val_acc": last["val_acc"], "knots_visited": last["knots_visited_total"]})
    atomic_write_text(out / "data.json", json.dumps({"key": collage_key(data), "provenance": data.provenance,
                                                     "rows": data.rows, "tile_size": data.meta["tile_size"]},
                                                    indent=1, default=str))
    publish_table(rows or [{"note": "no learned activations"}], track=TRACK, stage="metalearn",
                  description="Meta-learning runs (Algorithm 1, V = an unambiguous collage set)")
    return {"models": learned, "data": data.provenance["data"]}


@flow(name="shortcut-train", log_prints=True)
def train_flow(params: dict, data_cfg: dict | None, af_dir: str, runs_path: str, metrics_path: str,
               summary_path: str) -> dict:
    """Train every model of the profile on every seed; write all runs (with trajectories), the
    metrics of the output contract and a summary (the collages' provenance)."""
    limit_torch_threads(params["runner"])
    up = unit_params(params)
    specs = {m: json.loads((Path(af_dir) / f"{m}.json").read_text()) if m in LEARNED else None for m in params["models"]}
    # One unit per (training view, seed): relu, the controls and the learned AFs share the ambiguous view (the
    # AFs train as one population), each upper bound has its own collages.
    views: dict[str, list[str]] = {}
    for m in params["models"]:
        views.setdefault(view_name(m), []).append(m)
    units = [(v, ms, s) for v, ms in views.items() for s in params["seeds"]]
    progress = Progress(total=len(params["models"]) * len(params["seeds"]), desc="shortcut: training runs")
    with progress, gpu_placement(params["runner"]):
        futures = [train_unit.submit(v, ms, {m: specs[m] for m in ms}, s, up, data_cfg) for v, ms, s in units]
        runs = []
        for future in futures:
            rows = future.result()
            runs.extend(rows)
            progress.update(len(rows))
    # runs.json in the order of the per-model units before populations: model, then seed
    order = {(m, s): i for i, (m, s) in enumerate((m, s) for m in params["models"] for s in params["seeds"])}
    runs.sort(key=lambda r: order[(r["model"], r["seed"])])
    atomic_write_text(Path(runs_path), json.dumps(runs))
    metrics = summarise(runs)
    data = json.loads((Path(af_dir) / "data.json").read_text())
    n_classes = data["provenance"]["n_classes"]
    summary = {"data": data, "profile": params["profile"], "n_classes": n_classes, "chance": 1 / n_classes,
               "note": f"{n_classes}-class collages: chance is {100 / n_classes:.0f} % on either unambiguous test set",
               "iaf_pass_through": {m: json.loads((Path(af_dir) / f"{m}.pass_through.json").read_text())["tiles"]
                                    for m in INPUT_ACTIVATIONS if specs.get(m)}}
    atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=1, sort_keys=True))
    atomic_write_text(Path(summary_path), json.dumps(summary, indent=1, sort_keys=True, default=str))
    table = [{"dataset": d, "model": m, **e} for d, models in metrics.items() for m, e in models.items()]
    publish_table(table, track=TRACK, stage="train", description="Accuracy on the MNIST- and CIFAR-predictive test sets")
    publish_markdown(markdown_table(table), track=TRACK, stage="train")
    return metrics


def iaf_pass_through(spec: dict, X: np.ndarray, tile_size: int) -> np.ndarray:
    """Per pixel, how much of its variation over the collages ``X`` the MLP behind the learned input
    activations sees: the std of the IAF's output divided by the std of the pixel (the identity: 1;
    a pixel whose values all map to one output, silenced: 0; above 1: amplified); ``nan`` where the
    pixel is constant in ``X``. Laid out as the collage: rows ``0..s-1`` the simple (MNIST) tile,
    rows ``s..2s-1`` the complex (CIFAR) one.

    **Shape**: ``X`` ``(n, 2 s^2)`` -> ``(2 s, s)`` for ``s = tile_size``."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != 2 * tile_size * tile_size:
        raise ValueError(f"collages of shape {X.shape} are not n rows of two {tile_size} x {tile_size} tiles")
    iaf = iaf_from_dict(spec)
    if iaf.n_features != X.shape[1]:
        raise ValueError(f"IAFs of {iaf.n_features} pixels do not fit collages of {X.shape[1]} pixels")
    with torch.no_grad():
        out = iaf(torch.as_tensor(X)).double().std(dim=0).numpy()
    spread = X.astype(np.float64).std(axis=0, ddof=1)
    ratio = np.divide(out, spread, out=np.full_like(out, np.nan), where=spread > 1e-6)
    return ratio.reshape(2 * tile_size, tile_size)


def tile_means(grid: np.ndarray) -> dict[str, float]:
    """Mean of a ``(2 s, s)`` collage map over each tile's pixels (``nan`` ignored):
    ``{"simple": ..., "complex": ...}``."""
    side = grid.shape[1]
    return {"simple": float(np.nanmean(grid[:side])), "complex": float(np.nanmean(grid[side:]))}


def summarise(runs: list[dict]) -> dict:
    """``{"collages/<data>": {model: {"test_acc_mnist", "test_acc_mnist_std", "test_acc_cifar",
    "test_acc_cifar_std", "n_seeds", "tv", "best_step"}}}`` (means over seeds, population std)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    out: dict[str, dict] = {}
    for (dataset, model), rs in sorted(groups.items()):
        entry = {"n_seeds": len(rs), "tv": statistics.fmean(r["tv"] for r in rs),
                 "best_step": statistics.fmean(r["best_step"] for r in rs)}
        for k in ("test_acc_mnist", "test_acc_cifar"):
            entry[k] = statistics.fmean(r[k] for r in rs)
            entry[f"{k}_std"] = statistics.pstdev(r[k] for r in rs)
        out.setdefault(dataset, {})[model] = entry
    return out
