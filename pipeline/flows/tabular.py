"""Prefect flows of the tabular track (paper Sec. 3.3; Fig. 5, 6, 7, 8, 20).

Stages, each one flow (``stages/tabular_*.py`` run them):

- ``prepare``: every dataset x seed of the active profile through ``prepare_dataset`` (network and
  tree features; Grinsztajn protocol). A dataset the source cannot serve is *skipped with a note*
  (carried into the report), never a crash. Writes ``datasets.json``.
- ``metalearn``: Algorithm 1 on each training split for every variant the profile's families need
  (:data:`pipeline.fit.tabular.META_VARIANTS`). Writes the learned AFs and IAFs per dataset
  (``<dataset>/<variant>.s<seed>.json``: DESIGN.md's activation JSON, loadable with
  ``SplineActivation.load`` / :func:`pipeline.fit.tabular.iaf_from_dict`) and ``learned.json``.
- ``train``: the baselines' searches and, per network family, every config of the search budget
  (architectures sampled from ``depths x widths``, times alpha / AF variant / fine-tuning), each
  trained with early stopping; the *total variation* of every trained model is measured here (the
  complexity of Fig. 6 is folded into this stage). Also the width/depth reuse runs of Fig. 8: the
  AF meta-learned from ReLU, and the IAFs of the selected IAF & ReLU model (fine-tuned with its
  weights when the search selected that), each frozen in front of fresh networks of every size.
  Writes ``runs.json``, the IAFs of every selected IAF & ReLU model as trained
  (``trained_iafs/<dataset>/iaf_relu.s<seed>.json``),
  ``reports/metrics/tabular.json`` (the output contract, selection on validation accuracy per
  seed) and ``reports/tables/tabular.json`` (notes and the acceptance numbers the report prints).
- ``complexity``: the views of Fig. 7 on the focus dataset: 1-D and 2-D function slices of the
  selected ReLU, TanH, AF, IAF and XGBoost models, and complexity landscapes over a plane along the
  training trajectory and a random plane around the solution. Writes ``views.json``.

Units of work return plain dicts so Prefect caches them; the flows write the outs (DVC deletes
outs before a stage runs, and a cached task would not write its file again).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from prefect import flow

from ..data import BUNDLED, DatasetUnavailable, prepare_dataset
from ..data.registry import REGISTRY
from ..data.sources import MIRROR_ENV, CatalogSource, OpenMLSource, source_from_config
from ..fit import TrainConfig
from ..fit.baselines import BASELINES, FeatureMap, fit_baseline, proba_function
from ..fit.tabular import (
    FAMILIES,
    FAMILY_VARIANTS,
    META_VARIANTS,
    MODEL_KEYS,
    MetaSettings,
    build_model,
    fit_network,
    fit_networks,
    iaf_to_dict,
    learn_activations,
    softmax_function,
)
from ..nn import InputActivations, seeded
from .artifacts import markdown_table, publish_markdown, publish_table
from .checks import require_known
from .caching import atomic_write_text, unit_task
from .progress import Progress, track
from .runners import gpu_placement
from .tabular_summary import IAF, run_config, select_per_seed, summarise, summary_tables

TRACK = "tabular"
PROFILES = ("quick", "cpu", "paper")

_NUMBER = (int, float)
_NONE = type(None)


#: Split options of ``protocol``, each a mapping of dataset name -> column (``{}``: random splits).
SPLIT_OPTIONS = ("group_by", "order_by")


def check_column_map(value, key: str) -> None:
    """``protocol.group_by`` / ``protocol.order_by``: a mapping of dataset name -> the column whose
    groups the split keeps whole (``order_by``: dealt in ascending order, the past to train)."""
    if value is None:
        return
    if not isinstance(value, dict) or any(not isinstance(k, str) or not k or not isinstance(v, str) or not v
                                          for k, v in value.items()):
        raise ValueError("must map dataset names to a column name, e.g. {eye_movements: assgNo}, "
                         f"or be {{}} for random splits; got {value!r}")


_PROFILE = {
    "datasets": list, "seeds": list, "max_train": int, "max_eval": int,
    "families": list, "baselines": list, "af_variants": list, "finetune": list, "iaf_knots": list,
    "depths": list, "widths": list, "n_arch": int, "alphas": list,
    "steps": int, "patience": int, "meta_n_max": int, "meta_episode_size": int,
    "xgboost_configs": int, "forest_configs": int,
    "fig8": {"widths": list, "depths": list, "seeds": list},
    "landscape": {"resolution": int, "n_paths": int, "n_points": int},
}
#: The shape of params.yaml's ``tabular`` section (checked by stages.params before any work).
SCHEMA = {
    "profile": (str, _NONE),
    "torch_threads": int,
    "protocol": {"train_fraction": _NUMBER, "val_fraction": _NUMBER, "group_by": check_column_map,
                 "order_by": check_column_map},
    "train": {"optimizer": ("adamw", "adam", "sgd"), "lr": _NUMBER, "weight_decay": _NUMBER, "batch_size": int,
              "eval_every": int},
    "meta": {"depth": int, "width": int, "truncation": (int, _NONE), "episodes_per_step": int, "inner_lr": _NUMBER,
             "outer_lr": _NUMBER, "n_knots": int, "interval": list},
    "tv": {"n_paths": int, "n_points": int},
    "baseline_search": {"linear_C": list, "knn_k": list, "xgboost_trees": int, "xgboost_early_stopping": int,
                  "forest_max_trees": int},
    "focus": {"fig7": list, "fig8": list},
    "profiles": {p: _PROFILE for p in PROFILES},
}

_OPENML_NAME = re.compile(r"^openml:\d+$")

# The library code in each unit's cache key (with its inputs and its own source): an edit elsewhere
# in the project (another track, or the summaries of pipeline.flows.tabular_summary) leaves the
# tabular results cached.
DATA_CODE = ("pipeline.data", "pipeline.flows.tabular")
MODEL_CODE = DATA_CODE + ("pipeline.nn", "pipeline.meta", "pipeline.fit", "pipeline.complexity")


# ------------------------------------------------------------------------------------ params
def check_names(section: dict, where: str) -> None:
    """Reject unknown profile, family, baseline and variant names and malformed dataset names in
    the ``tabular`` section, naming them (names declared under ``data.files`` are checked against
    that section by :func:`resolve_params`)."""
    if section["profile"] is not None and section["profile"] not in PROFILES:
        raise ValueError(f"{where}.profile = {section['profile']!r}; use null (the global profile) or one of {list(PROFILES)}")
    allowed_afs = FAMILY_VARIANTS["mlp_af"]
    for name, block in section["profiles"].items():
        key = f"{where}.profiles.{name}"
        require_known(block["families"], FAMILIES, f"{key}.families", "family")
        require_known(block["baselines"], BASELINES, f"{key}.baselines", "baseline")
        require_known(block["af_variants"], allowed_afs, f"{key}.af_variants", "variant")
        if not block["finetune"] or any(not isinstance(f, bool) for f in block["finetune"]):
            raise ValueError(f"{key}.finetune must be a non-empty list of true/false, got {block['finetune']!r}")
        knots = block["iaf_knots"]
        step = section["meta"]["n_knots"] - 1
        if not knots or any(isinstance(k, bool) or not isinstance(k, int) or k < 2 or (k - 1) % step for k in knots):
            raise ValueError(
                f"{key}.iaf_knots must be a non-empty list of knot counts k with k - 1 a multiple of "
                f"tabular.meta.n_knots - 1 = {step} (so a meta-learned IAF keeps its function on the finer grid), "
                f"got {knots!r}; e.g. [{step + 1}, {32 * step + 1}, {128 * step + 1}]"
            )
        if not block["seeds"] or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in block["seeds"]):
            raise ValueError(f"{key}.seeds must be a non-empty list of non-negative ints, got {block['seeds']!r}")
        for grid in ("depths", "widths"):
            if not block[grid] or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in block[grid]):
                raise ValueError(f"{key}.{grid} must be a non-empty list of positive ints, got {block[grid]!r}")
        if not set(block["fig8"]["seeds"]) <= set(block["seeds"]):
            raise ValueError(f"{key}.fig8.seeds {block['fig8']['seeds']} must be among {key}.seeds {block['seeds']} "
                             "(Fig. 8 reuses the AF meta-learned on those seeds' training splits)")
        if any(not isinstance(a, _NUMBER) or a <= 0 for a in block["alphas"]) or not block["alphas"]:
            raise ValueError(f"{key}.alphas must be a non-empty list of positive numbers, got {block['alphas']!r}")
        for dataset in block["datasets"]:
            if not isinstance(dataset, str) or not dataset:
                raise ValueError(f"{key}.datasets has {dataset!r}; use dataset names")
    listed = {d for block in section["profiles"].values() for d in block["datasets"]}
    maps = {option: section["protocol"].get(option) or {} for option in SPLIT_OPTIONS}
    for option, mapping in maps.items():
        unknown = sorted(set(mapping) - listed)
        if unknown:  # a misspelt name would leave that dataset's split random without a word
            raise ValueError(f"{where}.protocol.{option} names {unknown}, which no profile's datasets list; "
                             f"use names from {sorted(listed)}")
    both = sorted(set(maps["group_by"]) & set(maps["order_by"]))
    if both:
        raise ValueError(f"{where}.protocol: {both} in both group_by and order_by; give one (order_by already keeps "
                         "each value's rows together)")


def dataset_kind(name: str, files: dict | None) -> str:
    """How a dataset name is served: ``bundled``, ``files`` (declared under ``data.files``),
    ``openml`` (``openml:<id>``) or ``registry`` (a name of the paper's registry)."""
    if name in BUNDLED:
        return "bundled"
    if files and name in files:
        return "files"
    if _OPENML_NAME.match(name):
        return "openml"
    if name in REGISTRY:
        return "registry"
    raise ValueError(
        f"params.yaml: tabular dataset {name!r} is unknown: use a registry name ({', '.join(sorted(REGISTRY)[:4])}, ...), "
        f"'openml:<id>', a bundled set ({', '.join(BUNDLED)}), or declare it under data.files: "
        f"{name}: {{path: FILE, target: COLUMN}}"
    )


def resolve_data(data: dict | None) -> dict:
    """The ``data`` section with the mirror folder resolved (``null`` -> ``$PIPELINE_DATA_MIRROR``), so
    that the folder is part of every unit's cache key."""
    data = {"source": None, "mirror": None, "openml_cache": None, "files": None, **(data or {})}
    if data["source"] not in (None, "mirror", "openml", "files"):
        raise ValueError(f"params.yaml: data.source = {data['source']!r}; use null, mirror, openml or files")
    if data["mirror"] is None and os.environ.get(MIRROR_ENV):
        data["mirror"] = os.environ[MIRROR_ENV]
    if data["mirror"] is not None:
        data["mirror"] = str(Path(data["mirror"]).expanduser().resolve())
    if data["openml_cache"] is None and os.environ.get("OPENML_CACHE_DIR"):
        data["openml_cache"] = os.environ["OPENML_CACHE_DIR"]
    data["files"] = dict(data["files"] or {})
    return data


def resolve_params(params: dict) -> dict:
    """What the tabular stages read: the ``tabular`` section with its active profile merged in
    (``tabular.profile``, else the global ``profile``), plus ``data``, ``runner`` and ``device``."""
    section = params["tabular"]
    profile = section.get("profile") or params["profile"]
    if profile not in section["profiles"]:
        raise ValueError(f"params.yaml: tabular.profiles has no profile {profile!r} (has {sorted(section['profiles'])})")
    merged = {k: v for k, v in section.items() if k not in ("profiles", "profile")}
    merged.update(section["profiles"][profile])
    data = resolve_data(params.get("data"))
    for name in merged["datasets"]:
        dataset_kind(name, data["files"])
    return {**merged, "profile": profile, "data": data, "runner": params["runner"], "device": params.get("device", "cpu")}


# -------------------------------------------------------------------------------------- data
def source_for(name: str, data: dict):
    """The source that serves ``name`` (``None`` for a bundled set): names declared under
    ``data.files`` come from those files; ``openml:<id>`` from OpenML (its cache), unless
    ``data.source`` is ``files``; everything else from the configured source (a mirror when one is
    given, else OpenML)."""
    kind = dataset_kind(name, data["files"])
    if kind == "bundled":
        return None
    if data["source"] == "files" or kind == "files":
        if not data["files"]:
            raise DatasetUnavailable(f"dataset {name!r}: data.source is files but data.files declares nothing")
        return CatalogSource(data["files"], openml_cache=data["openml_cache"])
    if kind == "openml" and data["source"] != "openml":
        return OpenMLSource(cache_dir=data["openml_cache"])
    return source_from_config({k: data[k] for k in ("source", "mirror", "openml_cache")})


def load_split(name: str, seed: int, data: dict, features: str):
    """The prepared split of one dataset and seed (``features``: ``network`` or ``tree``; ``data``:
    :func:`data_context`), read from the prepared-data cache after the first time."""
    protocol = data["protocol"]
    return prepare_dataset(
        name, source=source_for(name, data["data"]), seed=seed, features=features,
        max_train=data["max_train"], max_eval=data["max_eval"],
        train_fraction=protocol["train_fraction"], val_fraction=protocol["val_fraction"],
        group_by=protocol.get("group_by"), order_by=protocol.get("order_by"),
    )


# Units take only the values they use (these contexts), so that adding a dataset, a seed or a model
# to params.yaml leaves the cache keys of the existing units unchanged: Prefect reruns only new units.
def data_context(params: dict, dataset: str) -> dict:
    """Where the data comes from and how ``dataset`` is split, and the unit's torch threads. The
    protocol carries ``group_by`` / ``order_by`` only for a dataset that the option names, so that
    re-splitting one dataset leaves the other datasets' units cached."""
    ctx = {k: params[k] for k in ("data", "max_train", "max_eval", "torch_threads")}
    protocol = {k: v for k, v in params["protocol"].items() if k not in SPLIT_OPTIONS}
    for option in SPLIT_OPTIONS:
        column = (params["protocol"].get(option) or {}).get(dataset)
        if column is not None:
            protocol[option] = column
    ctx["protocol"] = protocol
    return ctx


def train_context(params: dict) -> dict:
    """How every network is trained and measured."""
    return {**params["train"], "steps": params["steps"], "patience": params["patience"], "tv": params["tv"]}


def _threads(data: dict) -> None:
    torch.set_num_threads(max(1, int(data.get("torch_threads", 1))))


@unit_task(task_run_name="prepare-{dataset}-s{seed}", code=DATA_CODE)
def prepare_unit(dataset: str, seed: int, data: dict) -> dict:
    """Prepare one dataset and seed (both feature sets); ``available: False`` with the source's
    message when it cannot be served."""
    try:
        net = load_split(dataset, seed, data, "network")
        tree = load_split(dataset, seed, data, "tree")
    except DatasetUnavailable as err:
        return {"dataset": dataset, "seed": seed, "available": False, "note": str(err).splitlines()[0][:400]}
    if net.task != "classification":
        return {"dataset": dataset, "seed": seed, "available": False,
                "note": f"task {net.task!r}: the tabular track handles classification only"}
    return {
        "dataset": dataset, "seed": seed, "available": True, "note": "",
        "n_features": int(net.X_train.shape[1]), "n_features_tree": int(tree.X_train.shape[1]),
        "n_classes": int(net.n_classes), "rows": net.rows, "feature_names": list(net.feature_names),
        "features_match": list(net.feature_names) == list(tree.feature_names),
        "source": net.provenance.get("source"),
    }


def pick_focus(candidates: list[str], available: list[str]) -> str | None:
    """The first candidate that is available, else the first available dataset."""
    for name in candidates:
        if name in available:
            return name
    return available[0] if available else None


@flow(name="tabular-prepare", log_prints=True)
def prepare_flow(params: dict, out_path: str) -> dict:
    """Prepare every dataset x seed; write ``datasets.json``: the available sets with their shapes,
    the skipped ones with the reason, and the focus sets of Fig. 7 and Fig. 8."""
    units = [(d, s) for d in params["datasets"] for s in params["seeds"]]
    progress = Progress(total=len(units), desc="tabular: prepare datasets")
    with progress, gpu_placement(params["runner"]):
        futures = [prepare_unit.submit(d, s, data_context(params, d)) for d, s in units]
        results = []
        for f in futures:
            results.append(f.result())
            progress.update()
    datasets: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    for r in results:
        if not r["available"]:
            skipped.setdefault(r["dataset"], r["note"])
        elif r["dataset"] not in skipped:
            entry = datasets.setdefault(r["dataset"], {k: r[k] for k in ("n_features", "n_features_tree", "n_classes",
                                                                           "feature_names", "features_match", "source")})
            protocol = data_context(params, r["dataset"])["protocol"]
            entry.update({option: protocol.get(option) for option in SPLIT_OPTIONS})
            entry.setdefault("rows", {})[str(r["seed"])] = r["rows"]
    for name in skipped:
        datasets.pop(name, None)
    available = [d for d in params["datasets"] if d in datasets]
    out = {
        "profile": params["profile"], "seeds": params["seeds"], "available": available, "datasets": datasets,
        "skipped": skipped,
        "focus": {"fig7": pick_focus(params["focus"]["fig7"], available),
                  "fig8": pick_focus(params["focus"]["fig8"], available)},
    }
    atomic_write_text(Path(out_path), json.dumps(out, indent=1))
    rows = [{"dataset": d, "status": "ok", **{k: datasets[d][k] for k in ("n_features", "n_classes")}} for d in available]
    rows += [{"dataset": d, "status": "skipped", "note": note} for d, note in skipped.items()]
    publish_table(rows, track=TRACK, stage="prepare", description="Datasets of the tabular track")
    if skipped:
        print(f"tabular: skipped {len(skipped)} dataset(s): " + "; ".join(f"{d}: {n}" for d, n in skipped.items()))
    return out


# --------------------------------------------------------------------------------- metalearn
def meta_context(params: dict) -> dict:
    """The settings of Algorithm 1 (``tabular.meta`` and the profile's ``meta_n_max``,
    ``meta_episode_size``)."""
    return {**params["meta"], "n_max": params["meta_n_max"], "episode_size": params["meta_episode_size"]}


def meta_settings(meta: dict) -> MetaSettings:
    return MetaSettings(
        depth=meta["depth"], width=meta["width"], n_max=meta["n_max"], truncation=meta["truncation"],
        episodes_per_step=meta["episodes_per_step"], episode_size=meta["episode_size"],
        inner_lr=meta["inner_lr"], outer_lr=meta["outer_lr"], n_knots=meta["n_knots"], interval=tuple(meta["interval"]),
    )


def needed_variants(params: dict) -> list[str]:
    """The meta-learning variants the profile's families (and Fig. 8's reuse runs) need."""
    variants = []
    for family in params["families"]:
        if family == "mlp_af":
            variants += list(params["af_variants"])
        else:
            variants += list(FAMILY_VARIANTS.get(family, ()))
    variants.append("af_relu")  # Fig. 8 reuses the AF learned from a ReLU init
    return [v for v in META_VARIANTS if v in set(variants)]


@unit_task(task_run_name="metalearn-{dataset}-{variant}-s{seed}", code=MODEL_CODE)
def metalearn_unit(dataset: str, seed: int, variant: str, data: dict, meta: dict) -> dict:
    """Algorithm 1 on one training split for one variant; returns the learned activations (JSON
    forms) and a compact history."""
    _threads(data)
    split = load_split(dataset, seed, data, "network")
    settings = meta_settings(meta)
    progress = Progress(total=settings.n_max, desc=f"meta-learn {variant} on {dataset} s{seed}")
    with progress:
        learned, history = learn_activations(
            variant, torch.as_tensor(split.X_train), torch.as_tensor(split.y_train), split.n_classes, settings, seed=seed,
            on_step=lambda row: progress.update(val_loss=row["val_loss"]),
        )
    provenance = {"meta": meta, "variant": variant, "seed": seed,
                  "protocol": {**data["protocol"], "max_train": data["max_train"]}}
    for key in ("af", "iaf"):
        specs = learned[key] if isinstance(learned[key], list) else [learned[key]]
        for spec in specs:
            if spec is not None:
                spec.update(trained_on=f"{dataset} (seed {seed} training split)", params=provenance)
    if learned["iaf"] is not None:
        learned["iaf"]["feature_names"] = list(split.feature_names)
    keep = ("step", "horizon", "val_loss", "val_loss_smooth", "val_acc", "knots_visited_total", "seconds")
    return {"dataset": dataset, "seed": seed, "variant": variant, "learned": learned,
            "history": [{k: row[k] for k in keep} for row in history]}


def activation_files(dataset: str, seed: int, variant: str, learned: dict) -> dict[str, dict]:
    """File name -> JSON of each learned module: ``<variant>.s<seed>.json`` (the AF, or the IAFs of
    an IAF variant), ``iaf_af.af.s<seed>.json`` (the AF learned with IAFs), and
    ``af_per_layer.layer<i>.s<seed>.json`` (one AF per layer)."""
    files = {}
    af, iaf = learned["af"], learned["iaf"]
    if iaf is not None:
        files[f"{dataset}/{variant}.s{seed}.json"] = iaf
        if af is not None:
            files[f"{dataset}/{variant}.af.s{seed}.json"] = af
    elif isinstance(af, list):
        for i, spec in enumerate(af, 1):
            files[f"{dataset}/{variant}.layer{i}.s{seed}.json"] = spec
    elif af is not None:
        files[f"{dataset}/{variant}.s{seed}.json"] = af
    return files


@flow(name="tabular-metalearn", log_prints=True)
def metalearn_flow(params: dict, datasets_path: str, out_dir: str) -> dict:
    """Meta-learn every needed variant on every available dataset and seed; write the learned
    activations per dataset and ``learned.json`` (all of them, with their histories)."""
    info = json.loads(Path(datasets_path).read_text())
    variants = needed_variants(params)
    units = [(d, s, v) for d in info["available"] for s in params["seeds"] for v in variants]
    progress = Progress(total=len(units), desc="tabular: meta-learning runs")
    with progress, gpu_placement(params["runner"]):
        futures = [metalearn_unit.submit(d, s, v, data_context(params, d), meta_context(params)) for d, s, v in units]
        results = []
        for f in futures:
            results.append(f.result())
            progress.update()
    out = Path(out_dir)
    index: dict[str, dict] = {}
    rows = []
    for r in results:
        for name, spec in activation_files(r["dataset"], r["seed"], r["variant"], r["learned"]).items():
            atomic_write_text(out / name, json.dumps(spec, indent=1))
        index.setdefault(r["dataset"], {}).setdefault(str(r["seed"]), {})[r["variant"]] = {
            "learned": r["learned"], "history": r["history"]}
        last = r["history"][-1]
        rows.append({"dataset": r["dataset"], "seed": r["seed"], "variant": r["variant"], "outer_steps": len(r["history"]),
                     "val_loss_first": r["history"][0]["val_loss"], "val_loss_last": last["val_loss"],
                     "knots_visited": last["knots_visited_total"]})
    atomic_write_text(out / "learned.json", json.dumps(index))
    publish_table(rows, track=TRACK, stage="metalearn", description="Meta-learning runs (Algorithm 1)")
    return {"runs": len(results)}


# ------------------------------------------------------------------------------------- train
def train_config(train: dict, finetune: bool = False) -> TrainConfig:
    """The :class:`TrainConfig` of :func:`train_context`."""
    return TrainConfig(steps=train["steps"], batch_size=train["batch_size"], optimizer=train["optimizer"], lr=train["lr"],
                       weight_decay=train["weight_decay"], eval_every=train["eval_every"], patience=train["patience"],
                       train_activations=finetune)


def architectures(params: dict, seed: int) -> list[tuple[int, int]]:
    """The search budget's architectures for one seed: ``n_arch`` (depth, width) pairs drawn
    without replacement from ``depths x widths`` (all of them when ``n_arch`` covers the grid),
    the same for every family (a paired comparison)."""
    grid = [(d, w) for d in params["depths"] for w in params["widths"]]
    if params["n_arch"] >= len(grid):
        return grid
    rng = np.random.default_rng(seed)
    picks = sorted(rng.choice(len(grid), size=params["n_arch"], replace=False).tolist())
    return [grid[i] for i in picks]


def iaf_options(params: dict) -> list[dict]:
    """The IAF options of the search: frozen meta-learned IAFs (on their meta-learning grid), and
    IAFs fine-tuned with the weights on each grid of ``iaf_knots`` (the meta-learned functions
    refined onto it, :meth:`pipeline.nn.InputActivations.refined`)."""
    options = []
    for finetune in params["finetune"]:
        if finetune:
            options += [{"finetune": True, "iaf_knots": k} for k in params["iaf_knots"]]
        else:
            options.append({"finetune": False})
    return options


def family_configs(family: str, params: dict, seed: int) -> list[dict]:
    """Every config of a family's search for one seed (see :func:`architectures`)."""
    archs = architectures(params, seed)
    if family == "iaf_linear":
        return [{"variant": "iaf_linear", "depth": 0, "width": 0, **o} for o in iaf_options(params)]
    if family == "mlp_tanh_scaled":
        return [{"depth": d, "width": w, "alpha": float(a)} for d, w in archs for a in params["alphas"]]
    if family == "mlp_af":
        return [{"variant": v, "depth": d, "width": w} for d, w in archs for v in params["af_variants"]]
    if family in ("iaf_relu", "iaf_af"):
        return [{"variant": family, "depth": d, "width": w, **o} for d, w in archs for o in iaf_options(params)]
    return [{"depth": d, "width": w} for d, w in archs]


def build_config_model(family: str, config: dict, learned: dict | None, data, seed: int) -> torch.nn.Module:
    """The model of one config of a family, initialised from ``seed`` (every config of a seed
    starts from the same draw: a paired comparison). Drawn under :func:`pipeline.nn.seeded`: units
    run in threads, and a bare ``torch.manual_seed`` would interleave their draws."""
    with seeded(seed):
        # iaf_linear has no hidden layer (depth and width 0 in its config; build_model ignores them)
        return build_model(family, data.X_train.shape[1], data.n_classes, max(config["depth"], 1),
                           max(config["width"], 1), alpha=config.get("alpha"), learned=learned,
                           finetune=bool(config.get("finetune")), iaf_knots=config.get("iaf_knots"))


def train_config_row(family: str, config: dict, learned: dict | None, data, train: dict, seed: int,
                     snapshots: bool = False) -> dict:
    """Build and train one config of a family; returns its metrics (and the model with
    ``snapshots``). Gives the model :func:`train_config_rows` gives for the same config."""
    model = build_config_model(family, config, learned, data, seed)
    return fit_network(model, data, train_config(train, bool(config.get("finetune"))), seed, tv=train["tv"],
                       snapshots=snapshots)


def train_config_rows(family: str, configs: list[dict], learned: dict, data, train: dict, seed: int) -> list[dict]:
    """Build and train every config of a family on one split (``learned``: the variants'
    activations by variant name); configs of one architecture and fine-tuning option (differing
    in alpha, AF variant values) train as one population (:func:`pipeline.fit.tabular.fit_networks`),
    each with its own early stopping and checkpoint. Returns the metrics per config, in order."""
    models = [build_config_model(family, c, learned.get(c.get("variant")), data, seed) for c in configs]
    train_configs = [train_config(train, bool(c.get("finetune"))) for c in configs]
    return fit_networks(models, data, train_configs, seed, tv=train["tv"])


@unit_task(task_run_name="train-{dataset}-{family}-s{seed}-{tag}", code=MODEL_CODE)
def family_unit(dataset: str, seed: int, family: str, configs: list[dict], learned: dict, data: dict, train: dict,
                tag: str = "search") -> dict:
    """Train every config of one family on one dataset and seed (``learned``: the variants'
    activations by variant name), the configs that share an architecture as one population."""
    _threads(data)
    split = load_split(dataset, seed, data, "network")
    results = train_config_rows(family, configs, learned, split, train, seed)
    return {"rows": config_rows(dataset, seed, family, configs, results, tag)}


def config_rows(dataset: str, seed: int, family: str, configs: list[dict], results: list[dict], tag: str) -> list[dict]:
    """The rows of ``runs.json`` for trained configs of a family (``tag``: the row's ``purpose``)."""
    return [{"dataset": dataset, "seed": seed, "family": family, "purpose": tag, "variant": config.get("variant"),
             "depth": config["depth"], "width": config["width"], "alpha": config.get("alpha"),
             "finetune": config.get("finetune"), "iaf_knots": config.get("iaf_knots"), **result}
            for config, result in zip(configs, results)]


@unit_task(task_run_name="trained-iafs-{dataset}-s{seed}", code=MODEL_CODE)
def trained_iaf_unit(dataset: str, seed: int, source: dict, learned: dict, data: dict, train: dict) -> dict:
    """The IAFs of the IAF & ReLU model the search selected for one split, as they ended training:
    retrain ``source`` (its config; training is deterministic on CPU, so this is the selected model,
    and the JSON records its validation and test accuracy to compare) and return its IAFs' JSON
    form (the meta-learned ones, fine-tuned with that model's weights when ``source`` says
    ``finetune``), which names the model they were trained in."""
    _threads(data)
    split = load_split(dataset, seed, data, "network")
    selected = train_config_row("iaf_relu", source, learned, split, train, seed, snapshots=True)  # snapshots: the model too
    iaf = next(m for m in selected["model"].modules() if isinstance(m, InputActivations))
    size = f"{source['depth']} x {source['width']}"
    how = f"fine-tuned on {iaf.n_knots} knots" if source.get("finetune") else "frozen as meta-learned"
    return iaf_to_dict(iaf, split.feature_names,
                       trained_on=f"{dataset} (seed {seed} training split): IAF & ReLU {size}, {how}",
                       params={"dataset": dataset, "seed": seed, "source_config": source,
                               "source_val_acc": selected["val_acc"], "source_test_acc": selected["test_acc"],
                               "train": train, "protocol": {**data["protocol"], "max_train": data["max_train"]}})


#: The variant name of Fig. 8's reused IAFs in ``runs.json`` (family ``iaf_relu``, purpose ``fig8``).
REUSED_IAF = "iaf_relu_trained"


@unit_task(task_run_name="reuse-iafs-{dataset}-s{seed}", code=MODEL_CODE)
def reuse_iaf_unit(dataset: str, seed: int, iaf: dict, configs: list[dict], data: dict, train: dict) -> dict:
    """Fig. 8's reused IAFs on one split: fresh ReLU MLPs of every Fig. 8 size (``configs``: depth,
    width) behind ``iaf`` (:func:`trained_iaf_unit`'s JSON for this split), frozen. Returns the rows
    (purpose ``fig8``, family ``iaf_relu``, variant :data:`REUSED_IAF`)."""
    _threads(data)
    split = load_split(dataset, seed, data, "network")
    reuse = [{"variant": REUSED_IAF, "depth": c["depth"], "width": c["width"], "finetune": False} for c in configs]
    results = train_config_rows("iaf_relu", reuse, {REUSED_IAF: {"af": None, "iaf": iaf}}, split, train, seed)
    return {"rows": config_rows(dataset, seed, "iaf_relu", reuse, results, "fig8")}


@unit_task(task_run_name="baseline-{dataset}-{model}-s{seed}", code=MODEL_CODE)
def baseline_unit(dataset: str, seed: int, model: str, data: dict, options: dict, tv: dict) -> dict:
    """One baseline's search on one dataset and seed, with the total variation of its class
    probabilities along the same paths as the networks' (network feature space, mapped to raw
    features for trees when the columns correspond)."""
    _threads(data)
    row, _ = _fit_baseline(dataset, seed, model, data, options, tv)
    return row


def baseline_options(model: str, params: dict) -> dict:
    """The search budget of one baseline (``tabular.baseline_search`` and the profile's counts)."""
    b = params["baseline_search"]
    return {
        "linear": {"Cs": b["linear_C"]},
        "knn": {"ks": b["knn_k"]},
        "xgboost": {"n_configs": params["xgboost_configs"], "n_estimators": b["xgboost_trees"],
                    "early_stopping_rounds": b["xgboost_early_stopping"]},
        "random_forest": {"n_configs": params["forest_configs"], "max_estimators": b["forest_max_trees"]},
    }[model]


def _fit_baseline(dataset: str, seed: int, model: str, data_ctx: dict, options: dict, tv_ctx: dict):
    from ..complexity import total_variation

    net = load_split(dataset, seed, data_ctx, "network")
    data = net if BASELINES[model] == "network" else load_split(dataset, seed, data_ctx, "tree")
    result = fit_baseline(model, data, seed=seed, **options)
    fmap = None
    X_paths = torch.as_tensor(net.X_train)
    if BASELINES[model] == "tree":
        fmap = FeatureMap.fit(net.X_train, data.X_train, net.feature_names, data.feature_names)
        if fmap is None:  # one-hot columns: paths in the raw feature space instead
            X_paths = torch.as_tensor(data.X_train)
    f = proba_function(result.estimator, fmap)
    tv = total_variation(f, X_paths.float(), n_paths=tv_ctx["n_paths"], n_points=tv_ctx["n_points"], seed=seed)
    summary = result.summary()
    row = {"dataset": dataset, "seed": seed, "family": model, "purpose": "search", "train_acc": summary["train_acc"],
           "val_acc": summary["val_acc"], "test_acc": summary["test_acc"], "tv": tv, "params": summary["params"],
           "trials": summary["trials"], "seconds": summary["seconds"]}
    return row, (result, fmap, f)


def fig8_configs(params: dict) -> list[dict]:
    return [{"depth": d, "width": w} for d in params["fig8"]["depths"] for w in params["fig8"]["widths"]]


@flow(name="tabular-train", log_prints=True)
def train_flow(params: dict, datasets_path: str, learned_path: str, runs_path: str, metrics_path: str,
               summary_path: str, trained_iafs_dir: str) -> dict:
    """Run the baselines and every network config of the search budget on every available dataset
    and seed, plus the reuse runs of Fig. 8 (the AF learned from ReLU; then, once the search has
    selected them, the IAFs of the selected IAF & ReLU models); write all runs, the IAFs of every
    selected IAF & ReLU model, the metrics of the output contract and the report's summary."""
    info = json.loads(Path(datasets_path).read_text())
    learned_all = json.loads(Path(learned_path).read_text())
    train = train_context(params)
    submissions = []
    with gpu_placement(params["runner"]):
        for d in info["available"]:
            data = data_context(params, d)
            for s in params["seeds"]:
                for model in params["baselines"]:
                    submissions.append(baseline_unit.submit(d, s, model, data, baseline_options(model, params), params["tv"]))
                for family in params["families"]:
                    learned = {v: learned_all[d][str(s)][v]["learned"] for v in FAMILY_VARIANTS.get(family, ())
                               if v in learned_all.get(d, {}).get(str(s), {})}
                    submissions.append(family_unit.submit(d, s, family, family_configs(family, params, s), learned, data, train))
        focus = info["focus"]["fig8"]
        if focus is not None:
            data = data_context(params, focus)
            for s in params["fig8"]["seeds"]:
                learned = {"af_relu": learned_all[focus][str(s)]["af_relu"]["learned"]} if str(s) in learned_all.get(focus, {}) else {}
                if not learned:
                    continue
                configs = fig8_configs(params)
                submissions.append(family_unit.submit(focus, s, "mlp_relu", configs, {}, data, train, tag="fig8"))
                submissions.append(family_unit.submit(focus, s, "mlp_af", [{**c, "variant": "af_relu"} for c in configs],
                                                      learned, data, train, tag="fig8"))
        results = [f.result() for f in track(submissions, desc="tabular: training units")]
    rows = []
    for r in results:
        rows += r["rows"] if "rows" in r else [r]
    trained_iafs = selected_iafs(params, info, learned_all, rows)
    for (d, s), spec in trained_iafs.items():
        atomic_write_text(Path(trained_iafs_dir) / d / f"iaf_relu.s{s}.json", json.dumps(spec, indent=1))
    for r in reuse_trained_iafs(params, info, trained_iafs):
        rows += r["rows"]
    runs = {"profile": params["profile"], "seeds": params["seeds"], "runs": rows}
    atomic_write_text(Path(runs_path), json.dumps(runs))
    metrics = summarise([r for r in rows if r["purpose"] == "search"])
    atomic_write_text(Path(metrics_path), json.dumps(metrics, indent=1, sort_keys=True))
    summary = summary_tables(metrics, rows, info, meta=params["meta"])
    atomic_write_text(Path(summary_path), json.dumps(summary, indent=1))
    table = [{"dataset": d, "model": m, **{k: v[k] for k in ("test_acc", "test_acc_std", "n_seeds", "tv")}}
             for d, models in metrics.items() for m, v in models.items()]
    publish_table(table, track=TRACK, stage="train", description="Test accuracy (selected on validation) and TV")
    publish_markdown(markdown_table(table), track=TRACK, stage="train")
    return summary["acceptance"]


def selected_iafs(params: dict, info: dict, learned_all: dict, rows: list[dict]) -> dict[tuple[str, int], dict]:
    """The IAFs of the IAF & ReLU model selected on validation for every dataset and seed whose
    search ran (:func:`trained_iaf_unit`), by (dataset, seed)."""
    if "iaf_relu" not in params["families"]:
        return {}
    best = select_per_seed([r for r in rows if r["purpose"] == "search" and r["family"] == "iaf_relu"])
    keys = [(d, s) for d in info["available"] for s in params["seeds"] if (d, "iaf_relu", s) in best]
    train = train_context(params)
    with gpu_placement(params["runner"]):
        futures = [trained_iaf_unit.submit(d, s, run_config(best[(d, "iaf_relu", s)]),
                                           learned_all[d][str(s)]["iaf_relu"]["learned"], data_context(params, d), train)
                   for d, s in keys]
        return dict(zip(keys, [f.result() for f in track(futures, desc="tabular: IAFs of the selected IAF & ReLU models")]))


def reuse_trained_iafs(params: dict, info: dict, trained_iafs: dict[tuple[str, int], dict]) -> list[dict]:
    """Fig. 8's IAF reuse on the focus dataset: :func:`reuse_iaf_unit` for each Fig. 8 seed that has
    trained IAFs; returns the units' results."""
    focus = info["focus"]["fig8"]
    seeds = [s for s in params["fig8"]["seeds"] if (focus, s) in trained_iafs]
    if not seeds:
        return []
    data, train = data_context(params, focus), train_context(params)
    with gpu_placement(params["runner"]):
        futures = [reuse_iaf_unit.submit(focus, s, trained_iafs[(focus, s)], fig8_configs(params), data, train)
                   for s in seeds]
        return [f.result() for f in track(futures, desc="tabular: Fig. 8 reuse of the selected IAFs")]


# -------------------------------------------------------------------------------- complexity
def _probability_column(n_classes: int) -> int:
    return 1 if n_classes == 2 else 0


def _slice_points(n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed + 1000)
    return rng.choice(n, size=5, replace=False).tolist()


@unit_task(task_run_name="views-{dataset}-s{seed}", code=MODEL_CODE)
def views_unit(dataset: str, seed: int, selected: dict, learned: dict, data_ctx: dict, train: dict, xgboost: dict,
               landscape: dict) -> dict:
    """Fig. 7 on one dataset and seed: retrain the selected config of each network family with its
    trajectory recorded (ReLU, TanH, AF, the best IAF family) and refit the selected XGBoost; return
    1-D slices (two lines through training points), 2-D slices (the plane through three training
    points), and for the networks complexity landscapes over the trajectory plane and a random
    filter-normalised plane around the solution."""
    from ..complexity import complexity_landscape, random_plane, slice_1d, slice_2d, total_variation, trajectory_plane

    _threads(data_ctx)
    data = load_split(dataset, seed, data_ctx, "network")
    X = torch.as_tensor(data.X_train, dtype=torch.float32)
    col = _probability_column(data.n_classes)
    idx = _slice_points(X.shape[0], seed)
    land = landscape
    R = land["resolution"]
    functions: dict[str, Any] = {}
    out: dict[str, Any] = {"dataset": dataset, "seed": seed, "points": idx, "class_column": col, "models": {},
                           "landscapes": {}}
    for name, row in selected.items():
        if name == "xgboost":
            continue
        family = row["family"]
        result = train_config_row(family, row, learned.get(row.get("variant")), data, train, seed, snapshots=True)
        model = result["model"]
        model.eval()
        functions[name] = softmax_function(model)
        out["models"][name] = {"family": family, "config": run_config(row), "test_acc": result["test_acc"], "tv": result["tv"]}
        trained_iafs = [m for m in model.modules() if isinstance(m, InputActivations)]
        if trained_iafs:  # the IAFs as the selected model uses them (fine-tuned ones differ from the meta-learned)
            out["models"][name]["iaf"] = iaf_to_dict(trained_iafs[0], data.feature_names,
                                                     trained_on=f"{dataset} (seed {seed}), selected {family} model")
        solution = {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}
        trajectory = [t for t in result["trajectory"] if set(t) == set(solution)]
        views = {}
        if len(trajectory) >= 2:
            d1, d2, coords = trajectory_plane(trajectory, solution)
            a = np.linspace(-0.25, 1.25, R).tolist()
            span = max(0.25, 1.5 * float(coords[:, 1].abs().max()))
            b = np.linspace(-span, span, R).tolist()
            grid = complexity_landscape(model, solution, d1, d2, a, b, X, land["n_paths"], land["n_points"], seed)
            views["global"] = {"a": a, "b": b, "tv": grid.tolist(), "trajectory": coords.tolist()}
        r1, r2 = random_plane(solution, seed=seed)
        a = np.linspace(-1.0, 1.0, R).tolist()
        grid = complexity_landscape(model, solution, r1, r2, a, a, X, land["n_paths"], land["n_points"], seed)
        views["local"] = {"a": a, "b": a, "tv": grid.tolist()}
        out["landscapes"][name] = views
    if "xgboost" in selected:
        row, (result, fmap, f) = _fit_baseline(dataset, seed, "xgboost", data_ctx, xgboost, train["tv"])
        functions["xgboost"] = f
        out["models"]["xgboost"] = {"family": "xgboost", "config": row["params"], "test_acc": row["test_acc"], "tv": row["tv"]}
    slices_1d, slices_2d = {}, {}
    for name, f in functions.items():
        lines = []
        for p, q in ((idx[0], idx[1]), (idx[2], idx[3])):
            t, y = slice_1d(f, X[p], X[q], n_points=200, margin=0.25)
            lines.append({"t": t.tolist(), "y": y[:, col].tolist()})
        u, v, z = slice_2d(f, X[idx[0]], X[idx[1]], X[idx[4]], resolution=48, margin=0.25)
        slices_1d[name] = lines
        slices_2d[name] = {"u": u.tolist(), "v": v.tolist(), "z": z[..., col].tolist()}
    out["slices_1d"] = slices_1d
    out["slices_2d"] = slices_2d
    out["tv_check"] = {name: total_variation(f, X, n_paths=train["tv"]["n_paths"], n_points=train["tv"]["n_points"],
                                             seed=seed) for name, f in functions.items()}
    return out


VIEW_MODELS = ("mlp_relu", "mlp_tanh", "mlp_af", "iaf")


def view_selection(metrics: dict, runs: list[dict], dataset: str, seed: int) -> dict:
    """The configs Fig. 7 shows for one seed: the selected ReLU, TanH and AF models, the IAF family
    with the best mean validation accuracy, and XGBoost."""
    best = select_per_seed([r for r in runs if r["purpose"] == "search" and r["dataset"] == dataset])
    out = {}
    models = metrics.get(dataset, {})
    iafs = [m for m in IAF if m in models]
    iaf = max(iafs, key=lambda m: models[m]["val_acc"]) if iafs else None
    for name, key in (("mlp_relu", "mlp_relu"), ("mlp_tanh", "mlp_tanh"), ("mlp_af", "mlp_af"), ("iaf", iaf),
                      ("xgboost", "xgboost")):
        if key is not None and (dataset, key, seed) in best:
            row = best[(dataset, key, seed)]
            out[name] = {k: v for k, v in row.items() if k in ("family", "variant", "depth", "width", "alpha", "finetune", "iaf_knots")}
    return out


@flow(name="tabular-complexity", log_prints=True)
def complexity_flow(params: dict, datasets_path: str, learned_path: str, runs_path: str, metrics_path: str,
                    out_path: str) -> dict:
    """The views of Fig. 7 on the focus dataset (first seed); write ``views.json``."""
    info = json.loads(Path(datasets_path).read_text())
    dataset = info["focus"]["fig7"]
    out: dict[str, Any] = {"dataset": dataset}
    if dataset is not None:
        seed = params["seeds"][0]
        runs = json.loads(Path(runs_path).read_text())["runs"]
        metrics = json.loads(Path(metrics_path).read_text())
        learned_all = json.loads(Path(learned_path).read_text())
        selected = view_selection(metrics, runs, dataset, seed)
        learned = {v: spec["learned"] for v, spec in learned_all.get(dataset, {}).get(str(seed), {}).items()}
        with gpu_placement(params["runner"]):
            out = views_unit.submit(dataset, seed, selected, learned, data_context(params, dataset), train_context(params),
                                    baseline_options("xgboost", params), params["landscape"]).result()
        rows = [{"model": m, **{k: v[k] for k in ("family", "test_acc", "tv")}} for m, v in out["models"].items()]
        publish_table(rows, track=TRACK, stage="complexity", description=f"Models of Fig. 7 on {dataset}")
    atomic_write_text(Path(out_path), json.dumps(out))
    return {"dataset": dataset}


def load_learned(path: str | Path, dataset: str, seed: int, variant: str) -> dict:
    """The learned activations of one variant (JSON forms) from ``learned.json``; a convenience
    for notebooks: ``iaf_from_dict(load_learned(p, "electricity", 0, "iaf_relu")["iaf"])``."""
    index = json.loads(Path(path).read_text())
    try:
        return index[dataset][str(seed)][variant]["learned"]
    except KeyError:
        raise ValueError(f"{path}: no learned activations for {dataset!r} seed {seed} variant {variant!r}") from None


__all__ = [
    "MODEL_KEYS", "PROFILES", "SCHEMA", "check_names", "complexity_flow", "load_learned", "metalearn_flow",
    "prepare_flow", "resolve_params", "summarise", "summary_tables", "train_flow",
]
