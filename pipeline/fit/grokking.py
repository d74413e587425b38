"""Units of work of the algorithmic track (paper Sec. 3.5 and 4): meta-learn an AF on a task,
train a 1-hidden-layer MLP with a given activation, and describe a learned AF."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..complexity import total_variation
from ..meta import InnerOptimizer, MetaConfig, MetaProblem, meta_learn_problems
from ..nn import SplineActivation, make_activation, make_mlp, seeded
from .population import population_groups, train_population
from .train import TrainConfig

CONTROLS = ("relu", "gelu", "tanh", "sin", "random_spline")
#: The most ``models x training rows x width`` one CPU population of :func:`grok_runs` holds
#: (add_mod27 at train fraction 0.55, width 256: 5 models; width 64: 20).
CPU_POPULATION_ELEMENTS = 2**19


@dataclass(frozen=True)
class Recipe:
    """The training recipe of the grokking runs: a 1-hidden-layer MLP on one-hot operands, trained
    full batch with AdamW and strong weight decay (the setting in which ReLU MLPs grok)."""

    width: int = 256
    lr: float = 1e-2
    weight_decay: float = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    batch_size: int | None = None
    eval_every: int = 25

    def train_config(self, steps: int, stop_after_target: int | None = None) -> TrainConfig:
        """``stop_after_target``: end the run once test accuracy has held >= 95 % for this many
        evaluations (``None``: the whole budget, as the learning curves of Fig. 11 need)."""
        return TrainConfig(
            steps=steps, batch_size=self.batch_size, optimizer="adamw", lr=self.lr, weight_decay=self.weight_decay,
            betas=tuple(self.betas), eval_every=self.eval_every, patience=None, target_accuracy=0.95, keep_best=False,
            dense_early_evals=True, stop_after_target=stop_after_target,
        )

    def inner_optimizer(self) -> InnerOptimizer:
        return InnerOptimizer("adam", lr=self.lr, weight_decay=self.weight_decay, betas=tuple(self.betas))


def control_activation(name: str, seed: int = 0, frequency: float = 4.0, n_knots: int = 49,
                       interval: tuple[float, float] = (-4.8, 4.8)) -> nn.Module:
    """A non-learned activation for the grokking comparisons: ``relu gelu tanh``, ``sin``
    (sin(frequency x)) or ``random_spline`` (knot values drawn N(0, 1), seeded)."""
    if name == "sin":
        return make_activation("sin", frequency=frequency)
    if name == "random_spline":
        act = SplineActivation(n_knots, interval, init="zeros")
        with torch.no_grad():
            act.values.copy_(torch.randn(n_knots, generator=torch.Generator().manual_seed(seed)))
        act.init = f"random(seed={seed})"
        return act
    if name in ("relu", "gelu", "tanh"):
        return make_activation(name)
    raise ValueError(f"unknown control activation {name!r}: use one of {CONTROLS}")


def _one_hot_mlp(d_in: int, n_classes: int, width: int, activation) -> nn.Module:
    return make_mlp(d_in, n_classes, depth=1, width=width, activation=activation)


def learn_task_activation(
    problems: Sequence[tuple[Tensor, Tensor, int]], recipe: Recipe, meta: MetaConfig,
    init: str = "zeros", n_knots: int = 49, interval: tuple[float, float] = (-4.8, 4.8), seed: int = 0,
    on_step=None,
) -> tuple[SplineActivation, list[dict]]:
    """Algorithm 1 on the training pairs of one or more tasks, episodes being random T'/V splits
    of one task's pairs. Several tasks share one AF (the all-task AF of paper Sec. 4), each with
    its own 1-hidden-layer MLP (operand sizes may differ).

    **Shape**

    - each problem: ``X`` ``(n, 2p)`` one-hot operands, ``y`` ``(n,)`` class ids in ``[0, n_classes)``.
    """
    act = SplineActivation(n_knots, interval, init=init)
    metas = [MetaProblem(_one_hot_mlp(X.shape[1], k, recipe.width, act), X, y) for X, y, k in problems]
    result = meta_learn_problems(metas, config=meta, seed=seed, on_step=on_step)
    act.values.requires_grad_(False)
    return act, result.history


def grok_run(data: Any, n_classes: int, activation: nn.Module, recipe: Recipe, steps: int, seed: int,
             width: int | None = None, stop_after_target: int | None = None) -> dict:
    """Train a fresh 1-hidden-layer MLP with ``activation``; returns the learning curve, the first
    step with test accuracy >= 95 % (``None`` if never within ``steps``), final accuracies and TV
    (final: at the last step run, which is earlier than ``steps`` with ``stop_after_target``).

    :func:`grok_runs` with one run (a population of one). It trains as ``train_model`` would, up
    to rounding: the population's hand-written backward sums in another order than autograd, so in
    float32 the curves of the two drift apart over a long run (float64: equal to 1e-9 over the
    first hundreds of steps, tests/test_algorithmic.py)."""
    return grok_runs(data, n_classes, [activation], recipe, steps, seed, width, stop_after_target)[0]


def grok_runs(data: Any, n_classes: int, activations: Sequence[nn.Module], recipe: Recipe,
              steps: int | Sequence[int], seed: int, width: int | None = None,
              stop_after_target: int | None | Sequence[int | None] = None) -> list[dict]:
    """:func:`grok_run` for each of ``activations`` on the same data and seed, trained together:
    the runs that :func:`pipeline.fit.population.population_groups` puts in one population (the
    same activation type: e.g. every spline AF of a transfer row and the ``random_spline``
    control; each ReLU, GELU, tanh or sin run otherwise alone) train as one batched computation,
    each ending at its own ``stop_after_target``. Every model is drawn under
    ``pipeline.nn.seeded(seed)``, so each run starts where :func:`grok_run` starts it, and trains
    as in a population of its own (on this project's CPU machine the numbers were bit-identical;
    tests allow 1e-6). On a CPU the gain is small: full-batch steps of width-256 MLPs are
    compute-bound (ReLU about 1.4x per model at K >= 3, a spline AF about 1.2x), and large
    populations are cut (:data:`CPU_POPULATION_ELEMENTS`); see benchmarks/bench_algorithmic_train.py.

    Args:
        activations: one module per run (a frozen :class:`SplineActivation` or a control).
        steps, stop_after_target: one for all runs, or one per run.

    Returns:
        One result dict per run, in order (the keys of :func:`grok_run`).

    **Shape**: ``data.X_*`` ``(n, d_in)`` one-hot operands, ``data.y_*`` ``(n,)`` class ids.
    """
    activations = list(activations)
    k = len(activations)
    if k == 0:
        raise ValueError("grok_runs needs at least one activation")
    steps_each = [steps] * k if isinstance(steps, int) else list(steps)
    stops = [stop_after_target] * k if stop_after_target is None or isinstance(stop_after_target, int) else list(stop_after_target)
    if len(steps_each) != k or len(stops) != k:
        raise ValueError(f"{k} activations, {len(steps_each)} steps and {len(stops)} stop_after_target: give one, or one per activation")
    d_in = data.X_train.shape[1]
    models = []
    for activation in activations:
        with seeded(seed):  # the weights depend on the seed alone, also when runs share a process's threads
            models.append(_one_hot_mlp(d_in, n_classes, width or recipe.width, activation))
    configs = [recipe.train_config(s, stop) for s, stop in zip(steps_each, stops)]
    results: list = [None] * k
    # On a CPU a population's step is compute-bound here, and past a few models its (K, n, width)
    # activations fall out of the caches: 14 spline MLPs of width 256 on add_mod27 ran 2x slower
    # per model as one population than 3 did (benchmarks/bench_algorithmic_train.py). So CPU
    # populations are cut to CPU_POPULATION_ELEMENTS activations per layer.
    per_model = data.X_train.shape[0] * (width or recipe.width)
    cap = max(1, CPU_POPULATION_ELEMENTS // per_model) if next(models[0].parameters()).device.type == "cpu" else k
    for group in population_groups(models, configs):
        for start in range(0, len(group), cap):
            part = group[start : start + cap]
            trained = train_population([models[i] for i in part], data, "classification", [configs[i] for i in part],
                                       [seed] * len(part))
            for i, result in zip(part, trained):
                results[i] = result
    dtype = next(models[0].parameters()).dtype  # float32 (float64 in tests)
    X_train = torch.as_tensor(data.X_train).to(dtype)
    X_all = torch.cat([X_train, torch.as_tensor(data.X_test).to(dtype)])
    outs = []
    for model, activation, result in zip(models, activations, results):
        last = result.curve[-1]
        out = {
            "steps_to_95": result.steps_to_target,
            "final_train_acc": last["train_acc"],
            "final_test_acc": last["test_acc"],
            "tv": total_variation(model, X_all, seed=seed),
            "curve": result.curve,
        }
        if isinstance(activation, SplineActivation):
            out["character"] = describe_activation(activation, X_train, model[0])
        outs.append(out)
    return outs


@torch.no_grad()
def describe_activation(act: SplineActivation, model_input: Tensor | None = None, first_layer: nn.Linear | None = None) -> dict:
    """The measured character of a learned AF: its dominant frequency (cycles per unit of input,
    from the spectrum of the detrended knot values) and, when a first layer and inputs are given,
    the pre-activation range actually visited (1st-99th percentile)."""
    values = act.values.detach().double()
    knots = act.knots.double()
    lo, hi = knots[0].item(), knots[-1].item()
    if model_input is not None and first_layer is not None:
        pre = first_layer(model_input.to(first_layer.weight.dtype)).flatten()
        lo, hi = torch.quantile(pre, torch.tensor([0.01, 0.99], dtype=pre.dtype)).tolist()
    inside = (knots >= lo - 1e-9) & (knots <= hi + 1e-9)
    v, k = values[inside], knots[inside]
    frequency = float("nan")
    if v.numel() >= 4:
        trend = torch.linalg.lstsq(torch.stack([k, torch.ones_like(k)], 1), v.unsqueeze(1)).solution
        residual = v - (torch.stack([k, torch.ones_like(k)], 1) @ trend).squeeze(1)
        spectrum = torch.fft.rfft(residual).abs()
        spectrum[0] = 0
        step = (k[1] - k[0]).item()
        frequency = torch.fft.rfftfreq(v.numel(), d=step)[spectrum.argmax()].item()
    return {"visited_range": [lo, hi], "dominant_frequency": frequency, "knots_in_range": int(inside.sum())}
