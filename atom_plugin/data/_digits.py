"""scikit-learn's bundled 8x8 handwritten digits (1,797 images): a tiny, offline dataset for quick runs."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ._base import DIGIT_DSA_STRATEGY, ImageTensorDataset
from ._common import channel_stats, to_tensor_images
from ._registry import register_dataset

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 300
DIGITS_IMAGE_SIZE = (32, 32)


def _fixed_split(labels: np.ndarray, test_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test indices (each sorted), from numpy's legacy ``RandomState(seed)``, whose stream is
    frozen across numpy versions, so the split never changes. Per-class test counts: largest remainder."""
    rng = np.random.RandomState(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * test_size / counts.sum()
    take = np.floor(quota).astype(int)
    for k in np.argsort(-(quota - take), kind="stable")[: test_size - take.sum()]:
        take[k] += 1
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)])
    test = np.sort(test)
    return np.setdiff1d(np.arange(len(labels)), test), test


@register_dataset("digits")
def load_digits(root=None, *, split="train", image_size=None, download=True) -> ImageTensorDataset:
    """scikit-learn's digits, upsampled to ``(N, 1, 32, 32)`` float32 (1,497 train / 300 test), classes "0".."9".

    Pixels 0..16 are scaled to [0, 1] (/16) and resized to 32x32 (or ``image_size``) with bilinear
    interpolation (no antialiasing), so ConvNet-3 keeps a 4x4 feature map. The split is FIXED: stratified,
    300 test images, seed ``0`` (:data:`DIGITS_SPLIT_SEED`, independent of any user seed), indices sorted.
    Mean/std are computed from the train split (the test split uses them). ``root`` and ``download`` are
    ignored: the data ships with scikit-learn.

    Raises:
        ConfigError: scikit-learn is not installed.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ConfigError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    bunch = sk_load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (1797, 1, 8, 8) in [0, 1]
    y = bunch.target.astype(np.int64)
    train_idx, test_idx = _fixed_split(y, DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)
    size = image_size or DIGITS_IMAGE_SIZE
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    mean, std = channel_stats(x[torch.from_numpy(train_idx)])
    idx = train_idx if split == "train" else test_idx
    images = to_tensor_images(x[torch.from_numpy(idx)], mean, std)
    return ImageTensorDataset(images, torch.from_numpy(y[idx]), [str(i) for i in range(10)], mean, std,
                              name="digits", dsa_strategy=DIGIT_DSA_STRATEGY)
