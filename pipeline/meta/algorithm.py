"""Algorithm 1 of the paper: bi-level meta-learning of activation functions with episodes.

Outer loop over ``n_tr = 1, 2, ..., n_max``: each outer step samples fresh episodes (a training
subset T', a validation subset V and fresh network weights), takes ``n_tr`` inner gradient steps
on the weights with the activation fixed, and takes one gradient step on the activation's
parameters through the unrolled inner steps (the hypergradient). Following PAPER.md's
implementation notes the hypergradient is truncated to the last ``truncation`` inner steps by
default (earlier steps run without a graph), non-finite meta-gradients are skipped, and early
stopping uses a smoothed validation loss with patience.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..fit.objectives import check_task, task_accuracy, task_loss
from ..nn import InputActivations, SplineActivation, seeded
from .inner import InnerOptimizer

log = logging.getLogger(__name__)

Params = dict[str, Tensor]
META_MODULE_TYPES = (SplineActivation, InputActivations)
#: What the outer step minimises on V (``MetaConfig.val_objective``).
VAL_OBJECTIVES = ("loss", "margin")
#: Which values :func:`meta_learn` returns (``MetaConfig.keep``).
KEEP = ("best", "last")


def normalized_margin_objective(output: Tensor, target: Tensor, eps: float = 1e-8) -> Tensor:
    """Minus the normalised classification margin on V: ``-mean(m) / mean(|m|)`` with
    ``m = logit_y - max_{k != y} logit_k`` (a value in [-1, 1]; -1 when every row is right).

    Why (not in the paper): with cross-entropy on V, a network that relies on a feature that is
    random in V (the other tile of a shortcut collage) is confidently wrong on half of V, and the
    cheapest way for the activation to lower V's cross-entropy is to make every output less
    confident, not to change which feature the network uses. This objective is invariant to the
    scale of the logits, so it rewards only a shift of the margins towards the labels: a smooth
    stand-in for V's accuracy.

    **Shape**: ``output`` ``(n, k)`` logits with ``k >= 2``, ``target`` ``(n,)`` class ids -> a scalar.

    Example::

        >>> out = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
        >>> float(normalized_margin_objective(out, torch.tensor([0, 1])))
        -1.0
    """
    if output.dim() != 2 or output.shape[1] < 2:
        raise ValueError(f"the margin objective needs (n, k >= 2) logits, got shape {tuple(output.shape)}")
    right = output.gather(1, target.reshape(-1, 1)).squeeze(1)
    others = output.scatter(1, target.reshape(-1, 1), float("-inf")).amax(dim=1)
    m = right - others
    return -m.mean() / (m.abs().mean() + eps)


def validation_objective(name: str, task: str, output: Tensor, target: Tensor) -> Tensor:
    """The outer objective on V: the task loss (``loss``) or :func:`normalized_margin_objective`."""
    if name == "loss":
        return task_loss(task, output, target)
    return normalized_margin_objective(output, target)


@dataclass(frozen=True)
class MetaConfig:
    """Settings of Algorithm 1. The paper states the algorithm, not these values; the defaults are
    this project's (PAPER.md implementation notes) and every one is a parameter.

    Attributes:
        n_max: outer steps; the inner horizon at outer step ``s`` is ``min(s, n_max)`` steps.
        truncation: hypergradient through only the last ``truncation`` inner steps (``None``:
            the whole unroll, which is chaotic beyond ~50 steps).
        episodes_per_step: episodes averaged into each meta-gradient.
        inner: the inner optimiser (``sgd``/``adam``, lr, weight decay).
        inner_batch_size: minibatch per inner step (``None``: full batch of T').
        outer_lr: Adam learning rate of the meta-parameters.
        max_meta_grad_norm: clip the meta-gradient to this norm (``None``: no clipping).
        train_fraction: share of the training rows in T' when no separate validation data is
            given (the rest forms V).
        episode_size: cap on the rows of T' and of V per episode (``None``: all).
        patience: stop when the smoothed validation loss has not improved for this many outer
            steps (``None``: run to ``n_max``); the best values are restored.
        smoothing: exponential smoothing of the validation loss (0: none).
        min_steps: outer steps before early stopping may fire.
        val_objective: what the outer step minimises on V: ``loss`` (the task loss, the paper's
            choice) or ``margin`` (classification only: :func:`normalized_margin_objective`, a
            scale-free stand-in for V's accuracy). Early stopping and the best step follow it.
        keep: which values to return: ``best`` (those of the outer step with the lowest smoothed
            V objective) or ``last`` (those after the final outer step). Why ``last`` exists: the
            V objective of different outer steps is measured after different horizons; when V is
            out of distribution (shortcut learning) a longer inner run fits the training shortcut
            harder and the V loss rises with the horizon whatever the activation, so ``best``
            picks the first steps, i.e. the initial activation.
        batch_episodes: run the episodes of one outer step as one batched computation (their
            weights stacked, one batched matmul per layer) when they share a problem and shapes
            and the model is a plain ``nn.Sequential`` of ``Linear`` layers and activations;
            otherwise one after the other. Same episodes, same result up to float rounding.
    """

    n_max: int = 150
    truncation: int | None = 10
    episodes_per_step: int = 2
    inner: InnerOptimizer = field(default_factory=InnerOptimizer)
    inner_batch_size: int | None = None
    outer_lr: float = 1e-2
    max_meta_grad_norm: float | None = None
    train_fraction: float = 0.5
    episode_size: int | None = None
    patience: int | None = 30
    smoothing: float = 0.9
    min_steps: int = 20
    val_objective: str = "loss"
    keep: str = "best"
    batch_episodes: bool = True

    def __post_init__(self):
        checks = {
            "n_max": self.n_max >= 1,
            "truncation": self.truncation is None or self.truncation >= 1,
            "episodes_per_step": self.episodes_per_step >= 1,
            "inner_batch_size": self.inner_batch_size is None or self.inner_batch_size >= 1,
            "outer_lr": self.outer_lr > 0,
            "train_fraction": 0 < self.train_fraction < 1,
            "episode_size": self.episode_size is None or self.episode_size >= 1,
            "patience": self.patience is None or self.patience >= 1,
            "smoothing": 0 <= self.smoothing < 1,
            "min_steps": self.min_steps >= 0,
            "val_objective": self.val_objective in VAL_OBJECTIVES,
            "keep": self.keep in KEEP,
            "batch_episodes": isinstance(self.batch_episodes, bool),
        }
        for key, ok in checks.items():
            if not ok:
                allowed = {"val_objective": f"; allowed: {VAL_OBJECTIVES}", "keep": f"; allowed: {KEEP}"}.get(key, "")
                raise ValueError(f"MetaConfig.{key} has an invalid value {getattr(self, key)!r}{allowed}")
        if isinstance(self.inner, dict):
            object.__setattr__(self, "inner", InnerOptimizer(**self.inner))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MetaResult:
    """What :func:`meta_learn` returns.

    Attributes:
        activations: the meta-learned modules by their name in the model, holding the best values
            (or the last ones: ``MetaConfig.keep``).
        history: one dict per outer step (``step``, ``horizon``, ``val_loss`` (the value of
            ``MetaConfig.val_objective``), ``val_loss_smooth``, ``val_acc``, ``meta_grad_norm``,
            ``knots_visited``, ``knots_visited_total``, ``skipped``, ``seconds``).
        best_step: the outer step whose values were kept (the last step with ``keep="last"``).
        stopped_early: whether patience ran out before ``n_max``.
    """

    activations: dict[str, nn.Module]
    history: list[dict]
    best_step: int
    stopped_early: bool

    @property
    def activation(self) -> nn.Module:
        """The single learned module (a shared AF, or an IAF alone)."""
        if len(self.activations) != 1:
            raise ValueError(f"{len(self.activations)} learned modules: use .activations {list(self.activations)}")
        return next(iter(self.activations.values()))


@dataclass
class MetaProblem:
    """One source of episodes: a template model holding the shared learnable activations, its
    training data, an optional validation set for V, and the task type.

    **Shape**

    - ``X``: ``(n, d)``; ``y``: ``(n,)``; ``X_val``: ``(m, d)``; ``y_val``: ``(m,)``.
    """

    model: nn.Module
    X: Tensor
    y: Tensor
    X_val: Tensor | None = None
    y_val: Tensor | None = None
    task: str = "classification"

    def __post_init__(self):
        check_task(self.task)
        self.X, self.y = torch.as_tensor(self.X), torch.as_tensor(self.y)
        if self.X.dim() != 2 or self.y.shape != (self.X.shape[0],):
            raise ValueError(f"X must be (n, d) and y (n,), got {tuple(self.X.shape)} and {tuple(self.y.shape)}")
        if (self.X_val is None) != (self.y_val is None):
            raise ValueError("give both X_val and y_val, or neither")
        if self.X_val is None and self.X.shape[0] < 4:
            raise ValueError(f"need at least 4 training rows to split episodes into T' and V, got {self.X.shape[0]}")
        if self.X_val is not None:
            self.X_val, self.y_val = torch.as_tensor(self.X_val), torch.as_tensor(self.y_val)


def meta_modules_of(model: nn.Module) -> dict[str, nn.Module]:
    """The learnable-activation modules of a model (splines and IAFs), each once, by name."""
    found: dict[str, nn.Module] = {}
    seen: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, META_MODULE_TYPES) and id(module) not in seen:
            seen.add(id(module))
            found[name] = module
    return found


def _split_parameters(model: nn.Module, meta: dict[str, nn.Module]) -> tuple[Params, Params]:
    meta_ids = {id(p) for m in meta.values() for p in m.parameters()}
    theta, psi = {}, {}
    for name, p in model.named_parameters():
        (psi if id(p) in meta_ids else theta)[name] = p
    return theta, psi


def fresh_weights(model: nn.Module, meta: dict[str, nn.Module], seed: int) -> Params:
    """New random values of every non-meta parameter (each layer's own ``reset_parameters``)."""
    work = copy.deepcopy(model)
    meta_names = set(meta)
    with seeded(seed):
        for name, module in work.named_modules():
            if name not in meta_names and hasattr(module, "reset_parameters"):
                module.reset_parameters()
    theta, _ = _split_parameters(work, meta_modules_of(work))
    return {k: v.detach() for k, v in theta.items()}


def unrolled_validation_loss(
    model: nn.Module,
    psi: Params,
    theta0: Params,
    train_batches: Iterable[tuple[Tensor, Tensor]],
    X_val: Tensor,
    y_val: Tensor,
    task: str,
    inner: InnerOptimizer,
    truncation: int | None = None,
    val_objective: str = "loss",
) -> tuple[Tensor, Tensor]:
    """One episode: inner steps on ``theta`` from ``theta0``, then the loss on V (``val_objective``:
    see :class:`MetaConfig`; the inner steps always use the task loss).

    The returned validation loss is a differentiable function of ``psi`` through the last
    ``truncation`` inner steps (all of them when ``None``); its gradient is the hypergradient.

    **Shape**

    - ``train_batches``: a list of ``(X, y)``, one per inner step (the horizon is its length).
    - Returns the scalar validation loss and the validation accuracy.
    """
    def forward(params: Params, x: Tensor) -> Tensor:
        return functional_call(model, params, (x,))

    theta = _unroll(forward, lambda out, y: task_loss(task, out, y), psi, theta0, list(train_batches), inner,
                    truncation)
    out = forward({**theta, **psi}, X_val)
    return validation_objective(val_objective, task, out, y_val), task_accuracy(task, out, y_val)


def unrolled_validation_loss_stacked(
    model: nn.Sequential,
    psi: Params,
    theta0: Params,
    train_batches: Iterable[tuple[Tensor, Tensor]],
    X_val: Tensor,
    y_val: Tensor,
    task: str,
    inner: InnerOptimizer,
    truncation: int | None = None,
    val_objective: str = "loss",
) -> tuple[Tensor, Tensor]:
    """:func:`unrolled_validation_loss` for ``E`` episodes of one model at once: their weights are
    stacked and every ``Linear`` runs as one batched matmul (:func:`stacked_forward`). The
    episodes stay independent: the inner loss is the sum of the episodes' losses, so each
    episode's weights get their own gradient, and the inner optimiser is elementwise.

    **Shape**

    - ``theta0``: each tensor ``(E, *shape)``; ``train_batches``: ``(X, y)`` of ``(E, n, d)`` and
      ``(E, n)`` per inner step; ``X_val``: ``(E, m, d)``; ``y_val``: ``(E, m)``.
    - Returns the validation losses ``(E,)`` and accuracies ``(E,)``.
    """
    def forward(params: Params, x: Tensor) -> Tensor:
        return stacked_forward(model, params, x)

    def summed_loss(out: Tensor, y: Tensor) -> Tensor:
        return sum(task_loss(task, out[e], y[e]) for e in range(out.shape[0]))

    theta = _unroll(forward, summed_loss, psi, theta0, list(train_batches), inner, truncation)
    out = forward({**theta, **psi}, X_val)
    losses = torch.stack([validation_objective(val_objective, task, out[e], y_val[e]) for e in range(out.shape[0])])
    accs = torch.stack([task_accuracy(task, out[e], y_val[e]) for e in range(out.shape[0])])
    return losses, accs


def _unroll(forward, loss_fn, psi: Params, theta0: Params, batches: list, inner: InnerOptimizer,
            truncation: int | None) -> Params:
    """The inner loop of an episode: ``theta`` after one optimiser step per batch, differentiable
    in ``psi`` through the last ``truncation`` steps (the earlier ones run without a graph)."""
    n_steps = len(batches)
    first_tracked = 0 if truncation is None else max(0, n_steps - truncation)
    psi_detached = {k: v.detach() for k, v in psi.items()}
    theta = {k: v.detach() for k, v in theta0.items()}
    state = inner.init(theta)
    for step, (Xb, yb) in enumerate(batches):
        tracked = step >= first_tracked
        if step == first_tracked:
            theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
            state = inner.detach_state(state)
        elif not tracked:
            theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
        with torch.enable_grad():
            loss = loss_fn(forward({**theta, **(psi if tracked else psi_detached)}, Xb), yb)
            grads = torch.autograd.grad(loss, list(theta.values()), create_graph=tracked)
        theta, state = inner.step(theta, dict(zip(theta, grads)), state)
        if not tracked:
            theta = {k: v.detach() for k, v in theta.items()}
            state = inner.detach_state(state)
    return theta


def stackable(model: nn.Module, meta: dict[str, nn.Module]) -> bool:
    """Whether :func:`stacked_forward` can run ``model``: an ``nn.Sequential`` whose children are
    ``Linear`` layers, modules whose parameters are all meta-parameters (learned activations), or
    modules without parameters."""
    if not isinstance(model, nn.Sequential):
        return False
    meta_ids = {id(p) for m in meta.values() for p in m.parameters()}
    return all(isinstance(child, nn.Linear) or all(id(p) in meta_ids for p in child.parameters())
               for child in model.children())


def stacked_forward(model: nn.Sequential, params: Params, x: Tensor) -> Tensor:
    """``E`` copies of a :func:`stackable` model at once: ``Linear`` weights from ``params``
    stacked ``(E, out, in)`` (biases ``(E, out)``), each applied to its own slice of ``x`` by a
    batched matmul; the other children (activations) elementwise over the whole stack, with their
    parameters from ``params`` (shared by the copies) under the model's parameter names.

    **Shape**: ``x`` ``(E, n, d_in)`` -> ``(E, n, d_out)``.
    """
    names = {id(p): n for n, p in model.named_parameters()}  # a module used twice: its first name
    # Not named_children(): it yields a module used at several positions (a shared AF) only once.
    for name, child in model._modules.items():
        if isinstance(child, nn.Linear):
            weight, bias = params[f"{name}.weight"].transpose(1, 2), params.get(f"{name}.bias")
            x = torch.bmm(x, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), x, weight)
            continue
        own = {local: params[names[id(p)]] for local, p in child.named_parameters()}
        x = functional_call(child, own, (x,)) if own else child(x)
    return x


def meta_learn(
    model: nn.Module,
    X: Tensor,
    y: Tensor,
    X_val: Tensor | None = None,
    y_val: Tensor | None = None,
    task: str = "classification",
    config: MetaConfig = MetaConfig(),
    seed: int = 0,
    meta_modules: dict[str, nn.Module] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> MetaResult:
    """Meta-learn the activation modules of ``model`` with Algorithm 1 (paper Sec. 2.3).

    ``model`` is a template: every episode replaces its ordinary weights with fresh random ones
    (each layer's ``reset_parameters``), so only the architecture matters. The learnable
    activations inside it (every :class:`SplineActivation` and :class:`InputActivations` unless
    ``meta_modules`` names others) are trained in place and hold the best values at the end.

    Args:
        model: e.g. ``make_mlp(d, k, depth, width, activation=SplineActivation())``.
        X, y: the training data; episodes draw T' (and V, unless given) from it.
        X_val, y_val: an optional validation set for V, possibly of another distribution
            (shortcut learning: V holds unambiguous examples).
        task: ``classification`` (``y`` class ids, long) or ``regression`` (``y`` float).
        config: :class:`MetaConfig`.
        seed: seeds episodes and fresh weights; the same seed gives the same result.
        on_step: called with each history row (progress reporting).

    **Shape**

    - ``X``: ``(n, d)``; ``y``: ``(n,)``; ``X_val``: ``(m, d)``; ``y_val``: ``(m,)``.

    Example::

        >>> from pipeline.nn import make_mlp, SplineActivation
        >>> X = torch.linspace(-1, 1, 64).unsqueeze(1); y = torch.sin(6 * X[:, 0])
        >>> model = make_mlp(1, 1, 1, 16, activation=SplineActivation(init="relu"))
        >>> result = meta_learn(model, X, y, task="regression", config=MetaConfig(n_max=3))
        >>> len(result.history), type(result.activation).__name__
        (3, 'SplineActivation')
    """
    problem = MetaProblem(model, X, y, X_val, y_val, task)
    meta = meta_modules if meta_modules is not None else meta_modules_of(model)
    return meta_learn_problems([problem], config, seed, meta, on_step)


def meta_learn_problems(
    problems: Sequence[MetaProblem],
    config: MetaConfig = MetaConfig(),
    seed: int = 0,
    meta_modules: dict[str, nn.Module] | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> MetaResult:
    """Algorithm 1 over several problems that share their learnable activations (the same module
    instances inside every problem's model), e.g. one AF for all algorithmic tasks at once
    (paper Sec. 4). Each episode draws its problem at random; a single problem is
    :func:`meta_learn`.
    """
    if not problems:
        raise ValueError("meta_learn_problems needs at least one MetaProblem")
    if config.val_objective == "margin" and any(p.task != "classification" for p in problems):
        raise ValueError("MetaConfig.val_objective='margin' needs classification problems; got tasks "
                         f"{sorted({p.task for p in problems})}: use val_objective='loss' for regression")
    meta = meta_modules if meta_modules is not None else meta_modules_of(problems[0].model)
    if not meta:
        raise ValueError("the model has no SplineActivation or InputActivations to meta-learn")
    shared = [p for m in meta.values() for p in m.parameters()]
    shared_ids = {id(p) for p in shared}
    named_psi = []  # per problem: the shared parameters under that model's names
    for problem in problems:
        names = {n: p for n, p in problem.model.named_parameters() if id(p) in shared_ids}
        if {id(p) for p in names.values()} != shared_ids:
            raise ValueError("every problem's model must contain the same learnable activation modules")
        named_psi.append(names)
    stack_ok = [config.batch_episodes and stackable(p.model, meta_modules_of(p.model)) for p in problems]
    outer = torch.optim.Adam(shared, lr=config.outer_lr)
    gen = torch.Generator().manual_seed(seed)
    best = {"loss": math.inf, "step": 0, "values": [p.detach().clone() for p in shared]}
    visited_total = [torch.zeros_like(p, dtype=torch.bool) for p in shared]
    smooth, since_best, history, stopped = None, 0, [], False

    for step in range(1, config.n_max + 1):
        started = time.perf_counter()
        horizon = step
        evaluated = [p.detach().clone() for p in shared]  # the values this step's V loss measures
        outer.zero_grad(set_to_none=True)
        episodes = [_draw_episode(problems, horizon, config, gen) for _ in range(config.episodes_per_step)]
        losses, accs = [], []
        for group in _episode_groups(episodes, problems, config, stack_ok):
            pr = problems[group[0]["which"]]
            if len(group) > 1:
                loss, acc = unrolled_validation_loss_stacked(
                    pr.model, named_psi[group[0]["which"]], _stack_dicts([e["theta0"] for e in group]),
                    _stack_batches([e["batches"] for e in group]),
                    torch.stack([e["X_val"] for e in group]), torch.stack([e["y_val"] for e in group]), pr.task,
                    config.inner, config.truncation, config.val_objective,
                )
            else:
                e = group[0]
                loss, acc = unrolled_validation_loss(
                    pr.model, named_psi[e["which"]], e["theta0"], e["batches"], e["X_val"], e["y_val"], pr.task,
                    config.inner, config.truncation, config.val_objective,
                )
                loss, acc = loss.reshape(1), acc.reshape(1)
            (loss.sum() / config.episodes_per_step).backward()
            losses += loss.tolist()
            accs += acc.tolist()
        grads = [p.grad for p in shared if p.grad is not None]
        grad_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item() if grads else 0.0
        skipped = not math.isfinite(grad_norm) or not all(math.isfinite(v) for v in losses)
        visited = [(p.grad != 0) if p.grad is not None else torch.zeros_like(p, dtype=torch.bool) for p in shared]
        if not skipped:
            if config.max_meta_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(shared, config.max_meta_grad_norm)
            outer.step()
            for total, now in zip(visited_total, visited):
                total |= now
        val_loss = sum(losses) / len(losses)
        if math.isfinite(val_loss):
            smooth = val_loss if smooth is None else config.smoothing * smooth + (1 - config.smoothing) * val_loss
        row = {
            "step": step,
            "horizon": horizon,
            "val_loss": val_loss,
            "val_loss_smooth": smooth,
            "val_acc": sum(accs) / len(accs),
            "meta_grad_norm": grad_norm,
            "knots_visited": _share(visited),
            "knots_visited_total": _share(visited_total),
            "skipped": skipped,
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        if on_step is not None:
            on_step(row)
        if step % 10 == 0 or step == config.n_max:
            log.info(
                "meta step %d/%d: val loss %.4f (smoothed %.4f), val acc %.3f, |g| %.3g, knots visited %.0f%%",
                step, config.n_max, val_loss, smooth if smooth is not None else math.nan,
                row["val_acc"], grad_norm, 100 * row["knots_visited_total"],
            )
        if smooth is not None and smooth < best["loss"]:
            best = {"loss": smooth, "step": step, "values": evaluated}
            since_best = 0
        else:
            since_best += 1
        if config.patience is not None and step >= config.min_steps and since_best >= config.patience:
            stopped = True
            break

    if config.keep == "last":  # the values after the last outer step are already in place
        return MetaResult(activations=dict(meta), history=history, best_step=len(history), stopped_early=stopped)
    with torch.no_grad():
        for p, value in zip(shared, best["values"]):
            p.copy_(value)
    return MetaResult(activations=dict(meta), history=history, best_step=best["step"], stopped_early=stopped)


def _share(masks: list[Tensor]) -> float:
    total = sum(m.numel() for m in masks)
    return float(sum(m.sum().item() for m in masks) / total) if total else 0.0


def _draw_episode(problems: Sequence[MetaProblem], horizon: int, config: MetaConfig, gen: torch.Generator) -> dict:
    """One episode's problem, T' batches, V rows and initial weights (the generator's draws in
    a fixed order, so that batched and one-by-one runs see the same episodes)."""
    which = int(torch.randint(len(problems), (1,), generator=gen)) if len(problems) > 1 else 0
    pr = problems[which]
    train_idx, val_idx = _episode_rows(pr.X.shape[0], None if pr.X_val is None else pr.X_val.shape[0], config, gen)
    Xv, yv = (pr.X, pr.y) if pr.X_val is None else (pr.X_val, pr.y_val)
    batches = _inner_batches(pr.X[train_idx], pr.y[train_idx], horizon, config.inner_batch_size, gen)
    theta0 = fresh_weights(pr.model, meta_modules_of(pr.model), seed=int(torch.randint(2**31 - 1, (1,), generator=gen)))
    return {"which": which, "batches": batches, "X_val": Xv[val_idx], "y_val": yv[val_idx], "theta0": theta0}


def _episode_groups(episodes: list[dict], problems: Sequence[MetaProblem], config: MetaConfig,
                    stack_ok: list[bool]) -> list[list[dict]]:
    """The episodes of one outer step, grouped into those that can run stacked (same problem, a
    stackable model, the same shapes of every batch and of V); each other episode on its own."""
    groups: dict[tuple, list[dict]] = {}
    singles = []
    for e in episodes:
        if not stack_ok[e["which"]]:
            singles.append([e])
            continue
        shapes = (e["which"], e["X_val"].shape, tuple((x.shape, y.shape) for x, y in e["batches"]))
        groups.setdefault(shapes, []).append(e)
    return list(groups.values()) + singles


def _stack_batches(per_episode: list[list[tuple[Tensor, Tensor]]]) -> list[tuple[Tensor, Tensor]]:
    """The inner batches of several episodes, stacked step by step (a full-batch episode repeats
    one batch: it is stacked once)."""
    stacked: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}
    out = []
    for step in zip(*per_episode):
        key = tuple(id(x) for x, _ in step)
        if key not in stacked:
            stacked[key] = (torch.stack([x for x, _ in step]), torch.stack([y for _, y in step]))
        out.append(stacked[key])
    return out


def _stack_dicts(dicts: list[Params]) -> Params:
    return {k: torch.stack([d[k] for d in dicts]) for k in dicts[0]}


def _episode_rows(n_train: int, n_val: int | None, config: MetaConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Row indices of T' (into the training data) and V (into the validation data, or the training
    data when there is none: then T' and V are disjoint)."""
    perm = torch.randperm(n_train, generator=gen)
    if n_val is None:
        n_t = min(max(1, round(config.train_fraction * n_train)), n_train - 1)
        train_idx, val_idx = perm[:n_t], perm[n_t:]
    else:
        train_idx, val_idx = perm, torch.randperm(n_val, generator=gen)
    if config.episode_size is not None:
        train_idx, val_idx = train_idx[: config.episode_size], val_idx[: config.episode_size]
    return train_idx, val_idx


def _inner_batches(X: Tensor, y: Tensor, n_steps: int, batch_size: int | None, gen: torch.Generator):
    if batch_size is None or batch_size >= X.shape[0]:
        return [(X, y)] * n_steps
    return [
        (X[idx], y[idx]) for idx in (torch.randperm(X.shape[0], generator=gen)[:batch_size] for _ in range(n_steps))
    ]
