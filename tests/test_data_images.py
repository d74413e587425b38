"""Image sets: official splits, scaling, validation, subsets, grayscale, regression variant."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import MirrorSource, prepare_dataset, stratified_subsample

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
_ENTRIES = (
    [e for e in json.loads((MIRROR / "manifest.json").read_text())["datasets"] if e["kind"] == "image"]
    if (MIRROR / "manifest.json").is_file() else []
)
_SKIP = f"no data mirror at {MIRROR} (../shared/data)"


@pytest.mark.skipif(not _ENTRIES, reason=_SKIP)
@pytest.mark.parametrize("entry", _ENTRIES, ids=lambda e: e["name"])
def test_image_set_from_mirror(entry):
    src = MirrorSource(MIRROR)
    raw = src.load(entry["name"])
    assert raw.n_rows == entry["n_rows"] and raw.X.shape[1] == entry["n_features"]
    (a, b), (c, d) = raw.official_split["train"], raw.official_split["test"]
    assert a == 0 and b == c and d == entry["n_rows"]
    h, w, ch = entry["image_shape"]

    opts = {"n_train": 600, "n_val": 100, "n_test": 400}
    p = prepare_dataset(entry["name"], source=src, seed=0, cache_dir=False, **opts)
    q = prepare_dataset(entry["name"], source=src, seed=0, cache_dir=False, **opts)
    r = prepare_dataset(entry["name"], source=src, seed=1, cache_dir=False, **opts)
    assert p.rows == {"train": 600, "val": 100, "test": 400}
    assert p.meta["image_shape"] == [ch, h, w] and p.X_train.shape == (600, h * w * ch)
    assert p.X_train.dtype == np.float32 and p.y_train.dtype == np.int64
    assert 0.0 <= p.X_train.min() and p.X_train.max() <= 1.0 and p.X_train.max() > 0.9
    assert p.n_classes == 10 and p.task == "classification"
    # class-stratified subsets: class shares as in the official parts (within one row)
    y_all = raw.y.to_numpy().astype(np.int64)
    for part, (lo, hi), n in (("train", (a, b), 600), ("test", (c, d), 400)):
        share = np.bincount(y_all[lo:hi], minlength=10) / (hi - lo)
        got = np.bincount(p.splits[part][1], minlength=10)
        assert np.abs(got - n * share).max() < 1.0 + 1e-9, (part, got)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(p.splits[k][0], q.splits[k][0])
    # test images are fixed across seeds; training images are not
    np.testing.assert_array_equal(p.X_test, r.X_test)
    assert not np.array_equal(p.X_train, r.X_train)

    # validation rows are rows of the official training part, scaled by 1/255
    pix = raw.X.to_numpy()
    v = p.X_val[0].reshape(ch, h, w)
    v = v.ravel() if raw.spec.channels_first else v.transpose(1, 2, 0).ravel()
    assert (pix[a:b] == np.rint(v * 255).astype(pix.dtype)).all(axis=1).any()
    t = p.X_test[0].reshape(ch, h, w)
    t = t.ravel() if raw.spec.channels_first else t.transpose(1, 2, 0).ravel()
    assert (pix[c:d] == np.rint(t * 255).astype(pix.dtype)).all(axis=1).any()

    reg = prepare_dataset(entry["name"], source=src, seed=0, cache_dir=False, task="regression", **opts)
    assert reg.task == "regression" and reg.y_train.dtype == np.float32
    np.testing.assert_array_equal(reg.y_train, p.y_train.astype(np.float32))
    if ch == 3:
        g = prepare_dataset(entry["name"], source=src, seed=0, cache_dir=False, grayscale=True, **opts)
        assert g.meta["image_shape"] == [1, h, w]
        np.testing.assert_allclose(g.X_train, p.X_train.reshape(600, 3, -1).mean(axis=1), atol=1e-6)


@pytest.mark.skipif(not _ENTRIES, reason=_SKIP)
def test_full_validation_split_is_a_tenth_of_train():
    src = MirrorSource(MIRROR)
    p = prepare_dataset("CIFAR_10", source=src, seed=0, cache_dir=False, flatten=False)
    assert p.rows == {"train": 10_800, "val": 1_200, "test": 5_000}
    assert p.X_train.shape[1:] == (3, 32, 32)
    assert np.bincount(p.y_test).tolist() == [500] * 10


def test_digits_is_an_offline_image_set():
    d = prepare_dataset("digits", seed=0, cache_dir=False)
    assert d.meta["image_shape"] == [1, 8, 8] and d.X_train.shape[1] == 64
    assert d.X_train.max() == 1.0 and d.rows["test"] == 359
    assert "no official split" in d.meta["split_rule"]
    with pytest.raises(ValueError, match="val_fraction=0 must lie in"):
        prepare_dataset("digits", cache_dir=False, val_fraction=0)
    with pytest.raises(ValueError, match="task='ranking'; allowed"):
        prepare_dataset("digits", cache_dir=False, task="ranking")
    with pytest.raises(ValueError, match=r"unknown image options \['features'\]"):
        prepare_dataset("digits", cache_dir=False, features="tree")


def test_stratified_subsample():
    y = np.repeat(np.arange(3), [50, 30, 20])
    idx = stratified_subsample(y, 10, np.random.default_rng(0))
    assert np.bincount(y[idx]).tolist() == [5, 3, 2] and len(np.unique(idx)) == 10
    with pytest.raises(ValueError, match="n=0"):
        stratified_subsample(y, 0, np.random.default_rng(0))
