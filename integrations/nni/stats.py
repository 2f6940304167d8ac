"""Rank agreement between a proxy and full data: Spearman's rho, its top-k version and bootstrap intervals.

``spearman`` is ``scipy.stats.spearmanr`` (ties get average ranks); SciPy comes with the ``[nni]`` extra and is
installed on the GPU images.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two equally long score lists (``scipy.stats.spearmanr``).

    Returns None when it is undefined: fewer than 3 pairs, or one side constant.

    Raises:
        ValueError: lists of different lengths.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-d score lists of equal length, got shapes {x.shape} and {y.shape}")
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    from scipy.stats import spearmanr

    rho = float(spearmanr(x, y)[0])
    return None if math.isnan(rho) else rho


def top_indices(full: Sequence[float], fraction: float = 0.2) -> np.ndarray:
    """Indices of the best ``ceil(fraction * n)`` entries of ``full`` (highest first; ties by index)."""
    full = np.asarray(full, dtype=np.float64)
    k = max(1, math.ceil(fraction * len(full)))
    return np.argsort(-full, kind="mergesort")[:k]


def spearman_top(proxy: Sequence[float], full: Sequence[float], fraction: float = 0.2) -> float | None:
    """Spearman's rho restricted to the top ``fraction`` of candidates *by full-data score* (the candidates a
    search cares about). None when fewer than 3 candidates are in that top set."""
    idx = top_indices(full, fraction)
    return spearman(np.asarray(proxy)[idx], np.asarray(full)[idx])


def bootstrap_ci(proxy: Sequence[float], full: Sequence[float], *, fraction: float | None = None,
                 n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of Spearman's rho: resample the candidates with replacement ``n_boot``
    times (seeded) and take the ``(1-level)/2`` and ``(1+level)/2`` quantiles. With ``fraction``, the resampling
    is over the top-``fraction`` candidates by full-data score (the interval of :func:`spearman_top`).

    Returns ``(low, high)``, or ``(None, None)`` when rho is undefined in too many resamples (fewer than half).
    """
    p, f = np.asarray(proxy, dtype=np.float64), np.asarray(full, dtype=np.float64)
    if fraction is not None:
        idx = top_indices(f, fraction)
        p, f = p[idx], f[idx]
    if len(p) < 3:
        return None, None
    rng = np.random.default_rng(seed)
    rhos = []
    for _ in range(int(n_boot)):
        s = rng.integers(0, len(p), size=len(p))
        r = spearman(p[s], f[s])
        if r is not None:
            rhos.append(r)
    if len(rhos) < max(1, n_boot // 2):
        return None, None
    lo, hi = np.quantile(rhos, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
