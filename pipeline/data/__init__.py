"""Data: the paper's datasets (registry), where they come from (sources), and how they are split
and preprocessed (tabular, images), plus synthetic and bundled tasks and shortcut collages.

Importing this package reads nothing and imports neither ``openml`` nor ``torch``.

Example:
    >>> from pipeline.data import prepare_dataset, make_source
    >>> d = prepare_dataset("digits", seed=0, cache_dir=False)
    >>> d.X_train.shape[1], d.n_classes, d.meta["image_shape"]
    (64, 10, [1, 8, 8])
"""

from .collages import collage_tiles, make_collages, split_tiles
from .images import prepare_images, stratified_subsample
from .prepare import (
    ALGORITHMIC_OPTIONS,
    COLLAGE_OPTIONS,
    IMAGE_OPTIONS,
    TABULAR_OPTIONS,
    PreparedData,
    available_datasets,
    default_cache_dir,
    default_source,
    prepare_dataset,
)
from .registry import IMAGE_DATASETS, REGISTRY, TABULAR_DATASETS, DatasetSpec, get_spec
from .sources import (
    CatalogSource,
    DatasetUnavailable,
    FileSource,
    MirrorSource,
    OpenMLSource,
    RawTable,
    Source,
    make_source,
    source_from_config,
)
from .synthetic import (
    ALGORITHMIC_OPS,
    BUNDLED,
    PAPER_TASKS,
    AlgorithmicTask,
    BundledSource,
    algorithmic_task,
    parse_task_name,
    tree_task,
)
from .tabular import encode_labels, grinsztajn_split, preprocess_tabular
from .openml_cache import seed_openml_cache

__all__ = [
    "ALGORITHMIC_OPS", "ALGORITHMIC_OPTIONS", "AlgorithmicTask", "BUNDLED", "BundledSource",
    "COLLAGE_OPTIONS", "CatalogSource", "DatasetSpec", "DatasetUnavailable", "FileSource",
    "IMAGE_DATASETS", "IMAGE_OPTIONS", "MirrorSource", "OpenMLSource", "PAPER_TASKS",
    "PreparedData", "REGISTRY", "RawTable", "Source", "TABULAR_DATASETS", "TABULAR_OPTIONS",
    "algorithmic_task", "available_datasets", "collage_tiles", "default_cache_dir", "default_source", "encode_labels",
    "get_spec", "grinsztajn_split", "make_collages", "make_source", "parse_task_name",
    "prepare_dataset", "prepare_images", "preprocess_tabular", "seed_openml_cache",
    "source_from_config", "split_tiles", "stratified_subsample", "tree_task",
]
