"""Non-network baselines of the tabular track (paper Sec. 3.3, Fig. 5): logistic regression, k-NN,
XGBoost and a random forest, each selected on validation accuracy within a stated search budget.

Protocol (as Grinsztajn et al. 2022, whose benchmark the paper uses):

- linear models and k-NN see the *network* features (quantile-normal, one-hot), trees the *tree*
  features (raw values, ordinal codes): ``pipeline.data.prepare_dataset(..., features=...)``;
- :func:`fit_linear`: ``LogisticRegression`` over a grid of ``C``;
- :func:`fit_knn`: ``KNeighborsClassifier`` over a grid of ``k``;
- :func:`fit_xgboost`: XGBoost's defaults first, then a seeded random search in the Grinsztajn
  space (:func:`sample_xgboost_params`), every config with early stopping on the validation set;
- :func:`fit_random_forest`: scikit-learn's defaults first, then a seeded random search in the
  Grinsztajn space (:func:`sample_forest_params`), with the number of trees capped (CPU budget).

Every search is deterministic for a given seed (single-threaded fits, seeded estimators). Each
returns a :class:`BaselineResult` holding the selected, fitted estimator and every trial's
validation accuracy.

To measure a baseline's complexity on the same input paths as the networks, :class:`FeatureMap`
maps points of the network feature space back to the raw (tree) feature space, feature by feature,
through the monotone quantile transform observed on the training rows.

Example::

    >>> from pipeline.data import prepare_dataset
    >>> net = prepare_dataset("breast_cancer", seed=0, cache_dir=False, features="network")
    >>> result = fit_knn(net, ks=(5, 15), seed=0)
    >>> result.test_acc > 0.9, sorted(result.params)
    (True, ['k'])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "BASELINES",
    "BaselineResult",
    "FeatureMap",
    "fit_baseline",
    "fit_knn",
    "fit_linear",
    "fit_random_forest",
    "fit_xgboost",
    "proba_function",
    "sample_forest_params",
    "sample_xgboost_params",
]

#: The baselines by name, and the feature set each one is fitted on.
BASELINES = {"linear": "network", "knn": "network", "xgboost": "tree", "random_forest": "tree"}


@dataclass
class BaselineResult:
    """A selected baseline.

    Attributes:
        name: ``linear``, ``knn``, ``xgboost`` or ``random_forest``.
        estimator: the fitted estimator of the selected config.
        params: the selected config.
        train_acc, val_acc, test_acc: accuracies of the selected estimator.
        trials: one ``{"params", "val_acc", "seconds"}`` per config tried, in order.
        seconds: wall time of the whole search.
    """

    name: str
    estimator: Any
    params: dict
    train_acc: float
    val_acc: float
    test_acc: float
    trials: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        """A JSON-friendly dict (without the estimator)."""
        return {"model": self.name, "params": _plain(self.params), "train_acc": self.train_acc,
                "val_acc": self.val_acc, "test_acc": self.test_acc, "n_trials": len(self.trials),
                "trials": [{**t, "params": _plain(t["params"])} for t in self.trials], "seconds": self.seconds}


def _plain(params: dict) -> dict:
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}


def _accuracy(estimator, X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(estimator.predict(X) == y)) if len(y) else math.nan


def _check_data(data: Any) -> None:
    for split in ("train", "val", "test"):
        for part in ("X", "y"):
            if not hasattr(data, f"{part}_{split}"):
                raise ValueError(f"data must have X_train y_train X_val y_val X_test y_test; missing {part}_{split}")
    if data.X_train.ndim != 2 or len(data.y_train) != data.X_train.shape[0]:
        raise ValueError(f"X_train must be (n, d) with one label per row, got {data.X_train.shape} and {len(data.y_train)} labels")


def _select(name: str, data: Any, candidates: Sequence[dict], fit: Callable[[dict], Any]) -> BaselineResult:
    """Fit every candidate, keep the best validation accuracy (the first one on ties)."""
    _check_data(data)
    if not candidates:
        raise ValueError(f"{name}: the search budget is empty (no config to try)")
    started = time.perf_counter()
    best, trials = None, []
    for params in candidates:
        t0 = time.perf_counter()
        estimator = fit(params)
        val = _accuracy(estimator, data.X_val, data.y_val)
        trials.append({"params": dict(params), "val_acc": val, "seconds": time.perf_counter() - t0})
        if best is None or val > best[1]:
            best = (params, val, estimator)
    params, val, estimator = best
    return BaselineResult(
        name=name, estimator=estimator, params=dict(params), train_acc=_accuracy(estimator, data.X_train, data.y_train),
        val_acc=val, test_acc=_accuracy(estimator, data.X_test, data.y_test), trials=trials,
        seconds=time.perf_counter() - started,
    )


def fit_linear(data: Any, Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0), seed: int = 0, max_iter: int = 2000) -> BaselineResult:
    """Logistic regression (L2, lbfgs) on network features; ``C`` selected on validation accuracy.

    **Shape**: ``data.X_*`` ``(n, d)`` float, ``data.y_*`` ``(n,)`` class ids.
    """
    from sklearn.linear_model import LogisticRegression

    if not Cs or any(not (isinstance(c, (int, float)) and c > 0) for c in Cs):
        raise ValueError(f"Cs must be a non-empty list of positive numbers, got {Cs!r}")

    def fit(params):
        return LogisticRegression(C=params["C"], max_iter=max_iter, random_state=seed).fit(data.X_train, data.y_train)

    return _select("linear", data, [{"C": float(c)} for c in Cs], fit)


def fit_knn(data: Any, ks: Sequence[int] = (1, 3, 5, 10, 20, 50), seed: int = 0) -> BaselineResult:
    """k-nearest neighbours (Euclidean, uniform weights) on network features; ``k`` selected on
    validation accuracy (values above the number of training rows are dropped). ``seed`` is unused
    (k-NN is deterministic) and accepted for a uniform signature."""
    from sklearn.neighbors import KNeighborsClassifier

    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of positive ints, got {ks!r}")
    usable = [k for k in ks if k <= len(data.y_train)] or [min(ks)]

    def fit(params):
        return KNeighborsClassifier(n_neighbors=params["k"], algorithm="brute", n_jobs=1).fit(data.X_train, data.y_train)

    return _select("knn", data, [{"k": int(k)} for k in usable], fit)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def sample_xgboost_params(rng: np.random.Generator) -> dict:
    """One config of the Grinsztajn et al. XGBoost random-search space.

    ``max_depth`` 1..11, ``min_child_weight`` log-uniform int 1..100, ``subsample`` 0.5..1,
    ``learning_rate`` log-uniform 1e-5..0.7, ``colsample_bylevel`` and ``colsample_bytree``
    0.5..1, ``gamma`` log-uniform 1e-8..7, ``reg_lambda`` log-uniform 1..4, ``reg_alpha``
    log-uniform 1e-8..100. (The number of trees is set by early stopping.)
    """
    return {
        "max_depth": int(rng.integers(1, 12)),
        "min_child_weight": int(round(_log_uniform(rng, 1, 100))),
        "subsample": float(rng.uniform(0.5, 1.0)),
        "learning_rate": _log_uniform(rng, 1e-5, 0.7),
        "colsample_bylevel": float(rng.uniform(0.5, 1.0)),
        "colsample_bytree": float(rng.uniform(0.5, 1.0)),
        "gamma": _log_uniform(rng, 1e-8, 7),
        "reg_lambda": _log_uniform(rng, 1, 4),
        "reg_alpha": _log_uniform(rng, 1e-8, 100),
    }


def fit_xgboost(
    data: Any, n_configs: int = 10, seed: int = 0, n_estimators: int = 1000, early_stopping_rounds: int = 20,
) -> BaselineResult:
    """XGBoost on tree features: the library defaults, then ``n_configs - 1`` configs drawn from the
    Grinsztajn space (:func:`sample_xgboost_params`, seeded by ``seed``); each fit stops when the
    validation log-loss has not improved for ``early_stopping_rounds`` rounds (at most
    ``n_estimators`` trees) and predicts with its best iteration. Selection: validation accuracy."""
    import xgboost as xgb

    if isinstance(n_configs, bool) or not isinstance(n_configs, int) or n_configs < 1:
        raise ValueError(f"n_configs must be a positive int, got {n_configs!r}")
    rng = np.random.default_rng(seed)
    candidates = [{}] + [sample_xgboost_params(rng) for _ in range(n_configs - 1)]

    def fit(params):
        model = xgb.XGBClassifier(
            n_estimators=n_estimators, early_stopping_rounds=early_stopping_rounds, tree_method="hist",
            n_jobs=1, random_state=seed, **params,
        )
        model.fit(data.X_train, data.y_train, eval_set=[(data.X_val, data.y_val)], verbose=False)
        return model

    result = _select("xgboost", data, candidates, fit)
    result.params = {**result.params, "n_trees": int(result.estimator.best_iteration) + 1}
    return result


_MAX_FEATURES = ("sqrt", "sqrt", "log2", None, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def sample_forest_params(rng: np.random.Generator, max_estimators: int = 250) -> dict:
    """One config of the Grinsztajn et al. random-forest space, the number of trees capped at
    ``max_estimators`` (the benchmark draws up to 3000, more than a CPU budget allows).

    ``max_depth`` None (p 0.7) or 2/3/4, ``criterion`` gini/entropy, ``n_estimators``
    log-uniform int 10..min(3000, cap), ``max_features`` sqrt/log2/None/0.1..0.9,
    ``min_samples_split`` 2 (p 0.95) or 3, ``min_samples_leaf`` log-uniform int 2..50,
    ``bootstrap`` True/False, ``min_impurity_decrease`` 0 (p 0.85) or 0.01/0.02/0.05.
    """
    return {
        "max_depth": [None, 2, 3, 4][int(rng.choice(4, p=[0.7, 0.1, 0.1, 0.1]))],
        "criterion": ["gini", "entropy"][int(rng.integers(2))],
        "n_estimators": int(round(_log_uniform(rng, 9.5, max(10.5, min(3000.5, max_estimators + 0.5))))),
        "max_features": _MAX_FEATURES[int(rng.integers(len(_MAX_FEATURES)))],
        "min_samples_split": [2, 3][int(rng.choice(2, p=[0.95, 0.05]))],
        "min_samples_leaf": int(round(_log_uniform(rng, 1.5, 50.5))),
        "bootstrap": bool(rng.integers(2)),
        "min_impurity_decrease": [0.0, 0.01, 0.02, 0.05][int(rng.choice(4, p=[0.85, 0.05, 0.05, 0.05]))],
    }


def fit_random_forest(data: Any, n_configs: int = 5, seed: int = 0, max_estimators: int = 250) -> BaselineResult:
    """Random forest on tree features: scikit-learn's defaults (100 trees, capped at
    ``max_estimators``), then ``n_configs - 1`` configs of :func:`sample_forest_params`.
    Selection: validation accuracy."""
    from sklearn.ensemble import RandomForestClassifier

    if isinstance(n_configs, bool) or not isinstance(n_configs, int) or n_configs < 1:
        raise ValueError(f"n_configs must be a positive int, got {n_configs!r}")
    rng = np.random.default_rng(seed)
    candidates = [{"n_estimators": min(100, max_estimators)}]
    candidates += [sample_forest_params(rng, max_estimators) for _ in range(n_configs - 1)]

    def fit(params):
        return RandomForestClassifier(random_state=seed, n_jobs=1, **params).fit(data.X_train, data.y_train)

    return _select("random_forest", data, candidates, fit)


def fit_baseline(name: str, data: Any, seed: int = 0, **options: Any) -> BaselineResult:
    """Dispatch by name (``linear knn xgboost random_forest``); ``options`` go to the fit function."""
    fits = {"linear": fit_linear, "knn": fit_knn, "xgboost": fit_xgboost, "random_forest": fit_random_forest}
    if name not in fits:
        raise ValueError(f"unknown baseline {name!r}: use one of {sorted(fits)}")
    return fits[name](data, seed=seed, **options)


class FeatureMap:
    """Network feature space -> tree feature space, one monotone map per feature.

    The quantile-normal transform of the network features is monotone per column and fitted on
    the training rows, and both feature sets of a seed hold the same rows in the same order, so
    each column's map is the piecewise-linear interpolation through the training pairs
    ``(network value, raw value)`` (held constant outside the training range). Only defined when
    both sets have the same columns (no one-hot expansion): :meth:`fit` returns ``None`` otherwise.

    **Shape**: ``__call__``: ``(m, d)`` tensor of network features -> ``(m, d)`` float64 array.

    Example::

        >>> net = np.array([[-1.0], [0.0], [1.0]]); raw = np.array([[10.0], [20.0], [40.0]])
        >>> FeatureMap.fit(net, raw, ["a"], ["a"])(torch.tensor([[0.5]]))
        array([[30.]])
    """

    def __init__(self, xp: list[np.ndarray], fp: list[np.ndarray]):
        self.xp, self.fp = xp, fp

    @classmethod
    def fit(cls, X_net: np.ndarray, X_tree: np.ndarray, net_names: Sequence[str], tree_names: Sequence[str]) -> "FeatureMap | None":
        if list(net_names) != list(tree_names) or X_net.shape != X_tree.shape:
            return None
        xp, fp = [], []
        for j in range(X_net.shape[1]):
            order = np.argsort(X_net[:, j], kind="stable")
            x, f = X_net[order, j].astype(np.float64), X_tree[order, j].astype(np.float64)
            x, first = np.unique(x, return_index=True)
            xp.append(x)
            fp.append(f[first])
        return cls(xp, fp)

    def __call__(self, points: Tensor | np.ndarray) -> np.ndarray:
        P = points.detach().cpu().double().numpy() if isinstance(points, Tensor) else np.asarray(points, dtype=np.float64)
        if P.shape[1] != len(self.xp):
            raise ValueError(f"FeatureMap expects {len(self.xp)} features, got shape {P.shape}")
        return np.stack([np.interp(P[:, j], self.xp[j], self.fp[j]) for j in range(P.shape[1])], axis=1)


def proba_function(estimator: Any, feature_map: Callable[[Tensor], np.ndarray] | None = None) -> Callable[[Tensor], Tensor]:
    """``f(points) -> class probabilities`` of a fitted scikit-learn-style classifier, as a
    function of tensors (for :func:`pipeline.complexity.total_variation` and the slices).
    ``feature_map`` first maps the points into the estimator's feature space.

    **Shape**: ``(m, d)`` -> ``(m, k)`` float32.
    """

    def f(points: Tensor) -> Tensor:
        X = feature_map(points) if feature_map is not None else points.detach().cpu().numpy()
        return torch.as_tensor(np.asarray(estimator.predict_proba(np.asarray(X, dtype=np.float32))), dtype=torch.float32)

    return f
