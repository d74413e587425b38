"""Where raw tables come from: OpenML, an offline mirror, or a user's files, behind one interface.

A :class:`Source` turns a dataset name (or :class:`~pipeline.data.registry.DatasetSpec`) into a
:class:`RawTable`: a pandas DataFrame of features, a Series target, and a provenance record
``{"source", "location", "sha256", ...}``. Everything downstream (splits, preprocessing, caching)
sees only RawTables, so nothing else in the pipeline knows which source was used.

Three sources, chosen in ``params.yaml`` (see :func:`source_from_config`):

- :class:`OpenMLSource` -- the real ``openml`` client (imported lazily: it is slow to import),
  honouring ``OPENML_CACHE_DIR``. It fails at once, with one line, when the server is unreachable
  (one try, no retry loop; a short probe of the server when the cache lacks the set).
- :class:`MirrorSource` -- a folder laid out like ``../shared/data``: ``manifest.json`` plus parquet
  tables. Each file's sha256 is checked against the manifest before its first use.
- :class:`FileSource` / :class:`CatalogSource` -- a user's own CSV or parquet file with a named
  target column, or any OpenML id outside the registry, declared by name.

A set that a source cannot provide raises :class:`DatasetUnavailable` (a ``RuntimeError``) whose
one-line message names the dataset, where it was looked for, and how to fix it.

Example:
    >>> src = make_source("files", path="my.csv", target="label")  # doctest: +SKIP
    >>> table = src.load("my")                                       # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

import pandas as pd

from .digest import file_sha256
from .registry import ALIASES, DatasetSpec, get_spec

SOURCE_KINDS = ("openml", "mirror", "files")

#: Environment variable naming the default mirror folder.
MIRROR_ENV = "PIPELINE_DATA_MIRROR"


class DatasetUnavailable(RuntimeError):
    """A dataset the chosen source cannot provide; the message says where it looked and the fix."""


@dataclass
class RawTable:
    """One dataset as a source delivers it, before any split or preprocessing.

    Attributes:
        spec: what the dataset is (kind, target, image layout).
        X: the feature columns, **Shape** ``(n_rows, n_features)``, named as in the source.
        y: the target column, **Shape** ``(n_rows,)``, as stored (labels may be strings).
        provenance: ``{"source": "openml"|"mirror"|"files"|"bundled", "location": str,
            "sha256": str, ...}``; extra keys (``openml_id``, ``note``) where known.
        official_split: for image sets, ``{"train": (start, stop), "test": (start, stop)}`` row
            ranges of the official split, else ``None``.
        categorical: feature columns to treat as categorical.
    """

    spec: DatasetSpec
    X: pd.DataFrame
    y: pd.Series
    provenance: dict[str, Any]
    official_split: dict[str, tuple[int, int]] | None = None
    categorical: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.spec.name

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return len(self.X)


@runtime_checkable
class Source(Protocol):
    """What every source offers.

    ``spec_for`` says what a name stands for (kind, target) without loading; ``describe`` returns the provenance (``source``, ``location``, ``sha256``) cheaply, without
    parsing the table, so that a prepared-data cache can be looked up before any loading;
    ``load`` returns the :class:`RawTable`; ``available`` lists the names it can serve.
    """

    kind: str

    def spec_for(self, dataset: str | DatasetSpec) -> DatasetSpec: ...

    def describe(self, dataset: str | DatasetSpec) -> dict[str, Any]: ...

    def load(self, dataset: str | DatasetSpec) -> RawTable: ...

    def available(self) -> list[str]: ...


# --------------------------------------------------------------------------------------- helpers
_OPENML_LOCK = threading.RLock()  # the openml client and its cache are not thread-safe


def _split_target(
    df: pd.DataFrame, target: str, dataset: str, where: str
) -> tuple[pd.DataFrame, pd.Series]:
    if target not in df.columns:
        raise ValueError(
            f"dataset {dataset!r}: target column {target!r} not found in {where}; "
            f"columns are {list(df.columns)}"
        )
    return df.drop(columns=[target]), df[target]


def _categoricals(X: pd.DataFrame, declared) -> tuple[str, ...]:
    declared = tuple(declared or ())
    missing = [c for c in declared if c not in X.columns]
    if missing:
        raise ValueError(f"categorical columns {missing} are not feature columns {list(X.columns)}")
    by_dtype = tuple(
        c for c in X.columns
        if isinstance(X[c].dtype, pd.CategoricalDtype) or X[c].dtype == object
        or pd.api.types.is_string_dtype(X[c].dtype) or pd.api.types.is_bool_dtype(X[c].dtype)
    )
    return tuple(dict.fromkeys(declared + by_dtype))


_ROWS = re.compile(r"rows\s+(\d+)\s*-\s*(\d+)")


def parse_split_rule(rule: str | None, n_rows: int) -> dict[str, tuple[int, int]] | None:
    """Row ranges from a manifest ``split`` rule such as ``"rows 0-59999 are the official
    training set, rows 60000-69999 the official test set"`` (inclusive bounds in the text,
    half-open ``(start, stop)`` in the result); ``None`` when there is no rule."""
    if not rule:
        return None
    ranges = _ROWS.findall(rule)
    if len(ranges) != 2:
        raise ValueError(f"cannot read a train/test split from the rule {rule!r}")
    (a, b), (c, d) = ((int(x), int(y) + 1) for x, y in ranges)
    if not (0 <= a < b <= c < d <= n_rows):
        raise ValueError(f"split rule {rule!r} does not fit a table of {n_rows} rows")
    return {"train": (a, b), "test": (c, d)}


def _official_from_spec(spec: DatasetSpec, n_rows: int) -> dict[str, tuple[int, int]] | None:
    if spec.kind != "image" or spec.n_official_train is None:
        return None
    if not 0 < spec.n_official_train < n_rows:
        raise ValueError(
            f"dataset {spec.name!r}: n_official_train={spec.n_official_train} does not fit "
            f"{n_rows} rows"
        )
    return {"train": (0, spec.n_official_train), "test": (spec.n_official_train, n_rows)}


# ----------------------------------------------------------------------------------- mirror
class MirrorSource:
    """A local copy of the paper's datasets laid out like ``../shared/data``.

    ``root/manifest.json`` lists entries ``{name, kind, openml_id, target, file, sha256,
    categorical?, image_shape?, split?}``; files are parquet tables (features, then target).
    A registry name finds its entry by name, by alias (``CIFAR_10`` -> ``CIFAR_10-subset``) or by
    OpenML id; manifest names outside the registry work too. The sha256 of each file is checked
    before its first use in the process.

    Args:
        root: the mirror folder; default ``$PIPELINE_DATA_MIRROR``.

    Raises:
        ValueError: no root given and ``$PIPELINE_DATA_MIRROR`` unset.
        DatasetUnavailable: the folder or its manifest is missing, or a set is not in it.
    """

    kind = "mirror"

    def __init__(self, root: str | Path | None = None):
        if root is None:
            root = os.environ.get(MIRROR_ENV)
            if not root:
                raise ValueError(
                    f"no mirror folder given and ${MIRROR_ENV} is unset: pass root=PATH "
                    "(params: data.mirror: PATH)"
                )
        self.root = Path(root).expanduser().resolve()
        self._manifest: list[dict] | None = None
        self._verified: set[str] = set()

    def __repr__(self) -> str:
        return f"MirrorSource({str(self.root)!r})"

    # manifest --------------------------------------------------------------------------
    def manifest(self) -> list[dict]:
        """The manifest's dataset entries (read once)."""
        if self._manifest is None:
            path = self.root / "manifest.json"
            if not path.is_file():
                raise DatasetUnavailable(
                    f"no data mirror at {self.root} (missing {path.name}); fix: set data.mirror "
                    f"(or ${MIRROR_ENV}) to a folder laid out like ../shared/data, or use "
                    "data.source: openml"
                )
            with path.open(encoding="utf8") as fh:
                self._manifest = list(json.load(fh)["datasets"])
        return self._manifest

    def available(self) -> list[str]:
        """Names of the sets in the mirror (manifest names)."""
        return [e["name"] for e in self.manifest()]

    def entry(self, dataset: str | DatasetSpec) -> dict:
        """The manifest entry for a name or spec, or :class:`DatasetUnavailable`."""
        entries = self.manifest()
        name = dataset.name if isinstance(dataset, DatasetSpec) else dataset
        by_name = {e["name"]: e for e in entries}
        if name in by_name:
            return by_name[name]
        spec = dataset if isinstance(dataset, DatasetSpec) else _maybe_spec(dataset)
        if spec is not None:
            for alias, registered in ALIASES.items():
                if registered == spec.name and alias in by_name:
                    return by_name[alias]
            if spec.openml_id is not None:
                for e in entries:
                    if e.get("openml_id") == spec.openml_id:
                        return e
        label = f"{name!r}" + (
            f" (OpenML id {spec.openml_id})" if spec is not None and spec.openml_id else ""
        )
        raise DatasetUnavailable(
            f"dataset {label} is not in the mirror at {self.root} (it holds "
            f"{', '.join(by_name)}); fix: pick one of those, add the set to the mirror, or set "
            "data.source: openml (needs internet or a filled OPENML_CACHE_DIR)"
        )

    def spec_for(self, dataset: str | DatasetSpec) -> DatasetSpec:
        """The registry spec of a dataset, or one built from its manifest entry."""
        if isinstance(dataset, DatasetSpec):
            return dataset
        spec = _maybe_spec(dataset)
        if spec is not None:
            return spec
        e = self.entry(dataset)
        shape = tuple(e["image_shape"]) if e.get("image_shape") else None
        return DatasetSpec(
            e["name"], e.get("openml_id"), e.get("kind", "tabular"), e.get("target"),
            image_shape=shape,  # type: ignore[arg-type]
            channels_first="channels first" in str(e.get("pixel_order", "")),
            categorical=tuple(e.get("categorical") or ()),
        )

    # loading ---------------------------------------------------------------------------
    def describe(self, dataset: str | DatasetSpec) -> dict[str, Any]:
        """Provenance of a set from the manifest (no file read)."""
        e = self.entry(dataset)
        out = {
            "source": "mirror",
            "location": str(self.root / e["file"]),
            "sha256": e["sha256"],
            "mirror_name": e["name"],
            "openml_id": e.get("openml_id"),
        }
        if e.get("subset_of"):
            out["note"] = f"subset of {e['subset_of']}"
        return out

    def path(self, dataset: str | DatasetSpec) -> Path:
        """The verified file of a set: its sha256 is checked against the manifest once."""
        e = self.entry(dataset)
        path = self.root / e["file"]
        if not path.is_file():
            raise DatasetUnavailable(
                f"dataset {e['name']!r}: the mirror manifest at {self.root} lists {e['file']} "
                "but the file is missing; fix: restore the mirror or set data.source: openml"
            )
        if str(path) not in self._verified:
            digest = file_sha256(path)
            if digest != e["sha256"]:
                raise DatasetUnavailable(
                    f"dataset {e['name']!r}: sha256 of {path} is {digest}, the manifest says "
                    f"{e['sha256']}; fix: restore the file from its source (the copy is corrupt "
                    "or was edited)"
                )
            self._verified.add(str(path))
        return path

    def load(self, dataset: str | DatasetSpec) -> RawTable:
        """Read a set from the mirror; **Shape** X ``(n_rows, n_features)``, y ``(n_rows,)``."""
        spec = self.spec_for(dataset)
        e = self.entry(dataset)
        path = self.path(dataset)
        df = pd.read_parquet(path)
        target = spec.target or e.get("target")
        if target is None:
            raise ValueError(f"dataset {spec.name!r}: no target column declared in the manifest")
        X, y = _split_target(df, target, spec.name, str(path))
        split = parse_split_rule(e.get("split"), len(df)) if spec.kind == "image" else None
        if spec.kind == "image" and split is None:
            split = _official_from_spec(spec, len(df))
        return RawTable(
            spec=spec,
            X=X,
            y=y,
            provenance=self.describe(dataset),
            official_split=split,
            categorical=_categoricals(X, tuple(spec.categorical) + tuple(e.get("categorical") or ())),
        )


def _maybe_spec(name: str) -> DatasetSpec | None:
    try:
        return get_spec(name)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------- openml
class OpenMLSource:
    """The real ``openml`` client, offline-friendly.

    The cache folder is ``cache_dir`` if given, else ``$OPENML_CACHE_DIR`` (read at call time),
    else the client's own default. A set whose description and data file are in the cache loads
    with no network. Otherwise the client makes a single attempt (retry policy ``robot``,
    ``n_retries`` tries) after a short TCP probe of the server (skipped behind a proxy), so an
    unreachable server fails in about a second with :class:`DatasetUnavailable`. Calls into the
    client are serialised by a lock (it is not thread-safe).

    Args:
        cache_dir: the OpenML cache root (it holds ``org/openml/www/datasets/<id>/...``).
        n_retries: connection attempts of the client (default 1).
        probe_timeout: seconds allowed for the reachability probe; ``0`` disables the probe.
        offline: serve only what the cache holds and never touch the network (the default source
            when no source and no mirror are configured: the pipeline reaches the network only
            when a user asks for an online dataset with ``data.source: openml``).
    """

    kind = "openml"

    def __init__(
        self, cache_dir: str | Path | None = None, n_retries: int = 1, probe_timeout: float = 3.0,
        offline: bool = False,
    ):
        if not isinstance(n_retries, int) or n_retries < 1:
            raise ValueError(f"n_retries={n_retries!r} must be an int >= 1")
        if probe_timeout < 0:
            raise ValueError(f"probe_timeout={probe_timeout!r} must be >= 0")
        self.cache_dir = Path(cache_dir).expanduser().resolve() if cache_dir else None
        self.n_retries = n_retries
        self.probe_timeout = float(probe_timeout)
        self.offline = bool(offline)
        self._datasets: dict[int, Any] = {}

    def __repr__(self) -> str:
        return f"OpenMLSource(cache_dir={str(self.cache_dir) if self.cache_dir else None!r})"

    def available(self) -> list[str]:
        """OpenML serves any id; this lists the registry names (plus ``openml:<id>``)."""
        from .registry import REGISTRY

        return sorted(REGISTRY)

    def spec_for(self, dataset: str | DatasetSpec) -> DatasetSpec:
        """The registry spec of a name (or ``openml:<id>``)."""
        return get_spec(dataset)

    def _openml(self):
        import openml  # lazy: slow to import

        # The client's cache root is process-global: set it on every call, so that one source's
        # folder never leaks into another's (the default is the client's own, e.g. ~/.cache/openml).
        root = self.cache_dir or os.environ.get("OPENML_CACHE_DIR") or openml.config._defaults["cachedir"]
        openml.config.set_root_cache_directory(str(Path(root).expanduser().resolve()))
        openml.config.set_retry_policy("robot", n_retries=self.n_retries)
        return openml

    def _where(self, openml) -> str:
        return f"{openml.config.server} (cache {openml.config.get_cache_directory()})"

    def _probe(self, openml, label: str) -> None:
        import socket
        import urllib.parse
        import urllib.request

        if self.probe_timeout == 0:
            return
        url = urllib.parse.urlparse(openml.config.server)
        if urllib.request.getproxies().get(url.scheme or "https"):
            return  # behind a proxy a direct probe says nothing
        host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
        try:
            with socket.create_connection((host, port), timeout=self.probe_timeout):
                pass
        except OSError as e:
            raise DatasetUnavailable(self._unreachable(openml, label, e)) from None

    def _unreachable(self, openml, label: str, err: BaseException) -> str:
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        return (
            f"dataset {label} is not in the OpenML cache and the server is unreachable: "
            f"looked in {self._where(openml)} ({type(err).__name__}: {reason}); fix: set "
            "data.source: mirror and data.mirror: PATH, or connect to the internet, or fill "
            "OPENML_CACHE_DIR"
        )

    def _get(self, spec: DatasetSpec):
        with _OPENML_LOCK:
            return self._get_unlocked(spec)

    def _get_unlocked(self, spec: DatasetSpec):
        if spec.openml_id is None:
            raise DatasetUnavailable(
                f"dataset {spec.name!r} has no OpenML id, so the openml source cannot fetch it; "
                "fix: use data.source: mirror or files"
            )
        if spec.openml_id in self._datasets:
            return self._datasets[spec.openml_id]
        openml = self._openml()
        label = f"{spec.name!r} (OpenML id {spec.openml_id})"
        did_dir = Path(openml.config.get_cache_directory()) / "datasets" / str(spec.openml_id)
        cached = (did_dir / "description.xml").is_file() and (
            (did_dir / f"dataset_{spec.openml_id}.pq").is_file()
            or (did_dir / "dataset.arff").is_file()
        )
        if not cached and self.offline:
            raise DatasetUnavailable(
                f"dataset {label} is not in the OpenML cache ({openml.config.get_cache_directory()}) and no "
                "online source was asked for; fix: set data.mirror: PATH (or $PIPELINE_DATA_MIRROR) to an "
                "offline mirror, or data.source: openml to download it"
            )
        if not cached:
            self._probe(openml, label)
        import requests
        import urllib3

        try:
            ds = openml.datasets.get_dataset(
                spec.openml_id,
                download_data=True,
                download_qualities=False,
                download_features_meta_data=False,
            )
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            ConnectionError,
            TimeoutError,
        ) as e:
            raise DatasetUnavailable(self._unreachable(openml, label, e)) from None
        except openml.exceptions.OpenMLServerException as e:
            raise DatasetUnavailable(
                f"dataset {label}: OpenML at {self._where(openml)} answered: "
                f"{str(e).splitlines()[0][:200]}; fix: check the id, or use data.source: mirror"
            ) from None
        self._datasets[spec.openml_id] = ds
        return ds

    def _data_file(self, ds) -> Path:
        f = ds.parquet_file or ds.data_file
        if f is None:
            raise DatasetUnavailable(f"dataset {ds.name!r} (OpenML id {ds.dataset_id}) has no data file")
        return Path(f)

    def describe(self, dataset: str | DatasetSpec) -> dict[str, Any]:
        """Provenance (downloads the set first when it is not cached)."""
        spec = get_spec(dataset)
        ds = self._get(spec)
        path = self._data_file(ds)
        return {
            "source": "openml",
            "location": str(path),
            "sha256": file_sha256(path),
            "openml_id": spec.openml_id,
            "openml_name": ds.name,
            "openml_version": ds.version,
        }

    def load(self, dataset: str | DatasetSpec) -> RawTable:
        """Fetch (or read from the cache) a set; **Shape** X ``(n, d)``, y ``(n,)``."""
        spec = get_spec(dataset)
        ds = self._get(spec)
        target = spec.target or ds.default_target_attribute
        if not target:
            raise ValueError(
                f"dataset {spec.name!r} (OpenML id {spec.openml_id}) has no default target; "
                "name one (files: NAME: {openml_id: ID, target: COLUMN})"
            )
        if "," in target:
            raise ValueError(f"dataset {spec.name!r}: multiple targets {target!r} are not supported")
        with _OPENML_LOCK:
            df, _, categorical, names = ds.get_data(target=None, dataset_format="dataframe")
        X, y = _split_target(df, target, spec.name, f"OpenML dataset {spec.openml_id}")
        cats = tuple(n for n, c in zip(names, categorical) if c and n != target)
        return RawTable(
            spec=spec,
            X=X,
            y=y,
            provenance=self.describe(spec),
            official_split=_official_from_spec(spec, len(df)),
            categorical=_categoricals(X, tuple(spec.categorical) + cats),
        )


# ------------------------------------------------------------------------------------ files
_FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".tsv")


class FileSource:
    """A user's own table: a CSV/TSV or parquet file with a named target column.

    Args:
        path: the file.
        target: the target column (labels may be strings; they are encoded 0..k-1 later).
        name: the dataset name it answers to (default: the file's stem).
        dataset_kind: ``"tabular"`` (default) or ``"image"`` (pixel columns, then the target).
        categorical: feature columns to one-hot/ordinal-encode (``object``/``category`` columns
            are categorical anyway).
        image_shape: ``(H, W, C)`` for an image table.
        channels_first: pixel columns are channel-major (as in OpenML CIFAR_10).
        read_options: extra keyword arguments for ``pandas.read_csv``/``read_parquet``.

    Raises:
        ValueError: an empty target or an unsupported file type.
    """

    kind = "files"

    def __init__(
        self,
        path: str | Path,
        target: str,
        name: str | None = None,
        dataset_kind: str = "tabular",
        categorical: tuple[str, ...] | list[str] = (),
        image_shape: tuple[int, int, int] | list[int] | None = None,
        channels_first: bool = False,
        read_options: Mapping[str, Any] | None = None,
    ):
        self.path = Path(path).expanduser().resolve()
        if not isinstance(target, str) or not target:
            raise ValueError(f"FileSource({self.path}): target must be a column name, got {target!r}")
        if self.path.suffix.lower() not in _FILE_SUFFIXES:
            raise ValueError(
                f"FileSource: unsupported file type {self.path.suffix!r} of {self.path}; "
                f"allowed: {_FILE_SUFFIXES}"
            )
        self.target = target
        self.name = str(name or self.path.stem)
        self.categorical = tuple(categorical or ())
        self.read_options = dict(read_options or {})
        self.spec = DatasetSpec(
            self.name, None, dataset_kind, target,  # type: ignore[arg-type]
            image_shape=tuple(image_shape) if image_shape else None,  # type: ignore[arg-type]
            channels_first=channels_first, categorical=self.categorical,
        )

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r}, target={self.target!r}, name={self.name!r})"

    def available(self) -> list[str]:
        """The one name this file answers to."""
        return [self.name]

    def spec_for(self, dataset: str | DatasetSpec) -> DatasetSpec:
        """The spec of the file's dataset (checks the name)."""
        self._check(dataset, exists=False)
        return self.spec

    def _check(self, dataset: str | DatasetSpec, exists: bool = True) -> None:
        name = dataset.name if isinstance(dataset, DatasetSpec) else dataset
        if name != self.name:
            raise DatasetUnavailable(
                f"dataset {name!r} is not provided by the files source (it holds {self.name!r} "
                f"from {self.path}); fix: declare it under data.files: {name}: "
                "{path: FILE, target: COLUMN}"
            )
        if exists and not self.path.is_file():
            raise DatasetUnavailable(
                f"dataset {self.name!r}: file {self.path} does not exist; fix: correct "
                "data.files path (relative paths are relative to the repository root)"
            )

    def describe(self, dataset: str | DatasetSpec) -> dict[str, Any]:
        """Provenance: the file's path and sha256."""
        self._check(dataset)
        return {"source": "files", "location": str(self.path), "sha256": file_sha256(self.path)}

    def load(self, dataset: str | DatasetSpec) -> RawTable:
        """Read the file; **Shape** X ``(n, d)``, y ``(n,)``."""
        self._check(dataset)
        suffix = self.path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(self.path, **self.read_options)
        else:
            opts = dict(self.read_options)
            if suffix == ".tsv":
                opts.setdefault("sep", "\t")
            df = pd.read_csv(self.path, **opts)
        X, y = _split_target(df, self.target, self.name, str(self.path))
        if y.isna().any():
            raise ValueError(
                f"dataset {self.name!r}: target column {self.target!r} has {int(y.isna().sum())} "
                "missing values; drop those rows first"
            )
        return RawTable(
            spec=self.spec,
            X=X,
            y=y,
            provenance=self.describe(dataset),
            official_split=None,
            categorical=_categoricals(X, self.categorical),
        )


class CatalogSource:
    """The ``files`` source of ``params.yaml``: several user datasets declared by name.

    Each entry is either ``{path: FILE, target: COLUMN, ...}`` (a :class:`FileSource`; the other
    keys are its arguments) or ``{openml_id: ID, target?: COLUMN}`` (any OpenML dataset, fetched
    by :class:`OpenMLSource`).

    Args:
        files: ``{name: entry}``.
        openml_cache: the OpenML cache for ``openml_id`` entries.
    """

    kind = "files"

    def __init__(self, files: Mapping[str, Mapping[str, Any]], openml_cache: str | Path | None = None):
        if not isinstance(files, Mapping) or not files:
            raise ValueError(f"files must be a non-empty mapping name -> entry, got {files!r}")
        self._entries: dict[str, Any] = {}
        self._openml: OpenMLSource | None = None
        for name, entry in files.items():
            entry = dict(entry)
            if "openml_id" in entry:
                unknown = set(entry) - {"openml_id", "target", "kind"}
                if unknown:
                    raise ValueError(f"files entry {name!r}: unknown keys {sorted(unknown)}")
                self._openml = self._openml or OpenMLSource(cache_dir=openml_cache)
                self._entries[name] = DatasetSpec(
                    str(name), int(entry["openml_id"]), entry.get("kind", "tabular"), entry.get("target")
                )
            elif "path" in entry and "target" in entry:
                if "kind" in entry:
                    entry["dataset_kind"] = entry.pop("kind")
                self._entries[name] = FileSource(name=str(name), **entry)
            else:
                raise ValueError(
                    f"files entry {name!r} = {entry!r}: needs {{path, target}} or {{openml_id}}"
                )

    def __repr__(self) -> str:
        return f"CatalogSource({sorted(self._entries)})"

    def available(self) -> list[str]:
        """The declared names."""
        return list(self._entries)

    def _entry(self, dataset: str | DatasetSpec):
        name = dataset.name if isinstance(dataset, DatasetSpec) else dataset
        if name not in self._entries:
            raise DatasetUnavailable(
                f"dataset {name!r} is not declared in the files source (declared: "
                f"{', '.join(self._entries)}); fix: add data.files: {name}: "
                "{path: FILE, target: COLUMN} (or {openml_id: ID})"
            )
        return self._entries[name]

    def spec_for(self, dataset: str | DatasetSpec) -> DatasetSpec:
        """The spec of a declared set."""
        e = self._entry(dataset)
        return e if isinstance(e, DatasetSpec) else e.spec

    def describe(self, dataset: str | DatasetSpec) -> dict[str, Any]:
        """Provenance of a declared set."""
        e = self._entry(dataset)
        if isinstance(e, DatasetSpec):
            return self._openml.describe(e)  # type: ignore[union-attr]
        return e.describe(e.name)

    def load(self, dataset: str | DatasetSpec) -> RawTable:
        """Load a declared set."""
        e = self._entry(dataset)
        if isinstance(e, DatasetSpec):
            return self._openml.load(e)  # type: ignore[union-attr]
        return e.load(e.name)


# ---------------------------------------------------------------------------------- factory
def make_source(kind: str, **options: Any) -> Source:
    """Build a source by kind.

    - ``make_source("openml", cache_dir=None, n_retries=1, probe_timeout=3.0)``
    - ``make_source("mirror", root=None)`` (default root ``$PIPELINE_DATA_MIRROR``)
    - ``make_source("files", path=FILE, target=COLUMN, name=None, ...)`` for one file, or
      ``make_source("files", files={name: entry, ...}, openml_cache=None)`` for several.

    Raises:
        ValueError: an unknown kind or option.
    """
    if kind == "openml":
        return OpenMLSource(**options)
    if kind == "mirror":
        return MirrorSource(**options)
    if kind == "files":
        if "files" in options:
            return CatalogSource(**options)
        if "path" not in options or "target" not in options:
            raise ValueError(
                f"make_source('files') needs path= and target= (or files={{...}}), got {sorted(options)}"
            )
        return FileSource(**options)  # type: ignore[return-value]
    raise ValueError(f"unknown source kind {kind!r}; allowed: {SOURCE_KINDS}")


def source_from_config(cfg: Mapping[str, Any] | None) -> Source:
    """The source a ``params.yaml`` ``data`` section selects.

    Keys: ``source`` (``openml`` | ``mirror`` | ``files``; default ``mirror`` when a mirror is
    given or ``$PIPELINE_DATA_MIRROR`` is set, else the OpenML cache without network access), ``mirror`` (folder),
    ``openml_cache`` (folder; default ``$OPENML_CACHE_DIR``), ``files`` (``{name: entry}``, see
    :class:`CatalogSource`). Unrelated keys are ignored.

    Example:
        >>> source_from_config({"source": "mirror", "mirror": "../shared/data"})  # doctest: +SKIP
        MirrorSource('/work/shared/data')
    """
    cfg = dict(cfg or {})
    kind = cfg.get("source")
    if kind is None:
        if not (cfg.get("mirror") or os.environ.get(MIRROR_ENV)):
            return OpenMLSource(cache_dir=cfg.get("openml_cache"), offline=True)
        kind = "mirror"
    if kind == "mirror":
        return MirrorSource(cfg.get("mirror"))
    if kind == "openml":
        return OpenMLSource(cache_dir=cfg.get("openml_cache"))
    if kind == "files":
        return CatalogSource(cfg.get("files") or {}, openml_cache=cfg.get("openml_cache"))
    raise ValueError(f"data.source={kind!r}; allowed: {SOURCE_KINDS}")
