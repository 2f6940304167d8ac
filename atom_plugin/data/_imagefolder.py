"""Folders of image files: torchvision's ImageFolder layout (``<dir>/<class>/<image>``), plus the shared decoder.

An ImageFolder directory ``P`` is read as follows: when ``P/train`` or ``P/test`` exists, those are the splits
(each one sub-folder per class); otherwise ``P`` itself is the train split and there is no test split.
Mean/std are computed per channel from the train split (the test split is normalised with them).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError, DatasetNotFoundError, one_line
from ._base import DEFAULT_DSA_STRATEGY, ImageTensorDataset
from ._common import channel_stats, to_tensor_images

GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
PARALLEL_FROM = 2000  # decode with DataLoader workers from this many images on


def channel_mode(pil_mode: str) -> str:
    """``"L"`` for grey PIL modes, ``"RGB"`` for everything else (alpha is dropped)."""
    return "L" if pil_mode in GREY_MODES else "RGB"


class _Decoder(torch.utils.data.Dataset):
    """Decodes ``paths[i]`` to ``(H, W, C)`` uint8; failures come back as text so the main process raises."""

    def __init__(self, paths: Sequence[str], mode: str, size: tuple[int, int] | None):
        self.paths, self.mode, self.size = list(paths), mode, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as img:
                native_mode = channel_mode(img.mode)
                if img.mode not in ("L", "RGB"):
                    img = img.convert("L" if native_mode == "L" else "RGB")
                if native_mode != self.mode:
                    img = img.convert(self.mode)
                if self.size is not None and img.size != (self.size[1], self.size[0]):
                    img = img.resize((self.size[1], self.size[0]), Image.BILINEAR)
                arr = np.array(img, dtype=np.uint8)  # a writable copy
        except Exception as exc:  # PIL.UnidentifiedImageError, truncated files, permission errors
            return None, f"{self.paths[i]}: cannot read the image ({one_line(exc)[:200]})"
        return (arr[:, :, None] if arr.ndim == 2 else arr), None


def decode_images(paths: Sequence[str], mode: str, size: tuple[int, int] | None) -> torch.Tensor:
    """Decode image files to ``(N, C, H, W)`` uint8 in ``mode`` (``"L"`` or ``"RGB"``), resized to ``size``.

    With ``size=None`` every image must have the first one's size. Large lists are decoded with a few
    DataLoader workers.

    Raises:
        DataError: an unreadable image, or (``size=None``) images of several sizes; names the files.
    """
    if not paths:
        return torch.empty((0, 1 if mode == "L" else 3) + tuple(size or (0, 0)), dtype=torch.uint8)
    workers = min(4, os.cpu_count() or 1) if len(paths) >= PARALLEL_FROM else 0
    loader = torch.utils.data.DataLoader(_Decoder(paths, mode, size), batch_size=256, num_workers=workers,
                                         collate_fn=list)
    out, first, i = None, None, 0
    for batch in loader:
        for arr, err in batch:
            if err:
                raise DataError(err)
            if out is None:
                first = arr.shape
                out = torch.empty((len(paths), arr.shape[2], arr.shape[0], arr.shape[1]), dtype=torch.uint8)
            elif arr.shape != first:
                raise DataError(f"images of several sizes (e.g. {first[1]}x{first[0]} in {paths[0]} and "
                                f"{arr.shape[1]}x{arr.shape[0]} in {paths[i]}); pass `image_size` to resize them")
            out[i] = torch.from_numpy(arr).permute(2, 0, 1)
            i += 1
    return out


def _samples(directory: Path, class_to_idx: dict[str, int], allow_empty: bool) -> list[tuple[str, int]]:
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    try:
        return make_dataset(str(directory), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=allow_empty)
    except FileNotFoundError as exc:  # a class folder without image files
        raise DataError(f"ImageFolder {directory}: {one_line(exc)}") from None


def _classes(directory: Path) -> list[str]:
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"ImageFolder {directory} has no class sub-folders; put the images of each class in "
                        f"{directory}/<class name>/")
    return classes


def _scan(samples: list[tuple[str, int]], directory: Path):
    """Read image headers only: ``(sizes, modes, examples)``, Counters of ``(W, H)`` and ``"L"``/``"RGB"`` and
    a first file for each size and mode."""
    from PIL import Image

    sizes, modes, examples = Counter(), Counter(), {}
    for path, _ in samples:
        try:
            with Image.open(path) as img:
                wh, mode = img.size, channel_mode(img.mode)
        except Exception as exc:
            raise DataError(f"{path}: cannot read the image ({one_line(exc)[:200]})") from None
        sizes[wh] += 1
        modes[mode] += 1
        examples.setdefault(wh, path)
        examples.setdefault(mode, path)
    return sizes, modes, examples


def _require_uniform(name: str, sizes: Counter, modes: Counter, examples: dict) -> None:
    if len(sizes) > 1:
        (w1, h1), (w2, h2) = list(sizes)[:2]
        raise DataError(f"ImageFolder {name} holds images of several sizes (e.g. {w1}x{h1} in {examples[(w1, h1)]} "
                        f"and {w2}x{h2} in {examples[(w2, h2)]}); pass `image_size` to resize them to one size")
    if len(modes) > 1:
        raise DataError(f"ImageFolder {name} mixes grey and colour images (e.g. {examples['L']} and "
                        f"{examples['RGB']}); pass `image_size` to convert them all to the majority mode")


def _folder_split(folder: Path, split: str) -> Path:
    train, test = folder / "train", folder / "test"
    if train.is_dir() or test.is_dir():
        chosen = train if split == "train" else test
        if not chosen.is_dir():
            raise DatasetNotFoundError(f"ImageFolder {folder}: {chosen} does not exist; an ImageFolder with splits "
                                       f"needs {train} and {test}, each with one sub-folder per class")
        return chosen
    if split == "test":
        raise DatasetNotFoundError(f"ImageFolder {folder} has no test split: {test} does not exist; put the test "
                                   f"images in {test}/<class>/ (and the training images in {train}/<class>/), or "
                                   "split the train set (atom_plugin.data.stratified_split)")
    return folder


def load_image_folder(folder, *, split: str = "train", image_size: tuple[int, int] | None = None) -> ImageTensorDataset:
    """Read an ImageFolder directory as ``(N, C, H, W)`` float32 images (C = 1 or 3), ``(N,)`` int64 labels.

    Classes are the train split's sub-folder names, sorted (hidden ones skipped); images are in torchvision's
    order (by class, then file name). Without ``image_size`` all images must share one size and one channel
    count; with it they are resized (bilinear) and converted to the train split's majority mode (grey or RGB).
    Normalised with per-channel mean/std of the train split. Only ``folder`` is read (no search path).

    Raises:
        DatasetNotFoundError: ``split="test"`` and the folder has no ``test`` sub-folder (or ``train`` missing).
        DataError: no class folders or images, unreadable images, several sizes or channel counts without
            ``image_size``, test classes that the train split does not have.
    """
    folder = Path(folder)
    name = str(folder)
    train_dir = _folder_split(folder, "train")
    test_dir = _folder_split(folder, "test") if split == "test" else None
    classes = _classes(train_dir)
    class_to_idx = {c: i for i, c in enumerate(classes)}
    train_samples = _samples(train_dir, class_to_idx, allow_empty=False)
    sizes, modes, examples = _scan(train_samples, train_dir)
    if image_size is None:
        _require_uniform(name, sizes, modes, examples)
    mode = "RGB" if modes["RGB"] >= modes["L"] else "L"
    train_x = decode_images([p for p, _ in train_samples], mode, image_size)
    mean, std = channel_stats(train_x)
    if test_dir is None:
        x, samples = train_x, train_samples
    else:
        extra = sorted(set(_classes(test_dir)) - set(classes))
        if extra:
            raise DataError(f"ImageFolder {name}: test classes {extra[:5]} have no folder in {train_dir}; "
                            "both splits need the same class folders")
        samples = _samples(test_dir, class_to_idx, allow_empty=True)
        if image_size is None:
            test_sizes, test_modes, test_examples = _scan(samples, test_dir)
            # the test images must look like the train images: same single size and mode
            _require_uniform(name, sizes + test_sizes, modes + test_modes, {**test_examples, **examples})
        x = decode_images([p for p, _ in samples], mode, image_size or tuple(train_x.shape[2:]))
    labels = torch.tensor([c for _, c in samples], dtype=torch.long)
    images = to_tensor_images(x, mean, std)
    return ImageTensorDataset(images, labels, classes, mean, std, name=name, dsa_strategy=DEFAULT_DSA_STRATEGY)
