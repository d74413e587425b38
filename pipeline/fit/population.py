"""Model populations: K networks of one architecture trained as one batched computation.

The paper's experiments train thousands of small MLPs (grids x seeds x datasets). Trained one at a
time, a small MLP spends most of its step in Python and in launching tiny kernels; a population
stacks the K models' parameters (``torch.func.stack_module_state`` style: one tensor of shape
``(K, *shape)`` per parameter), runs their forward passes as one batched computation, and
updates them with one batched optimiser step whose learning rate, weight decay and betas are
per-model tensors. The forward pass of an MLP is a ``baddbmm`` per layer; an MLP of Linears and
ReLU / tanh / ``tanh(alpha x)`` / frozen learned activations also gets its backward by hand into
reused buffers (:mod:`pipeline.fit.stacked_mlp`); other architectures go through
``vmap(functional_call)`` and autograd. Each model keeps its own minibatch stream, its own early stopping and its own
best checkpoint, so the population is exactly K runs of :func:`pipeline.fit.train.train_model`:

>>> results = train_population(models, data, "classification", configs, seeds)  # doctest: +SKIP
>>> # results[k] matches train_model(models[k], data, "classification", configs[k], seeds[k])

Per-model hyperparameters:

- optimiser settings: ``lr``, ``weight_decay``, ``betas`` (and ``target_accuracy`` and
  ``stop_after_target``: when a model's run ends) may differ between the :class:`TrainConfig` of
  the models; every other field must be equal;
- the models' own state: initial weights (seeds), a learned activation's knot values
  (:class:`SplineActivation`, :class:`InputActivations`), the ``alpha`` of :class:`TanhScaled`
  and the ``frequency`` of :class:`Sine` (these two are Python attributes; the population turns
  them into per-model tensors).

Models that stop early are dropped from the batch, so the remaining ones run faster.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import fields
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

import torch.nn.functional as F

from ..nn import InputActivations, Sine, SplineActivation, TanhScaled, seeded
from ..nn.spline import spline_eval_stacked
from .objectives import check_task, task_accuracy, task_loss
from .stacked_mlp import StackedMLP, Workspace
from .train import TrainConfig, TrainResult, _evaluate_at, as_tensors, trainable_parameters

log = logging.getLogger(__name__)

__all__ = ["IMPLEMENTED_FIELDS", "PER_MODEL_FIELDS", "population_configs", "population_groups", "train_population"]

#: The :class:`TrainConfig` fields that may differ between the models of one population.
PER_MODEL_FIELDS = ("lr", "weight_decay", "betas", "target_accuracy", "stop_after_target")
#: Every :class:`TrainConfig` field :func:`train_population` honours as ``train_model`` does. A
#: field added to TrainConfig later is rejected (unless at its default) until the population
#: implements it, instead of being silently ignored.
IMPLEMENTED_FIELDS = (
    "steps", "batch_size", "optimizer", "lr", "weight_decay", "betas", "eval_every", "patience",
    "target_accuracy", "train_activations", "keep_best", "dense_early_evals", "stop_after_target",
)
_EPS = 1e-8  # torch.optim.Adam(W)'s default, which train_model uses


class _TanhScaledT(nn.Module):
    """:class:`TanhScaled` with ``alpha`` as a buffer, so that it can differ between models."""

    def __init__(self, alpha: float, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("alpha", torch.tensor(alpha, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.alpha * x)


class _SineT(nn.Module):
    """:class:`Sine` with ``frequency`` as a buffer."""

    def __init__(self, frequency: float, dtype: torch.dtype):
        super().__init__()
        self.register_buffer("frequency", torch.tensor(frequency, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.frequency * x)


#: Modules with a Python-number hyperparameter, and the attribute the population stacks.
_SCALAR_MODULES: dict[type, tuple[str, type]] = {TanhScaled: ("alpha", _TanhScaledT), Sine: ("frequency", _SineT)}
_SPLINE_MODULES = (SplineActivation, InputActivations)
_UNSUPPORTED = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


def population_configs(base: TrainConfig = TrainConfig(), **per_model: Sequence[Any]) -> list[TrainConfig]:
    """One :class:`TrainConfig` per model from a shared ``base`` and per-model lists, e.g.
    ``population_configs(base, lr=[1e-3, 3e-3], weight_decay=[0.0, 0.1])`` (equal lengths)."""
    bad = set(per_model) - set(PER_MODEL_FIELDS)
    if bad:
        raise ValueError(f"only {PER_MODEL_FIELDS} may differ between models, got {sorted(bad)}")
    lengths = {k: len(v) for k, v in per_model.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-model lists must have the same length, got {lengths}")
    k = next(iter(lengths.values()), 1)
    return [TrainConfig(**{**base.to_dict(), **{f: v[i] for f, v in per_model.items()}}) for i in range(k)]


def _check_configs(configs: TrainConfig | Sequence[TrainConfig], k: int) -> list[TrainConfig]:
    configs = [configs] * k if isinstance(configs, TrainConfig) else list(configs)
    if len(configs) != k:
        raise ValueError(f"{len(configs)} configs for {k} models: give one TrainConfig or one per model")
    default = TrainConfig()
    for f in fields(TrainConfig):
        if f.name not in IMPLEMENTED_FIELDS:
            used = sorted({repr(getattr(c, f.name)) for c in configs if getattr(c, f.name) != getattr(default, f.name)})
            if used:
                raise ValueError(
                    f"TrainConfig.{f.name} = {used[0]} is not implemented by train_population; train these models "
                    f"with train_model, or leave {f.name} at its default {getattr(default, f.name)!r}"
                )
        if f.name in PER_MODEL_FIELDS:
            continue
        seen = {repr(getattr(c, f.name)) for c in configs}
        if len(seen) > 1:
            raise ValueError(
                f"TrainConfig.{f.name} must be equal for all models of a population, got {sorted(seen)}; "
                f"only {PER_MODEL_FIELDS} may differ"
            )
    return configs


def population_groups(models: Sequence[nn.Module], configs: Sequence[TrainConfig]) -> list[list[int]]:
    """The indices of ``models`` grouped into populations :func:`train_population` accepts: same
    architecture (module types and settings, parameter shapes; per-model numbers may differ) and
    configs equal but for :data:`PER_MODEL_FIELDS`. Groups keep the models' order and appear in the
    order of their first model.

    Example::

        >>> from pipeline.nn import make_mlp
        >>> models = [make_mlp(4, 2, 1, 8), make_mlp(4, 2, 1, 16), make_mlp(4, 2, 1, 8)]
        >>> population_groups(models, [TrainConfig(lr=1e-3), TrainConfig(), TrainConfig(lr=1e-2)])
        [[0, 2], [1]]
    """
    if len(models) != len(configs):
        raise ValueError(f"{len(configs)} configs for {len(models)} models: give one per model")
    groups: dict[str, list[int]] = {}
    for i, (model, config) in enumerate(zip(models, configs)):
        shared = {k: v for k, v in config.to_dict().items() if k not in PER_MODEL_FIELDS}
        groups.setdefault(repr((_module_signature(model), sorted(shared.items()))), []).append(i)
    return list(groups.values())


def _module_signature(model: nn.Module) -> list:
    """What must be equal between the models for one architecture: module types and settings,
    parameter and buffer names, shapes and dtypes (per-model numbers may differ)."""
    sig = []
    for name, m in model.named_modules():
        if isinstance(m, _UNSUPPORTED):
            raise ValueError(f"module {name!r} ({type(m).__name__}) is not supported in a population (randomness or running statistics)")
        if type(m) in _SCALAR_MODULES:
            setting = None
        elif isinstance(m, _SPLINE_MODULES):
            setting = (m.interval, m.extrapolation)
        else:
            setting = m.extra_repr()
        sig.append((name, type(m).__name__, setting))
    for kind, items in (("param", model.named_parameters()), ("buffer", model.named_buffers())):
        sig += [(kind, n, tuple(t.shape), t.dtype, t.device.type) for n, t in items]
    return sig


def _functional_base(model: nn.Module) -> tuple[nn.Module, dict[str, tuple[str, str]]]:
    """A copy of ``model`` whose scalar-hyperparameter modules hold their number as a buffer;
    returns it and ``{buffer name: (module name, attribute)}`` for the numbers to stack."""
    base = copy.deepcopy(model)
    replaced: dict[int, nn.Module] = {}
    scalars: dict[str, tuple[str, str]] = {}
    dtype = next((p.dtype for p in base.parameters()), torch.get_default_dtype())
    for name, module in list(base.named_modules(remove_duplicate=False)):
        for child_name, child in list(module._modules.items()):  # every slot, shared ones too
            if type(child) not in _SCALAR_MODULES:
                continue
            attr, twin = _SCALAR_MODULES[type(child)]
            if id(child) not in replaced:
                replaced[id(child)] = twin(getattr(child, attr), dtype)
                full = f"{name}.{child_name}" if name else child_name
                scalars[f"{full}.{attr}"] = (full, attr)
            setattr(module, child_name, replaced[id(child)])
    return base, scalars


def _stack(tensors: list[Tensor]) -> Tensor:
    return torch.stack([t.detach() for t in tensors])


_ELEMENTWISE = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid, nn.Identity: None}


def _stacked_plan(base: nn.Module) -> list[tuple] | None:
    """The layers of a plain ``nn.Sequential`` MLP (what :func:`pipeline.nn.make_mlp` builds) as
    operations on stacked tensors, or ``None`` when another architecture needs the generic
    ``vmap(functional_call)`` path. Names are the canonical (first) names of tied tensors."""
    if type(base) is not nn.Sequential:
        return None
    canon = {id(t): name for name, t in list(base.named_parameters()) + list(base.named_buffers())}
    plan: list[tuple] = []
    for m in base:
        if type(m) is nn.Linear:
            plan.append(("linear", canon[id(m.weight)], None if m.bias is None else canon[id(m.bias)]))
        elif type(m) in _ELEMENTWISE:
            if _ELEMENTWISE[type(m)] is not None:
                plan.append(("fn", _ELEMENTWISE[type(m)]))
        elif type(m) is nn.GELU:
            plan.append(("fn", lambda x, a=m.approximate: F.gelu(x, approximate=a)))
        elif type(m) is _TanhScaledT:
            plan.append(("scaled", canon[id(m.alpha)], torch.tanh))
        elif type(m) is _SineT:
            plan.append(("scaled", canon[id(m.frequency)], torch.sin))
        elif type(m) in (SplineActivation, InputActivations):
            plan.append(("spline", canon[id(m.values)], m.interval, m.extrapolation, m.knots))
        else:
            return None
    return plan


def _run_plan(plan: list[tuple], tensors: dict[str, Tensor], x: Tensor) -> Tensor:
    """The stacked forward pass: ``x`` is ``(K, batch, d)``; a Linear is one ``baddbmm``."""
    for op in plan:
        kind = op[0]
        if kind == "linear":
            w = tensors[op[1]].transpose(1, 2)
            x = torch.bmm(x, w) if op[2] is None else torch.baddbmm(tensors[op[2]].unsqueeze(1), x, w)
        elif kind == "fn":
            x = op[1](x)
        elif kind == "scaled":
            x = op[2](tensors[op[1]].view(-1, *([1] * (x.dim() - 1))) * x)
        else:
            _, name, interval, extrapolation, knots = op
            x = spline_eval_stacked(x, tensors[name].to(x.dtype), interval, extrapolation, knots)
    return x


class _OptimizerScalars:
    """The per-model numbers of the optimiser steps as ``(K,)`` tensors, computed as torch.optim
    computes them (Python double precision, then the parameters' dtype)."""

    def __init__(self, configs: list[TrainConfig], dtype: torch.dtype, device: torch.device):
        self.configs, self.dtype, self.device = configs, dtype, device
        cols = {"lr": [], "wd": [], "decay": [], "w1": [], "b2": [], "w2": []}
        for c in configs:
            cols["lr"].append(c.lr)
            cols["wd"].append(c.weight_decay)
            cols["decay"].append(1 - c.lr * c.weight_decay)
            cols["w1"].append(1 - c.betas[0])
            cols["b2"].append(c.betas[1])
            cols["w2"].append(1 - c.betas[1])
        self.static = {key: self._tensor(v) for key, v in cols.items()}

    def _tensor(self, values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=torch.float64).to(dtype=self.dtype, device=self.device)

    def at(self, step: int) -> dict[str, Any]:
        """The numbers of step ``step`` (1-based): the static ones and the bias corrections (and
        ``any_wd``: whether some model has weight decay)."""
        step_size = [c.lr / (1 - c.betas[0] ** step) for c in self.configs]
        bc2_sqrt = [(1 - c.betas[1] ** step) ** 0.5 for c in self.configs]
        return {**self.static, "step_size": self._tensor(step_size), "bc2_sqrt": self._tensor(bc2_sqrt),
                "any_wd": any(c.weight_decay != 0 for c in self.configs)}


class _Flat:
    """The trainable parameters of the K models as one ``(K, P)`` tensor (one row per model), and
    views of it shaped like each parameter: the optimiser then updates all parameters of all models
    in a handful of operations, and a model's state is one row."""

    def __init__(self, names: list[str], shapes: list[torch.Size]):
        self.names, self.shapes = names, shapes
        self.sizes = [int(math.prod(shape)) for shape in shapes]

    def pack(self, tensors: dict[str, Tensor]) -> Tensor:
        k = next(iter(tensors.values())).shape[0]
        return torch.cat([tensors[nm].reshape(k, -1) for nm in self.names], dim=1)

    def views(self, flat: Tensor) -> dict[str, Tensor]:
        out, start = {}, 0
        for nm, shape, size in zip(self.names, self.shapes, self.sizes):
            out[nm] = flat[:, start : start + size].view(flat.shape[0], *shape)
            start += size
        return out

    def leaves(self, flat: Tensor) -> dict[str, Tensor]:
        """Views of ``flat`` as autograd leaves: they share its memory, so an in-place update of
        ``flat`` updates them, while their gradients stay separate tensors."""
        return {nm: v.detach().requires_grad_() for nm, v in self.views(flat).items()}


def _copy_rows(store: Tensor, flat: Tensor, local: list[int], original: list[int]) -> None:
    """``store[original] = flat[local]`` (stacked rows: models)."""
    if local:
        index = torch.tensor(local, device=flat.device, dtype=torch.long)
        with torch.no_grad():
            store.index_copy_(0, torch.tensor(original, device=flat.device, dtype=torch.long), flat.detach().index_select(0, index))


def _optimizer_step(
    optimizer: str, p: Tensor, g: Tensor, m: Tensor, v: Tensor | None, hp: dict[str, Any], step: int, work: Workspace
) -> None:
    """One step of ``optimizer`` on stacked tensors ``(K, ...)`` with per-model settings, in the
    arithmetic of torch.optim's single-tensor implementations (AdamW, Adam, SGD with momentum 0.9
    as ``train_model`` configures them). Temporaries live in ``work`` (reused between steps)."""
    col = lambda key: hp[key].view(-1, *([1] * (p.dim() - 1)))  # noqa: E731
    tmp = work.get("opt_tmp", p.shape, p)
    if optimizer == "sgd":
        if hp["any_wd"]:  # torch.optim skips the term when weight_decay is 0
            g = torch.mul(p, col("wd"), out=tmp).add_(g)  # g + wd * p, as torch.optim
        if step == 1:
            m.copy_(g)
        else:
            m.mul_(0.9).add_(g)
        p.sub_(torch.mul(m, col("lr"), out=tmp))
        return
    if optimizer == "adamw":
        p.mul_(col("decay"))
    else:
        g = torch.mul(p, col("wd"), out=work.get("opt_grad", p.shape, p)).add_(g)
    m.lerp_(g, col("w1"))
    v.mul_(col("b2")).add_(torch.mul(g, col("w2"), out=tmp).mul_(g))  # addcmul's (w2 * g) * g
    denom = torch.sqrt(v, out=work.get("opt_denom", p.shape, p)).div_(col("bc2_sqrt")).add_(_EPS)
    p.sub_(torch.div(m, denom, out=tmp).mul_(col("step_size")))


def train_population(
    models: Sequence[nn.Module] | Callable[[int], nn.Module],
    data: Any,
    task: str = "classification",
    configs: TrainConfig | Sequence[TrainConfig] = TrainConfig(),
    seeds: Sequence[int] | None = None,
    on_eval: Callable[[int, dict], None] | None = None,
    eval_rows: int = 16384,
    on_state: Callable[[int, dict[str, Tensor]], None] | None = None,
) -> list[TrainResult]:
    """Train K models of one architecture together; the same as K calls of ``train_model``.

    Model ``k`` is trained as ``train_model(models[k], data, task, configs[k], seeds[k])`` would
    train it (same minibatches, same optimiser arithmetic, same early stopping and checkpoint
    selection), up to floating-point differences of batched kernels: weights agree to about
    1e-6 (tests: 1e-5).

    Args:
        models: K modules of identical architecture (trained in place: each ends at its kept
            checkpoint), or ``build(seed)`` called once per seed under ``pipeline.nn.seeded(seed)``
            (then ``seeds`` is required).
        data: ``X_train y_train X_val y_val X_test y_test`` (see ``train_model``).
        task: ``classification`` or ``regression``.
        configs: one :class:`TrainConfig` for all models, or one per model; only
            :data:`PER_MODEL_FIELDS` (``lr``, ``weight_decay``, ``betas``, ``target_accuracy``,
            ``stop_after_target``) may differ; a model that stops (patience, ``stop_after_target``,
            divergence) leaves the batch. See :func:`population_configs`.
        seeds: the minibatch seed of each model (default ``0 .. K-1``).
        on_eval: called as ``on_eval(k, row)`` with each model's curve rows.
        on_state: called as ``on_state(k, {name: tensor})`` with copies of model ``k``'s trainable
            parameters at each of its evaluations, after ``on_eval`` (a training trajectory).
        eval_rows: rows evaluated per chunk, summed over the models in the batch (bounds the memory
            of evaluation: ``eval_rows x width`` activations; each model gets at least 256 rows).

    Returns:
        One :class:`TrainResult` per model, in order.

    **Shape**

    - ``X_*``: ``(n, d)``; ``y_*``: ``(n,)``. Internally every parameter is stacked to
      ``(K, *shape)`` and a minibatch to ``(K, batch, d)``.

    Example::

        >>> from types import SimpleNamespace
        >>> from pipeline.nn import make_mlp
        >>> X = torch.randn(90, 2); y = (X[:, 0] > 0).long()
        >>> data = SimpleNamespace(X_train=X[:60], y_train=y[:60], X_val=X[60:75], y_val=y[60:75], X_test=X[75:], y_test=y[75:])
        >>> configs = population_configs(TrainConfig(steps=200), lr=[1e-2, 3e-3, 1e-3])
        >>> results = train_population(lambda seed: make_mlp(2, 2, 1, 16), data, configs=configs, seeds=[0, 1, 2])
        >>> [r.metrics["val_acc"] > 0.5 for r in results]
        [True, True, True]
    """
    check_task(task)
    if callable(models) and not isinstance(models, nn.Module):
        if seeds is None:
            raise ValueError("a model builder needs seeds: train_population(build, data, seeds=[...])")
        built = []
        for seed in seeds:
            with seeded(seed):  # thread-safe: the weights depend on the seed alone
                built.append(models(seed))
        models = built
    models = list(models)
    k_all = len(models)
    if k_all == 0:
        raise ValueError("an empty population: give at least one model")
    seeds = list(range(k_all)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != k_all:
        raise ValueError(f"{len(seeds)} seeds for {k_all} models")
    configs = _check_configs(configs, k_all)
    config = configs[0]
    signature = _module_signature(models[0])
    for i, m in enumerate(models[1:], 1):
        other = _module_signature(m)
        if other != signature:
            diff = next(((a, b) for a, b in zip(signature, other) if a != b), f"{len(other)} vs {len(signature)} entries")
            raise ValueError(f"model {i} differs in architecture from model 0: {diff}")

    device = next((p.device for p in models[0].parameters()), torch.device("cpu"))
    t = {key: v.to(device) for key, v in as_tensors(data, task).items()}
    n = t["X_train"].shape[0]

    # Stacked state: trainable parameters (K, ...), frozen parameters and buffers (K, ...).
    base, scalars = _functional_base(models[0])
    trainable_ids = {id(p) for p in trainable_parameters(models[0], config.train_activations)}
    named = [dict(m.named_parameters()) for m in models]
    names = list(named[0])
    train_names = [nm for nm in names if id(named[0][nm]) in trainable_ids]
    frozen_names = [nm for nm in names if nm not in train_names]
    layout = _Flat(train_names, [named[0][nm].shape for nm in train_names])
    stacked = {nm: _stack([named[i][nm] for i in range(k_all)]) for nm in train_names}
    fixed = {nm: _stack([named[i][nm] for i in range(k_all)]) for nm in frozen_names}
    buffers = [dict(m.named_buffers()) for m in models]
    fixed.update({nm: _stack([buffers[i][nm] for i in range(k_all)]) for nm in buffers[0]})
    dtype = next(iter(stacked.values())).dtype if stacked else torch.get_default_dtype()
    for key, (module_name, attr) in scalars.items():
        fixed[key] = torch.tensor([float(getattr(m.get_submodule(module_name), attr)) for m in models], dtype=dtype, device=device)

    fixed_all = dict(fixed)  # frozen during training: kept for the final evaluation
    flat = layout.pack(stacked) if stacked else torch.zeros(k_all, 0, dtype=dtype, device=device)
    params = layout.leaves(flat)
    del stacked

    plan = _stacked_plan(base)
    if plan is not None:  # an MLP: batched matmuls, no vmap

        def batched_forward(p, f, x):
            return _run_plan(plan, {**p, **f}, x)

        def shared_forward(p, f, x):
            k = next(iter(p.values())).shape[0] if p else next(iter(f.values())).shape[0]
            return _run_plan(plan, {**p, **f}, x.expand(k, *x.shape))

    else:

        def forward(p, f, x):
            return functional_call(base, {**p, **f}, (x,))

        batched_forward = vmap(forward, in_dims=(0, 0, 0))
        shared_forward = vmap(forward, in_dims=(0, 0, None))
    if plan is not None and task == "classification":

        def batched_loss(out, y):  # task_loss per model: the mean cross-entropy over its batch
            return F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1)

    else:
        batched_loss = vmap(lambda out, y: task_loss(task, out, y))
    # An MLP of Linears and ReLU / tanh / frozen-spline activations skips autograd (stacked_mlp).
    manual = StackedMLP.from_plan(plan, train_names) if plan is not None and train_names else None
    if manual is not None:

        def eval_forward(p, f, x):
            k = next(iter(p.values())).shape[0]
            return manual.forward({**p, **f}, x.expand(k, *x.shape))

    else:
        eval_forward = shared_forward
    opt = config.optimizer
    work = Workspace()
    moments = torch.zeros_like(flat)
    squares = torch.zeros_like(flat) if opt != "sgd" else None

    gens = [torch.Generator().manual_seed(s) for s in seeds]
    full_batch = config.batch_size is None or config.batch_size >= n
    alive = list(range(k_all))  # original indices of the models still training, in stack order
    best_val = [-math.inf] * k_all
    best_step = [0] * k_all
    since_best = [0] * k_all
    curves: list[list[dict]] = [[] for _ in range(k_all)]
    steps_to_target: list[int | None] = [None] * k_all
    at_target = [0] * k_all  # consecutive evaluations at >= target_accuracy (stop_after_target)
    best = flat.detach().clone()
    last_weights = flat.detach().clone()

    step = 0
    while step < config.steps and alive:
        # One block of steps up to the next evaluation. Every model draws its minibatch indices
        # for the block from its own generator: the same stream as train_model's per-step draws.
        first = last = step + 1
        while not _evaluate_at(last, config):
            last += 1
        block = last - first + 1
        if not full_batch:
            draws = torch.stack([torch.randint(n, (block, config.batch_size), generator=gens[i]) for i in alive]).to(device)
        optimizer_scalars = _OptimizerScalars([configs[i] for i in alive], dtype, device)
        if manual is not None:
            tensors = {**params, **fixed}  # views of flat: updated in place by the optimiser
        for j in range(block):
            step = first + j
            if manual is not None:  # hand-written backward into reused buffers (stacked_mlp)
                with torch.no_grad():
                    if full_batch:
                        xb, yb = t["X_train"].expand(len(alive), *t["X_train"].shape), t["y_train"].expand(len(alive), *t["y_train"].shape)
                    else:
                        rows = draws[:, j]
                        xb = torch.index_select(t["X_train"], 0, rows.flatten(), out=work.get("xb", (rows.numel(), t["X_train"].shape[1]), t["X_train"]))
                        xb, yb = xb.view(*rows.shape, -1), t["y_train"][rows]
                    losses, grad_of = manual.loss_and_grads(tensors, xb, yb, task)
                    grad = torch.cat([grad_of[nm].reshape(len(alive), -1) for nm in train_names], dim=1, out=work.get("grad", flat.shape, flat))
                    _optimizer_step(opt, flat, grad, moments, squares, optimizer_scalars.at(step), step, work)
                continue
            with torch.enable_grad():
                if full_batch:
                    out = shared_forward(params, fixed, t["X_train"])
                    yb = t["y_train"].expand(len(alive), *t["y_train"].shape)
                else:
                    rows = draws[:, j]
                    out = batched_forward(params, fixed, t["X_train"][rows])
                    yb = t["y_train"][rows]
                losses = batched_loss(out, yb)
                grads = torch.autograd.grad(losses.sum(), list(params.values())) if params else None
            if grads is not None:
                with torch.no_grad():
                    grad = torch.cat([g.reshape(len(alive), -1) for g in grads], dim=1)
                    _optimizer_step(opt, flat, grad, moments, squares, optimizer_scalars.at(step), step, work)
        # Evaluate every model still training (``last`` is an evaluation step of train_model).
        metrics = _evaluate(eval_forward, params, fixed, t, task, eval_rows)
        train_losses = losses.detach().tolist()
        stop_local: set[int] = set()
        improved_local: list[int] = []
        for j, i in enumerate(alive):
            row = {"step": step, "train_loss": train_losses[j]}
            for split in ("train", "val", "test"):
                row[f"{split}_acc"] = metrics[split][1][j]
            curves[i].append(row)
            if on_eval is not None:
                on_eval(i, row)
            if on_state is not None:
                on_state(i, {nm: v[j].detach().clone() for nm, v in params.items()})
            # The checks of train_model, in its order (patience ends a run before the others).
            target = configs[i].target_accuracy
            reached = target is not None and row["test_acc"] >= target
            if steps_to_target[i] is None and reached:
                steps_to_target[i] = step
            at_target[i] = at_target[i] + 1 if reached else 0
            if row["val_acc"] > best_val[i]:
                best_val[i], best_step[i], since_best[i] = row["val_acc"], step, 0
                improved_local.append(j)
            else:
                since_best[i] += 1
                if config.patience is not None and since_best[i] >= config.patience:
                    stop_local.add(j)
                    continue
            hold = configs[i].stop_after_target
            if hold is not None and at_target[i] >= hold:
                stop_local.add(j)
                continue
            if not math.isfinite(row["train_loss"]):
                log.warning("model %d diverged at step %d (loss %s); keeping step %d", i, step, row["train_loss"], best_step[i])
                stop_local.add(j)
        _copy_rows(best, flat, improved_local, [alive[j] for j in improved_local])
        if stop_local:  # drop the stopped models from the batch, keeping their last weights
            gone = sorted(stop_local)
            _copy_rows(last_weights, flat, gone, [alive[j] for j in gone])
            keep = [j for j in range(len(alive)) if j not in stop_local]
            alive = [alive[j] for j in keep]
            sel = torch.tensor(keep, device=device, dtype=torch.long)
            flat = flat.index_select(0, sel)
            params = layout.leaves(flat)
            fixed = {nm: f.index_select(0, sel) for nm, f in fixed.items()}
            moments = moments.index_select(0, sel)
            squares = squares.index_select(0, sel) if squares is not None else None

    # Restore every model's kept checkpoint (its initial weights if it never improved), or its last
    # weights when ``keep_best`` is off, and report the metrics of that checkpoint, as train_model.
    _copy_rows(last_weights, flat, list(range(len(alive))), alive)
    kept = {"best": layout.views(best), "last": layout.views(last_weights)}
    with torch.no_grad():
        for i in range(k_all):
            if not config.keep_best:
                best_step[i] = curves[i][-1]["step"]
                source = kept["last"]
            elif best_step[i] > 0:
                source = kept["best"]
            else:
                continue
            for nm in train_names:
                named[i][nm].copy_(source[nm][i])
    final_params = {nm: _stack([named[i][nm] for i in range(k_all)]) for nm in train_names}
    final = _evaluate(eval_forward, final_params, fixed_all, t, task, eval_rows)
    results = []
    for i, m in enumerate(models):
        m.eval()
        metrics = {}
        for split in ("train", "val", "test"):
            metrics[f"{split}_loss"], metrics[f"{split}_acc"] = final[split][0][i], final[split][1][i]
        results.append(TrainResult(model=m, best_step=best_step[i], metrics=metrics, curve=curves[i], steps_to_target=steps_to_target[i]))
    return results


@torch.no_grad()
def _evaluate(forward, params, fixed, t, task, eval_rows) -> dict[str, tuple[list[float], list[float]]]:
    """Per-model (loss, accuracy) on each split, in chunks: ``{split: (losses, accs)}``."""
    k = next(iter(params.values())).shape[0] if params else next(iter(fixed.values())).shape[0]
    chunk = max(256, eval_rows // max(1, k))
    out = {}
    for split in ("train", "val", "test"):
        X, y = t[f"X_{split}"], t[f"y_{split}"]
        n = X.shape[0]
        if n == 0:
            out[split] = ([math.nan] * k, [math.nan] * k)
            continue
        loss_sum = torch.zeros(k, dtype=torch.float64, device=X.device)
        correct = torch.zeros(k, dtype=torch.float64, device=X.device)
        for start in range(0, n, chunk):
            xb, yb = X[start : start + chunk], y[start : start + chunk]
            loss, acc = _loss_and_accuracy(task, forward(params, fixed, xb), yb)
            loss_sum += loss.double() * xb.shape[0]
            correct += (acc.double() * xb.shape[0]).round()  # the exact count of correct rows
        # The float32 count / n: what train_model's float32 mean over all rows gives, bit for bit
        # (also with several chunks), so that a threshold like target_accuracy = 0.95 decides alike.
        out[split] = ((loss_sum / n).tolist(), (correct.float() / n).tolist())
    return out


def _loss_and_accuracy(task: str, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`task_loss` and :func:`task_accuracy` of each model: ``out`` ``(K, n, d_out)``
    against the shared targets ``y`` ``(n,)``, as ``(K,)`` tensors (one batched pass, no vmap)."""
    k, n = out.shape[0], out.shape[1]
    if task == "classification":
        target = y.expand(k, n)
        loss = F.cross_entropy(out.flatten(0, 1), target.flatten(), reduction="none").view(k, n).mean(1)
        return loss, (out.argmax(-1) == target).float().mean(1)  # float32, as task_accuracy
    pred = out.reshape(k, n)
    return F.mse_loss(pred, y.expand(k, n), reduction="none").mean(1), (pred.round() == y).float().mean(1)
