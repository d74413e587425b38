"""MNIST/CIFAR collages for shortcut learning (paper Sec. 3.4; Shah et al. 2020, Teney et al. 2022).

A collage stacks two grayscale tiles of the same size vertically: on top a *simple* tile (MNIST
0 vs 1), below a *complex* one (CIFAR-10 automobile vs truck). Binary label ``y`` (``classes:
binary``, PAPER.md's collages of Shah et al.); with ``classes: ten`` every MNIST digit ``k`` pairs
with CIFAR-10 class ``k`` and chance is 10 %, as the paper's text states for its Fig. 9:

- ``train``: both tiles show class ``y`` (the training set is ambiguous: either tile predicts y);
- ``val_simple`` / ``test_simple``: the simple tile shows ``y``, the complex tile a random class;
- ``val_complex`` / ``test_complex``: the complex tile shows ``y``, the simple tile a random class.

Tiles of training and validation collages come from disjoint parts of the official training
images; test collages use the official test images. Labels are balanced.

Where the mirror (or any source) cannot provide MNIST and CIFAR-10, :func:`collage_tiles` falls
back to bundled data: scikit-learn digits 0 vs 1 as the simple tile, and digits 3 vs 8 with
Gaussian pixel noise (sigma 0.3, fresh per collage) as the harder tile (ten classes: digit ``k``
clean over digit ``(k + 5) mod 10`` noisy). The provenance says which.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> simple = (rng.random((40, 4, 4)), np.repeat([0, 1], 20))
    >>> complex_ = (rng.random((40, 4, 4)), np.repeat([0, 1], 20))
    >>> sets = make_collages(simple, complex_, n_train=10, n_val=4, n_test=6, seed=0)
    >>> sorted(sets), sets["train"][0].shape
    (['test_complex', 'test_simple', 'train', 'val_complex', 'val_simple'], (10, 32))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .images import pixels_chw
from .sources import DatasetUnavailable, Source

SPLITS = ("train", "val_simple", "val_complex", "test_simple", "test_complex")
DATA_CHOICES = ("auto", "mirror", "bundled")
#: ``binary``: two classes per tile (PAPER.md); ``ten``: all ten of each set (the paper's text).
CLASS_CHOICES = ("binary", "ten")
#: The tile classes per choice; position i of each tuple is label i of the collages.
TILE_CLASSES = {
    "binary": {"mnist": (0, 1), "cifar": (1, 9), "digits_simple": (0, 1), "digits_complex": (3, 8)},
    "ten": {"mnist": tuple(range(10)), "cifar": tuple(range(10)), "digits_simple": tuple(range(10)),
            "digits_complex": tuple((k + 5) % 10 for k in range(10))},
}
#: Appended to the provenance's ``data`` name (and so to the metrics' key ``collages/<data>``).
DATA_SUFFIX = {"binary": "", "ten": "-10class"}
CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NOISE_SIGMA = 0.3

Tiles = tuple[np.ndarray, np.ndarray]


def _as_tiles(X: np.ndarray, label: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 4 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim == 2:
        side = int(round(np.sqrt(X.shape[1])))
        if side * side != X.shape[1]:
            raise ValueError(f"{label} tiles have {X.shape[1]} pixels, not a square grayscale image")
        X = X.reshape(-1, side, side)
    if X.ndim != 3 or X.shape[1] != X.shape[2]:
        raise ValueError(f"{label} tiles must be (n, s, s) grayscale squares, got shape {X.shape}")
    return X


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of 1-D linear interpolation with half-pixel centres (the convention of
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``)."""
    pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    pos = np.clip(pos, 0.0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    W = np.zeros((n_out, n_in))
    W[np.arange(n_out), lo] += 1.0 - frac
    W[np.arange(n_out), hi] += frac
    return W


def resize_tiles(X: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of square tiles (half-pixel centres, as torch's ``align_corners=False``).

    **Shape**: ``(n, s, s)`` -> ``(n, size, size)`` float32.
    """
    if X.shape[1] == size:
        return X.astype(np.float32, copy=False)
    W = _bilinear_matrix(X.shape[1], size).astype(np.float32)
    return np.ascontiguousarray(W @ X.astype(np.float32) @ W.T)


def split_tiles(X: np.ndarray, tile_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The simple (top) and complex (bottom) halves of flattened collages.

    **Shape**: ``(n, 2 * s * s)`` -> two ``(n, s * s)`` arrays.
    """
    k = tile_size * tile_size
    if X.shape[1] != 2 * k:
        raise ValueError(f"collages of tile size {tile_size} have {2 * k} pixels, got {X.shape[1]}")
    return X[:, :k], X[:, k:]


def _partition(y: np.ndarray, weights: dict[str, float], rng: np.random.Generator) -> dict[str, dict[int, np.ndarray]]:
    """Disjoint per-class index pools, sized in proportion to ``weights`` (at least 1 each)."""
    names = list(weights)
    w = np.array([weights[k] for k in names], dtype=float)
    out: dict[str, dict[int, np.ndarray]] = {k: {} for k in names}
    for c in np.unique(y).tolist():
        idx = rng.permutation(np.flatnonzero(y == c))
        if len(idx) < len(names):
            raise ValueError(f"class {c} has {len(idx)} tiles, need at least {len(names)}")
        sizes = np.maximum(1, np.floor(w / w.sum() * len(idx)).astype(int))
        sizes[-1] = len(idx) - sizes[:-1].sum()
        for k, part in zip(names, np.split(idx, np.cumsum(sizes)[:-1])):
            out[k][c] = part
    return out


def make_collages(
    simple: Tiles,
    complex: Tiles,
    n_train: int,
    n_val: int,
    n_test: int,
    seed: int = 0,
    *,
    simple_test: Tiles | None = None,
    complex_test: Tiles | None = None,
    tile_size: int | None = None,
    complex_noise: float = 0.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Build the five collage sets from two tile sets labelled alike (``0..k-1``, ``k >= 2``: a
    collage of label ``y`` shows a tile of class ``y`` of each set where that tile is predictive,
    else one of a class drawn uniformly).

    Args:
        simple, complex: ``(X, y)`` with X **Shape** ``(n, s, s)`` (or ``(n, s*s)``,
            ``(n, 1, s, s)``) grayscale in [0, 1], y in {0, ..., k-1}, every class present.
        n_train, n_val, n_test: collages in ``train``, in each ``val_*`` and in each ``test_*``.
        seed: seeds the labels, the tile draws and the noise.
        simple_test, complex_test: tiles for the test collages (e.g. the official test images);
            without them, test tiles are a disjoint part of ``simple``/``complex``.
        tile_size: the common tile side (default: the larger of the two); bilinear resize.
        complex_noise: std of Gaussian noise added to each complex tile (clipped to [0, 1]).

    Returns:
        ``{split: (X, y)}`` for :data:`SPLITS`; X float32 **Shape** ``(n, 2 * s * s)`` (simple
        tile rows on top of the complex tile's, row-major), y int64 ``(n,)``.

    Raises:
        ValueError: non-positive sizes, labels that are not 0..k-1 in both sets, or tiles that
            are not squares.
    """
    for label, v in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(v) < 1:
            raise ValueError(f"{label}={v!r} must be >= 1")
    if complex_noise < 0:
        raise ValueError(f"complex_noise={complex_noise!r} must be >= 0")
    if (simple_test is None) != (complex_test is None):
        raise ValueError("give both simple_test and complex_test, or neither")
    sets = {"simple": simple, "complex": complex}
    if simple_test is not None:
        sets |= {"simple_test": simple_test, "complex_test": complex_test}
    tiles: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    n_classes = int(np.max(np.asarray(simple[1]))) + 1 if len(simple[1]) else 0
    labels = np.arange(n_classes)
    for k, (X, y) in sets.items():
        X, y = _as_tiles(X, k), np.asarray(y).astype(np.int64)
        if len(X) != len(y) or n_classes < 2 or not np.array_equal(np.unique(y), labels):
            raise ValueError(f"{k} tiles: {len(X)} images with {len(y)} labels {np.unique(y).tolist()}; "
                             f"labels must be 0..{max(1, n_classes - 1)} in every tile set, each present")
        tiles[k] = (X, y)
    size = int(tile_size or max(tiles["simple"][0].shape[1], tiles["complex"][0].shape[1]))
    if size < 1:
        raise ValueError(f"tile_size={tile_size!r} must be >= 1")
    tiles = {k: (resize_tiles(X, size), y) for k, (X, y) in tiles.items()}

    rng = np.random.default_rng(seed)
    weights = {"train": n_train, "val": 2 * n_val}
    if simple_test is None:
        weights["test"] = 2 * n_test
    pools = {k: _partition(tiles[k][1], weights, rng) for k in ("simple", "complex")}
    if simple_test is not None:
        for k in ("simple", "complex"):
            yt = tiles[f"{k}_test"][1]
            pools[k]["test"] = {c: np.flatnonzero(yt == c) for c in labels.tolist()}
    source_of = {
        "train": "", "val": "", "test": "_test" if simple_test is not None else "",
    }

    def draw(kind: str, part: str, classes: np.ndarray) -> np.ndarray:
        X = tiles[kind + source_of[part]][0]
        out = np.empty((len(classes), size, size), dtype=np.float32)
        for c in labels.tolist():
            rows = np.flatnonzero(classes == c)
            pool = pools[kind][part][c]
            if len(pool) == 0:
                raise ValueError(f"no {kind} tiles of class {c} for the {part} collages")
            out[rows] = X[rng.choice(pool, size=len(rows), replace=len(rows) > len(pool))]
        if kind == "complex" and complex_noise > 0:
            out = np.clip(out + rng.normal(0.0, complex_noise, out.shape), 0.0, 1.0).astype(np.float32)
        return out

    def build(n: int, part: str, predictive: str) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.resize(labels, n)).astype(np.int64)
        other = rng.integers(0, n_classes, size=n)
        top = draw("simple", part, y if predictive in ("both", "simple") else other)
        bottom = draw("complex", part, y if predictive in ("both", "complex") else other)
        X = np.concatenate([top, bottom], axis=1).reshape(n, -1)
        return np.ascontiguousarray(X, dtype=np.float32), y

    return {
        "train": build(n_train, "train", "both"),
        "val_simple": build(n_val, "val", "simple"),
        "val_complex": build(n_val, "val", "complex"),
        "test_simple": build(n_test, "test", "simple"),
        "test_complex": build(n_test, "test", "complex"),
    }


def _relabel(X: np.ndarray, y: np.ndarray, classes: tuple[int, ...]) -> Tiles:
    """The tiles of ``classes``, labelled by their position in ``classes`` (``0..len(classes)-1``)."""
    keep = np.isin(y, classes)
    position = {c: i for i, c in enumerate(classes)}
    return X[keep], np.array([position[v] for v in y[keep].tolist()], dtype=np.int64)


def _gray_split(raw, classes: tuple[int, ...]) -> tuple[Tiles, Tiles]:
    """Official train/test tiles of some classes of an image RawTable, grayscale in [0, 1]."""
    from .tabular import encode_labels

    codes, labels = encode_labels(raw.y)
    y = np.asarray(labels)[codes]
    split = raw.official_split
    if split is None:
        raise ValueError(f"dataset {raw.name!r} has no official train/test split")
    out = []
    for part in ("train", "test"):
        a, b = split[part]
        rows = np.arange(a, b)[np.isin(y[a:b], classes)]
        X = pixels_chw(raw.X.to_numpy()[rows], raw.spec).mean(axis=1)
        out.append(_relabel(X, y[rows], classes))
    return out[0], out[1]


def collage_tiles(
    source: Source | None = None, data: str = "auto", classes: str = "binary"
) -> tuple[dict[str, Tiles], dict[str, Any]]:
    """The tile sets for :func:`make_collages` and their provenance.

    ``data="mirror"`` takes MNIST 0/1 and CIFAR-10 automobile/truck (grayscale) from ``source``
    (any source that has ``mnist_784`` and ``CIFAR_10``); ``"bundled"`` the digits fallback;
    ``"auto"`` the first when the source has both sets, else the fallback. ``classes="ten"``:
    all ten classes of each set (:data:`TILE_CLASSES`).

    Returns:
        ``(tiles, provenance)``: tiles ``{"simple", "complex", "simple_test", "complex_test"}``
        of ``(X (n, s, s), y (n,))``; provenance ``{"data": "mnist_cifar" | "bundled_digits" (with
        ``-10class`` for ten classes), "classes", "n_classes", "source", "sha256", "simple", "complex", ...}``.

    Raises:
        ValueError: an unknown ``data`` or ``classes`` choice.
        DatasetUnavailable: ``data="mirror"`` and the source lacks a set.
    """
    import hashlib

    if data not in DATA_CHOICES:
        raise ValueError(f"collage data={data!r}; allowed: {DATA_CHOICES}")
    if classes not in CLASS_CHOICES:
        raise ValueError(f"collage classes={classes!r}; allowed: {CLASS_CHOICES}")
    chosen = TILE_CLASSES[classes]
    if data in ("auto", "mirror") and source is not None:
        try:
            p_mnist = source.describe("mnist_784")
            p_cifar = source.describe("CIFAR_10")
        except (DatasetUnavailable, ValueError):
            if data == "mirror":
                raise
        else:
            s_tr, s_te = _gray_split(source.load("mnist_784"), chosen["mnist"])
            c_tr, c_te = _gray_split(source.load("CIFAR_10"), chosen["cifar"])
            tiles = {"simple": s_tr, "complex": c_tr, "simple_test": s_te, "complex_test": c_te}
            prov = {
                "data": "mnist_cifar" + DATA_SUFFIX[classes], "classes": classes, "n_classes": len(chosen["mnist"]),
                "source": p_mnist["source"],
                "location": f"{p_mnist['location']} + {p_cifar['location']}",
                "sha256": hashlib.sha256((p_mnist["sha256"] + p_cifar["sha256"]).encode()).hexdigest(),
                "simple": {**p_mnist, "dataset": "mnist_784", "classes": list(chosen["mnist"])},
                "complex": {
                    **p_cifar, "dataset": "CIFAR_10", "classes": list(chosen["cifar"]),
                    "class_names": [CIFAR_NAMES[c] for c in chosen["cifar"]], "grayscale": "mean of RGB",
                },
                "complex_noise": 0.0,
            }
            return tiles, prov
    if data == "mirror":
        raise DatasetUnavailable(
            "collages with data: mirror need a source holding mnist_784 and CIFAR_10, but none "
            "was given; fix: set data.source: mirror and data.mirror: PATH, or collage data: auto"
        )
    from .synthetic import BundledSource

    raw = BundledSource().load("digits")
    X = pixels_chw(raw.X.to_numpy(), raw.spec)[:, 0]
    y = raw.y.to_numpy()
    perm = np.random.default_rng(0).permutation(len(y))
    cut = int(0.7 * len(y))
    tr, te = np.sort(perm[:cut]), np.sort(perm[cut:])
    tiles = {
        "simple": _relabel(X[tr], y[tr], chosen["digits_simple"]),
        "complex": _relabel(X[tr], y[tr], chosen["digits_complex"]),
        "simple_test": _relabel(X[te], y[te], chosen["digits_simple"]),
        "complex_test": _relabel(X[te], y[te], chosen["digits_complex"]),
    }
    prov = {
        "data": "bundled_digits" + DATA_SUFFIX[classes], "classes": classes, "n_classes": len(chosen["digits_simple"]),
        "source": "bundled",
        "location": "sklearn.datasets.load_digits",
        "sha256": raw.provenance["sha256"],
        "simple": {"dataset": "digits", "classes": list(chosen["digits_simple"])},
        "complex": {"dataset": "digits", "classes": list(chosen["digits_complex"]), "noise_sigma": NOISE_SIGMA},
        "complex_noise": NOISE_SIGMA,
        "note": "fallback: no source with mnist_784 and CIFAR_10 was available",
    }
    return tiles, prov
