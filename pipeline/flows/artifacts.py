"""Prefect artifacts of a stage: a results table and a markdown summary under stable keys.

Keys are ``<track>-<stage>-<name>`` in lowercase letters, digits and dashes (what Prefect accepts),
e.g. ``tabular-train-results`` and ``tabular-train-summary``, so each new run of a stage adds a
version of the same artifact in the UI (Artifacts page) rather than a new one.

Example::

    @flow
    def train_flow(params):
        rows = [...]                     # one dict per (dataset, model)
        publish_table(rows, track="tabular", stage="train")
        publish_markdown("## Tabular\\n" + markdown_table(rows), track="tabular", stage="train")
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any
from uuid import UUID

__all__ = ["artifact_key", "markdown_table", "publish_markdown", "publish_table", "table_rows"]

_NOT_KEY = re.compile(r"[^a-z0-9]+")


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from its parts: lowercase, every run of other characters a dash.

    Raises:
        ValueError: no parts, or a part with no letter or digit.

    Example::

        >>> artifact_key("Tabular", "train", "results")
        'tabular-train-results'
        >>> artifact_key("images", "meta_learn", "summary")
        'images-meta-learn-summary'
    """
    if not parts:
        raise ValueError("artifact_key needs at least one part, e.g. artifact_key('tabular', 'train', 'results')")
    cleaned = []
    for part in parts:
        text = _NOT_KEY.sub("-", str(part).lower()).strip("-")
        if not text:
            raise ValueError(f"artifact key part {part!r} has no letter or digit (parts {parts!r})")
        cleaned.append(text)
    return "-".join(cleaned)


def _plain(value: Any) -> Any:
    """A JSON-friendly cell: numpy/torch scalars as Python numbers, paths as strings, infinities
    as strings (JSON has none); NaN is left to Prefect, which shows it as an empty cell."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0 and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, float) and math.isinf(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def table_rows(table: Any) -> list[dict[str, Any]]:
    """Rows (a list of dicts with plain cells) from a list of dicts, a dict of equal-length
    columns, or a pandas DataFrame.

    Raises:
        ValueError: any other shape, or columns of different lengths.
    """
    if hasattr(table, "to_dict") and hasattr(table, "columns"):  # a DataFrame, without importing pandas
        table = table.to_dict(orient="records")
    if isinstance(table, Mapping):
        lengths = {key: len(column) for key, column in table.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"table columns must have equal lengths, got {lengths}")
        n = next(iter(lengths.values()), 0)
        table = [{key: table[key][i] for key in table} for i in range(n)]
    if not isinstance(table, Sequence) or isinstance(table, (str, bytes)) or not all(isinstance(row, Mapping) for row in table):
        raise ValueError(
            "table must be a list of dicts, a dict of columns or a pandas DataFrame, "
            f"got {type(table).__name__}: {str(table)[:200]}"
        )
    return [{str(key): _plain(value) for key, value in row.items()} for row in table]


def publish_table(
    table: Any,
    *,
    track: str,
    stage: str,
    name: str = "results",
    description: str | None = None,
) -> UUID:
    """Create the table artifact ``<track>-<stage>-<name>`` (in the current flow or task run).

    Args:
        table: a list of dicts, a dict of columns, or a pandas DataFrame (see :func:`table_rows`).
        track, stage, name: the key's parts (see :func:`artifact_key`).
        description: markdown shown above the table in the UI.

    Returns:
        The artifact's id.
    """
    from prefect.artifacts import create_table_artifact

    key = artifact_key(track, stage, name)
    return create_table_artifact(table=table_rows(table), key=key, description=description)


def publish_markdown(
    markdown: str,
    *,
    track: str,
    stage: str,
    name: str = "summary",
    description: str | None = None,
) -> UUID:
    """Create the markdown artifact ``<track>-<stage>-<name>`` (in the current flow or task run).

    Raises:
        ValueError: ``markdown`` is not a string.
    """
    if not isinstance(markdown, str):
        raise ValueError(f"markdown must be a str, got {type(markdown).__name__}")
    from prefect.artifacts import create_markdown_artifact

    key = artifact_key(track, stage, name)
    return create_markdown_artifact(markdown=markdown, key=key, description=description)


def markdown_table(table: Any, columns: Sequence[str] | None = None, float_format: str = "{:.4g}") -> str:
    """A GitHub-style markdown table of :func:`table_rows` (for summaries and reports).

    Example::

        >>> print(markdown_table([{"model": "relu", "acc": 0.91234}]))
        | model | acc |
        | --- | --- |
        | relu | 0.9123 |
    """
    rows = table_rows(table)
    if columns is None:
        columns = list(dict.fromkeys(key for row in rows for key in row))

    def cell(value: Any) -> str:
        if isinstance(value, float) and not isinstance(value, bool):
            return "" if math.isnan(value) else float_format.format(value)
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)
