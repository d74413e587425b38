"""Read and check params.yaml before any work starts; resolve the active profile of a track.

A bad key, a wrong type or an unknown name stops the stage with a message that names the key and
the allowed values, before anything is computed or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.flows import algorithmic, images, shortcut, tabular
from pipeline.flows.runners import RunnerConfig

PROFILES = ("quick", "paper")

# A schema is a dict of key -> type (a tuple of allowed types), nested dict, or a tuple of allowed
# values. Each track's section is described by its flows module (SCHEMA, check_names).
SCHEMA: dict[str, Any] = {
    "profile": PROFILES,
    "runner": lambda value, key: RunnerConfig.from_dict(value),  # its own checks name key and values
    "device": ("cpu", "cuda", "auto"),
    # where datasets come from (pipeline/data/sources.py: source_from_config); values checked when used
    "data": {"source": (str, type(None)), "mirror": (str, type(None)), "openml_cache": (str, type(None)),
             "files": (dict, type(None))},
    "algorithmic": algorithmic.SCHEMA,
    "tabular": tabular.SCHEMA,
    "images": images.SCHEMA,
    "shortcut": shortcut.SCHEMA,
}
NAME_CHECKS = {"algorithmic": algorithmic.check_names, "tabular": tabular.check_names,
               "images": images.check_names, "shortcut": shortcut.check_names}


def _check(value: Any, schema: Any, key: str) -> None:
    if callable(schema) and not isinstance(schema, type):
        try:
            schema(value, key)
        except ValueError as err:
            raise ValueError(f"params.yaml: {key}: {err}") from None
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            raise ValueError(f"params.yaml: {key} must be a mapping with keys {sorted(schema)}, got {value!r}")
        for k in value:
            if k not in schema:
                raise ValueError(f"params.yaml: unknown key {key + '.' if key else ''}{k}; allowed keys: {sorted(schema)}")
        for k, sub in schema.items():
            if k not in value:
                raise ValueError(f"params.yaml: missing key {key + '.' if key else ''}{k}")
            _check(value[k], sub, f"{key + '.' if key else ''}{k}")
    elif isinstance(schema, tuple) and all(isinstance(s, str) for s in schema):
        if value not in schema:
            raise ValueError(f"params.yaml: {key} = {value!r} is not allowed; use one of {list(schema)}")
    else:
        types = schema if isinstance(schema, tuple) else (schema,)
        if isinstance(value, bool) or not isinstance(value, types):
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            raise ValueError(f"params.yaml: {key} must be {names}, got {value!r}")


def load_params(path: str | Path = "params.yaml") -> dict:
    """The whole params.yaml, checked against :data:`SCHEMA` and the registries of names."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no params file at {str(path)!r}: run from the repository root")
    params = yaml.safe_load(path.read_text()) or {}
    _check(params, SCHEMA, "")
    for track, check_names in NAME_CHECKS.items():
        check_names(params[track], f"params.yaml: {track}")
    return params


def track_params(params: dict, track: str) -> dict:
    """A track's section with its active profile's block merged in (the profile wins). The active
    profile is the track's own ``profile`` key when the section has one that is set (e.g.
    ``algorithmic.profile: cpu``), else the global ``profile``."""
    profile = params[track].get("profile") or params["profile"]
    profiles = params[track]["profiles"]
    if profile not in profiles:
        raise ValueError(f"params.yaml: {track}.profiles has no profile {profile!r}; use one of {sorted(profiles)}")
    section = {k: v for k, v in params[track].items() if k not in ("profiles", "profile")}
    return {**section, **profiles[profile], "profile": profile}


def stage_params(track: str, path: str | Path = "params.yaml") -> dict:
    """What a track's stage reads: its section under the active profile, plus runner and device."""
    params = load_params(path)
    return {**track_params(params, track), "runner": params["runner"], "device": params["device"]}
