"""``CondensedDataset``: a condensed (or selected) image set with everything needed to use it again."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .config import LEGACY_CONFIG
from .data._base import ImageTensorDataset
from .errors import CondensedFileError, ConfigError, DataError
from .multiformation import check_factor, decode
from ._safeio import read_tensors, write_tensors

#: The ``format`` entry of a condensed file's metadata.
FORMAT = "atom-plugin/condensed"
FORMAT_VERSION = 2  #: 2: stored images + multi-formation factor (a version-1 file loads as factor 1)


class CondensedDataset(ImageTensorDataset):
    """A condensed set: a torch ``Dataset`` of ``(image (C, H, W) float32, label int)`` plus its provenance.

    Args:
        images: the *stored* images ``(N, C, H, W)`` float32 (normalised space). With ``factor`` f > 1 each
            stored image holds f x f tiles (multi-formation, IDC, Kim et al. ICML 2022;
            :mod:`atom_plugin.multiformation`).
        labels: the stored images' ``(N,)`` int64 labels.
        classes: class names, as for ImageTensorDataset.
        mean: per-channel normalisation means, as for ImageTensorDataset.
        std: per-channel normalisation standard deviations, as for ImageTensorDataset.
        factor: the multi-formation factor (default 1: plain images). H and W must be divisible by it.
        method: see Attributes.
        config: see Attributes.
        provenance: see Attributes.
        **kwargs: ImageTensorDataset's keyword arguments (``name``, ``dsa_strategy``, ``zca``, ...).

    Attributes:
        images, labels: the decoded *training samples* ``(N * f², C, H, W)`` float32 and ``(N * f²,)`` int64 --
            what ``len()``, items, evaluation and the integrations see (identical to the stored ones at f = 1).
        stored_images, stored_labels: the stored ``(N, C, H, W)`` images and ``(N,)`` labels (the storage budget).
        factor: f. ipc: stored images per class; decoded_per_class: ipc * f² (both None when classes differ).
        method: ``"atom"``, ``"datadam"``, ``"dm"`` (condensed) or ``"random"``, ``"tiled-random"``, ``"herding"``.
        config: the resolved :class:`~atom_plugin.ATOMConfig` as a dict (None for selections).
        provenance: dataset name, source fingerprint, seed, iterations, library versions, device, date, ...

    Files: :meth:`save` writes one ``.safetensors`` file (stored images + JSON metadata with a format version and
    the factor; no pickle), atomically; :meth:`load` reads it back exactly (version-1 files as factor 1).

    Raises:
        ConfigError: factor < 1 or not dividing the image size. DataError: as ImageTensorDataset.
    """

    def __init__(self, images, labels, classes, mean, std, *, factor: int = 1, method: str = "atom",
                 config: dict | None = None, provenance: dict | None = None, **kwargs):
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            check_factor(factor, tuple(images.shape[2:]))
        stored = ImageTensorDataset(images, labels, classes, mean, std, **kwargs)  # validates the stored form
        if factor > 1:
            kwargs["check_finite"] = False
            super().__init__(decode(stored.images, factor), stored.labels.repeat_interleave(factor * factor),
                             classes, mean, std, **kwargs)
        else:
            super().__init__(stored.images, stored.labels, classes, mean, std, **kwargs)
        self.stored_images, self.stored_labels, self.factor = stored.images, stored.labels, int(factor)
        self.method = method
        self.config = config
        self.provenance = dict(provenance or {})

    @classmethod
    def from_dataset(cls, dataset: ImageTensorDataset, *, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None, name: str | None = None, method: str = "real",
                     provenance: dict | None = None) -> "CondensedDataset":
        """``dataset``'s images as a factor-1 :class:`CondensedDataset` (e.g. a selection, or a real split to
        save); classes, DSA strategy and ZCA are ``dataset``'s. The tensors are shared, not copied.

        Args:
            dataset: an :class:`ImageTensorDataset`: images ``(N, C, H, W)`` float32, labels ``(N,)`` int64 (a
                CondensedDataset gives its decoded training samples, with its method and config dropped).
            mean: per-channel normalisation means of the images (default ``dataset``'s), ``C`` values.
            std: per-channel normalisation standard deviations (default ``dataset``'s), ``C`` values.
            name: the set's name (default ``dataset.name``).
            method: what the set is (``"random"``, ``"herding"``, ``"real-split"``, ...).
            provenance: stored as given (copied); no config is recorded (``config`` is None).

        Raises:
            DataError: ``dataset`` is not an ImageTensorDataset (see
                :func:`atom_plugin.data.as_image_dataset`), or ``mean``/``std`` do not have one value per channel.
        """
        if not isinstance(dataset, ImageTensorDataset):
            raise DataError(f"`dataset` must be an ImageTensorDataset, got {type(dataset).__name__}; convert it "
                            "with atom_plugin.data.as_image_dataset")
        return cls(dataset.images, dataset.labels, dataset.classes, dataset.mean if mean is None else mean,
                   dataset.std if std is None else std, name=dataset.name if name is None else name,
                   dsa_strategy=dataset.dsa_strategy, zca=dataset.zca, method=method, config=None,
                   provenance=provenance, check_finite=False)

    # -- facts ---------------------------------------------------------------------------------------------
    def images_per_class(self) -> dict[int, int]:
        """``{class index: number of decoded training samples}`` for the classes present."""
        counts = self.class_counts()
        return {int(k): int(counts[k]) for k in self.present_classes()}

    def stored_per_class(self) -> dict[int, int]:
        """``{class index: number of stored images}`` for the classes present (the storage budget)."""
        counts = torch.bincount(self.stored_labels, minlength=self.num_classes)
        return {int(k): int(counts[k]) for k in self.present_classes()}

    @property
    def ipc(self) -> int | None:
        """Stored images per class when every present class has the same number, else None."""
        vals = set(self.stored_per_class().values())
        return vals.pop() if len(vals) == 1 else None

    @property
    def decoded_per_class(self) -> int | None:
        """Decoded training samples per class (``ipc * factor²``) when uniform, else None."""
        return None if self.ipc is None else self.ipc * self.factor ** 2

    def _like(self, images, labels, **overrides):
        """A set of the same source; ``images``/``labels`` are stored images (of ``factor``, default this set's)."""
        kw = dict(name=self.name, dsa_strategy=self.dsa_strategy, zca=self.zca, check_finite=False,
                  method=self.method, config=self.config, provenance=self.provenance, factor=self.factor)
        kw.update(overrides)
        return CondensedDataset(images, labels, self.classes, self.mean, self.std, **kw)

    def select(self, indices) -> "CondensedDataset":
        """The decoded training samples at ``indices``, as a factor-1 set (a selection of samples)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        config = dict(self.config, factor=1) if self.config and self.factor > 1 else self.config
        return self._like(self.images[idx], self.labels[idx], factor=1, config=config)

    def subset_classes(self, classes: Sequence[int]) -> "CondensedDataset":
        """Only the given classes (labels keep their original indices; the factor is kept)."""
        keep = torch.isin(self.stored_labels, torch.as_tensor(list(classes), dtype=torch.long))
        idx = torch.nonzero(keep).flatten()
        return self._like(self.stored_images[idx], self.stored_labels[idx])

    def subset(self, classes: Sequence[int]) -> "CondensedDataset":
        """Only the given classes (labels keep their original indices)."""
        return self.subset_classes(classes)

    # -- files ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (``.safetensors`` appended when missing) atomically; returns the path written.

        Raises:
            OutputPathError: the location is not writable.
        """
        p = Path(path)
        if p.suffix != ".safetensors":
            p = p.with_name(p.name + ".safetensors")
        tensors = {"images": self.stored_images, "labels": self.stored_labels}
        if self.zca is not None:
            tensors.update(self.zca.state_dict())
        meta: dict[str, Any] = dict(
            name=self.name, classes=self.classes, mean=list(self.mean), std=list(self.std),
            dsa_strategy=self.dsa_strategy, method=self.method, config=self.config, provenance=self.provenance,
            zca_shape=list(self.image_shape) if self.zca is not None else None, factor=self.factor,
        )
        write_tensors(p, tensors, meta, kind=FORMAT, version=FORMAT_VERSION)
        return p

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CondensedDataset":
        """Read a file written by :meth:`save`.

        Raises:
            CondensedFileError: missing, truncated, corrupt, foreign (not atom-plugin, or a checkpoint), a newer
                format version, or inconsistent contents.
        """
        p = Path(path)
        if not p.exists() and p.suffix != ".safetensors" and p.with_name(p.name + ".safetensors").exists():
            p = p.with_name(p.name + ".safetensors")
        if p.is_dir():
            hits = sorted(p.glob("*.safetensors"))
            hits = [h for h in hits if not h.name.startswith("checkpoint")]
            if len(hits) != 1:
                raise CondensedFileError(f"{str(p)!r} is a directory with {len(hits)} condensed files; name the file")
            p = hits[0]
        tensors, meta = read_tensors(p, kind=FORMAT, max_version=FORMAT_VERSION)
        try:
            images, labels = tensors["images"], tensors["labels"]
            zca = None
            if meta.get("zca_shape"):
                from .zca import ZCA

                zca = ZCA.from_state_dict(tensors, tuple(meta["zca_shape"]))
            config = meta.get("config")
            if config is not None and meta.get("format_version", 1) < 2:  # version 1: factor 1, random networks
                config = dict(LEGACY_CONFIG, **config)
            return cls(images, labels, meta["classes"], meta["mean"], meta["std"], name=meta["name"],
                       dsa_strategy=meta["dsa_strategy"], method=meta["method"], config=config,
                       provenance=meta.get("provenance"), zca=zca, factor=int(meta.get("factor", 1)))
        except (KeyError, TypeError, ValueError) as exc:
            raise CondensedFileError(f"{str(p)!r} has inconsistent contents ({exc}); it cannot be used") from exc

    def to_png_grid(self, path: str | os.PathLike, *, max_per_class: int | None = None, scale: int = 2,
                    decoded: bool = False) -> Path:
        """Write a PNG grid: one row per class (sorted) with the class name on its left, up to ``max_per_class``
        images each, denormalised (ZCA inverted) to [0, 1]; ``scale`` enlarges each pixel (nearest neighbour).

        Args:
            path: the PNG file to write (its folder is created).
            max_per_class: images shown per class (default: all).
            scale: the enlargement of each pixel (nearest neighbour).
            decoded: show the decoded training samples (f² per stored image) instead of the stored images.

        Returns the path written. Raises OutputPathError when the folder is not writable.
        """
        from PIL import Image, ImageDraw
        from torchvision.utils import make_grid

        from ._safeio import ensure_writable_dir

        p = Path(path)
        ensure_writable_dir(p.parent if str(p.parent) else ".")
        images, labels = (self.images, self.labels) if decoded else (self.stored_images, self.stored_labels)
        classes = self.present_classes()
        per = max(int((labels == k).sum()) for k in classes)
        per = min(per, max_per_class) if max_per_class else per
        x = self.denormalize(images)
        c, h, w = self.image_shape
        tiles = torch.ones(len(classes) * per, c, h, w)
        for row, k in enumerate(classes):
            idx = torch.nonzero(labels == k).flatten()[:per]
            tiles[row * per: row * per + len(idx)] = x[idx]
        if scale > 1:
            tiles = torch.nn.functional.interpolate(tiles, scale_factor=scale, mode="nearest")
        grid = make_grid(tiles, nrow=per, padding=2, pad_value=1.0)  # (3 or C, Hg, Wg) in [0, 1]
        body = Image.fromarray(grid.mul(255).add_(0.5).clamp_(0, 255).byte().permute(1, 2, 0).numpy()).convert("RGB")
        names = [self.classes[k] for k in classes]
        margin = 8 + 6 * max(len(n) for n in names)
        canvas = Image.new("RGB", (body.width + margin, body.height), "white")
        canvas.paste(body, (margin, 0))
        draw = ImageDraw.Draw(canvas)
        row_h = (body.height - 2) / len(classes)
        for row, name in enumerate(names):
            draw.text((4, 2 + row * row_h + row_h / 2 - 5), name, fill="black")
        canvas.save(str(p), format="PNG")
        return p


def merge_condensed(sets: Sequence[CondensedDataset]) -> CondensedDataset:
    """Concatenate condensed sets of disjoint classes of the same source (same classes list, image shape,
    normalisation and ZCA). The result's config/provenance are those of the first set, and
    ``provenance["merged_from"]`` lists each part's method and classes.

    Raises:
        ConfigError: no sets, different sources/shapes/normalisation, or a class present in two sets.
    """
    if not sets:
        raise ConfigError("merge_condensed needs at least one set")
    first = sets[0]
    seen: set[int] = set()
    for s in sets:
        if s.classes != first.classes or s.image_shape != first.image_shape or s.mean != first.mean or s.std != first.std:
            raise ConfigError("cannot merge condensed sets of different datasets, image shapes or normalisation")
        if (s.zca is None) != (first.zca is None):
            raise ConfigError("cannot merge a ZCA-whitened condensed set with a non-whitened one")
        overlap = seen & set(s.present_classes())
        if overlap:
            raise ConfigError(f"classes {sorted(overlap)} appear in more than one set; subset them before merging")
        seen |= set(s.present_classes())
    if len({s.factor for s in sets}) > 1:
        raise ConfigError(f"cannot merge condensed sets of different factors {sorted({s.factor for s in sets})}; "
                          "recondense them to one factor first")
    images = torch.cat([s.stored_images for s in sets])
    labels = torch.cat([s.stored_labels for s in sets])
    order = torch.argsort(labels, stable=True)
    prov = dict(first.provenance, merged_from=[{"method": s.method, "classes": s.present_classes()} for s in sets])
    return first._like(images[order], labels[order], provenance=prov)
