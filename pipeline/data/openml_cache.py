"""Fill an OpenML client cache from a mirror, so that the real ``openml`` client runs offline.

The ``openml`` client (0.15) looks for ``<root>/org/openml/www/datasets/<id>/description.xml`` and,
when the description has a ``parquet_url``, ``dataset_<id>.pq`` beside it (see
``openml.datasets.functions._get_dataset_description`` and ``_get_dataset_parquet``). With both
present, ``openml.datasets.get_dataset(id, download_data=True)`` and ``.get_data()`` make no network
call. :func:`seed_openml_cache` writes those files for every mirror entry with a known OpenML id,
linking (or copying) the parquet tables; it is how the tests run the real client offline and how a
CI machine can pre-fill ``OPENML_CACHE_DIR``.

Example:
    >>> seed_openml_cache("../shared/data", "/tmp/openml-cache", ["credit"])  # doctest: +SKIP
    {'credit': PosixPath('/tmp/openml-cache/org/openml/www/datasets/44089')}
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable
from xml.sax.saxutils import escape

from .sources import MirrorSource

_DESCRIPTION = """<oml:data_set_description xmlns:oml="http://openml.org/openml">
  <oml:id>{id}</oml:id>
  <oml:name>{name}</oml:name>
  <oml:version>1</oml:version>
  <oml:description>Offline copy seeded from a data mirror ({mirror}).</oml:description>
  <oml:format>Parquet</oml:format>
  <oml:upload_date>2022-01-01T00:00:00</oml:upload_date>
  <oml:licence>Public</oml:licence>
  <oml:url>https://api.openml.org/data/v1/download/{id}/{name}.arff</oml:url>
  <oml:parquet_url>http://openml1.win.tue.nl/datasets/0000/{id:04d}/dataset_{id}.pq</oml:parquet_url>
  <oml:file_id>{id}</oml:file_id>
  <oml:default_target_attribute>{target}</oml:default_target_attribute>
  <oml:visibility>public</oml:visibility>
  <oml:status>active</oml:status>
  <oml:md5_checksum></oml:md5_checksum>
</oml:data_set_description>
"""


def seed_openml_cache(
    mirror_root: str | Path,
    cache_root: str | Path,
    names: Iterable[str] | None = None,
    *,
    link: bool = True,
) -> dict[str, Path]:
    """Write OpenML cache entries for mirror sets.

    Args:
        mirror_root: a folder laid out like ``../shared/data``.
        cache_root: the OpenML root cache directory (what ``OPENML_CACHE_DIR`` names).
        names: mirror names to seed (default: every entry with an ``openml_id``).
        link: symlink the parquet files (default) rather than copy them.

    Returns:
        ``{mirror name: dataset cache folder}``.

    Raises:
        ValueError: a requested set without an OpenML id in the manifest.
        DatasetUnavailable: a requested set not in the mirror, or a file whose sha256 is wrong.
    """
    mirror = MirrorSource(mirror_root)
    wanted = list(names) if names is not None else [
        e["name"] for e in mirror.manifest() if e.get("openml_id") is not None
    ]
    out: dict[str, Path] = {}
    for name in wanted:
        e = mirror.entry(name)
        did = e.get("openml_id")
        if did is None:
            raise ValueError(f"mirror entry {e['name']!r} has no OpenML id, so it cannot seed a cache")
        src = mirror.path(name)
        folder = Path(cache_root) / "org" / "openml" / "www" / "datasets" / str(did)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "description.xml").write_text(
            _DESCRIPTION.format(
                id=int(did), name=escape(e["name"]), target=escape(e["target"]),
                mirror=escape(str(mirror.root)),
            ),
            encoding="utf8",
        )
        dst = folder / f"dataset_{did}.pq"
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        if link:
            os.symlink(src, dst)
        else:
            shutil.copyfile(src, dst)
        out[e["name"]] = folder
    return out
