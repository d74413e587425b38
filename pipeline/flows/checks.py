"""The one check every track's ``check_names`` makes: each name in a params list is known."""

from __future__ import annotations

from collections.abc import Collection, Iterable


def require_known(names: Iterable[str], allowed: Collection[str], key: str, what: str) -> None:
    """Raise ``ValueError`` naming the params ``key``, the unknown ``what`` and the allowed values.

    >>> require_known(["relu"], ("relu", "gelu"), "algorithmic.controls", "activation")
    """
    for name in names:
        if name not in allowed:
            raise ValueError(f"{key} has unknown {what} {name!r}; use any of {list(allowed)}")
