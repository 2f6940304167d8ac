"""Rank agreement between a proxy and full data: the statistics of the proxy-validity study.

Spearman's rho (``scipy.stats.spearmanr``, ties get average ranks) and Kendall's tau-b (``scipy.stats.kendalltau``)
over all candidates, over the top 20 % by full-data score and over the candidates above chance; percentile-bootstrap
and Fisher-z 95 % intervals (SE ~ sqrt(1.06/(n-3)) for rho, sqrt(0.437/(n-4)) for tau: Fieller, Hartley & Pearson,
Biometrika 1957); top-k overlap and regret of the proxy's pick; a paired bootstrap over architectures for the
difference of two proxies' rho; the noise ceiling from a second seed (observed rho ~ true rho * sqrt(rel_proxy *
rel_full), Spearman 1904). SciPy comes with the ``[nni]``, ``[optuna]`` and ``[dev]`` extras.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation of two equally long score lists (``scipy.stats.spearmanr``).

    Returns None when it is undefined: fewer than 3 pairs, or one side constant.

    Raises:
        ValueError: lists of different lengths.
    """
    return _rank_correlation("spearmanr", x, y)


def _rank_correlation(name: str, x: Sequence[float], y: Sequence[float]) -> float | None:
    """``scipy.stats.<name>(x, y)``'s statistic, or None when undefined (< 3 pairs, a constant side, NaN)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-d score lists of equal length, got shapes {x.shape} and {y.shape}")
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    import scipy.stats

    r = float(getattr(scipy.stats, name)(x, y)[0])
    return None if math.isnan(r) else r


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
    return bootstrap_stat(spearman, p, f, n_boot=n_boot, level=level, seed=seed)


def kendall(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two equally long score lists (``scipy.stats.kendalltau``; tau-b corrects for ties).

    Args:
        x: one score per candidate (e.g. proxy validation accuracy).
        y: the same candidates' reference scores.

    Returns None when it is undefined (fewer than 3 pairs, or one side constant).

    Raises:
        ValueError: lists of different lengths.
    """
    return _rank_correlation("kendalltau", x, y)


#: Fisher-z variance factors: var(artanh r) ~ FACTOR / (n - OFFSET) (Fieller, Hartley & Pearson 1957).
FISHER_VARIANCE = {"spearman": (1.06, 3), "kendall": (0.437, 4)}


def fisher_ci(r: float | None, n: int, *, kind: str = "spearman", level: float = 0.95) -> tuple[float | None, float | None]:
    """Fisher-z interval of a rank correlation: ``tanh(artanh(r) +- z * SE)`` with SE from :data:`FISHER_VARIANCE`.

    Args:
        r: the correlation (None gives ``(None, None)``).
        n: the number of candidates it was computed over.
        kind: ``"spearman"`` or ``"kendall"``.
        level: two-sided coverage (0.95: z = 1.96).

    Returns ``(low, high)``; ``(None, None)`` when ``n`` is too small for the formula.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in FISHER_VARIANCE:
        raise ValueError(f"kind={kind!r} is not one of {sorted(FISHER_VARIANCE)}")
    factor, offset = FISHER_VARIANCE[kind]
    if r is None or n <= offset:
        return None, None
    from scipy.stats import norm

    z = math.atanh(min(max(float(r), -0.999999), 0.999999))
    half = float(norm.ppf((1 + level) / 2)) * math.sqrt(factor / (n - offset))
    return math.tanh(z - half), math.tanh(z + half)


#: How far above chance (in the scores' unit, e.g. points of %) a candidate's full-data score must be to count as
#: "above chance" in :func:`above_chance` and :func:`spearman_above_chance`.
ABOVE_CHANCE_MARGIN = 5.0


def above_chance(full: Sequence[float], chance: float, *, margin: float = ABOVE_CHANCE_MARGIN) -> np.ndarray:
    """Indices of the candidates whose full-data score is above ``chance + margin`` (e.g. a sigmoid network stuck at
    10 % on 10 classes is left out: such points inflate rho without telling good networks apart).

    Args:
        full: full-data scores (in the unit of ``chance``, e.g. %).
        chance: the chance score (100 / classes, in %).
        margin: how far above chance a candidate must be.
    """
    return np.flatnonzero(np.asarray(full, dtype=np.float64) > chance + margin)


def spearman_above_chance(proxy: Sequence[float], full: Sequence[float], chance: float, *,
                          margin: float = ABOVE_CHANCE_MARGIN) -> float | None:
    """Spearman's rho over the candidates :func:`above_chance` (None when fewer than 3 are).

    Args:
        proxy: proxy scores.
        full: full-data scores (the filter reads these).
        chance: the chance score.
        margin: see :func:`above_chance`.
    """
    idx = above_chance(full, chance, margin=margin)
    return spearman(np.asarray(proxy, dtype=np.float64)[idx], np.asarray(full, dtype=np.float64)[idx])


def top_k_overlap(proxy: Sequence[float], full: Sequence[float], k: int = 5) -> int:
    """How many of the proxy's ``k`` best candidates are among the ``k`` best on full data (0..k; ties by index).

    Args:
        proxy: proxy scores.
        full: full-data scores.
        k: the size of both top sets.

    Raises:
        ValueError: lists of different lengths, or ``k`` not in 1..n.
    """
    p, f = np.asarray(proxy, dtype=np.float64), np.asarray(full, dtype=np.float64)
    if p.shape != f.shape or not 1 <= k <= len(p):
        raise ValueError(f"need equal lengths and 1 <= k <= n, got shapes {p.shape}, {f.shape} and k={k}")
    top = lambda a: set(np.argsort(-a, kind="mergesort")[:k].tolist())  # noqa: E731
    return len(top(p) & top(f))


def pick(scores: Sequence[float]) -> int:
    """Index of the best score (the first one on ties): the candidate a search on these scores would choose.

    Args:
        scores: one score per candidate.
    """
    a = np.asarray(scores, dtype=np.float64)
    return int(np.argmax(a))


def regret(test_best: float, test_pick: float) -> float:
    """Regret of a pick: test accuracy of the best candidate (by full-data validation) minus that of the proxy's pick.

    Clipped at 0: a pick that tests better than the validation-best is no loss (the test set's noise).

    Args:
        test_best: full-data test accuracy of the validation-best candidate (points).
        test_pick: full-data test accuracy of the proxy's pick (points).
    """
    return max(0.0, float(test_best) - float(test_pick))


def bootstrap_stat(stat: Callable[[np.ndarray, np.ndarray], float | None], proxy: Sequence[float],
                   full: Sequence[float], *, n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of any rank statistic (e.g. :func:`kendall`): resample candidates with
    replacement ``n_boot`` times (seeded).

    Args:
        stat: ``stat(proxy, full)`` -> float or None (None resamples are dropped).
        proxy: proxy scores.
        full: full-data scores.
        n_boot: resamples.
        level: two-sided coverage.
        seed: seeds ``numpy.random.default_rng``.

    Returns ``(low, high)``, or ``(None, None)`` when fewer than half the resamples give a value.
    """
    p, f = np.asarray(proxy, dtype=np.float64), np.asarray(full, dtype=np.float64)
    if len(p) < 3:
        return None, None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(int(n_boot)):
        s = rng.integers(0, len(p), size=len(p))
        v = stat(p[s], f[s])
        if v is not None:
            vals.append(v)
    if len(vals) < max(1, n_boot // 2):
        return None, None
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_bootstrap(proxy_a: Sequence[float], proxy_b: Sequence[float], full: Sequence[float], *,
                     stat: Callable[[np.ndarray, np.ndarray], float | None] = spearman, n_boot: int = 1000,
                     level: float = 0.95, seed: int = 0) -> dict:
    """The difference ``stat(a, full) - stat(b, full)`` with a paired bootstrap interval: each resample draws the
    same architectures for both proxies (their errors are correlated through the shared full-data scores).

    Args:
        proxy_a: scores of proxy A (e.g. the condensed set), one per candidate.
        proxy_b: scores of proxy B (e.g. the random subset of the same size), same candidates and order.
        full: full-data scores of the same candidates.
        stat: the statistic (default :func:`spearman`).
        n_boot: resamples.
        level: two-sided coverage.
        seed: seeds ``numpy.random.default_rng``.

    Returns:
        ``{"difference": d, "ci": [low, high], "p_not_above_zero": share of resamples with d <= 0}`` (values None
        when undefined).

    Raises:
        ValueError: lists of different lengths.
    """
    a, b, f = (np.asarray(v, dtype=np.float64) for v in (proxy_a, proxy_b, full))
    if not a.shape == b.shape == f.shape or a.ndim != 1:
        raise ValueError(f"need three 1-d score lists of equal length, got {a.shape}, {b.shape}, {f.shape}")
    sa, sb = stat(a, f), stat(b, f)
    d = None if sa is None or sb is None else sa - sb
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(int(n_boot)):
        s = rng.integers(0, len(a), size=len(a))
        va, vb = stat(a[s], f[s]), stat(b[s], f[s])
        if va is not None and vb is not None:
            diffs.append(va - vb)
    if len(diffs) < max(1, n_boot // 2):
        return {"difference": d, "ci": [None, None], "p_not_above_zero": None}
    lo, hi = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return {"difference": d, "ci": [float(lo), float(hi)], "p_not_above_zero": float(np.mean(np.asarray(diffs) <= 0))}


def reliability(seed_a: Sequence[float], seed_b: Sequence[float]) -> float | None:
    """Test-retest reliability of one training setting from two seeds per architecture: the share of the
    between-architecture variance that is not seed noise, ``1 - var_noise / var_total`` with
    ``var_noise = mean((a - b)^2) / 2`` (per-architecture seed variance) and ``var_total`` the variance of the
    single-seed scores (both seeds pooled). Clipped to [0, 1]; None for fewer than 3 architectures or no spread.

    Args:
        seed_a: scores with the first seed, one per architecture.
        seed_b: the same architectures' scores with the second seed.

    Raises:
        ValueError: lists of different lengths.
    """
    a, b = np.asarray(seed_a, dtype=np.float64), np.asarray(seed_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1-d score lists of equal length, got shapes {a.shape} and {b.shape}")
    total = float(np.var(np.concatenate([a, b]), ddof=1)) if len(a) >= 3 else 0.0
    if total <= 0:
        return None
    noise = float(np.mean((a - b) ** 2) / 2)
    return min(1.0, max(0.0, 1.0 - noise / total))


def noise_ceiling(rel_proxy: float | None, rel_full: float | None) -> float | None:
    """The highest rho a proxy can show against full data given both sides' seed noise: ``sqrt(rel_proxy *
    rel_full)`` (Spearman's attenuation, 1904); None when either reliability is unknown.

    Args:
        rel_proxy: :func:`reliability` of the proxy's scores.
        rel_full: :func:`reliability` of the full-data scores.
    """
    if rel_proxy is None or rel_full is None:
        return None
    return math.sqrt(rel_proxy * rel_full)
