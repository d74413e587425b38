"""Tabular splits and preprocessing, as in the Grinsztajn et al. benchmark (paper Sec. 3.3).

Protocol, per seed: shuffle the rows with ``numpy.random.default_rng(seed)``; the first
``n_train = min(10_000, int(0.7 n))`` rows are the training set; of the remaining rows, 30 % go
to validation and 70 % to test, each capped at 50,000 (:func:`grinsztajn_split`).

Grouped variant (not in the benchmark; :func:`grouped_split`): the same shares, filled with whole
groups of rows (e.g. all fixations of one reading assignment, all visits of one patient), so that
no group is seen in two splits. Rows of one group share values a flexible model can memorise;
with a random split that memorisation scores as generalisation.

Features (:func:`preprocess_tabular`), decided on the training rows only:

- constant columns (one value on train) are dropped and recorded;
- missing numeric values take the training median;
- ``features="network"``: categorical columns one-hot (categories seen in train; unseen -> all
  zeros), numeric columns through a ``QuantileTransformer(output_distribution="normal",
  n_quantiles=min(1000, n_train), random_state=seed)`` fitted on train;
- ``features="tree"``: raw numeric values, categorical columns ordinal-coded (unseen -> -1).

The target is label-encoded 0..k-1 over the sorted classes (:func:`encode_labels`), whether the
labels are numbers, numeric strings or arbitrary strings.

Example:
    >>> import numpy as np, pandas as pd
    >>> idx = grinsztajn_split(100, seed=0)
    >>> [len(idx[k]) for k in ("train", "val", "test")]
    [70, 9, 21]
    >>> X = pd.DataFrame({"a": np.arange(100.0), "c": ["u", "v"] * 50, "k": 1.0})
    >>> arrays, info = preprocess_tabular(X, idx, features="network", seed=0)
    >>> arrays["train"].shape, info["dropped_constant"], info["feature_names"][1:]
    ((70, 3), ['k'], ['c=u', 'c=v'])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

FEATURE_MODES = ("network", "tree")


def grinsztajn_split(
    n_rows: int,
    seed: int,
    *,
    max_train: int = 10_000,
    train_fraction: float = 0.7,
    val_fraction: float = 0.3,
    max_eval: int = 50_000,
) -> dict[str, np.ndarray]:
    """Row indices of the train/val/test split of one seed.

    **Shape**: three disjoint int64 index arrays ``train (n_train,)``, ``val (n_val,)``,
    ``test (n_test,)`` with ``n_train = min(max_train, int(train_fraction * n_rows))``,
    ``n_val = min(max_eval, int(val_fraction * rest))``, ``n_test = min(max_eval, rest - n_val)``
    where ``rest = n_rows - n_train``.

    Raises:
        ValueError: a fraction outside (0, 1), a non-positive cap, or too few rows for three
            non-empty splits.
    """
    _check_protocol(train_fraction, val_fraction, max_train, max_eval)
    n_rows = int(n_rows)
    n_train = min(int(max_train), _floor(train_fraction * n_rows))
    rest = n_rows - n_train
    n_val = min(int(max_eval), _floor(val_fraction * rest))
    n_test = min(int(max_eval), rest - n_val)
    if min(n_train, n_val, n_test) < 1:
        raise ValueError(
            f"n_rows={n_rows} is too small for the protocol (train {n_train}, val {n_val}, "
            f"test {n_test}); need at least one row in each split"
        )
    perm = np.random.default_rng(seed).permutation(n_rows)
    return {
        "train": perm[:n_train],
        "val": perm[n_train : n_train + n_val],
        "test": perm[n_train + n_val : n_train + n_val + n_test],
    }


def grouped_split(
    groups: Sequence | np.ndarray,
    seed: int,
    *,
    max_train: int = 10_000,
    train_fraction: float = 0.7,
    val_fraction: float = 0.3,
    max_eval: int = 50_000,
    ordered: bool = False,
) -> dict[str, np.ndarray]:
    """:func:`grinsztajn_split` with whole groups: the distinct values of ``groups`` are shuffled
    with ``numpy.random.default_rng(seed)`` (``ordered``: sorted ascending instead, e.g. days, so
    that the model is trained on the past and tested on the future; ``seed`` then leaves the split
    unchanged) and dealt in that order to train until it holds
    ``min(max_train, int(train_fraction * n))`` rows, then to validation until it holds
    ``min(max_eval, int(val_fraction * rest))`` rows, then to test (at most ``max_eval`` rows, whole
    groups). A split may exceed its share by less than one group; no group is in two splits.

    **Shape**: ``groups`` ``(n_rows,)`` (any hashable values, sortable when ``ordered``, no missing
    ones) -> three disjoint int64 index arrays ``train``, ``val``, ``test`` (groups in the order
    they were dealt, the rows of a group in their original order).

    Example::

        >>> idx = grouped_split(np.repeat(np.arange(20), 5), seed=0)
        >>> [len(idx[k]) for k in ("train", "val", "test")]
        [70, 10, 20]

    Raises:
        ValueError: a fraction outside (0, 1), a non-positive cap, missing group values, or too few
            groups for three non-empty splits.
    """
    _check_protocol(train_fraction, val_fraction, max_train, max_eval)
    values = pd.Series(np.asarray(groups, dtype=object))
    if values.isna().any():
        raise ValueError(f"the group column has {int(values.isna().sum())} missing values; every row needs a group")
    codes, uniques = pd.factorize(values)
    n_rows = len(codes)
    order = (np.asarray(pd.Index(uniques).argsort()) if ordered
             else np.random.default_rng(seed).permutation(len(uniques)))
    sizes = np.bincount(codes, minlength=len(uniques))
    rows_of = np.split(np.argsort(codes, kind="stable"), np.cumsum(sizes)[:-1])
    n_train = min(int(max_train), _floor(train_fraction * n_rows))
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    filled = {"train": 0, "val": 0, "test": 0}
    targets = {"train": n_train}
    for g in order:
        if filled["train"] < targets["train"]:
            part = "train"
        else:
            if "val" not in targets:
                rest = n_rows - filled["train"]
                targets["val"] = min(int(max_eval), _floor(val_fraction * rest))
            part = "val" if filled["val"] < targets["val"] else "test"
            if part == "test" and filled["test"] + sizes[g] > int(max_eval):
                continue
        parts[part].append(g)
        filled[part] += int(sizes[g])
    if min(filled.values()) < 1:
        raise ValueError(
            f"{len(uniques)} groups over {n_rows} rows are too few for the protocol (train {filled['train']}, "
            f"val {filled['val']}, test {filled['test']} rows); need at least one group in each split"
        )
    return {k: np.concatenate([rows_of[g] for g in gs]).astype(np.int64) for k, gs in parts.items()}


def _check_protocol(train_fraction: float, val_fraction: float, max_train: int, max_eval: int) -> None:
    for label, f in (("train_fraction", train_fraction), ("val_fraction", val_fraction)):
        if not 0.0 < float(f) < 1.0:
            raise ValueError(f"{label}={f!r} must lie in (0, 1)")
    for label, v in (("max_train", max_train), ("max_eval", max_eval)):
        if int(v) < 1:
            raise ValueError(f"{label}={v!r} must be >= 1")


def _floor(x: float) -> int:
    """floor(x), tolerant of float noise (0.3 * 30 = 8.999...): 9."""
    return int(np.floor(x + 1e-9))


def encode_labels(y: pd.Series | Sequence | np.ndarray) -> tuple[np.ndarray, list]:
    """Label-encode a target to 0..k-1 over its sorted classes.

    Numeric strings count as numbers (so ``"2" < "10"`` and an OpenML nominal target ``"1"`` equals
    a mirror's integer ``1``); other labels are sorted as strings.

    Returns:
        ``(codes, classes)``: int64 codes **Shape** ``(n,)``, and the classes as JSON-friendly
        Python values (``classes[codes[i]]`` is row i's label).

    Raises:
        ValueError: missing labels.
    """
    s = pd.Series(y).reset_index(drop=True)
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    if s.isna().any():
        raise ValueError(f"target has {int(s.isna().sum())} missing labels; drop those rows first")
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(np.int64)
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().all():
        values = num.to_numpy()
        if np.all(np.mod(values, 1) == 0):
            values = values.astype(np.int64)
    else:
        values = s.astype(str).to_numpy()
    classes, codes = np.unique(values, return_inverse=True)
    return codes.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


def _as_category_strings(col: pd.Series) -> np.ndarray:
    out = col.astype(object).where(col.notna(), "<NA>")
    return out.astype(str).to_numpy()


def preprocess_tabular(
    X: pd.DataFrame,
    splits: dict[str, np.ndarray],
    *,
    features: str = "network",
    categorical: Sequence[str] = (),
    seed: int = 0,
    n_quantiles: int = 1000,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Turn a feature table into float32 arrays per split, fitting everything on ``splits["train"]``.

    Args:
        X: the feature columns, **Shape** ``(n_rows, n_columns)``.
        splits: ``{"train": idx, ...}`` row positions (``"train"`` required).
        features: ``"network"`` (one-hot + quantile-normal) or ``"tree"`` (raw + ordinal codes).
        categorical: columns to treat as categorical (``object``/``category``/``bool`` columns are
            categorical anyway).
        seed: random state of the quantile transformer.
        n_quantiles: upper bound on the transformer's quantiles (``min(n_quantiles, n_train)``).

    Returns:
        ``(arrays, info)``: ``arrays[split]`` float32 **Shape** ``(len(splits[split]), d)``;
        ``info`` holds ``feature_names`` (d names), ``dropped_constant``, ``categorical``,
        ``imputed`` (column -> count of filled values) and the transform used.

    Raises:
        ValueError: an unknown ``features`` mode, a missing train split, or an unknown column.
    """
    if features not in FEATURE_MODES:
        raise ValueError(f"features={features!r}; allowed: {FEATURE_MODES}")
    if "train" not in splits:
        raise ValueError(f"splits must include 'train', got {sorted(splits)}")
    if int(n_quantiles) < 2:
        raise ValueError(f"n_quantiles={n_quantiles!r} must be >= 2")
    unknown = [c for c in categorical if c not in X.columns]
    if unknown:
        raise ValueError(f"categorical columns {unknown} not in the table's columns {list(X.columns)}")
    X = X.reset_index(drop=True)
    train = X.iloc[splits["train"]]
    cat_set = set(categorical) | {
        c for c in X.columns
        if isinstance(X[c].dtype, pd.CategoricalDtype) or X[c].dtype == object
        or pd.api.types.is_string_dtype(X[c].dtype) or pd.api.types.is_bool_dtype(X[c].dtype)
    }
    dropped = [str(c) for c in X.columns if train[c].nunique(dropna=False) <= 1]
    keep = [c for c in X.columns if str(c) not in set(dropped)]
    num_cols = [c for c in keep if c not in cat_set]
    cat_cols = [c for c in keep if c in cat_set]

    # numeric block: float64, train-median imputation
    num = X[num_cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    imputed: dict[str, int] = {}
    if num_cols:
        med = np.nanmedian(num[splits["train"]], axis=0)
        nan = np.isnan(num)
        for j in np.flatnonzero(nan.any(axis=0)):
            imputed[str(num_cols[j])] = int(nan[:, j].sum())
            num[nan[:, j], j] = med[j]

    n_train = len(splits["train"])
    transform: dict[str, Any] = {"numeric": "raw"}
    if features == "network" and num_cols:
        from sklearn.preprocessing import QuantileTransformer

        nq = int(min(n_quantiles, n_train))
        qt = QuantileTransformer(
            n_quantiles=nq, output_distribution="normal", random_state=seed,
            subsample=max(n_train, 10_000),
        )
        qt.fit(num[splits["train"]])
        num = qt.transform(num)
        transform = {"numeric": "quantile_normal", "n_quantiles": nq, "fitted_on": "train"}

    # categorical block
    blocks = [num]
    names = [str(c) for c in num_cols]
    categories: dict[str, list[str]] = {}
    for c in cat_cols:
        vals = _as_category_strings(X[c])
        cats = sorted(set(vals[splits["train"]]))
        categories[str(c)] = cats
        if features == "network":
            onehot = (vals[:, None] == np.asarray(cats, dtype=object)[None, :]).astype(np.float64)
            blocks.append(onehot)
            names += [f"{c}={v}" for v in cats]
        else:
            lookup = {v: i for i, v in enumerate(cats)}
            blocks.append(np.array([lookup.get(v, -1) for v in vals], dtype=np.float64)[:, None])
            names.append(str(c))
    full = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(X), 0))
    if full.shape[1] == 0:
        raise ValueError("no usable feature column left (all constant on the training rows)")
    arrays = {k: np.ascontiguousarray(full[idx], dtype=np.float32) for k, idx in splits.items()}
    info = {
        "features": features,
        "feature_names": names,
        "dropped_constant": dropped,
        "categorical": [str(c) for c in cat_cols],
        "categories": categories,
        "imputed": imputed,
        "transform": transform,
    }
    return arrays, info
