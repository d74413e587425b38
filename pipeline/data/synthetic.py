"""Data that needs no download: algorithmic tasks, a tree-shaped tabular task, scikit-learn sets.

**Algorithmic tasks** (paper Sec. 3.5 and 4; Power et al. 2022, "Grokking"): ``y = op(a, b) mod p``
over all operand pairs, the operands given as concatenated one-hot vectors, the label one of ``p``
classes (:func:`algorithmic_task`). Operations (``ALGORITHMIC_OPS``)::

    add         a + b              sub         a - b            mul     a * b
    div         a / b = a b^-1 (b != 0, p prime)
    mixed       a / b if b is odd, else a - b (p prime)
    a2_b2       a^2 + b^2          a2_ab_b2    a^2 + ab + b^2   a2_ab_b2_a   a^2 + ab + b^2 + a
    a3_ab       a^3 + ab           a3_ab2_b    a^3 + ab^2 + b
    s4_compose  a . b in S4        s5_compose  a . b in S5
    s5_conj     a . b . a^-1 in S5 s5_aba      a . b . a in S5

For the permutation groups the operands are the group's elements (24 for S4, 120 for S5, in the
lexicographic order of ``itertools.permutations``), ``(a . b)(i) = a(b(i))``, and the label is the
index of the product. Task names are ``<op>_mod<p>`` (``add_mod27``) or the group op itself
(``s4_compose``). ``PAPER_TASKS`` is the project's list of 22 tasks for the transfer experiment
(the paper's Figure 27 list is not available; this one mixes the paper's named tasks -- a+b mod
13/27/29/41, ab, a^2+b^2 mod 27, a^2+ab+b^2, a^3+ab mod 53, S4 products -- with the other Power et
al. operations over moduli 13-97).

**Tree task** (:func:`tree_task`): a seeded tabular classification whose label is a random
axis-aligned decision tree over some of the features: easy for trees, hard for smooth MLPs.

**Bundled sets** (:class:`BundledSource`): scikit-learn's ``load_digits`` (8x8 images, values 0..16)
as the image set ``digits``, ``load_breast_cancer`` as ``breast_cancer``, and ``tree_task``.

Example:
    >>> t = algorithmic_task("add", 5, train_fraction=0.5, seed=0)
    >>> t.X_train.shape, t.X_test.shape, t.n_classes
    ((12, 10), (13, 10), 5)
    >>> int(t.y_train[0]) == (int(t.X_train[0, :5].argmax()) + int(t.X_train[0, 5:].argmax())) % 5
    True
    >>> len(PAPER_TASKS)
    22
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pandas as pd

from .registry import DatasetSpec
from .sources import DatasetUnavailable, RawTable

# ------------------------------------------------------------------------------ algorithmic


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, int(p**0.5) + 1))


def _inverse_table(p: int) -> np.ndarray:
    inv = np.zeros(p, dtype=np.int64)
    for b in range(1, p):
        inv[b] = pow(b, -1, p)
    return inv


def _div(a, b, p):
    return (a * _inverse_table(p)[b]) % p


def _mixed(a, b, p):
    return np.where(b % 2 == 1, (a * _inverse_table(p)[b]) % p, (a - b) % p)


_MODULAR: dict[str, tuple[Callable, bool, bool]] = {
    # name: (function of int64 arrays a, b and p, needs prime p, excludes b == 0)
    "add": (lambda a, b, p: (a + b) % p, False, False),
    "sub": (lambda a, b, p: (a - b) % p, False, False),
    "mul": (lambda a, b, p: (a * b) % p, False, False),
    "div": (_div, True, True),
    "mixed": (_mixed, True, False),
    "a2_b2": (lambda a, b, p: (a * a + b * b) % p, False, False),
    "a2_ab_b2": (lambda a, b, p: (a * a + a * b + b * b) % p, False, False),
    "a2_ab_b2_a": (lambda a, b, p: (a * a + a * b + b * b + a) % p, False, False),
    "a3_ab": (lambda a, b, p: (a * a * a + a * b) % p, False, False),
    "a3_ab2_b": (lambda a, b, p: (a * a * a + a * b * b + b) % p, False, False),
}

_GROUP_OPS: dict[str, tuple[int, str]] = {
    # name: (degree n of S_n, product)
    "s4_compose": (4, "ab"),
    "s5_compose": (5, "ab"),
    "s5_conj": (5, "aba^-1"),
    "s5_aba": (5, "aba"),
}

#: Every operation name :func:`algorithmic_task` accepts.
ALGORITHMIC_OPS: tuple[str, ...] = tuple(_MODULAR) + tuple(_GROUP_OPS)

#: The project's 22 algorithmic tasks (transfer experiment, paper Sec. 4), by stable name.
PAPER_TASKS: tuple[str, ...] = (
    "add_mod13", "add_mod27", "add_mod29", "add_mod41", "add_mod53", "add_mod97",
    "sub_mod27", "sub_mod97",
    "mul_mod27", "mul_mod53",
    "div_mod29", "div_mod97",
    "mixed_mod29",
    "a2_b2_mod27", "a2_b2_mod53",
    "a2_ab_b2_mod27", "a2_ab_b2_mod53",
    "a2_ab_b2_a_mod53",
    "a3_ab_mod53",
    "a3_ab2_b_mod29",
    "s4_compose", "s5_compose",
)

_TASK_NAME = re.compile(r"^([a-z0-9_]+?)_mod(\d+)$")


def parse_task_name(name: str) -> tuple[str, int]:
    """``"add_mod27"`` -> ``("add", 27)``; ``"s5_compose"`` -> ``("s5_compose", 120)``.

    Raises:
        ValueError: a name that is not ``<op>_mod<p>`` with a known op, nor a group op.
    """
    if name in _GROUP_OPS:
        return name, _group(_GROUP_OPS[name][0])[0].shape[0]
    m = _TASK_NAME.match(name) if isinstance(name, str) else None
    if not m or m.group(1) not in _MODULAR:
        raise ValueError(
            f"unknown algorithmic task {name!r}: expected '<op>_mod<p>' with op in "
            f"{tuple(_MODULAR)}, or one of {tuple(_GROUP_OPS)}"
        )
    return m.group(1), int(m.group(2))


def is_algorithmic_task(name: str) -> bool:
    """Whether ``name`` is a valid algorithmic task name."""
    try:
        parse_task_name(name)
        return True
    except ValueError:
        return False


@lru_cache(maxsize=4)
def _group(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The elements of S_n (rows, lexicographic) and the index of each permutation's inverse."""
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
    index = {tuple(p): i for i, p in enumerate(perms)}
    inv = np.array([index[tuple(np.argsort(p))] for p in perms], dtype=np.int64)
    return perms, inv


def _group_products(op: str) -> np.ndarray:
    """Rows ``(a, b, y)`` over all element pairs of the group op's product."""
    n, product = _GROUP_OPS[op]
    perms, inv = _group(n)
    m = len(perms)
    weights = n ** np.arange(n)
    lookup = np.full(n**n, -1, dtype=np.int64)
    lookup[perms @ weights] = np.arange(m)
    comp = perms[:, perms]  # comp[i, j, k] = perms[i][perms[j][k]]: (a . b)(k) = a(b(k))
    table = lookup[comp @ weights]  # (m, m): index of perms[i] . perms[j]
    a, b = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    a, b = a.ravel(), b.ravel()
    if product == "ab":
        y = table[a, b]
    elif product == "aba^-1":
        y = table[table[a, b], inv[a]]
    else:  # "aba"
        y = table[table[a, b], a]
    return np.stack([a, b, y], axis=1)


@dataclass
class AlgorithmicTask:
    """One algorithmic task, split into train and test pairs.

    Attributes:
        name: the stable task name (``add_mod27``).
        op: the operation; p: operand values and classes (the modulus, or the group order).
        X_train, X_test: float32 **Shape** ``(n, 2p)``: one-hot ``a`` then one-hot ``b``.
        y_train, y_test: int64 **Shape** ``(n,)``: ``op(a, b)`` in ``0..p-1``.
        pairs_train, pairs_test: int64 **Shape** ``(n, 2)``: the operands ``(a, b)``.
        n_classes: ``p``.
    """

    name: str
    op: str
    p: int
    train_fraction: float
    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    pairs_train: np.ndarray
    pairs_test: np.ndarray
    n_classes: int = field(init=False)

    def __post_init__(self):
        self.n_classes = self.p


def algorithmic_task(
    op: str, p: int | None = None, train_fraction: float = 0.5, seed: int = 0
) -> AlgorithmicTask:
    """All pairs ``(a, b)`` of an operation, labelled ``op(a, b) mod p``, split by ``train_fraction``.

    Args:
        op: one of :data:`ALGORITHMIC_OPS`, or a full task name (``"add_mod27"``) with ``p=None``.
        p: the modulus (any int >= 2; a prime for ``div`` and ``mixed``); for group ops ``None``
            or the group order.
        train_fraction: share of the pairs in the training set, in (0, 1).
        seed: the seed of the random train/test partition.

    **Shape**: ``X`` ``(n_pairs, 2p)`` float32 with ``n_pairs = p^2`` (``p (p-1)`` for ``div``);
    ``y`` ``(n_pairs,)`` int64.

    Raises:
        ValueError: an unknown op, a bad modulus (non-prime for division, naming it), or a
            fraction outside (0, 1).
    """
    if p is None and op not in _GROUP_OPS:
        op, p = parse_task_name(op)
    if op not in ALGORITHMIC_OPS:
        raise ValueError(f"unknown operation {op!r}; allowed: {ALGORITHMIC_OPS}")
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction={train_fraction!r} must lie in (0, 1)")
    if op in _GROUP_OPS:
        triples = _group_products(op)
        order = int(triples[:, 0].max()) + 1
        if p is not None and int(p) != order:
            raise ValueError(f"{op} acts on {order} elements, got p={p!r} (leave p unset)")
        p, name = order, op
        a, b, y = triples.T
    else:
        if not isinstance(p, (int, np.integer)) or isinstance(p, bool) or p < 2:
            raise ValueError(f"modulus p={p!r} must be an int >= 2")
        p = int(p)
        fn, needs_prime, no_zero = _MODULAR[op]
        if needs_prime and not _is_prime(p):
            raise ValueError(f"operation {op!r} divides modulo p, so p must be prime; p={p} is not")
        a, b = np.meshgrid(np.arange(p, dtype=np.int64), np.arange(p, dtype=np.int64), indexing="ij")
        a, b = a.ravel(), b.ravel()
        if no_zero:
            a, b = a[b != 0], b[b != 0]
        y = fn(a, b, p).astype(np.int64)
        name = f"{op}_mod{p}"
    n = len(a)
    n_train = int(round(float(train_fraction) * n))
    if not 0 < n_train < n:
        raise ValueError(f"train_fraction={train_fraction} leaves an empty split of {n} pairs")
    perm = np.random.default_rng(seed).permutation(n)
    eye = np.eye(p, dtype=np.float32)
    X = np.concatenate([eye[a], eye[b]], axis=1)
    pairs = np.stack([a, b], axis=1)
    tr, te = perm[:n_train], perm[n_train:]
    return AlgorithmicTask(
        name, op, p, float(train_fraction), int(seed),
        X[tr], y[tr], X[te], y[te], pairs[tr], pairs[te],
    )


# -------------------------------------------------------------------------------- tree task
TREE_TASK_DEFAULTS: dict[str, Any] = {
    "n_samples": 20_000,
    "n_features": 8,
    "n_informative": 4,
    "depth": 6,
    "n_classes": 2,
    "task_seed": 0,
}


def tree_task(
    n_samples: int = 20_000,
    n_features: int = 8,
    n_informative: int = 4,
    depth: int = 6,
    n_classes: int = 2,
    task_seed: int = 0,
) -> tuple[pd.DataFrame, pd.Series, dict[str, Any]]:
    """A tabular task labelled by a random axis-aligned decision tree.

    Features are i.i.d. standard normal; the first ``n_informative`` feed a full binary tree of
    ``depth`` levels whose split thresholds are random quantiles (20 %-80 %) of the rows reaching
    each node, and whose ``2^depth`` leaves get labels in a balanced random order. Piecewise
    constant with many sharp, axis-aligned boundaries: trees fit it easily, smooth ReLU MLPs do not.

    Returns:
        ``(X, y, tree)``: X **Shape** ``(n_samples, n_features)`` (columns ``x0..``), y int labels
        ``(n_samples,)``, and the tree as ``{"splits": [(node, feature, threshold)], "leaves": [...]}``.

    Raises:
        ValueError: a non-positive size, ``n_informative > n_features``, or ``n_classes < 2``.
    """
    if n_samples < 10 or n_features < 1 or depth < 1 or depth > 12:
        raise ValueError(
            f"tree_task: n_samples={n_samples} (>= 10), n_features={n_features} (>= 1), "
            f"depth={depth} (1..12) out of range"
        )
    if not 1 <= n_informative <= n_features:
        raise ValueError(f"n_informative={n_informative} must lie in 1..n_features={n_features}")
    if n_classes < 2 or n_classes > 2**depth:
        raise ValueError(f"n_classes={n_classes} must lie in 2..2^depth={2**depth}")
    rng = np.random.default_rng(task_seed)
    X = rng.standard_normal((n_samples, n_features))
    node = np.zeros(n_samples, dtype=np.int64)  # heap index within the current level
    splits = []
    for level in range(depth):
        new = np.empty_like(node)
        for k in range(2**level):
            rows = np.flatnonzero(node == k)
            f = int(rng.integers(n_informative))
            q = rng.uniform(0.2, 0.8)
            thr = float(np.quantile(X[rows, f], q)) if len(rows) else 0.0
            splits.append((level, k, f, thr))
            new[rows] = 2 * k + (X[rows, f] > thr)
        node = new
    leaves = np.resize(np.arange(n_classes), 2**depth)
    rng.shuffle(leaves)
    y = leaves[node]
    cols = [f"x{i}" for i in range(n_features)]
    return (
        pd.DataFrame(X, columns=cols),
        pd.Series(y, name="label"),
        {"splits": splits, "leaves": leaves.tolist()},
    )


# ----------------------------------------------------------------------------- bundled sets
BUNDLED: tuple[str, ...] = ("digits", "breast_cancer", "tree_task")

DIGITS_SPEC = DatasetSpec("digits", None, "image", "class", (8, 8, 1), pixel_max=16.0)
BREAST_CANCER_SPEC = DatasetSpec("breast_cancer", None, "tabular", "target")
TREE_TASK_SPEC = DatasetSpec("tree_task", None, "tabular", "label")


def _array_sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class BundledSource:
    """The always-available sets: ``digits``, ``breast_cancer`` (scikit-learn) and ``tree_task``.

    Args:
        tree_options: arguments of :func:`tree_task` (defaults :data:`TREE_TASK_DEFAULTS`).
    """

    kind = "bundled"

    def __init__(self, tree_options: dict[str, Any] | None = None):
        unknown = set(tree_options or {}) - set(TREE_TASK_DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown tree_task options {sorted(unknown)}; allowed: {sorted(TREE_TASK_DEFAULTS)}"
            )
        self.tree_options = {**TREE_TASK_DEFAULTS, **(tree_options or {})}
        self._memo: dict[str, RawTable] = {}

    def __repr__(self) -> str:
        return "BundledSource()"

    def available(self) -> list[str]:
        """The bundled names."""
        return list(BUNDLED)

    def spec_for(self, dataset: str | DatasetSpec) -> DatasetSpec:
        """The spec of a bundled set."""
        name = dataset.name if isinstance(dataset, DatasetSpec) else dataset
        specs = {s.name: s for s in (DIGITS_SPEC, BREAST_CANCER_SPEC, TREE_TASK_SPEC)}
        if name not in specs:
            self.load(name)  # raises DatasetUnavailable naming the bundled sets
        return specs[name]

    def describe(self, dataset: str | DatasetSpec) -> dict[str, Any]:
        """Provenance (the sha256 of the generated arrays)."""
        return dict(self.load(dataset).provenance)

    def load(self, dataset: str | DatasetSpec) -> RawTable:
        """Build a bundled set (memoised)."""
        name = dataset.name if isinstance(dataset, DatasetSpec) else dataset
        if name not in BUNDLED:
            raise DatasetUnavailable(
                f"dataset {name!r} is not bundled (bundled: {', '.join(BUNDLED)}); fix: use a "
                "mirror, openml or files source for it"
            )
        if name in self._memo:
            return self._memo[name]
        if name == "digits":
            from sklearn.datasets import load_digits

            d = load_digits()
            X = pd.DataFrame(d.data, columns=[f"pixel{i + 1}" for i in range(64)])
            y = pd.Series(d.target, name="class")
            spec, extra, where = DIGITS_SPEC, {}, "sklearn.datasets.load_digits"
        elif name == "breast_cancer":
            from sklearn.datasets import load_breast_cancer

            d = load_breast_cancer()
            X = pd.DataFrame(d.data, columns=list(d.feature_names))
            y = pd.Series(d.target, name="target")
            spec, extra, where = BREAST_CANCER_SPEC, {}, "sklearn.datasets.load_breast_cancer"
        else:
            X, y, _ = tree_task(**self.tree_options)
            spec, extra, where = TREE_TASK_SPEC, {"options": dict(self.tree_options)}, (
                "pipeline.data.synthetic.tree_task"
            )
        raw = RawTable(
            spec=spec,
            X=X,
            y=y,
            provenance={
                "source": "bundled",
                "location": where,
                "sha256": _array_sha256(X.to_numpy(), y.to_numpy()),
                **extra,
            },
        )
        self._memo[name] = raw
        return raw
