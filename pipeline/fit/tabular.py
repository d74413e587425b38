"""Units of work of the tabular track (paper Sec. 3.3): the MLP model families of Fig. 5, the
meta-learning of their activations (Algorithm 1 on the training split), ordinary training with
early stopping, and the JSON forms of learned AFs and IAFs.

Model families (the fixed keys of ``reports/metrics/tabular.json``; the baselines are in
:mod:`pipeline.fit.baselines`):

========================  ======================================================================
``mlp_relu``              MLP, ReLU
``mlp_tanh``              MLP, TanH
``mlp_tanh_scaled``       MLP, tanh(alpha x), alpha selected on validation
``mlp_af``                MLP with a meta-learned spline AF: best on validation of the variants
                          ``af_relu`` (init ReLU, shared), ``af_zeros`` (init zeros, shared),
                          ``af_per_layer`` (init ReLU, one AF per layer)
``iaf_linear``            meta-learned IAFs (one spline per input feature) and a linear model
``iaf_relu``              IAFs meta-learned with, and put in front of, a ReLU MLP
``iaf_af``                IAFs and a shared AF meta-learned jointly, in front of an MLP with that AF
========================  ======================================================================

Every learned activation is meta-learned once per dataset and seed in an MLP of the meta
architecture (``depth`` x ``width``), then frozen and reused at every width and depth of the
search (paper Fig. 8). Per-layer AFs are mapped onto other depths by layer position (first to
first, last to last). The IAF families may also fine-tune their learned activations jointly with
the weights (``finetune``), an option selected on validation like any hyperparameter.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..complexity import total_variation
from ..meta import InnerOptimizer, MetaConfig, meta_learn
from ..nn import InputActivations, SplineActivation, TanhScaled, make_mlp, seeded
from .population import population_groups, train_population
from .train import TrainConfig, evaluate_model

__all__ = [
    "FAMILIES",
    "FAMILY_VARIANTS",
    "META_VARIANTS",
    "MODEL_KEYS",
    "MetaSettings",
    "build_model",
    "fit_network",
    "fit_networks",
    "iaf_from_dict",
    "iaf_to_dict",
    "learn_activations",
    "per_layer_for_depth",
    "softmax_function",
]

#: The network families, in the order of the paper's Fig. 5.
FAMILIES = ("mlp_relu", "mlp_tanh", "mlp_tanh_scaled", "mlp_af", "iaf_linear", "iaf_relu", "iaf_af")
#: All fixed model keys of the output contract (baselines first, as in Fig. 5).
MODEL_KEYS = ("linear", "knn", "xgboost", "random_forest") + FAMILIES

#: What each meta-learning variant learns: ``af`` the init of a spline AF (``None``: no AF, the
#: network's fixed ``activation``), ``per_layer`` one AF per layer, ``iaf`` input activations,
#: ``linear`` a linear model on top (depth 0).
META_VARIANTS: dict[str, dict[str, Any]] = {
    "af_relu": {"af": "relu", "per_layer": False, "iaf": False, "linear": False},
    "af_zeros": {"af": "zeros", "per_layer": False, "iaf": False, "linear": False},
    "af_per_layer": {"af": "relu", "per_layer": True, "iaf": False, "linear": False},
    "iaf_linear": {"af": None, "per_layer": False, "iaf": True, "linear": True},
    "iaf_relu": {"af": None, "per_layer": False, "iaf": True, "linear": False},
    "iaf_af": {"af": "relu", "per_layer": False, "iaf": True, "linear": False},
}
#: The meta-learned variants a family selects from (families not listed learn nothing).
FAMILY_VARIANTS: dict[str, tuple[str, ...]] = {
    "mlp_af": ("af_relu", "af_zeros", "af_per_layer"),
    "iaf_linear": ("iaf_linear",),
    "iaf_relu": ("iaf_relu",),
    "iaf_af": ("iaf_af",),
}


@dataclass(frozen=True)
class MetaSettings:
    """Algorithm 1 for a tabular set (values: params.yaml ``tabular.meta``; not in the paper).

    Attributes:
        depth, width: the MLP the activations are meta-learned in.
        n_max: outer steps (inner horizon 1..n_max).
        truncation: hypergradient through the last inner steps only.
        episodes_per_step: episodes per meta-gradient.
        episode_size: rows of T' and of V per episode (drawn from the training split).
        inner_lr: Adam learning rate of the inner loop (full batch of T').
        outer_lr: Adam learning rate of the activations.
        n_knots, interval: the spline grid of AFs and IAFs.
    """

    depth: int = 2
    width: int = 64
    n_max: int = 50
    truncation: int | None = 10
    episodes_per_step: int = 2
    episode_size: int | None = 1024
    inner_lr: float = 1e-2
    outer_lr: float = 1e-2
    n_knots: int = 49
    interval: tuple[float, float] = (-4.8, 4.8)

    def meta_config(self) -> MetaConfig:
        return MetaConfig(
            n_max=self.n_max, truncation=self.truncation, episodes_per_step=self.episodes_per_step,
            inner=InnerOptimizer("adam", lr=self.inner_lr), outer_lr=self.outer_lr, episode_size=self.episode_size,
            patience=None,
        )


def iaf_to_dict(iaf: InputActivations, feature_names: Sequence[str] | None = None, trained_on: str | None = None,
                params: dict | None = None) -> dict:
    """The JSON form of learned IAFs: DESIGN.md's activation JSON with one row of ``values`` per
    input feature (``values``: ``n_features`` lists of ``n_knots``), plus ``kind`` and
    ``feature_names``. Each row alone is a valid :class:`SplineActivation` (see :func:`iaf_from_dict`)."""
    return {
        "kind": "input_activations",
        "knots": iaf.knots.tolist(),
        "values": iaf.values.detach().cpu().double().tolist(),
        "interval": list(iaf.interval),
        "extrapolation": iaf.extrapolation,
        "init": iaf.init,
        "feature_names": list(feature_names) if feature_names is not None else None,
        "trained_on": trained_on,
        "params": params or {},
    }


def iaf_from_dict(spec: dict) -> InputActivations:
    """An :class:`InputActivations` from :func:`iaf_to_dict`'s JSON form.

    Example::

        >>> iaf = iaf_from_dict(iaf_to_dict(InputActivations(3)))
        >>> iaf(torch.tensor([[0.5, -1.0, 7.0]]))
        tensor([[ 0.5000, -1.0000,  7.0000]], grad_fn=<_SplineEvalBackward>)
    """
    values = torch.tensor(spec["values"], dtype=torch.float64)
    if values.dim() != 2:
        raise ValueError(f"IAF values must be n_features lists of n_knots values, got shape {tuple(values.shape)}")
    iaf = InputActivations(values.shape[0], values.shape[1], tuple(spec["interval"]), init="identity",
                           extrapolation=spec.get("extrapolation", "linear"))
    with torch.no_grad():
        iaf.values.copy_(values.float())
    iaf.init = spec.get("init", "identity")
    return iaf


def per_layer_for_depth(specs: Sequence[dict], depth: int) -> list[SplineActivation]:
    """One AF per hidden layer of a ``depth``-layer MLP from AFs learned per layer at another
    depth: layer ``i`` takes learned AF ``round(i (L - 1) / (depth - 1))`` (first to first, last
    to last; ``L`` learned AFs)."""
    if not specs:
        raise ValueError("per-layer AFs: no learned AF given")
    L = len(specs)
    picks = [0] * depth if depth == 1 else [round(i * (L - 1) / (depth - 1)) for i in range(depth)]
    return [SplineActivation.from_dict(specs[p]) for p in picks]


def _frozen(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def build_model(
    family: str, d_in: int, n_classes: int, depth: int, width: int, *, alpha: float | None = None,
    learned: dict | None = None, finetune: bool = False, iaf_knots: int | None = None,
) -> nn.Sequential:
    """A fresh model of a family (weights from the current torch seed).

    Args:
        family: one of :data:`FAMILIES`.
        depth, width: hidden layers and units (``iaf_linear`` ignores both: a linear model).
        alpha: the prefactor of ``mlp_tanh_scaled``.
        learned: the meta-learned activations of the family's variant: ``{"af": spec | [specs],
            "iaf": spec}`` (JSON forms), required by ``mlp_af`` and the ``iaf_*`` families.
        finetune: leave the learned activations trainable (train with
            ``TrainConfig(train_activations=True)``); by default they are frozen.
        iaf_knots: put the learned IAFs on a finer grid of this many knots first (the same
            functions, :meth:`InputActivations.refined`); ``None`` keeps the meta-learning grid.
            Only useful with ``finetune``: the extra knots let training carve narrow intervals
            of a feature, as a tree's splits do.

    **Shape**: the model maps ``(n, d_in)`` to logits ``(n, n_classes)``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}: use one of {FAMILIES}")
    learned = learned or {}
    needs = {"mlp_af": ("af",), "iaf_linear": ("iaf",), "iaf_relu": ("iaf",), "iaf_af": ("iaf", "af")}.get(family, ())
    missing = [k for k in needs if learned.get(k) is None]
    if missing:
        raise ValueError(f"family {family!r} needs learned activations {missing} (got keys {sorted(learned)})")
    if family == "mlp_tanh_scaled":
        if alpha is None:
            raise ValueError("mlp_tanh_scaled needs alpha")
        activation: Any = TanhScaled(alpha)
    elif family in ("mlp_af", "iaf_af"):
        af = learned["af"]
        activation = per_layer_for_depth(af, depth) if isinstance(af, list) else SplineActivation.from_dict(af)
    else:
        activation = {"mlp_tanh": "tanh"}.get(family, "relu")
    iaf = iaf_from_dict(learned["iaf"]) if "iaf" in needs else None
    if iaf_knots is not None:
        if iaf is None:
            raise ValueError(f"iaf_knots={iaf_knots!r} given for family {family!r}, which has no IAFs")
        if iaf_knots != iaf.n_knots:
            iaf = iaf.refined(iaf_knots)
    if family == "iaf_linear":
        depth = 0
    model = make_mlp(d_in, n_classes, depth, width, activation=activation, input_activation=iaf)
    if not finetune:
        for m in model.modules():
            if isinstance(m, (SplineActivation, InputActivations)):
                _frozen(m)
    return model


def _meta_template(variant: str, d_in: int, n_classes: int, settings: MetaSettings) -> nn.Sequential:
    spec = META_VARIANTS[variant]
    grid = dict(n_knots=settings.n_knots, interval=tuple(settings.interval))
    if spec["af"] is None:
        activation: Any = "relu"
    elif spec["per_layer"]:
        activation = [SplineActivation(init=spec["af"], **grid) for _ in range(settings.depth)]
    else:
        activation = SplineActivation(init=spec["af"], **grid)
    iaf = InputActivations(d_in, **grid) if spec["iaf"] else None
    depth = 0 if spec["linear"] else settings.depth
    return make_mlp(d_in, n_classes, depth, settings.width, activation=activation, input_activation=iaf)


def learn_activations(
    variant: str, X: Tensor, y: Tensor, n_classes: int, settings: MetaSettings, seed: int = 0,
    on_step: Callable[[dict], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Algorithm 1 on a training split for one variant of :data:`META_VARIANTS`.

    Returns ``({"af": spec | [specs] | None, "iaf": spec | None}, history)`` with the JSON forms
    of the learned modules (the activation JSON of DESIGN.md; IAFs per :func:`iaf_to_dict`).

    **Shape**: ``X`` ``(n, d)`` network features, ``y`` ``(n,)`` class ids.
    """
    if variant not in META_VARIANTS:
        raise ValueError(f"unknown meta-learning variant {variant!r}: use one of {sorted(META_VARIANTS)}")
    with seeded(seed):  # the template's own weights are never used (each episode draws fresh ones)
        model = _meta_template(variant, X.shape[1], n_classes, settings)
    result = meta_learn(model, X.float(), y.long(), config=settings.meta_config(), seed=seed, on_step=on_step)
    afs = [m for m in result.activations.values() if isinstance(m, SplineActivation)]
    iafs = [m for m in result.activations.values() if isinstance(m, InputActivations)]
    spec = META_VARIANTS[variant]
    learned = {
        "af": None if not afs else ([a.to_dict() for a in afs] if spec["per_layer"] else afs[0].to_dict()),
        "iaf": iaf_to_dict(iafs[0]) if iafs else None,
    }
    return learned, result.history


def softmax_function(model: nn.Module) -> Callable[[Tensor], Tensor]:
    """``x -> softmax(model(x))``: the class probabilities whose total variation the track reports
    (bounded like the baselines' ``predict_proba``, so complexities compare across model kinds)."""

    dtype = next(model.parameters()).dtype  # float32 in the pipeline; float64 in exactness tests

    def f(x: Tensor) -> Tensor:
        return torch.softmax(model(x.to(dtype)), dim=-1)

    return f


def fit_network(
    model: nn.Module, data: Any, config: TrainConfig, seed: int, *, tv: dict | None = None,
    snapshots: bool = False,
) -> dict:
    """Train ``model`` with early stopping on validation accuracy; measure test accuracy once at the
    end (not at every evaluation: it is never used for selection) and the total variation of the
    class probabilities along paths between training rows (``tv``: ``n_paths``, ``n_points``).

    With ``snapshots`` the result also holds ``"model"`` (the selected checkpoint) and
    ``"trajectory"`` (the trainable parameters at init and at every evaluation), for the complexity
    landscapes of Fig. 7.

    This is :func:`fit_networks` with one model: a model trains bit for bit as it does inside a
    population (on CPU), so retraining a config of the train stage alone (the Fig. 7 views) gives
    the model the stage selected.

    **Shape**: ``data.X_*`` ``(n, d)``, ``data.y_*`` ``(n,)``.
    """
    return fit_networks([model], data, [config], seed, tv=tv, snapshots=snapshots)[0]


def fit_networks(
    models: Sequence[nn.Module], data: Any, configs: Sequence[TrainConfig], seed: int, *, tv: dict | None = None,
    snapshots: bool = False,
) -> list[dict]:
    """:func:`fit_network` for every model of a search, the models that can train together
    (same architecture; configs that differ only in learning rate, weight decay or betas; any
    alpha, learned-AF values or initial weights) trained as one population
    (:func:`pipeline.fit.population.train_population`, with per-model early stopping and
    checkpoint selection: each model ends where ``train_model`` would end it). Minibatches come
    from ``seed`` for every model, as the loop of the search drew them. Returns one result dict
    per model, in order.

    **Shape**: ``data.X_*`` ``(n, d)``, ``data.y_*`` ``(n,)``.
    """
    from types import SimpleNamespace

    models, configs = list(models), list(configs)
    lean = SimpleNamespace(X_train=data.X_train, y_train=data.y_train, X_val=data.X_val, y_val=data.y_val,
                           X_test=data.X_test[:0], y_test=data.y_test[:0])
    results: list[dict | None] = [None] * len(models)
    for group in population_groups(models, configs):
        started = time.perf_counter()
        members = [models[i] for i in group]
        trajectories: list[list[dict[str, Tensor]]] = [[] for _ in group]
        on_state = None
        if snapshots:
            for k, m in enumerate(members):
                trajectories[k].append({n: v.detach().clone() for n, v in m.named_parameters() if v.requires_grad})
            on_state = lambda k, state: trajectories[k].append(state)  # noqa: E731
        trained = train_population(members, lean, "classification", [configs[i] for i in group], [seed] * len(group),
                                   on_state=on_state)
        # The population's time, shared equally: what each model cost.
        seconds = (time.perf_counter() - started) / len(group)
        for k, (i, result) in enumerate(zip(group, trained)):
            out = _measure(models[i], result, data, seed, tv or {})
            out["seconds"] = seconds + out.pop("measure_seconds")
            if snapshots:
                out["model"] = models[i]
                out["trajectory"] = trajectories[k]
            results[i] = out
    return results


def _measure(model: nn.Module, result, data: Any, seed: int, tv: dict) -> dict:
    """The result dict of a trained model: accuracies, test accuracy, total variation."""
    started = time.perf_counter()
    dtype = next(model.parameters()).dtype
    X_test = torch.as_tensor(data.X_test, dtype=dtype)
    y_test = torch.as_tensor(data.y_test, dtype=torch.long)
    _, test_acc = evaluate_model(model, X_test, y_test, "classification")
    return {
        "train_acc": result.metrics["train_acc"],
        "val_acc": result.metrics["val_acc"],
        "test_acc": test_acc,
        "best_step": result.best_step,
        "steps_run": result.curve[-1]["step"] if result.curve else 0,
        "tv": total_variation(softmax_function(model), torch.as_tensor(data.X_train, dtype=dtype),
                              n_paths=tv.get("n_paths", 100), n_points=tv.get("n_points", 100), seed=seed),
        "diverged": not math.isfinite(result.curve[-1]["train_loss"]) if result.curve else False,
        "measure_seconds": time.perf_counter() - started,
    }
