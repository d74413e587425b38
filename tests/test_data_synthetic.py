"""Algorithmic tasks (Power et al. 2022 operations) and the bundled sets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.data import (
    ALGORITHMIC_OPS,
    PAPER_TASKS,
    algorithmic_task,
    parse_task_name,
    prepare_dataset,
    tree_task,
)

_REFERENCE = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * pow(b, -1, p)) % p,
    "mixed": lambda a, b, p: (a * pow(b, -1, p)) % p if b % 2 else (a - b) % p,
    "a2_b2": lambda a, b, p: (a**2 + b**2) % p,
    "a2_ab_b2": lambda a, b, p: (a**2 + a * b + b**2) % p,
    "a2_ab_b2_a": lambda a, b, p: (a**2 + a * b + b**2 + a) % p,
    "a3_ab": lambda a, b, p: (a**3 + a * b) % p,
    "a3_ab2_b": lambda a, b, p: (a**3 + a * b**2 + b) % p,
}


def _decode(X: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    assert X.shape[1] == 2 * p and set(np.unique(X)) <= {0.0, 1.0}
    assert (X[:, :p].sum(1) == 1).all() and (X[:, p:].sum(1) == 1).all()
    return X[:, :p].argmax(1), X[:, p:].argmax(1)


@pytest.mark.parametrize("op", list(_REFERENCE))
def test_modular_operations(op):
    p = 13
    t = algorithmic_task(op, p, train_fraction=0.3, seed=0)
    X = np.concatenate([t.X_train, t.X_test])
    y = np.concatenate([t.y_train, t.y_test])
    a, b = _decode(X, p)
    np.testing.assert_array_equal(np.stack([a, b], 1), np.concatenate([t.pairs_train, t.pairs_test]))
    assert all(y[i] == _REFERENCE[op](int(a[i]), int(b[i]), p) for i in range(len(y)))
    n = p * (p - 1) if op == "div" else p * p
    assert len(y) == n and len({(x, z) for x, z in zip(a, b)}) == n
    assert len(t.y_train) == round(0.3 * n) and t.X_train.dtype == np.float32 and y.dtype == np.int64


@pytest.mark.parametrize("op,n", [("s4_compose", 4), ("s5_compose", 5), ("s5_conj", 5), ("s5_aba", 5)])
def test_permutation_groups(op, n):
    perms = list(itertools.permutations(range(n)))
    t = algorithmic_task(op, train_fraction=0.5, seed=0)
    assert t.p == len(perms) and t.X_train.shape[1] == 2 * len(perms)
    for (a, b), y in zip(t.pairs_test[:200], t.y_test[:200]):
        pa, pb = perms[a], perms[b]
        ab = tuple(pa[pb[k]] for k in range(n))
        if op == "s5_conj":
            inv = tuple(np.argsort(pa))
            want = tuple(ab[inv[k]] for k in range(n))
        elif op == "s5_aba":
            want = tuple(ab[pa[k]] for k in range(n))
        else:
            want = ab
        assert perms[y] == want


def test_any_modulus_fraction_and_seed():
    t1 = algorithmic_task("add", 27, train_fraction=0.5, seed=4)
    t2 = algorithmic_task("add_mod27", train_fraction=0.5, seed=4)
    t3 = algorithmic_task("add", 27, train_fraction=0.5, seed=5)
    np.testing.assert_array_equal(t1.X_train, t2.X_train)
    assert not np.array_equal(t1.pairs_train, t3.pairs_train)
    assert algorithmic_task("mul", 100, train_fraction=0.9).X_test.shape == (1000, 200)
    with pytest.raises(ValueError, match="p=27 is not"):
        algorithmic_task("div", 27)
    with pytest.raises(ValueError, match="p=27 is not"):
        algorithmic_task("mixed_mod27")
    with pytest.raises(ValueError, match="train_fraction=1.0 must lie in"):
        algorithmic_task("add", 13, train_fraction=1.0)
    with pytest.raises(ValueError, match="unknown operation 'pow'"):
        algorithmic_task("pow", 13)
    with pytest.raises(ValueError, match="unknown algorithmic task 'pow_mod13'"):
        parse_task_name("pow_mod13")
    with pytest.raises(ValueError, match="s4_compose acts on 24 elements"):
        algorithmic_task("s4_compose", 13)


def test_paper_task_list():
    assert len(PAPER_TASKS) == 22 == len(set(PAPER_TASKS))
    ops = {parse_task_name(n)[0] for n in PAPER_TASKS}
    assert ops >= {"add", "sub", "mul", "div", "mixed", "a2_b2", "a2_ab_b2", "a2_ab_b2_a", "a3_ab",
                   "a3_ab2_b", "s4_compose"}
    assert set(ops) <= set(ALGORITHMIC_OPS)
    for name in ("add_mod13", "add_mod27", "add_mod29", "add_mod41", "a3_ab_mod53", "s4_compose"):
        assert name in PAPER_TASKS
    for name in PAPER_TASKS:
        d = prepare_dataset(name, seed=0, train_fraction=0.5)
        assert d.name == name and set(d.splits) == {"train", "test"}
        assert d.n_classes == d.X_train.shape[1] // 2 and d.provenance["source"] == "synthetic"


def test_tree_task_is_seeded_and_balanced():
    X1, y1, t1 = tree_task(n_samples=1000, task_seed=3)
    X2, y2, _ = tree_task(n_samples=1000, task_seed=3)
    np.testing.assert_array_equal(X1.to_numpy(), X2.to_numpy())
    np.testing.assert_array_equal(y1, y2)
    assert 0.3 < y1.mean() < 0.7 and len(t1["leaves"]) == 64
    with pytest.raises(ValueError, match="n_informative=9"):
        tree_task(n_features=4, n_informative=9)
