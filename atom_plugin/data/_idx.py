"""Fashion-MNIST and MNIST from idx files (plain or gzip-compressed), parsed in memory.

Under each searched directory ``D`` the four files ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each plain or ``.gz``; only the requested split's pair
is needed) are accepted directly in ``D``, in torchvision's ``D/FashionMNIST/raw/`` (``D/MNIST/raw/``) or in
``D/fashion-mnist/`` (``D/mnist/``). No MD5 is checked (Debian re-compresses the files); instead the idx magic
numbers, the sizes and the image/label counts are.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from math import prod
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError, check_choice
from ._base import ImageTensorDataset
from ._common import find_or_download, to_tensor_images
from ._registry import register_dataset
from .stats import DATASET_STATS

# Debian's package dataset-fashion-mnist installs the four .gz files here. Tests monkeypatch this.
FASHION_MNIST_SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)
MNIST_SYSTEM_DIRS: tuple[str, ...] = ()

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte idx file (plain or gzip) into a uint8 array of ``ndim`` dimensions.

    Raises:
        DataError: an unreadable file, a corrupt gzip stream, a wrong magic number (not an idx file of that
            rank) or a size that does not match the header (truncated or padded file); names the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip file ({exc}); re-download or reinstall it") from None
    head = 4 + 4 * ndim
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise DataError(f"{path}: not an idx{ndim}-ubyte file (magic bytes {raw[:4].hex() or 'missing'}, "
                        f"expected 0000080{ndim}); re-download or reinstall it")
    if len(raw) < head:
        raise DataError(f"{path}: truncated idx file ({len(raw)} bytes, header alone needs {head}); re-download it")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    expected = head + prod(dims)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "oversized"
        raise DataError(f"{path}: {problem} idx file ({len(raw)} bytes, the header {'x'.join(map(str, dims))} "
                        f"needs {expected}); re-download or reinstall it")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


# name -> (torchvision's class, i.e. its sub-folder CLASS/raw/; the other accepted sub-folder; system places'
# attribute, read at call time; the end of the "not found" message)
_SOURCES = {
    "fashion-mnist": ("FashionMNIST", "fashion-mnist", "FASHION_MNIST_SYSTEM_DIRS",
                      "get it with `apt-get install dataset-fashion-mnist` on Debian, or pass `root` (or set $ATOM_DATA) "
                      "holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                      "t10k-labels-idx1-ubyte.gz, or allow downloading (`download=True`)"),
    "mnist": ("MNIST", "mnist", "MNIST_SYSTEM_DIRS",
              "pass `root` (or set $ATOM_DATA) holding the four MNIST idx files (train-images-idx3-ubyte[.gz], ...), "
              "or allow downloading (`download=True`)"),
}


def _file(d: Path, stem: str) -> Path | None:
    for cand in (d / stem, d / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def find_idx_files(root=None, name: str = "fashion-mnist", *, splits: Sequence[str] = ("train", "test"),
                   download: bool = False) -> dict[str, Path]:
    """The idx files of Fashion-MNIST or MNIST, found where :func:`load_dataset` looks (the one search of both).

    Searched: ``root``, ``$ATOM_DATA``, the system places (:data:`FASHION_MNIST_SYSTEM_DIRS`), the download cache
    (``~/.cache/atom-plugin/data``); under each, the folder itself, torchvision's ``FashionMNIST/raw/``
    (``MNIST/raw/``) and ``fashion-mnist/`` (``mnist/``), in that order. The first folder holding every file of
    ``splits`` (each plain or ``.gz``, plain preferred) wins.

    Args:
        root: searched first (``--data-root``), or None.
        name: ``"fashion-mnist"`` or ``"mnist"``.
        splits: ``"train"`` and/or ``"test"``; two files each (images, labels).
        download: when nothing is found, let torchvision download the splits into ``root`` (else ``$ATOM_DATA``,
            else the download cache) and search there.

    Returns:
        ``{file stem: path}``, e.g. ``{"train-images-idx3-ubyte": Path(".../train-images-idx3-ubyte.gz"), ...}``,
        images before labels, splits in the given order.

    Raises:
        ConfigError: an unknown ``name`` or split. DatasetNotFoundError: no folder holds the files (one line naming
            every place searched and how to get them).
    """
    tv_class, plain_sub, system_attr, how_to_get = _SOURCES[check_choice(name, "name", tuple(_SOURCES))]
    stems = [stem for split in splits for stem in FILES[check_choice(split, "splits", tuple(FILES))]]
    subdirs = (f"{tv_class}/raw", plain_sub)

    def probe(d: Path):
        for sub in ("",) + subdirs:
            found = {stem: _file(d / sub, stem) for stem in stems}
            if all(found.values()):
                return found
        return None

    def downloader(target: Path):
        import torchvision.datasets as tvd
        for split in splits:
            getattr(tvd, tv_class)(str(target), train=(split == "train"), download=True)

    files = " and ".join(f"{stem}[.gz]" for stem in stems) if len(stems) == 2 else \
        f"{stems[0]}[.gz] and the {len(stems) - 1} other idx files"
    return find_or_download(name, root, probe=probe, system_dirs=globals()[system_attr], download=download,
                            downloader=downloader, how_to_get=how_to_get,
                            looked_for=f"{files} (directly, in {subdirs[0]}/ or in {subdirs[1]}/)")


def _load(name, root, split, image_size, download, *, classes):
    images_path, labels_path = find_idx_files(root, name, splits=(split,), download=download).values()
    stats = DATASET_STATS[name]
    x = read_idx(images_path, 3)
    y = read_idx(labels_path, 1)
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{images_path} holds {x.shape[0]} images but {labels_path} {y.shape[0]} labels; "
                        "the two files must come from the same split")
    if y.size and int(y.max()) >= len(classes):
        raise DataError(f"{labels_path}: label {int(y.max())} out of range for {len(classes)} classes")
    images = to_tensor_images(torch.from_numpy(x.copy()).unsqueeze(1), stats.mean, stats.std, image_size)
    labels = torch.from_numpy(y.astype(np.int64))
    return ImageTensorDataset(images, labels, classes, stats.mean, stats.std, name=name, dsa_strategy=stats.dsa_strategy)


@register_dataset("fashion-mnist", aliases=("fmnist", "fashionmnist"))
def load_fashion_mnist(root=None, *, split="train", image_size=None, download=True) -> ImageTensorDataset:
    """Fashion-MNIST: ``(N, 1, 28, 28)`` float32 (60,000 train / 10,000 test), mean 0.2861, std 0.3530.

    Searched: ``root``, ``$ATOM_DATA``, :data:`FASHION_MNIST_SYSTEM_DIRS`, ``~/.cache/atom-plugin/data``
    (see the module doc for the accepted layouts); then a torchvision download when ``download``.

    Raises:
        DatasetNotFoundError: no directory holds the split's two files. DataError: malformed files.
    """
    return _load("fashion-mnist", root, split, image_size, download, classes=FASHION_MNIST_CLASSES)


@register_dataset("mnist")
def load_mnist(root=None, *, split="train", image_size=None, download=True) -> ImageTensorDataset:
    """MNIST: ``(N, 1, 28, 28)`` float32 (60,000 train / 10,000 test), mean 0.1307, std 0.3081, classes "0".."9".

    Searched like Fashion-MNIST (sub-folders ``MNIST/raw/`` and ``mnist/``; system places
    :data:`MNIST_SYSTEM_DIRS`). Raises as :func:`load_fashion_mnist`.
    """
    return _load("mnist", root, split, image_size, download, classes=tuple(str(i) for i in range(10)))
