"""Atomic, pickle-free files: safetensors tensors + one JSON metadata entry with a format name and version."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CondensedFileError, OutputPathError

META_KEY = "atom_plugin"


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (a directory) if needed and check that we can write there. Raises OutputPathError."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=p, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        raise OutputPathError(f"cannot write to {str(p)!r} ({exc.strerror or exc}); choose another output directory") from exc
    return p


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    p = Path(path)
    ensure_writable_dir(p.parent if str(p.parent) else ".")
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic text write (UTF-8); see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict, *, kind: str,
                  version: int) -> None:
    """Save ``tensors`` (contiguous CPU copies) with ``meta`` as JSON in the safetensors header, atomically.

    Raises:
        OutputPathError: the directory cannot be created or written.
    """
    p = Path(path)
    ensure_writable_dir(p.parent if str(p.parent) else ".")
    header = dict(meta, format=kind, format_version=version)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(cpu, tmp, metadata={META_KEY: json.dumps(header)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        raise OutputPathError(f"cannot write {str(p)!r} ({exc.strerror or exc})") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_tensors(path: str | os.PathLike, *, kind: str, max_version: int) -> tuple[dict[str, torch.Tensor], dict]:
    """Load a file written by :func:`write_tensors`, checking its kind and version.

    Raises:
        CondensedFileError: missing, truncated/corrupt, not written by atom-plugin, another kind of file, or a
            format version newer than ``max_version``.
    """
    p = Path(path)
    if not p.is_file():
        raise CondensedFileError(f"no file at {str(p)!r}")
    try:
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CondensedFileError(
            f"{str(p)!r} is truncated or corrupt and cannot be read as a safetensors file ({str(exc).splitlines()[0][:120]})"
        ) from exc
    if raw is None:
        raise CondensedFileError(f"{str(p)!r} is a safetensors file but was not written by atom-plugin (no '{META_KEY}' metadata)")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CondensedFileError(f"{str(p)!r} has corrupt atom-plugin metadata ({exc.msg})") from exc
    if meta.get("format") != kind:
        raise CondensedFileError(f"{str(p)!r} holds {meta.get('format', 'unknown')!r} data, not {kind!r} data")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > max_version:
        raise CondensedFileError(
            f"{str(p)!r} has format version {version}; this atom-plugin reads versions up to {max_version}: upgrade atom-plugin"
        )
    return tensors, meta
