"""``CondensedDataset``: a condensed (or selected) image set with everything needed to use it again."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .data._base import ImageTensorDataset
from .errors import CondensedFileError, ConfigError
from ._safeio import read_tensors, write_tensors

FORMAT = "atom-plugin/condensed"
FORMAT_VERSION = 1


class CondensedDataset(ImageTensorDataset):
    """A condensed set: a torch ``Dataset`` of ``(image (C, H, W) float32, label int)`` plus its provenance.

    Attributes (beyond :class:`~atom_plugin.data.ImageTensorDataset`'s images (N, C, H, W) float32 in
    normalised space, labels (N,) int64, classes, mean, std, zca):
        method: how it was made: ``"atom"``, ``"datadam"``, ``"dm"`` (condensed) or ``"random"``, ``"herding"``.
        config: the resolved :class:`~atom_plugin.ATOMConfig` as a dict (None for selections).
        provenance: dataset name, source fingerprint, seed, iterations, library versions, device, date, ...

    Files: :meth:`save` writes one ``.safetensors`` file (tensors + JSON metadata with a format version; no
    pickle), atomically; :meth:`load` reads it back exactly.
    """

    def __init__(self, images, labels, classes, mean, std, *, method: str = "atom", config: dict | None = None,
                 provenance: dict | None = None, **kwargs):
        super().__init__(images, labels, classes, mean, std, **kwargs)
        self.method = method
        self.config = config
        self.provenance = dict(provenance or {})

    # -- facts ---------------------------------------------------------------------------------------------
    def images_per_class(self) -> dict[int, int]:
        """``{class index: number of images}`` for the classes present."""
        counts = self.class_counts()
        return {int(k): int(counts[k]) for k in self.present_classes()}

    @property
    def ipc(self) -> int | None:
        """Images per class when every present class has the same number, else None."""
        vals = set(self.images_per_class().values())
        return vals.pop() if len(vals) == 1 else None

    def _like(self, images, labels, **overrides):
        kw = dict(name=self.name, dsa_strategy=self.dsa_strategy, zca=self.zca, check_finite=False,
                  method=self.method, config=self.config, provenance=self.provenance)
        kw.update(overrides)
        return CondensedDataset(images, labels, self.classes, self.mean, self.std, **kw)

    def subset(self, classes: Sequence[int]) -> "CondensedDataset":
        """Only the given classes (labels keep their original indices)."""
        return self.subset_classes(classes)  # type: ignore[return-value]

    # -- files ---------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``path`` (``.safetensors`` appended when missing) atomically; returns the path written.

        Raises:
            OutputPathError: the location is not writable.
        """
        p = Path(path)
        if p.suffix != ".safetensors":
            p = p.with_name(p.name + ".safetensors")
        tensors = {"images": self.images, "labels": self.labels}
        if self.zca is not None:
            tensors.update(self.zca.state_dict())
        meta: dict[str, Any] = dict(
            name=self.name, classes=self.classes, mean=list(self.mean), std=list(self.std),
            dsa_strategy=self.dsa_strategy, method=self.method, config=self.config, provenance=self.provenance,
            zca_shape=list(self.image_shape) if self.zca is not None else None,
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
            return cls(images, labels, meta["classes"], meta["mean"], meta["std"], name=meta["name"],
                       dsa_strategy=meta["dsa_strategy"], method=meta["method"], config=meta.get("config"),
                       provenance=meta.get("provenance"), zca=zca)
        except (KeyError, TypeError, ValueError) as exc:
            raise CondensedFileError(f"{str(p)!r} has inconsistent contents ({exc}); it cannot be used") from exc

    def to_png_grid(self, path: str | os.PathLike, *, max_per_class: int | None = None, scale: int = 2) -> Path:
        """Write a PNG grid: one row per class (sorted), up to ``max_per_class`` images each, denormalised
        (ZCA inverted) to [0, 1]; ``scale`` enlarges each pixel (nearest neighbour). Returns the path."""
        from torchvision.utils import save_image

        from ._safeio import ensure_writable_dir

        p = Path(path)
        ensure_writable_dir(p.parent if str(p.parent) else ".")
        classes = self.present_classes()
        per = max(self.images_per_class().values())
        per = min(per, max_per_class) if max_per_class else per
        x = self.denormalize()
        c, h, w = self.image_shape
        tiles = torch.ones(len(classes) * per, c, h, w)
        for row, k in enumerate(classes):
            idx = torch.nonzero(self.labels == k).flatten()[:per]
            tiles[row * per: row * per + len(idx)] = x[idx]
        if scale > 1:
            tiles = torch.nn.functional.interpolate(tiles, scale_factor=scale, mode="nearest")
        save_image(tiles, str(p), nrow=per, padding=2, pad_value=1.0)
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
    images = torch.cat([s.images for s in sets])
    labels = torch.cat([s.labels for s in sets])
    order = torch.argsort(labels, stable=True)
    prov = dict(first.provenance, merged_from=[{"method": s.method, "classes": s.present_classes()} for s in sets])
    return first._like(images[order], labels[order], provenance=prov)
