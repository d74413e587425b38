"""The content digest of a file, memoised within the process.

Dataset provenance (pipeline.data.sources) and the cache keys of the pipeline's units
(pipeline.flows.caching) both fingerprint files; hashing a large parquet table or a whole source
tree again at every call would dominate a cached re-run, so digests are memoised on the file's
identity and modification time.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

_MEMO: dict[tuple, str] = {}
_LOCK = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file's bytes, memoised per (path, size, mtime, inode): a file
    rewritten in place (new mtime) or replaced by an atomic rename (new inode) is hashed again."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    with _LOCK:
        cached = _MEMO.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _LOCK:
        _MEMO[key] = value
    return value
