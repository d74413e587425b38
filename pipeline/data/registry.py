"""The paper's datasets by name (paper Sec. 3.1-3.3): where each lives on OpenML and what it holds.

The registry is metadata only: it never touches the network or the disk. A :class:`DatasetSpec`
says which OpenML id a name stands for, whether the set is tabular or an image set, its target
column, and (for images) the pixel layout. Sources (:mod:`pipeline.data.sources`) turn a spec into
a table; preparation (:mod:`pipeline.data.prepare`) turns the table into arrays.

Names outside the registry are accepted in two forms: ``"openml:<id>"`` (any OpenML dataset,
tabular, target = OpenML's default target attribute unless given) and the names of a user's own
files, which the ``files`` source declares (see :class:`pipeline.data.sources.FileSource`).

Example:
    >>> spec = get_spec("electricity")
    >>> spec.openml_id, spec.kind, spec.target
    (44120, 'tabular', 'class')
    >>> get_spec("mnist_784").image_shape
    (28, 28, 1)
    >>> get_spec("openml:31").openml_id
    31
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

KINDS = ("tabular", "image")

#: OpenML benchmark suite of the Grinsztajn et al. numerical classification sets.
GRINSZTAJN_SUITE = 337


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset name stands for.

    Attributes:
        name: the registry name (as the paper and OpenML spell it).
        openml_id: the OpenML dataset id, or ``None`` for a local-only set.
        kind: ``"tabular"`` or ``"image"``.
        target: the target column; ``None`` means OpenML's ``default_target_attribute``.
        image_shape: ``(height, width, channels)`` for image sets, else ``None``.
        channels_first: pixel columns hold channel 0 for all pixels, then channel 1, ...
            (OpenML CIFAR_10 and SVHN); ``False`` for one-channel sets.
        categorical: feature columns to treat as categorical (besides ``category``/``object``
            dtypes, which are always treated as categorical).
        n_official_train: rows ``[0, n)`` of the OpenML table are the official training set of an
            image set (the rest is the official test set); a mirror manifest's ``split`` rule wins.
        suite: the OpenML suite the set belongs to, if any.
        pixel_max: the largest pixel value (pixels are divided by it; 255 for 8-bit images).
        note: free text (e.g. an unconfirmed id).
    """

    name: str
    openml_id: int | None
    kind: Literal["tabular", "image"]
    target: str | None = None
    image_shape: tuple[int, int, int] | None = None
    channels_first: bool = False
    categorical: tuple[str, ...] = ()
    n_official_train: int | None = None
    suite: int | None = None
    pixel_max: float = 255.0
    note: str = field(default="", compare=False)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"DatasetSpec {self.name!r}: kind={self.kind!r}, allowed: {KINDS}")
        if self.kind == "image" and self.image_shape is None:
            raise ValueError(f"DatasetSpec {self.name!r}: an image set needs image_shape (H, W, C)")
        if not self.pixel_max > 0:
            raise ValueError(f"DatasetSpec {self.name!r}: pixel_max={self.pixel_max!r} must be > 0")
        if self.image_shape is not None and (
            len(self.image_shape) != 3 or min(self.image_shape) < 1
        ):
            raise ValueError(
                f"DatasetSpec {self.name!r}: image_shape={self.image_shape!r} is not (H, W, C)"
            )


def _tab(name: str, openml_id: int | None, target: str | None, note: str = "") -> DatasetSpec:
    return DatasetSpec(name, openml_id, "tabular", target, suite=GRINSZTAJN_SUITE, note=note)


# Targets of the 11 sets in the offline mirror are the column names of the OpenML export; for the
# 5 large sets (not mirrored) ``None`` defers to OpenML's default target attribute.
_TABULAR = (
    _tab("Bioresponse", 45019, None),
    _tab("Diabetes130US", 45022, "readmitted"),
    _tab("Higgs", 44129, None),
    _tab("MagicTelescope", 44125, "class"),
    _tab("MiniBooNE", 44128, None),
    _tab("bank-marketing", 44126, "Class"),
    _tab("california", 44090, "price_above_median"),
    _tab("covertype", 44121, None),
    _tab("credit", 44089, "SeriousDlqin2yrs"),
    _tab("default-of-credit-card-clients", 45020, "y"),
    _tab("electricity", 44120, "class"),
    _tab("eye_movements", 44130, "label"),
    _tab(
        "heloc",
        45026,
        "RiskPerformance",
        note="id from the suite-337 listing, not confirmed offline (the mirror records null)",
    ),
    _tab("house_16H", 44123, "binaryClass"),
    _tab("jannis", 45021, None),
    _tab("pol", 44122, "binaryClass"),
)

_IMAGES = (
    DatasetSpec("mnist_784", 554, "image", "class", (28, 28, 1), n_official_train=60_000),
    DatasetSpec("Fashion-MNIST", 40996, "image", "class", (28, 28, 1), n_official_train=60_000),
    DatasetSpec(
        "CIFAR_10", 40927, "image", "class", (32, 32, 3), channels_first=True,
        n_official_train=50_000,
    ),
    DatasetSpec(
        "SVHN", 41081, "image", "class", (32, 32, 3), channels_first=True,
        n_official_train=73_257,
    ),
)

#: Every registered dataset by name.
REGISTRY: dict[str, DatasetSpec] = {s.name: s for s in _TABULAR + _IMAGES}

#: The 16 classification sets of OpenML suite 337 (Grinsztajn et al.), in the paper's order.
TABULAR_DATASETS: tuple[str, ...] = tuple(s.name for s in _TABULAR)

#: The paper's image sets (Sec. 3.1-3.2).
IMAGE_DATASETS: tuple[str, ...] = tuple(s.name for s in _IMAGES)

# Mirror names that stand for a registry entry (the mirror holds a class-balanced CIFAR subset).
ALIASES: dict[str, str] = {"CIFAR_10-subset": "CIFAR_10"}

_OPENML_NAME = re.compile(r"^openml:(\d+)$")


def get_spec(
    name_or_spec: str | DatasetSpec, *, target: str | None = None, kind: str | None = None
) -> DatasetSpec:
    """The :class:`DatasetSpec` of a registry name, an ``"openml:<id>"`` name, or a spec itself.

    ``target`` and ``kind`` override the registered values (e.g. a user's choice of target for an
    OpenML id outside the registry).

    Raises:
        ValueError: an unknown name (the message lists the registry's names).
    """
    if isinstance(name_or_spec, DatasetSpec):
        spec = name_or_spec
    elif not isinstance(name_or_spec, str):
        raise ValueError(
            f"dataset must be a name or a DatasetSpec, got {type(name_or_spec).__name__}: "
            f"{name_or_spec!r}"
        )
    elif name_or_spec in REGISTRY:
        spec = REGISTRY[name_or_spec]
    elif name_or_spec in ALIASES:
        spec = REGISTRY[ALIASES[name_or_spec]]
    elif m := _OPENML_NAME.match(name_or_spec):
        spec = DatasetSpec(name_or_spec, int(m.group(1)), "tabular", None)
    else:
        raise ValueError(
            f"unknown dataset {name_or_spec!r}: registered names are {sorted(REGISTRY)}; "
            "use 'openml:<id>' for any other OpenML dataset, or declare a file under the "
            "'files' source"
        )
    if target is not None:
        spec = replace(spec, target=target)
    if kind is not None and kind != spec.kind:
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}, allowed: {KINDS}")
        spec = replace(spec, kind=kind)
    return spec
