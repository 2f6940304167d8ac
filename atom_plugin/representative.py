"""Representative real batches (DREAM, Liu et al., ICCV 2023, arXiv 2302.14416, Sec. 3.2, "representative matching").

Instead of a uniformly drawn real batch, each class matches against the real samples nearest the centres of a
k-means clustering of a larger real pool's features, with as many clusters as the batch needs: the batch covers the
class's distribution evenly instead of by chance, which DREAM reports reaches the same accuracy with over 8x fewer
iterations (our short CPU budgets are that regime).

The choices this library makes (``ATOMConfig(real_batch="representative")``):

* **Feature network**: DREAM clusters the features of the network being trained; our matcher draws a fresh random
  network every iteration (or loads one of the pool's). We cluster with **the network of the iteration at which the
  re-clustering happens** (after its re-draw or pool load, before its matching step), on its final embedding
  (``net.embed``: what the embedding term matches), of the plain (un-augmented) images.
* **Pool**: ``representative_pool`` (P, default 256) real images per class, drawn uniformly without replacement from
  the stream ``_rng.REPRESENTATIVE`` at the re-clustering iteration (capped at the class's size).
* **Interval**: re-clustered every ``recluster_every`` (N, default 10) iterations (iterations 0, N, 2N, ...); in
  between, the same representative samples are matched (each iteration with its own DSA draw).
* **k-means**: :func:`kmeans`, exact Lloyd iterations in float64 from a k-means++ start whose random numbers are
  drawn for every class of the run at once (so a class's clusters do not depend on which classes a process owns),
  at most :data:`MAX_ITER` iterations or until no assignment changes; k = the real batch per class.
* **Batch**: per cluster, its member nearest its centre (:func:`nearest_to_centres`): distinct samples.

The state (the selected positions) is saved in checkpoints, so a resumed run equals an uninterrupted one bit for bit
on CPU whatever the matching networks; each class is featurised and clustered alone (one forward of its P images),
so a class-parallel run equals one process.
"""
from __future__ import annotations

import torch

from . import _rng

#: Lloyd iterations at most per clustering (it stops earlier when no assignment changes).
MAX_ITER = 20
#: The checkpoint entry holding the selected positions.
STATE_KEY = "representative_positions"


def _sq_dist(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(n, k)`` between rows of ``x`` ``(n, D)`` and ``c`` ``(k, D)`` (float64):
    ``|x|² + |c|² - 2 x·c`` (one matrix product, no ``(n, k, D)`` temporary), clamped at 0."""
    return ((x * x).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2.0 * (x @ c.T)).clamp_min_(0.0)


def kmeans(x: torch.Tensor, k: int, u: torch.Tensor, max_iter: int = MAX_ITER) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means (Lloyd, 1982) from a k-means++ start (Arthur & Vassilvitskii, SODA 2007), deterministic given ``u``.

    Args:
        x: ``(n, D)`` float features (computed in float64).
        k: clusters, ``1 <= k <= n``.
        u: ``(k,)`` uniform numbers in [0, 1): the k-means++ draws (first centre: row ``floor(u[0] * n)``; centre j:
            the row where the cumulative squared distance to the nearest chosen centre first exceeds ``u[j]`` of
            its total; a row already chosen is never chosen again).
        max_iter: Lloyd iterations at most (stops when no assignment changes). An emptied cluster keeps its centre.

    Returns:
        ``(centres (k, D) float64, assignment (n,) int64)``.

    Raises:
        ValueError: ``k`` outside ``[1, n]`` or ``u`` not of shape ``(k,)``.
    """
    n = x.shape[0]
    if not 1 <= k <= n or tuple(u.shape) != (k,):
        raise ValueError(f"kmeans needs 1 <= k <= n and u of shape (k,), got k={k}, n={n}, u {tuple(u.shape)}")
    x = x.double()
    u = u.double().cpu()
    chosen = [min(int(u[0] * n), n - 1)]
    d2 = _sq_dist(x, x[chosen[0]][None])[:, 0]
    for j in range(1, k):
        w = d2.clone().cpu()
        w[chosen] = 0.0
        total = float(w.sum())
        if total <= 0:  # every remaining row coincides with a centre: the first row not chosen
            nxt = next(i for i in range(n) if i not in chosen)
        else:
            cum = torch.cumsum(w, 0)
            nxt = int(torch.searchsorted(cum, u[j] * total, right=True).clamp(max=n - 1))
            while nxt in chosen or w[nxt] == 0:  # float edge: step to the next row with weight
                nxt = (nxt + 1) % n
        chosen.append(nxt)
        d2 = torch.minimum(d2, _sq_dist(x, x[nxt][None])[:, 0])
    centres = x[chosen].clone()
    assign = _sq_dist(x, centres).argmin(1)
    for _ in range(max_iter):
        one_hot = torch.nn.functional.one_hot(assign, k).to(x.dtype)  # (n, k)
        sizes = one_hot.sum(0)
        sums = one_hot.T @ x
        centres = torch.where(sizes[:, None] > 0, sums / sizes.clamp(min=1)[:, None], centres)
        new = _sq_dist(x, centres).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
    return centres, assign


def nearest_to_centres(x: torch.Tensor, centres: torch.Tensor, assign: torch.Tensor) -> torch.Tensor:
    """Per cluster, the row of ``x`` nearest its centre among the cluster's members (an empty cluster: the nearest
    row not yet taken), so the ``k`` rows are distinct.

    Args:
        x: ``(n, D)`` float features.
        centres: ``(k, D)`` float, from :func:`kmeans`.
        assign: ``(n,)`` int64 cluster of each row.

    Returns:
        ``(k,)`` int64 row indices, in cluster order.
    """
    d = _sq_dist(x.double(), centres.double())  # (n, k)
    k = centres.shape[0]
    members = assign[:, None] == torch.arange(k, device=assign.device)[None, :]
    pick = d.masked_fill(~members, float("inf")).argmin(0)  # (k,)
    empty = (~members.any(0)).nonzero().flatten().tolist()
    if empty:
        taken = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        taken[pick[members.any(0)]] = True
        for j in empty:
            pick[j] = d[:, j].masked_fill(taken, float("inf")).argmin()
            taken[pick[j]] = True
    return pick


class RepresentativeBatches:
    """The representative real batch of each of a process's classes, re-clustered every ``recluster_every``
    iterations (see the module doc for every choice).

    Args:
        pool_size: ``representative_pool`` P, real images per class clustered (capped at the smallest class).
        recluster_every: ``recluster_every`` N.
        n_real: the real batch per class (clusters per class), ``<= pool_size`` after the cap.
        seed: the run's seed.
        invalid: ``(R, n_max)`` bool, True past each run class's count (the uniform draw's mask; device tensor).
        local_rows: ``(L,)`` int64 rows of ``invalid`` this process owns, in its class order.
    """

    def __init__(self, pool_size: int, recluster_every: int, n_real: int, seed: int, invalid: torch.Tensor,
                 local_rows: torch.Tensor):
        counts = (~invalid).sum(1).cpu()
        self.pool_size = int(min(pool_size, int(counts.min())))
        if n_real > self.pool_size:
            raise ValueError(f"representative pool {self.pool_size} is smaller than the real batch {n_real}")
        self.every, self.n_real, self.seed = recluster_every, n_real, seed
        self.invalid, self.local_rows = invalid.cpu(), local_rows.cpu()
        self.positions: torch.Tensor | None = None  # (L, n_real) int64 positions inside each class (CPU)
        self.clustered_at: int | None = None

    def draws(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A re-clustering's random numbers, drawn for every run class on the CPU from ``_rng.REPRESENTATIVE``,
        then the local rows kept.

        Args:
            t: the re-clustering iteration.

        Returns:
            ``(pool positions (L, P) int64 inside each class, k-means++ uniforms (L, n_real) float32)``.
        """
        g = _rng.generator(self.seed, t, _rng.REPRESENTATIVE, "cpu")
        u = torch.rand(self.invalid.shape, generator=g).masked_fill_(self.invalid, 2.0)
        pool = u.topk(self.pool_size, dim=1, largest=False).indices
        seeds = torch.rand(self.invalid.shape[0], self.n_real, generator=g)
        return pool[self.local_rows], seeds[self.local_rows]

    def due(self, t: int) -> bool:
        """Whether iteration ``t`` re-clusters (every N-th iteration, or no selection yet).

        Args:
            t: the iteration.
        """
        return self.positions is None or t % self.every == 0

    @torch.no_grad()
    def recluster(self, t: int, embed, images_of) -> None:
        """Cluster each local class's pool with ``embed`` and keep the samples nearest the centres.

        Args:
            t: the iteration.
            embed: features of ``(P, C, H, W)`` images: ``(P, D)`` (the matching network's ``embed``).
            images_of: ``images_of(i, positions)``: the images ``(P, C, H, W)`` of local class ``i`` at
                ``positions`` ``(P,)`` int64 (inside the class) on the network's device.
        """
        pool, seeds = self.draws(t)
        out = []
        for i in range(pool.shape[0]):
            feats = embed(images_of(i, pool[i])).flatten(1).cpu()
            centres, assign = kmeans(feats, self.n_real, seeds[i])
            out.append(pool[i][nearest_to_centres(feats, centres, assign)])
        self.positions, self.clustered_at = torch.stack(out), t

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The checkpoint entry (nothing before the first clustering)."""
        return {} if self.positions is None else {STATE_KEY: self.positions}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore the selection saved by :meth:`state_tensors` (absent: the next iteration re-clusters).

        Args:
            tensors: a checkpoint's tensors (``STATE_KEY``: ``(L, n_real)`` int64).
        """
        if STATE_KEY in tensors:
            self.positions = tensors[STATE_KEY].cpu().long().clone()
