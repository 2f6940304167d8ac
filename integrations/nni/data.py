"""Getting a proxy (and the real validation split) into a trial, wherever the trial runs; no NNI needed.

A trial must be self-contained: NNI's remote and cluster training services copy the trial code directory to
another machine, or serialise the evaluator's arguments, so a trial must never name an absolute local path.
A *dataset reference* is therefore one of:

* a path RELATIVE to the trial code directory (the working directory of an NNI trial), e.g.
  ``"proxy.safetensors"`` -- the file travels with the trial code;
* the file's bytes, base64-encoded with the prefix ``"base64:"`` (:func:`encode_dataset`) -- it travels inside the
  trial parameters / the serialised evaluator (fine for proxies; a 5,000-image validation split is ~21 MB);
* ``bytes`` of a ``.safetensors`` file;
* an in-memory :class:`~atom_plugin.data.ImageTensorDataset` / :class:`~atom_plugin.CondensedDataset` (only for
  in-process execution, e.g. NNI's sequential engine).

Files are the core's pickle-free ``.safetensors`` format (:meth:`atom_plugin.CondensedDataset.save`); a real
split is stored the same way with ``method="real-split"`` (:func:`save_split`).
"""
from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

from atom_plugin import CondensedDataset
from atom_plugin.data import ImageTensorDataset
from atom_plugin.errors import ConfigError
from atom_plugin.models import image_hw

from .errors import ProxyMismatchError

#: A dataset reference: a path, ``"base64:..."`` text, the file's bytes, or a dataset.
DatasetRef = Union[str, bytes, os.PathLike, ImageTensorDataset]
PREFIX = "base64:"  #: the prefix of a dataset reference that carries the file itself
_CACHE: dict[str, ImageTensorDataset] = {}


def as_condensed(data: ImageTensorDataset, *, method: str = "real-split", provenance: dict | None = None) -> CondensedDataset:
    """``data`` as a :class:`CondensedDataset` (unchanged when it already is one), so it can be saved."""
    if isinstance(data, CondensedDataset):
        return data
    return CondensedDataset.from_dataset(data, method=method,
                                         provenance=dict(provenance or {}, dataset=data.name, size=len(data)))


def save_split(data: ImageTensorDataset, path: str | os.PathLike, **provenance) -> Path:
    """Write a real split (e.g. the validation split) as a ``.safetensors`` file; returns the path written."""
    return as_condensed(data, provenance=provenance).save(path)


def dataset_bytes(data: ImageTensorDataset) -> bytes:
    """The ``.safetensors`` file of ``data`` as bytes."""
    with tempfile.TemporaryDirectory(prefix="atom-nni-") as tmp:
        p = as_condensed(data).save(Path(tmp) / "set.safetensors")
        return p.read_bytes()


def encode_dataset(data: ImageTensorDataset) -> str:
    """``"base64:" + base64(safetensors bytes)``: a reference that travels inside trial parameters."""
    return PREFIX + base64.b64encode(dataset_bytes(data)).decode("ascii")


def decode_dataset(blob: str | bytes) -> CondensedDataset:
    """Inverse of :func:`encode_dataset` (also accepts raw ``.safetensors`` bytes).

    Raises:
        CondensedFileError: the bytes are not a valid atom-plugin file. ConfigError: bad base64.
    """
    if isinstance(blob, str):
        if not blob.startswith(PREFIX):
            raise ConfigError(f"an encoded dataset starts with {PREFIX!r}")
        try:
            blob = base64.b64decode(blob[len(PREFIX):], validate=True)
        except ValueError as exc:
            raise ConfigError(f"the encoded dataset is not valid base64 ({exc})") from exc
    with tempfile.TemporaryDirectory(prefix="atom-nni-") as tmp:
        p = Path(tmp) / "set.safetensors"
        p.write_bytes(blob)
        return CondensedDataset.load(p)


def resolve_dataset(ref: DatasetRef, *, what: str = "proxy", base_dir: str | os.PathLike | None = None,
                    allow_absolute: bool = False) -> ImageTensorDataset:
    """Load a dataset reference (see the module doc). Decoded files are cached per process.

    Args:
        ref: the reference: a dataset, ``"base64:..."``, bytes, or a path to a ``.safetensors`` file.
        what: its role, for messages (``"proxy"``, ``"validation split"``).
        base_dir: the directory relative paths are resolved against (default: the working directory, which is
            the trial code directory in an NNI trial).
        allow_absolute: accept an absolute path (only sensible for local debugging; a trial that names one is not
            portable to NNI's remote/cluster training services).

    Raises:
        ConfigError: an absolute path (unless allowed) or an unsupported reference type.
        CondensedFileError: a missing, corrupt or foreign file.
    """
    if isinstance(ref, ImageTensorDataset):
        return ref
    if isinstance(ref, (bytes, bytearray)):
        key = "bytes:" + hashlib.sha256(ref).hexdigest()
        if key not in _CACHE:
            _CACHE[key] = decode_dataset(bytes(ref))
        return _CACHE[key]
    if isinstance(ref, str) and ref.startswith(PREFIX):
        key = "b64:" + hashlib.sha256(ref.encode("ascii")).hexdigest()
        if key not in _CACHE:
            _CACHE[key] = decode_dataset(ref)
        return _CACHE[key]
    if not isinstance(ref, (str, os.PathLike)):
        raise ConfigError(f"the {what} must be a relative .safetensors path, a 'base64:' string, bytes or a dataset; "
                          f"got {type(ref).__name__}")
    p = Path(ref)
    if p.is_absolute() and not allow_absolute:
        raise ConfigError(f"the {what} path {str(p)!r} is absolute: trials must be self-contained -- put the file in "
                          "the trial code directory and give its relative path, or embed it with encode_dataset()")
    full = (Path(base_dir) if base_dir is not None else Path.cwd()) / p
    try:
        stamp = full.stat().st_mtime_ns
    except OSError:
        stamp = 0  # CondensedDataset.load gives the clear "missing file" error
    key = f"path:{full.resolve()}:{stamp}"
    if key not in _CACHE:
        _CACHE[key] = CondensedDataset.load(full)
    return _CACHE[key]


def check_compatible(proxy: ImageTensorDataset, reference: ImageTensorDataset, *, proxy_name: str = "proxy",
                     reference_name: str = "validation split") -> None:
    """Check that ``proxy`` was made from the same dataset as ``reference`` (the search's data).

    Raises:
        ProxyMismatchError: different image shapes, class lists or normalisation, naming both sides.
    """
    if proxy.image_shape != reference.image_shape:
        raise ProxyMismatchError(
            f"the {proxy_name}'s images are {proxy.image_shape} (C, H, W) but the {reference_name}'s are "
            f"{reference.image_shape}; condense the {proxy_name} from the search's dataset at the same image size")
    if list(proxy.classes) != list(reference.classes):
        if len(proxy.classes) != len(reference.classes):
            detail = f"{len(proxy.classes)} classes vs {len(reference.classes)}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(proxy.classes, reference.classes)) if a != b)
            detail = f"class {i} is {proxy.classes[i]!r} vs {reference.classes[i]!r}"
        raise ProxyMismatchError(f"the {proxy_name}'s classes differ from the {reference_name}'s ({detail}); "
                                 f"they must come from the same dataset")
    if not (np.allclose(proxy.mean, reference.mean, atol=1e-3) and np.allclose(proxy.std, reference.std, atol=1e-3)):
        raise ProxyMismatchError(f"the {proxy_name} is normalised with mean/std {proxy.mean}/{proxy.std} but the "
                                 f"{reference_name} with {reference.mean}/{reference.std}; load both the same way")
    if reference.zca is not None and proxy.zca is None:
        raise ProxyMismatchError(f"the {reference_name} is ZCA-whitened but the {proxy_name} is not")


def check_network_shape(proxy: ImageTensorDataset, *, channels: int, num_classes: int, image_size,
                        proxy_name: str = "proxy") -> None:
    """Check that networks built for ``(channels, num_classes, image_size)`` fit ``proxy``.

    Raises:
        ProxyMismatchError: naming the differing channels, image size or number of classes.
    """
    c, h, w = proxy.image_shape
    hw = image_hw(image_size)
    if (c, h, w) != (int(channels), *hw):
        raise ProxyMismatchError(f"the {proxy_name}'s images are {c}x{h}x{w} (C x H x W) but the search space is built "
                                 f"for {channels}x{hw[0]}x{hw[1]}; build the space from the search's dataset")
    if proxy.num_classes != int(num_classes):
        raise ProxyMismatchError(f"the {proxy_name} has {proxy.num_classes} classes but the search space's networks "
                                 f"have {num_classes} outputs; build the space from the search's dataset")


def prepare(proxy: DatasetRef, val: DatasetRef, *, base_dir=None, allow_absolute: bool = False
            ) -> tuple[ImageTensorDataset, ImageTensorDataset]:
    """Resolve and cross-check a proxy and a validation split; the split is brought into the proxy's space
    (ZCA applied when the proxy is whitened). Raises ProxyMismatchError / ConfigError / CondensedFileError."""
    from atom_plugin.evaluate import match_test_space

    p = resolve_dataset(proxy, what="proxy", base_dir=base_dir, allow_absolute=allow_absolute)
    v = resolve_dataset(val, what="validation split", base_dir=base_dir, allow_absolute=allow_absolute)
    check_compatible(p, v)
    if len(p) == 0 or len(v) == 0:
        raise ProxyMismatchError(f"empty {'proxy' if len(p) == 0 else 'validation split'}")
    return p, match_test_space(p, v)
