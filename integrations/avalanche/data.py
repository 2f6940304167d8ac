"""Where Avalanche's ``SplitFMNIST`` finds Fashion-MNIST without downloading (needs no Avalanche).

Avalanche 0.6 reads Fashion-MNIST through torchvision's ``FashionMNIST(root, download=True)``, which skips the
download when ``root/FashionMNIST/raw/`` holds the four *uncompressed* idx files. :func:`fashion_mnist_root`
returns such a ``root``: a folder that already has that layout, or a cache folder into which it decompresses (or
copies) the files that the core's search (:func:`atom_plugin.data.find_idx_files`) found elsewhere, e.g. Debian's
``dataset-fashion-mnist`` package, which installs the four ``.gz`` files in ``/usr/share/datasets/fashion-mnist``.
Only the ``FashionMNIST/raw`` layout and its decompression cache are Avalanche's; the search is the core's.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from pathlib import Path

from atom_plugin.data import find_idx_files
from atom_plugin.errors import DataError, DatasetNotFoundError, OutputPathError


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/atom-plugin/avalanche`` (default ``~/.cache/atom-plugin/avalanche``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "atom-plugin" / "avalanche"


def fashion_mnist_root(data_root: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder ``ROOT`` with ``ROOT/FashionMNIST/raw/`` holding the four uncompressed idx files, for
    ``SplitFMNIST(..., dataset_root=ROOT)``.

    The files are found by the core's search, :func:`atom_plugin.data.find_idx_files` (``data_root``,
    ``$ATOM_DATA``, Debian's folder, the core's download cache; each as is, ``FashionMNIST/raw`` or
    ``fashion-mnist``), never downloaded. When they are uncompressed in a ``FashionMNIST/raw`` folder, its
    ``ROOT`` is returned as is; otherwise they are decompressed (``.gz``) or copied into
    ``cache_dir/<source>/FashionMNIST/raw/`` (default :func:`default_cache_dir`), atomically, once per source:
    ``<source>`` is a fingerprint of the files found (path, size, modification time), so another source -- say
    a small test set -- never shadows the real one in a shared cache.

    Raises:
        DatasetNotFoundError: no folder holds the four files; the message lists every place searched.
        DataError: a corrupt ``.gz`` file.
        OutputPathError: the cache folder cannot be written.
    """
    try:
        found = find_idx_files(data_root, "fashion-mnist")
    except DatasetNotFoundError as exc:  # the core's message, said in this function's parameters
        msg = str(exc).replace("`root`", "`data_root`").replace("; downloading is off (download=False)", "")
        raise DatasetNotFoundError(msg.replace(", or allow downloading (`download=True`)", "")) from None
    folder = next(iter(found.values())).parent
    if folder.parts[-2:] == ("FashionMNIST", "raw") and all(p.suffix != ".gz" for p in found.values()):
        return folder.parent.parent
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _fill_cache(found, cache / _fingerprint(found))


def _fingerprint(found: dict[str, Path]) -> str:
    """12 hex digits naming the source files (resolved path, size, modification time in ns)."""
    h = hashlib.sha1()
    for name in sorted(found):
        st = found[name].stat()
        h.update(f"{found[name].resolve()}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:12]


def _fill_cache(found: dict[str, Path], cache: Path) -> Path:
    raw = cache / "FashionMNIST" / "raw"
    try:
        raw.mkdir(parents=True, exist_ok=True)
        for name, src in found.items():
            dst = raw / name
            if dst.is_file() and dst.stat().st_mtime >= src.stat().st_mtime:
                continue
            fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{name}.")
            try:
                with os.fdopen(fd, "wb") as out:
                    opener = gzip.open if src.suffix == ".gz" else open
                    with opener(src, "rb") as inp:
                        shutil.copyfileobj(inp, out)
                os.replace(tmp, dst)
            except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                Path(tmp).unlink(missing_ok=True)
                raise DataError(f"{src}: corrupt or truncated gzip file ({exc}); re-download or reinstall it") from None
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    except OSError as exc:
        raise OutputPathError(f"cannot prepare the Fashion-MNIST cache in {str(raw)!r} ({exc}); pass a writable "
                              "cache_dir or a --data-root that has FashionMNIST/raw/ uncompressed") from exc
    return cache
