"""Shared plumbing of the loaders: where files are looked for, one-line "not found" errors, normalisation.

Search order for every on-disk dataset (see :func:`find_or_download`):

1. the ``root`` argument (``--data-root`` on the command line), when given;
2. the directory in ``$ATOM_DATA``, when set;
3. the dataset's system places (e.g. Debian's ``/usr/share/datasets/fashion-mnist``);
4. the download folder :data:`DEFAULT_DATA_DIR` (``~/.cache/atom-plugin/data``), where earlier downloads went;
5. only with ``download=True`` and a dataset torchvision can download: a torchvision download into
   ``root``, else ``$ATOM_DATA``, else :data:`DEFAULT_DATA_DIR`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence, TypeVar

import torch
import torch.nn.functional as F

from ..errors import DatasetNotFoundError, one_line

ENV_VAR = "ATOM_DATA"
# Expanded at call time, so tests (and users) can point it elsewhere.
DEFAULT_DATA_DIR = "~/.cache/atom-plugin/data"

T = TypeVar("T")


def default_data_dir() -> Path:
    """The download/cache folder, :data:`DEFAULT_DATA_DIR` with ``~`` expanded."""
    return Path(os.path.expanduser(str(DEFAULT_DATA_DIR)))


def search_dirs(root, system_dirs: Sequence[str | os.PathLike] = ()) -> list[tuple[Path, str]]:
    """``[(directory, label)]`` in search order (root, ``$ATOM_DATA``, system places, cache), duplicates dropped."""
    places: list[tuple[Path, str]] = []
    if root is not None:
        places.append((Path(root).expanduser(), "data root"))
    env = os.environ.get(ENV_VAR)
    if env:
        places.append((Path(env).expanduser(), f"${ENV_VAR}"))
    places += [(Path(d), "system") for d in system_dirs]
    places.append((default_data_dir(), "download cache"))
    seen, out = set(), []
    for path, label in places:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            out.append((path, label))
    return out


def download_target(root) -> Path:
    """Where a download goes: ``root``, else ``$ATOM_DATA``, else :data:`DEFAULT_DATA_DIR`."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else default_data_dir()


def find_or_download(
    name: str,
    root,
    *,
    probe: Callable[[Path], T | None],
    system_dirs: Sequence[str | os.PathLike] = (),
    looked_for: str = "its files",
    download: bool = False,
    downloader: Callable[[Path], None] | None = None,
    how_to_get: str = "",
) -> T:
    """Return ``probe(d)`` for the first searched directory ``d`` where it is not None (see the module doc).

    Args:
        name: dataset name, for the message.
        root: the caller's data root (``--data-root``), searched first; None: not given.
        probe: ``probe(directory) -> found thing or None``; must not raise for a missing dataset.
        system_dirs: the dataset's system places (e.g. Debian's ``/usr/share/datasets/...``), searched after
            ``$ATOM_DATA``.
        looked_for: what ``probe`` checks, for the message (e.g. ``"cifar-10-batches-py/"``).
        download: allow ``downloader`` to fetch the files when no place holds them.
        downloader: ``downloader(target_dir)`` fetches the files into ``target_dir`` (None: cannot download).
        how_to_get: the end of the message, telling how to obtain the files.

    Raises:
        DatasetNotFoundError: nothing found (and no download or a failed one); one line naming every place.
    """
    places = search_dirs(root, system_dirs)
    for path, _ in places:
        if path.is_dir():
            found = probe(path)
            if found is not None:
                return found
    looked = ", ".join(f"{p} ({label})" for p, label in places)
    if not os.environ.get(ENV_VAR):
        looked += f"; ${ENV_VAR} is not set"
    note = ""
    if download and downloader is not None:
        target = download_target(root)
        try:
            target.mkdir(parents=True, exist_ok=True)
            downloader(target)
        except Exception as exc:  # no network, HTTP errors, bad archives, unwritable folder: all end here
            note = f"; downloading into {target} failed ({type(exc).__name__}: {one_line(exc)[:200]})"
        else:
            found = probe(target)
            if found is not None:
                return found
            note = f"; a download into {target} finished but the files are still not there"
    elif downloader is not None:
        note = "; downloading is off (download=False)"
    elif download:
        note = "; it cannot be downloaded automatically"
    raise DatasetNotFoundError(f"{name} not found: looked for {looked_for} in {looked}{note}; {how_to_get}")


def to_tensor_images(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    image_size: tuple[int, int] | None = None,
    *,
    antialias: bool = True,
    chunk: int = 4096,
) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 (0..255) or float (0..1) -> float32 ``(x - mean) / std``, resized when asked.

    Works chunk by chunk into one preallocated output, so a large set needs its float copy only once.
    Resizing is bilinear (``antialias`` for shrinking).
    """
    n, c, h, w = x.shape
    out_hw = tuple(image_size) if image_size is not None else (h, w)
    out = torch.empty((n, c) + out_hw, dtype=torch.float32)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    for i in range(0, n, chunk):
        part = x[i:i + chunk].to(torch.float32, copy=True)  # never modify the caller's tensor
        if x.dtype == torch.uint8:
            part = part.div_(255.0)
        if out_hw != (h, w):
            part = F.interpolate(part, size=out_hw, mode="bilinear", align_corners=False, antialias=antialias)
        out[i:i + chunk] = part.sub_(m).div_(s)
    return out


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std in [0, 1] units of ``(N, C, H, W)`` uint8 or float images.

    A channel with zero spread gets std 1.0 (normalising by it would divide by zero).
    """
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):
        part = x[i:i + chunk].double()
        if x.dtype == torch.uint8:
            part /= 255.0
        total += part.sum(dim=(0, 2, 3))
        total_sq += (part * part).sum(dim=(0, 2, 3))
    count = max(1, x.shape[0] * x.shape[2] * x.shape[3])
    mean = total / count
    std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
