"""Datasets as normalised in-memory tensors: ``load_dataset("fashion-mnist", split="test")``.

``register_dataset`` is the single extension point; ``stratified_split`` carves a validation set;
``validation_split`` is the project's recipe for one (5,000 images, seed 0).
Files are looked for in ``root`` (``--data-root``), ``$ATOM_DATA``, the dataset's system places (Debian's
``/usr/share/datasets/fashion-mnist``) and ``~/.cache/atom-plugin/data``, then downloaded by torchvision when
allowed (see :func:`load_dataset`).
"""
from ._base import DEFAULT_DSA_STRATEGY, DIGIT_DSA_STRATEGY, ImageTensorDataset, as_image_dataset
from ._registry import list_datasets, load_dataset, register_dataset
from .split import VAL_SEED, VAL_SIZE, stratified_split, validation_split
from .stats import DATASET_STATS, DatasetStats
from . import _cifar, _digits, _idx, _svhn, _tinyimagenet  # noqa: F401,E402  (register the built-in datasets)
from ._idx import find_idx_files

__all__ = [
    "DATASET_STATS",
    "DatasetStats",
    "DEFAULT_DSA_STRATEGY",
    "DIGIT_DSA_STRATEGY",
    "ImageTensorDataset",
    "as_image_dataset",
    "find_idx_files",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "stratified_split",
    "validation_split",
    "VAL_SEED",
    "VAL_SIZE",
]
