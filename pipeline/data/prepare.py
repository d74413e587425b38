"""One cached entry point from a dataset name to train/val/test arrays.

:func:`prepare_dataset` dispatches on the name:

- a registry name, ``openml:<id>`` or a ``files`` name -> the configured :class:`Source`, then the
  tabular protocol (:mod:`pipeline.data.tabular`) or the image protocol (:mod:`pipeline.data.images`);
- ``digits``, ``breast_cancer``, ``tree_task`` -> bundled data (:mod:`pipeline.data.synthetic`),
  whatever the source;
- ``collages`` -> :mod:`pipeline.data.collages` (MNIST/CIFAR from the source, or the fallback);
- an algorithmic task name (``add_mod27``, ``s4_compose``) -> :func:`~pipeline.data.synthetic.algorithmic_task`
  (generated in milliseconds, never cached).

Prepared arrays are cached on disk: ``<cache_dir>/<name>/<key>/{data.npz, meta.json}``, written
into a temporary folder and moved into place with ``os.replace``. The key hashes the source's
kind and file sha256, the options, the seed, and the source code of this package, so a changed
file, option or protocol prepares afresh and anything else is read back. ``meta.json`` records,
per split, the source, its sha256, the row count and the sha256 of the arrays.

Example:
    >>> d = prepare_dataset("breast_cancer", seed=0, cache_dir=False)
    >>> d.X_train.shape, d.task, d.n_classes, d.provenance["source"]
    ((398, 30), 'classification', 2, 'bundled')
    >>> d.rows
    {'train': 398, 'val': 51, 'test': 120}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .sources import MIRROR_ENV, MirrorSource, OpenMLSource, Source

#: Environment variable naming the default cache folder.
CACHE_ENV = "PIPELINE_DATA_CACHE"
DEFAULT_CACHE_DIR = Path("artifacts") / "prepared"
_FORMAT = 1

TABULAR_OPTIONS: dict[str, Any] = {
    "features": "network",  # "network": one-hot + quantile-normal; "tree": raw + ordinal codes
    "max_train": 10_000,
    "train_fraction": 0.7,
    "val_fraction": 0.3,
    "max_eval": 50_000,
    "n_quantiles": 1000,
    "task": "classification",  # or "regression" (numeric target as float32)
    "group_by": None,  # a column: split whole groups of rows (pipeline.data.tabular.grouped_split)
    "order_by": None,  # a column: whole groups in ascending order (train on the past, test on the future)
}
IMAGE_OPTIONS: dict[str, Any] = {
    "val_fraction": 0.1,
    "n_train": None,
    "n_val": None,
    "n_test": None,
    "grayscale": False,
    "flatten": True,
    "task": "classification",  # or "regression": target = class id as float32
    "test_fraction": 0.2,  # only for sets without an official split
}
COLLAGE_OPTIONS: dict[str, Any] = {
    "n_train": 10_000,
    "n_val": 1_000,
    "n_test": 2_000,
    "tile_size": None,
    "data": "auto",  # "mirror" (MNIST/CIFAR from the source), "bundled" (digits), "auto"
    "classes": "binary",  # or "ten" (pipeline.data.collages.CLASS_CHOICES)
}
ALGORITHMIC_OPTIONS: dict[str, Any] = {"train_fraction": 0.5}


@dataclass
class PreparedData:
    """Arrays of one prepared dataset and where they came from.

    Attributes:
        name: the dataset name.
        splits: ``{split: (X, y)}``: ``train``, ``val``, ``test`` for tabular and image sets;
            ``train``, ``test`` for algorithmic tasks; ``train``, ``val_simple``,
            ``val_complex``, ``test_simple``, ``test_complex`` for collages.
            X float32 **Shape** ``(n, d)`` (``(n, C, H, W)`` for unflattened images);
            y int64 class ids ``(n,)`` for classification, float32 ``(n,)`` for regression.
        task: ``"classification"`` or ``"regression"``.
        n_classes: number of classes (for the image regression variant: of the class ids).
        feature_names: one name per column of X.
        provenance: ``{"source", "location", "sha256", ...}`` of the raw data.
        meta: everything in ``meta.json`` (options, seed, classes, dropped columns, rows, ...).
    """

    name: str
    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    task: str
    n_classes: int | None
    feature_names: list[str]
    provenance: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def _get(self, split: str, i: int) -> np.ndarray:
        if split not in self.splits:
            raise AttributeError(
                f"dataset {self.name!r} has no {split!r} split; its splits are {list(self.splits)}"
            )
        return self.splits[split][i]

    X_train = property(lambda self: self._get("train", 0), doc="Training inputs.")
    y_train = property(lambda self: self._get("train", 1), doc="Training targets.")
    X_val = property(lambda self: self._get("val", 0), doc="Validation inputs.")
    y_val = property(lambda self: self._get("val", 1), doc="Validation targets.")
    X_test = property(lambda self: self._get("test", 0), doc="Test inputs.")
    y_test = property(lambda self: self._get("test", 1), doc="Test targets.")

    @property
    def rows(self) -> dict[str, int]:
        """Row count per split."""
        return {k: int(len(v[1])) for k, v in self.splits.items()}

    @property
    def n_features(self) -> int:
        """Columns of X (the flattened size for images)."""
        return int(np.prod(self.X_train.shape[1:]))

    def save(self, folder: str | Path) -> Path:
        """Write ``data.npz`` and ``meta.json`` into ``folder`` atomically (temp folder, then
        ``os.replace``); an existing complete folder is left as is. Returns the folder."""
        folder = Path(folder)
        if (folder / "meta.json").is_file():
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        try:
            arrays = {}
            for k, (X, y) in self.splits.items():
                arrays[f"{k}__X"], arrays[f"{k}__y"] = X, y
            with (tmp / "data.npz").open("wb") as fh:
                np.savez(fh, **arrays)
            meta = {
                **self.meta,
                "name": self.name,
                "task": self.task,
                "n_classes": self.n_classes,
                "feature_names": self.feature_names,
                "provenance": self.provenance,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=_json_default))
            try:
                os.replace(tmp, folder)
            except OSError:
                if not (folder / "meta.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "PreparedData":
        """Read a folder written by :meth:`save`."""
        folder = Path(folder)
        meta = json.loads((folder / "meta.json").read_text())
        with np.load(folder / "data.npz", allow_pickle=False) as z:
            names = [k[: -len("__X")] for k in z.files if k.endswith("__X")]
            order = list(meta.get("splits", {})) or names
            splits = {k: (z[f"{k}__X"], z[f"{k}__y"]) for k in order}
        return cls(
            name=meta["name"],
            splits=splits,
            task=meta["task"],
            n_classes=meta["n_classes"],
            feature_names=list(meta["feature_names"]),
            provenance=meta["provenance"],
            meta=meta,
        )


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.ndarray, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _sha(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of this package's source files: part of every cache key."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def default_source() -> Source:
    """The mirror at ``$PIPELINE_DATA_MIRROR`` when set, else the OpenML cache, offline (asking
    for an online dataset is explicit: ``OpenMLSource()`` or ``data.source: openml``)."""
    return MirrorSource() if os.environ.get(MIRROR_ENV) else OpenMLSource(offline=True)


def default_cache_dir() -> Path:
    """``$PIPELINE_DATA_CACHE``, else ``artifacts/prepared`` (relative to the working folder)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR)


def available_datasets(kind: str, source: Source | None = None) -> list[str]:
    """Names of ``kind`` (``"tabular"`` or ``"image"``) that ``source`` can serve, then the bundled
    sets of that kind (always available).

    For a mirror: its sets (under their registry names, e.g. ``CIFAR_10`` for ``CIFAR_10-subset``);
    for a files catalog: its declared sets; for OpenML: the registry's sets. With no mirror
    configured, ``available_datasets("tabular", None)`` is ``["tree_task", "breast_cancer"]``
    (the quick profile's offline data) unless ``$PIPELINE_DATA_MIRROR`` is set.

    Raises:
        ValueError: an unknown kind.
    """
    from .registry import ALIASES, REGISTRY
    from .synthetic import BundledSource

    if kind not in ("tabular", "image"):
        raise ValueError(f"kind={kind!r}; allowed: ('tabular', 'image')")
    bundled = {"tabular": ["tree_task", "breast_cancer"], "image": ["digits"]}[kind]
    if source is None:
        if not os.environ.get(MIRROR_ENV):
            return bundled
        source = MirrorSource()
    if isinstance(source, BundledSource):
        return bundled
    names = []
    if isinstance(source, MirrorSource):
        for e in source.manifest():
            if e.get("kind", "tabular") == kind:
                names.append(ALIASES.get(e["name"], e["name"]))
    elif isinstance(source, OpenMLSource):
        names = [n for n, s in REGISTRY.items() if s.kind == kind]
    else:
        names = [n for n in source.available() if source.spec_for(n).kind == kind]
    return names + [b for b in bundled if b not in names]


def _options(kind: str, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {kind} options {unknown}; allowed: {sorted(defaults)}")
    return {**defaults, **given}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _finish(
    name: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    kind: str,
    task: str,
    n_classes: int | None,
    feature_names: list[str],
    provenance: dict[str, Any],
    seed: int,
    options: dict[str, Any],
    key: str | None,
    extra: dict[str, Any],
) -> PreparedData:
    meta = {
        "format": _FORMAT,
        "kind": kind,
        "seed": int(seed),
        "options": options,
        "key": key,
        "code": code_fingerprint(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "splits": {
            k: {
                "rows": int(len(y)),
                "source": provenance.get("source"),
                "source_sha256": provenance.get("sha256"),
                "sha256": _sha(X, y),
            }
            for k, (X, y) in splits.items()
        },
        **extra,
    }
    return PreparedData(name, splits, task, n_classes, feature_names, provenance, meta)


def prepare_dataset(
    name: str,
    *,
    source: Source | None = None,
    seed: int = 0,
    cache_dir: str | Path | None | bool = None,
    tree_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> PreparedData:
    """Prepare a dataset's splits for one seed, reading them from the cache when present.

    Args:
        name: a registry name, ``openml:<id>``, a name the source declares, a bundled name
            (``digits``, ``breast_cancer``, ``tree_task``), ``collages``, or an algorithmic task.
        source: where raw tables come from (default :func:`default_source`).
        seed: the split/subsample seed.
        cache_dir: the cache folder (default :func:`default_cache_dir`); ``False`` disables it.
        tree_options: arguments of :func:`~pipeline.data.synthetic.tree_task` (``tree_task`` only).
        **options: per kind, see :data:`TABULAR_OPTIONS`, :data:`IMAGE_OPTIONS`,
            :data:`COLLAGE_OPTIONS`, :data:`ALGORITHMIC_OPTIONS`.

    Returns:
        :class:`PreparedData`.

    Raises:
        ValueError: an unknown name, option or option value (naming it and the allowed values).
        DatasetUnavailable: the source cannot provide the set (the message says how to fix it).
    """
    from .synthetic import BUNDLED, BundledSource, algorithmic_task, is_algorithmic_task

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative int")
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")

    if is_algorithmic_task(name):
        opts = _options("algorithmic", ALGORITHMIC_OPTIONS, options)
        t = algorithmic_task(name, train_fraction=opts["train_fraction"], seed=seed)
        prov = {"source": "synthetic", "location": "pipeline.data.synthetic.algorithmic_task",
                "sha256": _sha(t.X_train, t.y_train, t.X_test, t.y_test)}
        return _finish(
            name, {"train": (t.X_train, t.y_train), "test": (t.X_test, t.y_test)},
            kind="algorithmic", task="classification", n_classes=t.n_classes,
            feature_names=[f"a={i}" for i in range(t.p)] + [f"b={i}" for i in range(t.p)],
            provenance=prov, seed=seed, options=opts, key=None,
            extra={"op": t.op, "p": t.p,
                   "pairs": {"train": t.pairs_train.tolist(), "test": t.pairs_test.tolist()}},
        )
    if tree_options and name != "tree_task":
        raise ValueError(f"tree_options apply to 'tree_task' only, not {name!r}")

    cache = None if cache_dir is False else Path(cache_dir or default_cache_dir())

    if name == "collages":
        from .collages import collage_tiles, make_collages

        opts = _options("collage", COLLAGE_OPTIONS, options)
        src = source if source is not None else default_source()
        tiles, prov = collage_tiles(src, data=opts["data"], classes=opts["classes"])
        key = _key(name, prov, opts, seed)
        hit = _read_cache(cache, name, key)
        if hit is not None:
            return hit
        sets = make_collages(
            tiles["simple"], tiles["complex"], opts["n_train"], opts["n_val"], opts["n_test"], seed,
            simple_test=tiles["simple_test"], complex_test=tiles["complex_test"],
            tile_size=opts["tile_size"], complex_noise=prov.get("complex_noise", 0.0),
        )
        side = int(np.sqrt(sets["train"][0].shape[1] // 2))
        data = _finish(
            name, sets, kind="collages", task="classification", n_classes=prov["n_classes"],
            feature_names=[f"{'simple' if r < side else 'complex'}_{r % side}_{q}"
                           for r in range(2 * side) for q in range(side)],
            provenance=prov, seed=seed, options=opts, key=key,
            extra={"image_shape": [1, 2 * side, side], "tile_size": side,
                   "tiles": {"top": "simple", "bottom": "complex"}},
        )
        return _write_cache(cache, data)

    if name in BUNDLED:
        src = BundledSource(dict(tree_options or {}) if name == "tree_task" else None)
    else:
        src = source if source is not None else default_source()
    spec = src.spec_for(name)
    defaults = IMAGE_OPTIONS if spec.kind == "image" else TABULAR_OPTIONS
    opts = _options(spec.kind, defaults, options)
    if opts["task"] not in ("classification", "regression"):
        raise ValueError(f"task={opts['task']!r}; allowed: ('classification', 'regression')")
    prov = src.describe(spec)
    key = _key(name, prov, {**opts, "tree_options": dict(tree_options or {})}, seed)
    hit = _read_cache(cache, name, key)
    if hit is not None:
        return hit
    raw = src.load(spec)
    if spec.kind == "image":
        from .images import prepare_images

        sets, info = prepare_images(raw, seed=seed, **opts)
        data = _finish(
            name, sets, kind="image", task=opts["task"], n_classes=len(info["classes"]),
            feature_names=info.pop("feature_names"), provenance=raw.provenance, seed=seed,
            options=opts, key=key, extra=info,
        )
    else:
        data = _prepare_tabular(raw, seed=seed, key=key, opts=opts)
    return _write_cache(cache, data)


def _prepare_tabular(raw, *, seed: int, key: str, opts: dict[str, Any]) -> PreparedData:
    from .tabular import encode_labels, grinsztajn_split, grouped_split, preprocess_tabular

    sizes = {k: opts[k] for k in ("max_train", "train_fraction", "val_fraction", "max_eval")}
    if opts["group_by"] is not None and opts["order_by"] is not None:
        raise ValueError(f"dataset {raw.name!r}: give group_by ({opts['group_by']!r}) or order_by "
                         f"({opts['order_by']!r}), not both (order_by already keeps each value's rows together)")
    option = "group_by" if opts["group_by"] is not None else "order_by" if opts["order_by"] is not None else None
    if option is None:
        idx = grinsztajn_split(raw.n_rows, seed, **sizes)
    else:
        column = opts[option]
        if column not in raw.X.columns:
            raise ValueError(f"{option}={column!r} is not a feature column of dataset {raw.name!r}; its columns: "
                             f"{list(raw.X.columns)}; fix: name one of them (tabular.protocol.{option} in params.yaml)")
        try:
            idx = grouped_split(raw.X[column].to_numpy(), seed, **sizes, ordered=option == "order_by")
        except (ValueError, TypeError) as err:
            raise ValueError(f"dataset {raw.name!r}, {option}={column!r}: {err}") from None
    arrays, info = preprocess_tabular(
        raw.X, idx, features=opts["features"], categorical=raw.categorical, seed=seed,
        n_quantiles=opts["n_quantiles"],
    )
    if opts["task"] == "classification":
        y, classes = encode_labels(raw.y)
        n_classes: int | None = len(classes)
        if n_classes < 2:
            raise ValueError(f"dataset {raw.name!r}: the target has a single class {classes}")
    else:
        import pandas as pd

        y = pd.to_numeric(raw.y, errors="coerce").to_numpy(dtype=np.float32)
        if np.isnan(y).any():
            raise ValueError(f"dataset {raw.name!r}: task=regression needs a numeric target")
        classes, n_classes = [], None
    sets = {k: (arrays[k], y[v]) for k, v in idx.items()}
    info["classes"] = classes
    info["indices"] = {k: v.tolist() for k, v in idx.items()}
    return _finish(
        raw.name, sets, kind="tabular", task=opts["task"], n_classes=n_classes,
        feature_names=info.pop("feature_names"), provenance=raw.provenance, seed=seed,
        options=opts, key=key, extra=info,
    )


def _key(name: str, prov: Mapping[str, Any], opts: Mapping[str, Any], seed: int) -> str:
    blob = json.dumps(
        {
            "format": _FORMAT,
            "name": name,
            "source": prov.get("source"),
            "sha256": prov.get("sha256"),
            "options": opts,
            "seed": int(seed),
            "code": code_fingerprint(),
        },
        sort_keys=True,
        default=_json_default,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _read_cache(cache: Path | None, name: str, key: str) -> PreparedData | None:
    if cache is None:
        return None
    folder = cache / _safe(name) / key
    if not (folder / "meta.json").is_file():
        return None
    try:
        data = PreparedData.load(folder)
    except (OSError, ValueError, KeyError):  # a damaged entry: prepare afresh
        shutil.rmtree(folder, ignore_errors=True)
        return None
    data.meta["cache_hit"] = True
    return data


def _write_cache(cache: Path | None, data: PreparedData) -> PreparedData:
    if cache is not None:
        folder = data.save(cache / _safe(data.name) / data.meta["key"])
        data.meta["cache_path"] = str(folder)
    data.meta["cache_hit"] = False
    return data
