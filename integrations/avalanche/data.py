"""Where Avalanche's ``SplitFMNIST`` finds Fashion-MNIST without downloading (needs no Avalanche).

Avalanche 0.6 reads Fashion-MNIST through torchvision's ``FashionMNIST(root, download=True)``, which skips the
download when ``root/FashionMNIST/raw/`` holds the four *uncompressed* idx files. :func:`fashion_mnist_root`
returns such a ``root``: a folder that already has that layout, or a cache folder into which it decompresses (or
copies) the files found elsewhere, e.g. Debian's ``dataset-fashion-mnist`` package, which installs the four ``.gz``
files in ``/usr/share/datasets/fashion-mnist``.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import zlib
from pathlib import Path

from atom_plugin.errors import DataError, DatasetNotFoundError, OutputPathError

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/datasets/fashion-mnist",)
_LAYOUTS = ("FashionMNIST/raw", "", "fashion-mnist")  # sub-folders searched under each candidate folder


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/atom-plugin/avalanche`` (default ``~/.cache/atom-plugin/avalanche``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "atom-plugin" / "avalanche"


def _complete(folder: Path) -> dict[str, Path] | None:
    """``{file name: path}`` when ``folder`` holds all four files (each plain or ``.gz``, plain preferred)."""
    out = {}
    for name in FILES:
        for cand in (folder / name, folder / (name + ".gz")):
            if cand.is_file():
                out[name] = cand
                break
        else:
            return None
    return out


def fashion_mnist_root(data_root: str | os.PathLike | None = None, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """A folder ``ROOT`` with ``ROOT/FashionMNIST/raw/`` holding the four uncompressed idx files, for
    ``SplitFMNIST(..., dataset_root=ROOT)``.

    Searched, in order: ``data_root``, ``$ATOM_DATA``, then :data:`SYSTEM_DIRS`; under each, the sub-folders
    ``FashionMNIST/raw``, the folder itself and ``fashion-mnist``. A folder whose ``FashionMNIST/raw`` already has
    the uncompressed files is returned as is; otherwise the files found first are decompressed (``.gz``) or
    copied into ``cache_dir/FashionMNIST/raw/`` (default :func:`default_cache_dir`), atomically, once.

    Raises:
        DatasetNotFoundError: no folder holds the four files; the message lists every place searched.
        DataError: a corrupt ``.gz`` file.
        OutputPathError: the cache folder cannot be written.
    """
    candidates: list[Path] = []
    if data_root is not None:
        candidates.append(Path(data_root).expanduser())
    if os.environ.get("ATOM_DATA"):
        candidates.append(Path(os.environ["ATOM_DATA"]).expanduser())
    candidates += [Path(d) for d in SYSTEM_DIRS]
    searched = []
    for base in candidates:
        for sub in _LAYOUTS:
            folder = base / sub if sub else base
            searched.append(str(folder))
            found = _complete(folder)
            if found is None:
                continue
            if sub == "FashionMNIST/raw" and all(p.suffix != ".gz" for p in found.values()):
                return base
            return _fill_cache(found, Path(cache_dir) if cache_dir is not None else default_cache_dir())
    raise DatasetNotFoundError(
        "Fashion-MNIST idx files (train-images-idx3-ubyte[.gz] and the three others) not found in: "
        + ", ".join(searched) + "; pass --data-root, set $ATOM_DATA, or install Debian's dataset-fashion-mnist")


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
