"""The one in-memory data contract of the core: normalised image tensors with labels and class names."""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch.utils.data import Dataset

from ..errors import DataError

#: The DSA ops of the DC/DSA/DM code, for every dataset but digits.
DEFAULT_DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"
#: Digit datasets must not be mirrored (a flipped 2 is not a 2): DSA drops flip for them.
DIGIT_DSA_STRATEGY = "color_crop_cutout_scale_rotate"


class ImageTensorDataset(Dataset):
    """A labelled image set held as tensors, already normalised; the form every core function consumes.

    Args:
        images: ``(N, C, H, W)`` float32, normalised with ``mean``/``std`` (and whitened when ``zca`` is set).
        labels: ``(N,)`` int64 class indices into ``classes``.
        classes: class names; ``len(classes)`` is the number of classes of the *source* dataset (a subset of
            classes keeps the original indices and names).
        mean: per-channel normalisation means, in [0, 1] pixel units.
        std: per-channel normalisation standard deviations, in [0, 1] pixel units.
        name: dataset name (``"fashion-mnist"``, ``"digits"``, a folder path, ...).
        dsa_strategy: the DSA strategy suited to this data (digit sets drop ``flip``).
        zca: a fitted :class:`atom_plugin.zca.ZCA` when the images are ZCA-whitened, else None.

    ``dataset[i]`` returns ``(image (C, H, W) float32, label int)``.

    The tensors are kept in host memory: images and labels given on another device (e.g. CUDA) are copied to
    the CPU here. The condensation loop decides what goes to the device (it pins, indexes and streams the real
    pool from host memory when it does not fit; :func:`atom_plugin.condense`).

    Raises:
        DataError: wrong ranks/dtypes, mismatched lengths, labels out of range, NaN or Inf pixels.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        name: str = "custom",
        dsa_strategy: str = DEFAULT_DSA_STRATEGY,
        zca=None,
        check_finite: bool = True,
    ):
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise DataError(f"{name}: images must be a (N, C, H, W) tensor, got shape {tuple(getattr(images, 'shape', ()))}")
        images, labels = images.cpu(), torch.as_tensor(labels).cpu()  # the host-memory contract (no copy if there)
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(f"{name}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}; need one label per image")
        if images.dtype != torch.float32:
            images = images.float()
        labels = labels.long()
        classes = [str(c) for c in classes]
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise DataError(
                f"{name}: {images.shape[1]} channel(s) but mean/std of length {len(mean)}/{len(std)}; give one value per channel"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise DataError(f"{name}: labels must lie in [0, {len(classes) - 1}] for {len(classes)} classes, "
                            f"got [{int(labels.min())}, {int(labels.max())}]")
        if check_finite and images.numel() and not bool(torch.isfinite(images).all()):
            bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
            raise DataError(f"{name}: {bad} image(s) contain NaN or Inf values; clean or drop them before condensing")
        self.images = images
        self.labels = labels
        self.classes = classes
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.name = name
        self.dsa_strategy = dsa_strategy
        self.zca = zca

    # -- torch Dataset -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])

    # -- facts ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes of the source dataset (``len(classes)``), present or not."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def class_counts(self) -> torch.Tensor:
        """``(num_classes,)`` int64: images per class (0 for absent classes)."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def present_classes(self) -> list[int]:
        """Sorted class indices with at least one image."""
        return torch.nonzero(self.class_counts() > 0).flatten().tolist()

    def fingerprint(self) -> str:
        """SHA-256 (hex, first 16 chars) of images, labels and classes: identifies the exact source data."""
        h = hashlib.sha256()
        h.update(self.images.detach().cpu().contiguous().numpy().tobytes())
        h.update(self.labels.cpu().numpy().tobytes())
        h.update("\0".join(self.classes).encode())
        return h.hexdigest()[:16]

    # -- derived sets --------------------------------------------------------------------------------------
    def _like(self, images: torch.Tensor, labels: torch.Tensor, **overrides) -> "ImageTensorDataset":
        kw = dict(name=self.name, dsa_strategy=self.dsa_strategy, zca=self.zca, check_finite=False)
        kw.update(overrides)
        return ImageTensorDataset(images, labels, self.classes, self.mean, self.std, **kw)

    def select(self, indices: torch.Tensor | Sequence[int]) -> "ImageTensorDataset":
        """A new set with the images at ``indices`` (same classes, statistics and metadata)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self._like(self.images[idx], self.labels[idx])

    def subset_classes(self, classes: Sequence[int]) -> "ImageTensorDataset":
        """Only the images of the given class indices (labels keep their original values)."""
        keep = torch.isin(self.labels, torch.as_tensor(list(classes), dtype=torch.long))
        return self.select(torch.nonzero(keep).flatten())

    def denormalize(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """Images back in [0, 1] pixel units (ZCA inverted first when set); ``(N, C, H, W)`` float32, clamped."""
        x = self.images if images is None else images
        x = x.detach().cpu().float()
        if self.zca is not None:
            x = self.zca.inverse(x)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        return (x * std + mean).clamp_(0.0, 1.0)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (f"{type(self).__name__}(name={self.name!r}, n={len(self)}, shape=({c}, {h}, {w}), "
                f"classes={self.num_classes})")


def as_image_dataset(
    data,
    *,
    num_classes: int | None = None,
    classes: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    name: str = "custom",
    batch_size: int = 1024,
) -> ImageTensorDataset:
    """Materialise any map-style dataset of ``(image, label, ...)`` items as an :class:`ImageTensorDataset`.

    An ``ImageTensorDataset`` is returned unchanged. Other datasets are read once through a DataLoader; their
    images must already be tensors in the space you want to condense in (normalised), ``(C, H, W)``.
    ``mean``/``std`` only record that normalisation (default 0/1, i.e. unknown).

    Raises:
        DataError: empty dataset, items that are not tensors, or mixed image sizes/channel counts.
    """
    if isinstance(data, ImageTensorDataset):
        return data
    if len(data) == 0:
        raise DataError(f"{name}: the dataset is empty; nothing to condense")
    xs, ys = [], []
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=_collate_first_two)
    for x, y in loader:
        xs.append(x)
        ys.append(y)
    if len({tuple(x.shape[1:]) for x in xs}) > 1:
        raise DataError(f"{name}: images of several shapes {sorted({tuple(x.shape[1:]) for x in xs})[:3]}; "
                        "resize them to one size (e.g. with `image_size`)")
    images = torch.cat(xs)
    labels = torch.cat(ys).long()
    n_cls = num_classes if num_classes is not None else (len(classes) if classes else int(labels.max()) + 1)
    classes = list(classes) if classes is not None else [str(i) for i in range(n_cls)]
    c = images.shape[1]
    return ImageTensorDataset(images, labels, classes, mean or [0.0] * c, std or [1.0] * c, name=name)


def _collate_first_two(items):
    shapes = {tuple(it[0].shape) for it in items if isinstance(it[0], torch.Tensor)}
    if len(shapes) != 1 or not all(isinstance(it[0], torch.Tensor) for it in items):
        found = sorted(shapes)[:3]
        raise DataError(f"dataset items must be image tensors of one shape; found shapes {found}"
                        " (resize the images to one size, e.g. with `image_size`)")
    x = torch.stack([it[0] for it in items]).float()
    y = torch.tensor([int(it[1]) for it in items], dtype=torch.long)
    return x, y
