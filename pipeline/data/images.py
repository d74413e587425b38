"""Image sets as pixel tables (paper Sec. 3.1-3.2): scaling, official splits, validation, subsets.

Images arrive as OpenML pixel tables (one row per image). Preparation (:func:`prepare_images`):

- pixels divided by the set's ``pixel_max`` (255; 16 for scikit-learn's digits) into [0, 1];
- laid out channels first, ``(C, H, W)``, and flattened row-major for MLPs (``flatten=True``);
  ``grayscale=True`` averages the channels (CIFAR -> one channel);
- the official train/test split is kept (rows as the manifest or registry says; a set without one
  gets a fixed ``default_rng(0)`` split of ``test_fraction``);
- validation: a seeded random ``val_fraction`` of the official training rows (optionally capped by
  ``n_val``); ``n_train``/``n_test`` cap the training/test rows by a class-stratified subsample
  (training rows drawn with the seed; test rows with a fixed seed 0 so that every seed is evaluated
  on the same test images); training and validation rows come in a seeded random order, test rows
  in table order;
- ``task="regression"``: the paper's regression variant, target = class id as float32.

Example:
    >>> import numpy as np
    >>> idx = stratified_subsample(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 4, np.random.default_rng(0))
    >>> np.bincount(np.array([0, 0, 0, 0, 1, 1, 1, 1])[idx]).tolist()
    [2, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import DatasetSpec
from .sources import RawTable
from .tabular import encode_labels

TASKS = ("classification", "regression")


def stratified_subsample(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``n`` rows of ``y`` drawn without replacement, classes in proportion.

    Each class gets ``floor(n * share)`` rows, the remainder going to the classes with the largest
    fractional parts. **Shape**: ``(n,)`` int64, sorted. ``n >= len(y)`` returns every position.

    Raises:
        ValueError: ``n < 1``.
    """
    y = np.asarray(y)
    if int(n) < 1:
        raise ValueError(f"subsample size n={n!r} must be >= 1")
    if n >= len(y):
        return np.arange(len(y))
    classes, inverse = np.unique(y, return_inverse=True)
    counts = np.bincount(inverse)
    quota = n * counts / counts.sum()
    take = np.floor(quota).astype(int)
    short = n - take.sum()
    if short > 0:
        take[np.argsort(-(quota - take), kind="stable")[:short]] += 1
    out = [rng.choice(np.flatnonzero(inverse == k), size=t, replace=False) for k, t in enumerate(take)]
    return np.sort(np.concatenate(out)).astype(np.int64)


def pixels_chw(X: np.ndarray, spec: DatasetSpec) -> np.ndarray:
    """Pixel rows to float32 images in [0, 1].

    **Shape**: ``(n, H*W*C)`` -> ``(n, C, H, W)``; the columns are channel-major when
    ``spec.channels_first`` (OpenML CIFAR_10: 1024 red, 1024 green, 1024 blue values), else
    pixel-major ``(H, W, C)``.
    """
    h, w, c = spec.image_shape  # type: ignore[misc]
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != h * w * c:
        raise ValueError(
            f"dataset {spec.name!r}: {X.shape[1] if X.ndim == 2 else X.shape} pixel columns, "
            f"expected H*W*C = {h}*{w}*{c} = {h * w * c}"
        )
    out = X.astype(np.float32, copy=True)
    out *= np.float32(1.0 / spec.pixel_max)
    if spec.channels_first:
        return out.reshape(-1, c, h, w)
    return np.ascontiguousarray(out.reshape(-1, h, w, c).transpose(0, 3, 1, 2))


def prepare_images(
    raw: RawTable,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    n_train: int | None = None,
    n_val: int | None = None,
    n_test: int | None = None,
    grayscale: bool = False,
    flatten: bool = True,
    task: str = "classification",
    test_fraction: float = 0.2,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """Split and scale an image table.

    Returns:
        ``(splits, info)`` with ``splits[name] = (X, y)`` for ``train``, ``val``, ``test``:
        ``X`` float32 **Shape** ``(n, C*H*W)`` (``(n, C, H, W)`` when ``flatten=False``), ``y``
        int64 class ids ``(n,)`` (float32 for ``task="regression"``); ``info`` holds
        ``image_shape`` ``(C, H, W)``, ``classes``, ``feature_names`` and the split rule used.

    Raises:
        ValueError: a bad fraction, cap or task, or a table whose columns do not fit its shape.
    """
    spec = raw.spec
    if spec.kind != "image" or spec.image_shape is None:
        raise ValueError(f"dataset {spec.name!r} is {spec.kind!r}, not an image set")
    if task not in TASKS:
        raise ValueError(f"task={task!r}; allowed: {TASKS}")
    for label, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < float(f) < 1.0:
            raise ValueError(f"{label}={f!r} must lie in (0, 1)")
    for label, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if v is not None and int(v) < 1:
            raise ValueError(f"{label}={v!r} must be >= 1 or null")

    codes, classes = encode_labels(raw.y)
    n = len(codes)
    if raw.official_split is not None:
        (a, b), (c, d) = raw.official_split["train"], raw.official_split["test"]
        pool, test = np.arange(a, b), np.arange(c, d)
        rule = f"official: train rows {a}-{b - 1}, test rows {c}-{d - 1}"
    else:
        perm = np.random.default_rng(0).permutation(n)
        k = int(round(test_fraction * n))
        pool, test = np.sort(perm[k:]), np.sort(perm[:k])
        rule = f"no official split: fixed default_rng(0) test split of {test_fraction:g}"

    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(pool))
    k_val = max(1, int(round(val_fraction * len(pool))))
    val, train = np.sort(pool[perm[:k_val]]), np.sort(pool[perm[k_val:]])
    if n_val is not None and n_val < len(val):
        val = val[stratified_subsample(codes[val], n_val, rng)]
    if n_train is not None and n_train < len(train):
        train = train[stratified_subsample(codes[train], n_train, rng)]
    if n_test is not None and n_test < len(test):
        test = test[stratified_subsample(codes[test], n_test, np.random.default_rng(0))]
    train, val = rng.permutation(train), rng.permutation(val)  # seeded random order

    rows = np.concatenate([train, val, test])
    X = pixels_chw(raw.X.to_numpy()[rows], spec)
    if grayscale and X.shape[1] > 1:
        X = X.mean(axis=1, keepdims=True, dtype=np.float32)
    chw = tuple(int(v) for v in X.shape[1:])
    if flatten:
        X = X.reshape(len(X), -1)
    y = codes[rows]
    y = y.astype(np.float32) if task == "regression" else y.astype(np.int64)
    cuts = np.cumsum([len(train), len(val)])
    out = {
        "train": (X[: cuts[0]], y[: cuts[0]]),
        "val": (X[cuts[0] : cuts[1]], y[cuts[0] : cuts[1]]),
        "test": (X[cuts[1] :], y[cuts[1] :]),
    }
    c_, h_, w_ = chw
    info = {
        "image_shape": list(chw),
        "classes": classes,
        "split_rule": rule,
        "grayscale": bool(grayscale),
        "feature_names": (
            [f"c{i}_{r}_{q}" for i in range(c_) for r in range(h_) for q in range(w_)]
            if flatten else []
        ),
    }
    return out, info
