"""Registry and sources: mirror, real openml client offline, user files, fail-fast messages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.data import (
    IMAGE_DATASETS,
    REGISTRY,
    TABULAR_DATASETS,
    CatalogSource,
    DatasetUnavailable,
    FileSource,
    MirrorSource,
    OpenMLSource,
    get_spec,
    make_source,
    prepare_dataset,
    seed_openml_cache,
    source_from_config,
)

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_mirror = pytest.mark.skipif(
    not (MIRROR / "manifest.json").is_file(), reason=f"no data mirror at {MIRROR} (../shared/data)"
)


def _manifest() -> list[dict]:
    if not (MIRROR / "manifest.json").is_file():
        return []
    return json.loads((MIRROR / "manifest.json").read_text())["datasets"]


# ---------------------------------------------------------------------------------- registry
def test_registry_lists_the_papers_sets():
    assert len(TABULAR_DATASETS) == 16
    assert set(IMAGE_DATASETS) == {"mnist_784", "Fashion-MNIST", "CIFAR_10", "SVHN"}
    ids = {n: REGISTRY[n].openml_id for n in IMAGE_DATASETS}
    assert ids == {"mnist_784": 554, "Fashion-MNIST": 40996, "CIFAR_10": 40927, "SVHN": 41081}
    assert all(REGISTRY[n].kind == "tabular" and REGISTRY[n].suite == 337 for n in TABULAR_DATASETS)
    assert REGISTRY["CIFAR_10"].image_shape == (32, 32, 3) and REGISTRY["CIFAR_10"].channels_first


@needs_mirror
def test_registry_agrees_with_the_manifest():
    for e in _manifest():
        spec = get_spec(e["name"])  # CIFAR_10-subset is an alias of CIFAR_10
        if e.get("openml_id") is not None:
            assert spec.openml_id == e["openml_id"], e["name"]
        assert spec.kind == e["kind"] and spec.target == e["target"], e["name"]


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*electricity"):
        get_spec("nope")
    assert get_spec("openml:1461").openml_id == 1461
    with pytest.raises(ValueError, match="unknown source kind 'ftp'"):
        make_source("ftp")


def test_importing_the_package_is_light():
    code = "import sys, pipeline.data; print(sorted(m for m in ('openml', 'torch', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------ mirror
@needs_mirror
def test_absent_set_fails_fast_with_a_fix():
    src = MirrorSource(MIRROR)
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as err:
        prepare_dataset("covertype", source=src, cache_dir=False)
    assert time.perf_counter() - t0 < 2.0
    msg = str(err.value)
    assert "\n" not in msg and isinstance(err.value, RuntimeError)
    assert "'covertype'" in msg and str(MIRROR.resolve()) in msg and "fix:" in msg
    assert "data.source: openml" in msg


@needs_mirror
def test_mirror_rows_match_the_manifest_and_cifar_alias():
    src = MirrorSource(MIRROR)
    for e in _manifest():
        if e["kind"] != "tabular":
            continue
        raw = src.load(e["name"])
        assert raw.n_rows == e["n_rows"] and raw.X.shape[1] == e["n_features"], e["name"]
        assert raw.provenance["sha256"] == e["sha256"]
        counts = raw.y.astype(str).value_counts().to_dict()
        assert counts == {str(k): v for k, v in e["class_counts"].items()}, e["name"]
    assert src.describe("CIFAR_10")["mirror_name"] == "CIFAR_10-subset"


@needs_mirror
def test_mirror_checks_sha256_before_use(tmp_path):
    bad = tmp_path / "mirror"
    (bad / "tabular").mkdir(parents=True)
    entry = next(e for e in _manifest() if e["name"] == "pol")
    df = pd.read_parquet(MIRROR / entry["file"]).head(50)
    df.to_parquet(bad / entry["file"])
    (bad / "manifest.json").write_text(json.dumps({"datasets": [entry]}))
    with pytest.raises(DatasetUnavailable, match="sha256 of .*pol.parquet is [0-9a-f]{64}, the manifest says"):
        MirrorSource(bad).load("pol")


def test_mirror_without_a_root(monkeypatch, tmp_path):
    monkeypatch.delenv("PIPELINE_DATA_MIRROR", raising=False)
    with pytest.raises(ValueError, match="PIPELINE_DATA_MIRROR"):
        MirrorSource()
    with pytest.raises(DatasetUnavailable, match="no data mirror at"):
        MirrorSource(tmp_path).load("credit")


# ------------------------------------------------------------------------------------ openml
@pytest.fixture(scope="module")
def openml_cache(tmp_path_factory):
    if not (MIRROR / "manifest.json").is_file():
        pytest.skip(f"no data mirror at {MIRROR} (../shared/data)")
    root = tmp_path_factory.mktemp("openml-cache")
    seeded = seed_openml_cache(MIRROR, root)
    return root, seeded


@needs_mirror
def test_real_openml_client_offline_gives_the_mirrors_arrays(openml_cache):
    root, seeded = openml_cache
    openml_src, mirror = OpenMLSource(cache_dir=root), MirrorSource(MIRROR)
    names = [n for n in seeded if get_spec(n).kind == "tabular"] + ["mnist_784"]
    assert len(names) >= 10
    for name in names:
        a, b = openml_src.load(name), mirror.load(name)
        assert a.provenance["source"] == "openml" and b.provenance["source"] == "mirror"
        assert a.provenance["sha256"] == b.provenance["sha256"], name
        assert list(a.X.columns) == list(b.X.columns), name
        np.testing.assert_array_equal(a.X.to_numpy(), b.X.to_numpy(), err_msg=name)
        np.testing.assert_array_equal(a.y.astype(str).to_numpy(), b.y.astype(str).to_numpy())
    # prepared arrays agree too (one tabular, one image set)
    for name, opts in (("electricity", {}), ("mnist_784", {"n_train": 500, "n_val": 100, "n_test": 300})):
        p1 = prepare_dataset(name, source=openml_src, seed=3, cache_dir=False, **opts)
        p2 = prepare_dataset(name, source=mirror, seed=3, cache_dir=False, **opts)
        assert p1.provenance["source"] == "openml" and p2.provenance["source"] == "mirror"
        for k in ("train", "val", "test"):
            np.testing.assert_array_equal(p1.splits[k][0], p2.splits[k][0])
            np.testing.assert_array_equal(p1.splits[k][1], p2.splits[k][1])


def test_openml_unreachable_fails_fast(tmp_path, monkeypatch):
    import openml

    monkeypatch.setattr(openml.config, "server", "http://127.0.0.1:9/api/v1/xml")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    src = OpenMLSource(cache_dir=tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as err:
        src.load("covertype")
    assert time.perf_counter() - t0 < 2.0
    msg = str(err.value)
    assert "\n" not in msg and "'covertype' (OpenML id 44121)" in msg
    assert str(tmp_path) in msg and "data.source: mirror and data.mirror: PATH" in msg
    # the client itself, past the probe, also gives up at once (one try, no retry loop)
    src = OpenMLSource(cache_dir=tmp_path, probe_timeout=0)
    t0 = time.perf_counter()
    with pytest.raises(DatasetUnavailable, match="server is unreachable"):
        src.load("covertype")
    assert time.perf_counter() - t0 < 2.0


def test_openml_cache_dir_env_is_honoured(tmp_path, monkeypatch, openml_cache):
    root, _ = openml_cache
    monkeypatch.setenv("OPENML_CACHE_DIR", str(root))
    raw = OpenMLSource().load("pol")
    assert raw.provenance["location"].startswith(str(Path(root).resolve()))


# ------------------------------------------------------------------------------------- files
def _user_csv(path: Path, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    df = pd.DataFrame({
        "x1": x1,
        "x2": rng.uniform(size=n),
        "colour": rng.choice(["red", "green", "blue"], size=n),
        "const": 7.0,
        "species": np.where(x1 > 0, "setosa", "virginica"),
    })
    df.loc[3, "x2"] = np.nan
    df.to_csv(path, index=False)
    return path


def test_user_csv_with_a_string_target(tmp_path):
    path = _user_csv(tmp_path / "flowers.csv")
    src = make_source("files", path=path, target="species")
    assert isinstance(src, FileSource) and src.available() == ["flowers"]
    d = prepare_dataset("flowers", source=src, seed=1, cache_dir=tmp_path / "cache")
    assert d.meta["classes"] == ["setosa", "virginica"] and d.n_classes == 2
    assert d.rows == {"train": 280, "val": 36, "test": 84}
    assert d.meta["dropped_constant"] == ["const"]
    assert d.feature_names == ["x1", "x2", "colour=blue", "colour=green", "colour=red"]
    assert d.X_train.dtype == np.float32 and np.isfinite(d.X_train).all()
    df = pd.read_csv(path)
    idx = np.asarray(d.meta["indices"]["test"])
    np.testing.assert_array_equal(d.y_test, (df["species"].to_numpy()[idx] == "virginica").astype(int))
    assert d.provenance["source"] == "files" and d.provenance["location"] == str(path.resolve())
    trees = prepare_dataset("flowers", source=src, seed=1, cache_dir=False, features="tree")
    assert trees.feature_names == ["x1", "x2", "colour"]
    assert set(np.unique(trees.X_train[:, 2])) == {0.0, 1.0, 2.0}


def test_files_from_params_and_bad_input(tmp_path):
    _user_csv(tmp_path / "a.csv")
    _user_csv(tmp_path / "b.csv", seed=1)
    pd.read_csv(tmp_path / "b.csv").to_parquet(tmp_path / "b.parquet")
    cfg = {
        "source": "files",
        "files": {
            "mine": {"path": str(tmp_path / "a.csv"), "target": "species"},
            "other": {"path": str(tmp_path / "b.parquet"), "target": "species"},
            "adult": {"openml_id": 1590, "target": "class"},
        },
    }
    src = source_from_config(cfg)
    assert isinstance(src, CatalogSource) and src.available() == ["mine", "other", "adult"]
    assert prepare_dataset("other", source=src, cache_dir=False).n_classes == 2
    assert src.spec_for("adult").openml_id == 1590
    with pytest.raises(DatasetUnavailable, match="'credit' is not declared in the files source.*fix"):
        prepare_dataset("credit", source=src, cache_dir=False)
    bad = make_source("files", path=tmp_path / "a.csv", target="label")
    with pytest.raises(ValueError, match="target column 'label' not found.*'species'"):
        bad.load("a")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        FileSource(tmp_path / "a.txt", target="y")
    with pytest.raises(ValueError, match=r"allowed: \('openml', 'mirror', 'files'\)"):
        source_from_config({"source": "s3"})
    missing = make_source("files", path=tmp_path / "gone.csv", target="y")
    with pytest.raises(DatasetUnavailable, match="does not exist"):
        missing.load("gone")


@needs_mirror
def test_source_from_config_mirror():
    src = source_from_config({"source": "mirror", "mirror": str(MIRROR)})
    assert isinstance(src, MirrorSource) and "credit" in src.available()
