"""CIFAR-10 and CIFAR-100 from the standard python-pickle batches, read through torchvision.

Layout under a searched directory ``D``: ``D/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
or ``D/cifar-100-python/{train, test, meta}`` (all files of the set must be present, as torchvision requires).
torchvision's MD5 check is switched off (files made by users would fail it); shapes, counts and label ranges
are checked instead.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError, one_line
from ._base import DEFAULT_DSA_STRATEGY, ImageTensorDataset
from ._common import find_or_download, to_tensor_images
from ._registry import register_dataset
from .stats import DATASET_STATS

CIFAR10_MEAN, CIFAR10_STD = DATASET_STATS["cifar10"].mean, DATASET_STATS["cifar10"].std
CIFAR100_MEAN, CIFAR100_STD = DATASET_STATS["cifar100"].mean, DATASET_STATS["cifar100"].std


def _without_md5(cls):
    """A subclass of torchvision's ``cls`` with the same file lists but no MD5s (only existence is checked)."""
    return type(f"{cls.__name__}NoMD5", (cls,), {
        "train_list": [[f, None] for f, _ in cls.train_list],
        "test_list": [[f, None] for f, _ in cls.test_list],
        "meta": {**cls.meta, "md5": None},
    })


def _load(name, tv_name, root, split, image_size, download, num_classes, mean, std):
    import torchvision.datasets as tvd

    tv_cls = getattr(tvd, tv_name)
    folder = tv_cls.base_folder
    files = [f for f, _ in tv_cls.train_list + tv_cls.test_list] + [tv_cls.meta["filename"]]

    def probe(d: Path):
        return d if all((d / folder / f).is_file() for f in files) else None

    def downloader(target: Path):
        getattr(tvd, tv_name)(str(target), train=(split == "train"), download=True)

    url = tv_cls.url
    d = find_or_download(name, root, probe=probe, download=download, downloader=downloader,
                         looked_for=f"{folder}/",
                         how_to_get=f"download {url}, unpack it and pass `root` (or set $ATOM_DATA) "
                                    f"to the folder containing {folder}/, or allow downloading (`download=True`)")
    try:
        ds = _without_md5(tv_cls)(str(d), train=(split == "train"), download=False)
    except Exception as exc:  # unpickling errors, missing keys, wrong sizes
        raise DataError(f"{d / folder}: unreadable {name} batch files ({type(exc).__name__}: "
                        f"{one_line(exc)[:200]}); re-download and unpack {url}") from None
    x, y = ds.data, torch.as_tensor(ds.targets, dtype=torch.long)
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.shape[0] != y.shape[0] or x.dtype.name != "uint8":
        raise DataError(f"{d / folder}: {name} data of shape {x.shape} ({x.dtype}) with {y.shape[0]} labels; "
                        "expected N rows of 3072 uint8 pixels and one label each")
    if len(ds.classes) != num_classes or (y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes)):
        raise DataError(f"{d / folder}: expected {num_classes} classes, found {len(ds.classes)} class names and "
                        f"labels in [{int(y.min()) if y.numel() else 0}, {int(y.max()) if y.numel() else 0}]")
    images = to_tensor_images(torch.from_numpy(x).permute(0, 3, 1, 2), mean, std, image_size)
    return ImageTensorDataset(images, y, ds.classes, mean, std, name=name, dsa_strategy=DEFAULT_DSA_STRATEGY)


@register_dataset("cifar10", aliases=("cifar-10",))
def load_cifar10(root=None, *, split="train", image_size=None, download=True) -> ImageTensorDataset:
    """CIFAR-10: ``(N, 3, 32, 32)`` float32 (50,000 train / 10,000 test), class names from ``batches.meta``.

    Searched: ``root``, ``$ATOM_DATA``, ``~/.cache/atom-plugin/data`` (each for ``cifar-10-batches-py/``), then
    a torchvision download when ``download``.

    Raises:
        DatasetNotFoundError: no folder found. DataError: unreadable or malformed batch files.
    """
    return _load("cifar10", "CIFAR10", root, split, image_size, download, 10, CIFAR10_MEAN, CIFAR10_STD)


@register_dataset("cifar100", aliases=("cifar-100",))
def load_cifar100(root=None, *, split="train", image_size=None, download=True) -> ImageTensorDataset:
    """CIFAR-100 (fine labels): ``(N, 3, 32, 32)`` float32 (50,000 / 10,000), 100 names from ``meta``.

    Searched like :func:`load_cifar10`, for ``cifar-100-python/``. Raises as :func:`load_cifar10`.
    """
    return _load("cifar100", "CIFAR100", root, split, image_size, download, 100, CIFAR100_MEAN, CIFAR100_STD)
