"""The cached entry point: keys, atomic writes, cache hits, doctests, and the full-mirror timing."""

from __future__ import annotations

import doctest
import importlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import (
    IMAGE_DATASETS,
    MirrorSource,
    PreparedData,
    available_datasets,
    prepare_dataset,
)

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
HAVE_MIRROR = (MIRROR / "manifest.json").is_file()
_SKIP = f"no data mirror at {MIRROR} (../shared/data)"


def test_second_preparation_is_served_from_the_cache(tmp_path):
    first = prepare_dataset("breast_cancer", seed=2, cache_dir=tmp_path, features="tree")
    assert first.meta["cache_hit"] is False
    folder = Path(first.meta["cache_path"])
    assert {p.name for p in folder.iterdir()} == {"data.npz", "meta.json"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp")]
    second = prepare_dataset("breast_cancer", seed=2, cache_dir=tmp_path, features="tree")
    assert second.meta["cache_hit"] is True and second.meta["key"] == first.meta["key"]
    for k in first.splits:
        np.testing.assert_array_equal(first.splits[k][0], second.splits[k][0])
        np.testing.assert_array_equal(first.splits[k][1], second.splits[k][1])
    assert second.feature_names == first.feature_names and second.provenance == first.provenance
    # another seed or option is another entry
    other = prepare_dataset("breast_cancer", seed=3, cache_dir=tmp_path, features="tree")
    net = prepare_dataset("breast_cancer", seed=2, cache_dir=tmp_path)
    assert len({first.meta["key"], other.meta["key"], net.meta["key"]}) == 3
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["splits"]["train"]["rows"] == 398 and meta["provenance"]["source"] == "bundled"
    assert len(meta["splits"]["test"]["sha256"]) == 64


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    d = prepare_dataset("digits", seed=0, cache_dir=tmp_path)
    (Path(d.meta["cache_path"]) / "data.npz").write_bytes(b"garbage")
    again = prepare_dataset("digits", seed=0, cache_dir=tmp_path)
    assert again.meta["cache_hit"] is False
    np.testing.assert_array_equal(again.X_train, d.X_train)


def test_prepared_data_roundtrip_and_missing_split(tmp_path):
    d = prepare_dataset("add_mod13", seed=0)
    d.meta["key"] = "k"
    back = PreparedData.load(d.save(tmp_path / "x"))
    np.testing.assert_array_equal(back.X_test, d.X_test)
    assert back.rows == d.rows and back.n_classes == 13
    with pytest.raises(AttributeError, match="no 'val' split; its splits are \\['train', 'test'\\]"):
        d.X_val


def test_bad_arguments():
    with pytest.raises(ValueError, match="seed=-1"):
        prepare_dataset("digits", seed=-1, cache_dir=False)
    with pytest.raises(ValueError, match=r"unknown algorithmic options \['n_train'\]"):
        prepare_dataset("add_mod13", n_train=3)
    with pytest.raises(ValueError, match="tree_options apply to 'tree_task' only"):
        prepare_dataset("digits", cache_dir=False, tree_options={"depth": 3})


def test_available_datasets(monkeypatch):
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    assert available_datasets("tabular") == ["tree_task", "breast_cancer"]
    assert available_datasets("image") == ["digits"]
    if HAVE_MIRROR:
        names = available_datasets("image", MirrorSource(MIRROR))
        assert names[:3] == ["mnist_784", "Fashion-MNIST", "CIFAR_10"] and names[-1] == "digits"


@pytest.mark.parametrize(
    "module", ["registry", "sources", "tabular", "images", "synthetic", "collages", "prepare", "__init__"]
)
def test_doctests(module):
    mod = importlib.import_module("pipeline.data" + ("" if module == "__init__" else f".{module}"))
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_MIRROR, reason=_SKIP)
def test_full_mirror_preparation_time(tmp_path):
    """All tabular sets of the mirror and the three image sets: cold < 120 s, then all cache hits."""
    src = MirrorSource(MIRROR)
    names = [n for n in available_datasets("tabular", src) if n not in ("tree_task", "breast_cancer")]
    names += [n for n in available_datasets("image", src) if n in IMAGE_DATASETS]
    assert len(names) == 14
    t0 = time.perf_counter()
    for n in names:
        prepare_dataset(n, source=MirrorSource(MIRROR), seed=0, cache_dir=tmp_path)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    hits = [prepare_dataset(n, source=MirrorSource(MIRROR), seed=0, cache_dir=tmp_path).meta["cache_hit"]
            for n in names]
    warm = time.perf_counter() - t0
    print(f"\nprepared {len(names)} sets: cold {cold:.1f} s, warm {warm:.1f} s")
    assert all(hits) and cold < 120 and warm < cold


@pytest.mark.skipif(not HAVE_MIRROR, reason=_SKIP)
def test_group_by_keeps_each_eye_movements_assignment_in_one_split(tmp_path):
    import pandas as pd

    src = MirrorSource(MIRROR)
    grouped = prepare_dataset("eye_movements", source=src, seed=0, cache_dir=tmp_path, features="tree", group_by="assgNo")
    plain = prepare_dataset("eye_movements", source=src, seed=0, cache_dir=tmp_path, features="tree")
    col = grouped.feature_names.index("assgNo")
    sets = {k: set(grouped.splits[k][0][:, col].tolist()) for k in ("train", "val", "test")}
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    assert sum(len(s) for s in sets.values()) == 331  # every assignment of the 7,608 rows, once
    assert grouped.meta["options"]["group_by"] == "assgNo" and grouped.meta["key"] != plain.meta["key"]
    # the random split of the benchmark shares nearly every assignment between train and test
    plain_sets = {k: set(plain.splits[k][0][:, col].tolist()) for k in ("train", "test")}
    assert len(plain_sets["train"] & plain_sets["test"]) > 250
    raw = pd.read_parquet(MIRROR / "tabular" / "eye_movements.parquet")
    assert grouped.rows["train"] + grouped.rows["val"] + grouped.rows["test"] == len(raw)
    with pytest.raises(ValueError, match=r"group_by='session' is not a feature column of dataset 'eye_movements'.*assgNo"):
        prepare_dataset("eye_movements", source=src, seed=0, cache_dir=tmp_path, group_by="session")


@pytest.mark.skipif(not HAVE_MIRROR, reason=_SKIP)
def test_order_by_puts_earlier_electricity_days_in_train_and_later_ones_in_test(tmp_path):
    src = MirrorSource(MIRROR)
    d = prepare_dataset("electricity", source=src, seed=0, cache_dir=tmp_path, features="tree", order_by="date")
    col = d.feature_names.index("date")
    dates = {k: d.splits[k][0][:, col] for k in ("train", "val", "test")}
    assert dates["train"].max() < dates["val"].min() and dates["val"].max() < dates["test"].min()
    assert d.rows["train"] >= 10_000 and d.rows["train"] < 10_000 + 86  # the cap, plus less than one day
    with pytest.raises(ValueError, match=r"give group_by \('date'\) or order_by \('period'\), not both"):
        prepare_dataset("electricity", source=src, seed=0, cache_dir=tmp_path, group_by="date", order_by="period")
