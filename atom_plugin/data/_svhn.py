"""SVHN (cropped digits) from torchvision's layout: ``train_32x32.mat`` / ``test_32x32.mat`` (MATLAB, via scipy).

Accepted directly in a searched directory ``D`` or in ``D/svhn/``. The MATLAB files hold ``X`` as
``(32, 32, 3, N)`` uint8 and ``y`` as ``(N, 1)`` with label 10 for the digit 0 (mapped to class 0 here).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError, DataError, one_line
from ._base import DIGIT_DSA_STRATEGY, ImageTensorDataset
from ._common import find_or_download, to_tensor_images
from ._registry import register_dataset
from .stats import DATASET_STATS

SVHN_MEAN, SVHN_STD = DATASET_STATS["svhn"].mean, DATASET_STATS["svhn"].std


@register_dataset("svhn")
def load_svhn(root=None, *, split="train", image_size=None, download=True) -> ImageTensorDataset:
    """SVHN: ``(N, 3, 32, 32)`` float32 (73,257 train / 26,032 test), labels int64, classes "0".."9".

    Searched: ``root``, ``$ATOM_DATA``, ``~/.cache/atom-plugin/data`` (each directly and in ``svhn/``), then a
    torchvision download when ``download``.

    Raises:
        ConfigError: scipy is missing. DatasetNotFoundError: no ``<split>_32x32.mat`` found.
        DataError: an unreadable or malformed ``.mat`` file.
    """
    try:
        import scipy.io  # noqa: F401  (torchvision's SVHN reads the files with it)
    except ImportError:
        raise ConfigError("the svhn dataset needs scipy: pip install scipy") from None
    import torchvision.datasets as tvd

    filename = tvd.SVHN.split_list[split][1]
    split_list = {k: [url, f, None] for k, (url, f, _) in tvd.SVHN.split_list.items()}
    svhn_no_md5 = type("SVHNNoMD5", (tvd.SVHN,), {"split_list": split_list})

    def probe(d: Path):
        for cand in (d, d / "svhn"):
            if (cand / filename).is_file():
                return cand
        return None

    d = find_or_download("svhn", root, probe=probe, looked_for=f"{filename} (directly or in svhn/)", download=download,
                         downloader=lambda target: tvd.SVHN(str(target), split=split, download=True),
                         how_to_get=f"download http://ufldl.stanford.edu/housenumbers/{filename} and pass "
                                    "`root` (or set $ATOM_DATA) holding it, or allow downloading (`download=True`)")
    try:
        ds = svhn_no_md5(str(d), split=split, download=False)
    except Exception as exc:  # scipy's MatReadError, missing X/y keys, wrong ranks
        raise DataError(f"{d / filename}: unreadable SVHN file ({type(exc).__name__}: {one_line(exc)[:200]}); "
                        "re-download it") from None
    x, y = ds.data, torch.as_tensor(ds.labels, dtype=torch.long).reshape(-1)
    if x.ndim != 4 or x.shape[1:] != (3, 32, 32) or x.shape[0] != y.shape[0] or x.dtype.name != "uint8":
        raise DataError(f"{d / filename}: images of shape {tuple(x.shape)} (N, C, H, W), {x.dtype}, with {y.shape[0]} "
                        "labels; expected X (32, 32, 3, N) uint8 and y (N, 1)")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > 9):
        raise DataError(f"{d / filename}: labels must lie in 1..10 (10 = digit 0), "
                        f"found {int(y.min())}..{int(y.max())} after mapping 10 to 0")
    images = to_tensor_images(torch.from_numpy(x), SVHN_MEAN, SVHN_STD, image_size)
    return ImageTensorDataset(images, y, [str(i) for i in range(10)], SVHN_MEAN, SVHN_STD, name="svhn",
                              dsa_strategy=DIGIT_DSA_STRATEGY)
