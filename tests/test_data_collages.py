"""Shortcut-learning collages: which tile predicts the label in which set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from pipeline.data import MirrorSource, make_collages, prepare_dataset, split_tiles

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
HAVE_MIRROR = (MIRROR / "manifest.json").is_file()


def _pool(X: np.ndarray, side: int, to: int = 8) -> np.ndarray:
    """Average-pool flattened square tiles to ``to x to`` (a fast, robust linear probe input)."""
    n = len(X)
    return X.reshape(n, to, side // to, to, side // to).mean(axis=(2, 4)).reshape(n, -1)


def _check(d, min_complex_acc: float):
    side = d.meta["tile_size"]
    Xtr, ytr = d.splits["train"]
    assert set(d.splits) == {"train", "val_simple", "val_complex", "test_simple", "test_complex"}
    assert d.meta["image_shape"] == [1, 2 * side, side] and Xtr.shape[1] == 2 * side * side
    for part, floor in ((0, 0.95), (1, min_complex_acc)):
        feats = lambda k: _pool(split_tiles(d.splits[k][0], side)[part], side)  # noqa: E731
        clf = LogisticRegression(max_iter=1000).fit(feats("train"), ytr)
        acc = {k: clf.score(feats(k), d.splits[k][1]) for k in d.splits}
        mine, other = ("simple", "complex") if part == 0 else ("complex", "simple")
        # in the training set this tile predicts the label; in the sets where it is predictive a
        # classifier seeing only it is accurate, where it is random the classifier is at chance
        assert acc["train"] > floor, acc
        for split in (f"test_{mine}", f"val_{mine}"):
            assert acc[split] > floor, (split, acc)
        for split in (f"test_{other}", f"val_{other}"):
            assert abs(acc[split] - 0.5) < 0.07, (split, acc)
    for k, (X, y) in d.splits.items():
        assert abs(y.mean() - 0.5) < 0.01 and X.dtype == np.float32, k


@pytest.mark.skipif(not HAVE_MIRROR, reason=f"no data mirror at {MIRROR} (../shared/data)")
def test_mnist_cifar_collages(tmp_path):
    d = prepare_dataset(
        "collages", source=MirrorSource(MIRROR), seed=0, cache_dir=tmp_path,
        n_train=3000, n_val=600, n_test=2000, data="mirror",
    )
    assert d.provenance["data"] == "mnist_cifar" and d.meta["tile_size"] == 32
    assert d.provenance["simple"]["dataset"] == "mnist_784"
    assert d.provenance["complex"]["class_names"] == ["automobile", "truck"]
    # grayscale car-vs-truck is hard for a linear probe (about 63 %), yet clearly above chance
    _check(d, min_complex_acc=0.58)


def test_bundled_fallback_collages():
    d = prepare_dataset("collages", seed=0, cache_dir=False, n_train=2000, n_val=400, n_test=1000,
                        data="bundled")
    assert d.provenance["data"] == "bundled_digits" and "fallback" in d.provenance["note"]
    _check(d, min_complex_acc=0.85)


def test_make_collages_inputs():
    rng = np.random.default_rng(0)
    a = (rng.random((30, 6, 6)), np.repeat([0, 1], 15))
    b = (rng.random((30, 4 * 4)), np.repeat([0, 1], 15))
    sets = make_collages(a, b, n_train=8, n_val=4, n_test=4, seed=1)
    assert sets["train"][0].shape == (8, 72)  # both tiles 6x6 after resizing the 4x4 one
    again = make_collages(a, b, n_train=8, n_val=4, n_test=4, seed=1)
    np.testing.assert_array_equal(sets["test_simple"][0], again["test_simple"][0])
    with pytest.raises(ValueError, match="n_val=0 must be >= 1"):
        make_collages(a, b, n_train=8, n_val=0, n_test=4)
    with pytest.raises(ValueError, match=r"labels \[1, 2\]; labels must be 0..2 in every tile set"):
        make_collages((a[0], a[1] + 1), b, n_train=8, n_val=4, n_test=4)
    with pytest.raises(ValueError, match="collage data='cifar'; allowed"):
        prepare_dataset("collages", cache_dir=False, data="cifar")
    with pytest.raises(ValueError, match=r"collage classes='four'; allowed: \('binary', 'ten'\)"):
        prepare_dataset("collages", cache_dir=False, classes="four")


def test_collages_of_more_classes_pair_tile_class_k_with_label_k():
    rng = np.random.default_rng(0)
    # each tile's pixels encode its class, so a collage shows which class each tile came from
    ys = np.repeat(np.arange(3), 20)
    simple = (np.broadcast_to(ys[:, None, None] / 10.0, (60, 4, 4)).copy(), ys)
    complex_ = (np.broadcast_to(ys[:, None, None] / 10.0 + 0.5, (60, 4, 4)).copy(), ys)
    sets = make_collages(simple, complex_, n_train=30, n_val=300, n_test=300, seed=2)
    for name, (X, y) in sets.items():
        top, bottom = np.rint(X[:, 0] * 10).astype(int), np.rint((X[:, -1] - 0.5) * 10).astype(int)
        assert sorted(np.unique(y).tolist()) == [0, 1, 2]
        if name == "train":
            assert np.array_equal(top, y) and np.array_equal(bottom, y)
        predictive, other = (top, bottom) if name.endswith("simple") else (bottom, top)
        if name != "train":
            assert np.array_equal(predictive, y) and 0.25 < np.mean(other == y) < 0.42  # the other: a uniform class (1/3)


def test_ten_class_collages_from_bundled_digits_say_so():
    d = prepare_dataset("collages", seed=0, cache_dir=False, n_train=300, n_val=50, n_test=100, data="bundled",
                        classes="ten")
    assert d.n_classes == 10 and d.provenance["data"] == "bundled_digits-10class"
    assert d.provenance["classes"] == "ten" and d.provenance["complex"]["classes"] == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
    assert np.bincount(d.splits["train"][1]).tolist() == [30] * 10


def test_bilinear_resize_uses_half_pixel_centres():
    from pipeline.data.collages import resize_tiles

    X = np.array([[[0.0, 1.0], [0.0, 1.0]]], dtype=np.float32)
    np.testing.assert_allclose(resize_tiles(X, 4)[0, 0], [0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(resize_tiles(np.full((1, 28, 28), 0.3), 32), 0.3, atol=1e-6)
