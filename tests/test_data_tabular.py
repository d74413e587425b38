"""The Grinsztajn protocol over every tabular set of the mirror, and preprocessing edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import QuantileTransformer

from pipeline.data import (
    MirrorSource,
    encode_labels,
    grinsztajn_split,
    prepare_dataset,
    preprocess_tabular,
)

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
_ENTRIES = (
    [e for e in json.loads((MIRROR / "manifest.json").read_text())["datasets"] if e["kind"] == "tabular"]
    if (MIRROR / "manifest.json").is_file() else []
)
_SKIP = f"no data mirror at {MIRROR} (../shared/data)"


@pytest.fixture(scope="module")
def mirror():
    if not _ENTRIES:
        pytest.skip(_SKIP)
    return MirrorSource(MIRROR)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("prepared")


def _expected_sizes(n: int) -> tuple[int, int, int]:
    n_train = min(10_000, int(np.floor(0.7 * n + 1e-9)))
    rest = n - n_train
    n_val = min(50_000, int(np.floor(0.3 * rest + 1e-9)))
    return n_train, n_val, min(50_000, rest - n_val)


@pytest.mark.skipif(not _ENTRIES, reason=_SKIP)
@pytest.mark.parametrize("entry", _ENTRIES, ids=lambda e: e["name"])
def test_protocol_on_mirror_set(entry, mirror, cache):
    name, n = entry["name"], entry["n_rows"]
    d0 = prepare_dataset(name, source=mirror, seed=0, cache_dir=cache)
    again = prepare_dataset(name, source=mirror, seed=0, cache_dir=False)
    d1 = prepare_dataset(name, source=mirror, seed=1, cache_dir=cache)

    # sizes follow the protocol; every split records its provenance
    assert tuple(d0.rows.values()) == _expected_sizes(n)
    for k, info in d0.meta["splits"].items():
        assert info["rows"] == d0.rows[k]
        assert info["source"] == "mirror" and info["source_sha256"] == entry["sha256"]
    # disjoint, within the table, reproducible per seed, different across seeds
    idx = {k: np.asarray(v) for k, v in d0.meta["indices"].items()}
    allidx = np.concatenate(list(idx.values()))
    assert len(np.unique(allidx)) == len(allidx) and allidx.min() >= 0 and allidx.max() < n
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(d0.splits[k][0], again.splits[k][0])
        np.testing.assert_array_equal(d0.splits[k][1], again.splits[k][1])
    assert not np.array_equal(idx["train"], np.asarray(d1.meta["indices"]["train"]))
    # labels 0..k-1 with the manifest's class counts
    counts = np.bincount(np.concatenate([d0.y_train, d0.y_val, d0.y_test]))
    assert d0.n_classes == len(entry["class_counts"]) == len(counts)
    if n == sum(d0.rows.values()):
        assert sorted(counts.tolist()) == sorted(entry["class_counts"].values())

    # the quantile transform is fitted on the training rows only
    raw = mirror.load(name)
    cols = [c for c in raw.X.columns if c not in d0.meta["dropped_constant"]]
    Xr = raw.X[cols].to_numpy(dtype=np.float64)
    qt = QuantileTransformer(
        n_quantiles=min(1000, len(idx["train"])), output_distribution="normal", random_state=0,
        subsample=10_000,
    ).fit(Xr[idx["train"]])
    np.testing.assert_allclose(d0.X_test, qt.transform(Xr[idx["test"]]), atol=1e-5)
    np.testing.assert_allclose(d0.X_val, qt.transform(Xr[idx["val"]]), atol=1e-5)
    assert d0.meta["transform"]["fitted_on"] == "train"

    # trees get the raw features of the same rows
    tree = prepare_dataset(name, source=mirror, seed=0, cache_dir=False, features="tree")
    np.testing.assert_allclose(tree.X_train, Xr[idx["train"]].astype(np.float32))


def test_split_bounds_and_caps():
    s = grinsztajn_split(200_000, seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [10_000, 50_000, 50_000]
    s = grinsztajn_split(1_000, seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [700, 90, 210]
    with pytest.raises(ValueError, match="train_fraction=1.5"):
        grinsztajn_split(100, seed=0, train_fraction=1.5)
    with pytest.raises(ValueError, match="n_rows=3 is too small"):
        grinsztajn_split(3, seed=0)


def test_constant_missing_and_categorical_columns():
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({
        "a": rng.normal(size=n),
        "const": np.ones(n),
        "allnan": np.nan,
        "cat": pd.Categorical(rng.choice(["x", "y"], size=n)),
        "flag": rng.random(n) > 0.5,
    })
    X.loc[:10, "a"] = np.nan
    idx = grinsztajn_split(n, seed=0)
    arrays, info = preprocess_tabular(X, idx, features="network", seed=0)
    assert sorted(info["dropped_constant"]) == ["allnan", "const"]
    assert info["feature_names"] == ["a", "cat=x", "cat=y", "flag=False", "flag=True"]
    assert info["imputed"]["a"] == 11
    assert all(np.isfinite(a).all() and a.dtype == np.float32 for a in arrays.values())
    # everything constant -> a clear error, not a crash inside sklearn
    with pytest.raises(ValueError, match="no usable feature column"):
        preprocess_tabular(X[["const", "allnan"]], idx)
    with pytest.raises(ValueError, match="features='mlp'; allowed"):
        preprocess_tabular(X, idx, features="mlp")


def test_encode_labels():
    codes, classes = encode_labels(pd.Series(["10", "2", "2", "1"]))
    assert classes == [1, 2, 10] and codes.tolist() == [2, 1, 1, 0]
    codes, classes = encode_labels(pd.Series(pd.Categorical(["UP", "DOWN", "UP"])))
    assert classes == ["DOWN", "UP"] and codes.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match="missing labels"):
        encode_labels(pd.Series(["a", None]))


def test_bundled_tabular_sets_and_options(tmp_path):
    bc = prepare_dataset("breast_cancer", seed=0, cache_dir=False)
    assert bc.X_train.shape == (398, 30) and bc.provenance["source"] == "bundled"
    tree = prepare_dataset("tree_task", seed=0, cache_dir=False, tree_options={"n_samples": 2000})
    assert tree.rows == {"train": 1400, "val": 180, "test": 420}
    with pytest.raises(ValueError, match=r"unknown tabular options \['n_train'\]; allowed"):
        prepare_dataset("breast_cancer", cache_dir=False, n_train=10)
    with pytest.raises(ValueError, match="unknown tree_task options"):
        prepare_dataset("tree_task", cache_dir=False, tree_options={"width": 3})


def test_tree_task_favours_trees():
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    d = prepare_dataset("tree_task", seed=0, cache_dir=False, features="tree")
    tree = DecisionTreeClassifier(random_state=0).fit(d.X_train, d.y_train)
    linear = LogisticRegression(max_iter=500).fit(d.X_train, d.y_train)
    assert tree.score(d.X_test, d.y_test) > 0.9
    assert linear.score(d.X_test, d.y_test) < tree.score(d.X_test, d.y_test) - 0.2


def test_grouped_split_keeps_every_group_in_one_split_with_the_protocol_shares():
    from pipeline.data.tabular import grouped_split

    rng = np.random.default_rng(3)
    groups = np.repeat([f"g{i}" for i in range(200)], rng.integers(1, 12, size=200))  # uneven group sizes
    idx = grouped_split(groups, seed=5)
    parts = [set(groups[idx[k]]) for k in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(len(v) for v in idx.values()) == len(groups)  # no cap reached: every row is used once
    assert np.array_equal(np.sort(np.concatenate(list(idx.values()))), np.arange(len(groups)))
    n = len(groups)
    largest = max(np.unique(groups, return_counts=True)[1])
    assert int(0.7 * n) <= len(idx["train"]) < int(0.7 * n) + largest  # its share, plus less than one group
    rest = n - len(idx["train"])
    assert int(0.3 * rest) <= len(idx["val"]) < int(0.3 * rest) + largest
    again = grouped_split(groups, seed=5)
    assert all(np.array_equal(idx[k], again[k]) for k in idx)
    assert not np.array_equal(np.sort(grouped_split(groups, seed=6)["train"]), np.sort(idx["train"]))


def test_grouped_split_caps_and_rejects_too_few_groups_or_missing_values():
    from pipeline.data.tabular import grouped_split

    groups = np.repeat(np.arange(100), 10)
    idx = grouped_split(groups, seed=0, max_train=300, max_eval=50)
    assert len(idx["train"]) == 300 and len(idx["val"]) == 50 and len(idx["test"]) == 50
    with pytest.raises(ValueError, match="2 groups over 20 rows are too few"):
        grouped_split(np.repeat([0, 1], 10), seed=0)
    with pytest.raises(ValueError, match="1 missing values"):
        grouped_split(np.array([1.0, 2.0, np.nan, 3.0]), seed=0)


def test_ordered_grouped_split_trains_on_the_lowest_values_and_tests_on_the_highest():
    from pipeline.data.tabular import grouped_split

    days = np.random.default_rng(1).permutation(np.repeat(np.arange(50), 4))  # rows in random order
    idx = grouped_split(days, seed=0, ordered=True)
    train, val, test = (days[idx[k]] for k in ("train", "val", "test"))
    assert train.max() < val.min() and val.max() < test.min()
    assert sorted(set(train)) == list(range(35)) and len(idx["train"]) == 140  # 70 % of the rows: days 0-34
    again = grouped_split(days, seed=7, ordered=True)  # the seed leaves an ordered split unchanged
    assert all(np.array_equal(idx[k], again[k]) for k in idx)
