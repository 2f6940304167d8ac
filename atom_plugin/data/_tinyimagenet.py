"""Tiny ImageNet (200 classes, 64x64 RGB) from the standard ``tiny-imagenet-200/`` folder.

Layout: ``wnids.txt``, optional ``words.txt`` (``wnid<TAB>readable name``), ``train/<wnid>/images/*.JPEG`` and
``val/images/*.JPEG`` with ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>bbox...``). Accepted as
``D/tiny-imagenet-200/`` or as ``D`` itself, for each searched directory ``D``. Split ``"test"`` is the
official validation set (the official test set has no labels).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from ._base import DEFAULT_DSA_STRATEGY, ImageTensorDataset
from ._common import find_or_download, to_tensor_images
from ._imagefolder import decode_images
from ._registry import register_dataset
from .stats import DATASET_STATS

TINY_MEAN, TINY_STD = DATASET_STATS["tinyimagenet"].mean, DATASET_STATS["tinyimagenet"].std
FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _read_lines(path: Path) -> list[list[str]]:
    try:
        return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it ({exc})") from None


def _class_names(d: Path, wnids: list[str]) -> list[str]:
    """Readable names from ``words.txt`` (first synonym; the wnid is appended where names collide)."""
    words = d / "words.txt"
    if not words.is_file():
        return list(wnids)
    table = {row[0].strip(): row[1].split(",")[0].strip() for row in _read_lines(words) if len(row) >= 2}
    names = [table.get(w) or w for w in wnids]
    return [f"{n} ({w})" if names.count(n) > 1 else n for n, w in zip(names, wnids)]


@register_dataset("tinyimagenet", aliases=("tiny-imagenet", "tiny-imagenet-200"))
def load_tinyimagenet(root=None, *, split="train", image_size=None, download=True) -> ImageTensorDataset:
    """Tiny ImageNet: ``(N, 3, 64, 64)`` float32 (100,000 train / 10,000 val as ``"test"``), labels int64.

    Classes are the wnids sorted (as torchvision's ImageFolder orders them), named from ``words.txt`` when it
    exists. Train images come class by class, file names sorted; val images in ``val_annotations.txt`` order.
    Grey JPEGs are converted to RGB. Searched: ``root``, ``$ATOM_DATA``, ``~/.cache/atom-plugin/data``; it is
    never downloaded (torchvision has no Tiny ImageNet).

    Raises:
        DatasetNotFoundError: no ``wnids.txt`` found. DataError: missing/unreadable images or annotations,
            unknown wnids, images that are not all one size (without ``image_size``).
    """
    def probe(d: Path):
        for cand in (d / FOLDER, d):
            if (cand / "wnids.txt").is_file():
                return cand
        return None

    d = find_or_download("tinyimagenet", root, probe=probe, download=download,
                         looked_for=f"{FOLDER}/wnids.txt (or wnids.txt directly)",
                         how_to_get=f"download {URL}, unzip it and pass `root` (or set $ATOM_DATA) "
                                    f"to the folder containing {FOLDER}/")
    wnids = sorted({row[0].strip() for row in _read_lines(d / "wnids.txt")})
    index = {w: i for i, w in enumerate(wnids)}
    paths, labels = [], []
    if split == "train":
        for w in wnids:
            files = sorted((d / "train" / w / "images").glob("*.[jJ][pP][eE][gG]"))
            if not files:
                raise DataError(f"{d / 'train' / w / 'images'} holds no JPEG images; the folder is incomplete")
            paths += [str(f) for f in files]
            labels += [index[w]] * len(files)
    else:
        ann = d / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DataError(f"{ann} is missing; the validation split needs it to label val/images/*.JPEG")
        for row in _read_lines(ann):
            if len(row) < 2 or row[1].strip() not in index:
                raise DataError(f"{ann}: line {row!r} does not name a file and a wnid from wnids.txt")
            paths.append(str(d / "val" / "images" / row[0].strip()))
            labels.append(index[row[1].strip()])
    x = decode_images(paths, "RGB", image_size)
    images = to_tensor_images(x, TINY_MEAN, TINY_STD)
    return ImageTensorDataset(images, torch.tensor(labels, dtype=torch.long), _class_names(d, wnids),
                              TINY_MEAN, TINY_STD, name="tinyimagenet", dsa_strategy=DEFAULT_DSA_STRATEGY)
