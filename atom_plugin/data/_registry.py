"""The dataset registry: :func:`register_dataset` is the single extension point, :func:`load_dataset` the entry."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import ConfigError, DatasetNotFoundError
from ..models import image_hw
from ._base import ImageTensorDataset

Loader = Callable[..., ImageTensorDataset]
_LOADERS: dict[str, Loader] = {}
_ALIASES: dict[str, str] = {}
SPLITS = ("train", "test")


def _key(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def register_dataset(name: str, *, aliases: tuple[str, ...] = ()):
    """Decorator: register ``fn(root, *, split, image_size, download) -> ImageTensorDataset`` under ``name``.

    The loader receives ``root`` (a :class:`pathlib.Path` that exists, or None), ``split`` (``"train"`` or
    ``"test"``), ``image_size`` (``(H, W)`` or None) and ``download`` (bool), already checked by
    :func:`load_dataset`. It should look for files with :func:`atom_plugin.data._common.find_or_download`
    so the search order and error messages stay uniform.

    Raises:
        ConfigError: ``name`` or an alias is already registered.
    """

    def deco(fn: Loader) -> Loader:
        keys = [_key(name)] + [_key(a) for a in aliases]
        for k in keys:
            if k in _LOADERS or k in _ALIASES:
                raise ConfigError(f"dataset {k!r} is already registered")
        _LOADERS[keys[0]] = fn
        for k in keys[1:]:
            _ALIASES[k] = keys[0]
        return fn

    return deco


def _ensure_builtins() -> None:
    from . import _cifar, _digits, _idx, _svhn, _tinyimagenet  # noqa: F401  (they register themselves)


def list_datasets() -> list[str]:
    """Canonical names accepted by :func:`load_dataset` (aliases left out), sorted."""
    _ensure_builtins()
    return sorted(_LOADERS)


def load_dataset(name, root=None, *, split: str = "train", image_size=None,
                 download: bool = True) -> ImageTensorDataset:
    """Load a dataset split into memory as a normalised :class:`ImageTensorDataset`.

    Args:
        name: ``fashion-mnist`` (aliases ``fmnist``, ``fashionmnist``), ``mnist``, ``cifar10``, ``cifar100``,
            ``svhn``, ``tinyimagenet``, ``digits`` or any registered name (case-insensitive); otherwise an
            existing directory, read as an ImageFolder (one sub-folder per class; ``<dir>/train`` and
            ``<dir>/test`` are used as the splits when present). Registered names win over directories of the
            same name: write ``./cifar10`` for a folder.
        root: directory searched first for the dataset's files (``--data-root``); then ``$ATOM_DATA``, the
            dataset's system places (Debian's ``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST) and
            ``~/.cache/atom-plugin/data``. Ignored by ``digits`` (bundled with scikit-learn) and ImageFolders.
        split: ``"train"`` or ``"test"`` (Tiny ImageNet's ``test`` is its official validation set).
        image_size: int or ``(H, W)``: resize every image (bilinear); None keeps the native size.
        download: when nothing is found, let torchvision download the dataset (fashion-mnist, mnist, cifar10,
            cifar100, svhn) into ``root``, else ``$ATOM_DATA``, else ``~/.cache/atom-plugin/data``.

    Returns:
        An :class:`ImageTensorDataset`: images ``(N, C, H, W)`` float32 normalised as ``(x/255 - mean)/std``
        with the dataset's statistics, in the source order; labels ``(N,)`` int64; ``name`` the canonical
        dataset name (or the folder path); ``dsa_strategy`` the digit strategy for mnist, svhn and digits.

    Raises:
        ConfigError: unknown name that is no directory, bad ``split`` or ``image_size``, a missing optional
            dependency (scikit-learn for digits, scipy for svhn).
        DatasetNotFoundError: ``root`` does not exist, or the files are nowhere (message lists every place).
        DataError: truncated or malformed files, mixed image sizes or channel counts in an ImageFolder.
    """
    _ensure_builtins()
    if split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    size = None if image_size is None else image_hw(image_size)
    if root is not None:
        root = Path(os.fspath(root)).expanduser()
        if not root.is_dir():
            what = "is not a directory" if root.exists() else "does not exist"
            raise DatasetNotFoundError(f"data root {root} {what}; pass an existing directory as `root` "
                                       f"(or leave it out to search $ATOM_DATA and the default places)")
    key = _key(os.fspath(name))
    key = _ALIASES.get(key, key)
    if key in _LOADERS:
        return _LOADERS[key](root, split=split, image_size=size, download=bool(download))
    folder = Path(os.fspath(name)).expanduser()
    if folder.is_dir():
        from ._imagefolder import load_image_folder
        return load_image_folder(folder, split=split, image_size=size)
    raise ConfigError(f"unknown dataset {str(name)!r}; choose one of: {', '.join(list_datasets())} "
                      "or give an ImageFolder directory")
