"""The real images a condensation run matches against, grouped by class, and the batches drawn from them.

:class:`RealPool` holds the training images sorted by class (stable order) on the compute device, or in
(pinned, on CUDA) host memory when they do not fit the device-memory budget; then each batch is gathered on the
host and copied over (same draws, same result). It draws:

* :meth:`RealPool.class_batch`: the matching step's class-balanced batch (``n_real`` per class, without
  replacement; DM, Zhao & Bilen WACV 2023, Alg. 1) from the iteration's DATA generator -- or, after
  :meth:`RealPool.use_representative`, each class's representative samples (DREAM, Liu et al. ICCV 2023:
  :mod:`atom_plugin.representative`);
* :meth:`RealPool.initial_images`: the real images that initialise the synthetic set (one per tile);
* :meth:`RealPool.uniform_batch`: the network pool's training batches (uniform over the run's classes, IDM,
  Zhao et al. CVPR 2023, Sec. 3.3).

Random draws are made for *all* of the run's classes (rows of the tables below follow ``run_classes``) and then
sliced to the local ones, so a class-parallel run draws the numbers an all-class run draws
(:mod:`atom_plugin._rng`).
"""
from __future__ import annotations

import functools

import torch

from .data._base import ImageTensorDataset


class RealPool:
    """A run's real images grouped by class, on ``device`` or streamed from host memory, and their batch draws.

    Args:
        data: the training set (images ``(N, C, H, W)`` float32, labels ``(N,)`` int64, on the host).
        run_classes: every class the whole run condenses (random draws are made for all, in this order).
        local_classes: the subsequence this process owns (all of ``run_classes`` unless class-parallel).
        batch_real: real images per class per step; capped at the smallest run class (:attr:`n_real`).
        device: the compute device.
        budget_mb: MiB of device memory the pool may take; None = half the free CUDA memory (unlimited elsewhere).

    Attributes:
        images: ``(N, C, H, W)`` float32 sorted by class (stable), on ``device`` or in host memory.
        labels: ``(N,)`` int64 of ``images``, on the same device as ``images``.
        on_device: whether ``images`` live on ``device`` (else each batch is copied over).
        n_real: real images per class in a matching batch.
        starts, counts: ``(R,)`` int64 (host): the first sorted row and the size of each run class.
        offsets: ``starts`` on ``device``. invalid: ``(R, n_max)`` bool on ``device``, True past a class's size.
        local_rows: ``(L,)`` int64 on ``device``: each local class's row in the run tables.
        all_local: whether this process owns every run class.
    """

    def __init__(self, data: ImageTensorDataset, run_classes: list[int], local_classes: list[int],
                 batch_real: int, device: torch.device, budget_mb: float | None = None):
        self.device = device
        counts = data.class_counts()
        run = torch.tensor(run_classes, dtype=torch.long)
        self.counts = counts[run]
        self.n_real = int(min(batch_real, int(self.counts.min())))
        order = torch.argsort(data.labels, stable=True)
        self.starts = (torch.cumsum(counts, 0) - counts)[run]
        by_class = data.images[order]
        self.on_device = _pool_fits(by_class, device, budget_mb)
        if self.on_device:
            self.images = by_class.to(device)
        else:  # stream each batch from (pinned) host memory
            self.images = by_class.pin_memory() if device.type == "cuda" else by_class
        self.labels = data.labels[order].to(self.images.device)
        self.offsets = self.starts.to(device)
        n_max = int(self.counts.max())
        self.invalid = (torch.arange(n_max)[None, :] >= self.counts[:, None]).to(device)  # (R, n_max)
        row_of = {k: r for r, k in enumerate(run_classes)}
        self.local_rows = torch.tensor([row_of[k] for k in local_classes], dtype=torch.long, device=device)
        self.all_local = list(local_classes) == list(run_classes)
        self.representative = None  # a RepresentativeBatches after use_representative()

    def use_representative(self, pool_size: int, recluster_every: int, seed: int) -> None:
        """Draw :meth:`class_batch` as representative batches from now on (``real_batch="representative"``).

        Args:
            pool_size: real images per class clustered (``representative_pool``; capped at the smallest class).
            recluster_every: iterations between re-clusterings (``recluster_every``).
            seed: the run's seed (the ``_rng.REPRESENTATIVE`` stream).
        """
        from .representative import RepresentativeBatches

        self.representative = RepresentativeBatches(pool_size, recluster_every, self.n_real, seed, self.invalid,
                                                    self.local_rows)

    def local_class_images(self, i: int, positions: torch.Tensor) -> torch.Tensor:
        """The images ``(P, C, H, W)`` float32 on ``device`` of a local class at some positions inside it.

        Args:
            i: the local class's index (in ``local_classes``' order).
            positions: ``(P,)`` int64 positions inside the class.
        """
        return self.gather(positions.to(self.device) + self.offsets[self.local_rows[i]])

    @property
    def num_run(self) -> int:
        """R, the number of run classes (the rows of the draw tables)."""
        return int(self.counts.shape[0])

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """The images at sorted-pool ``rows`` ((n,) int64 on ``device``), on ``device``. With a streamed pool this
        is one host sync (the rows go to the host), the price of a pool larger than the device."""
        if self.on_device:
            return self.images.index_select(0, rows)
        return self.images.index_select(0, rows.cpu()).to(self.device, non_blocking=True)

    def positions(self, g: torch.Generator) -> torch.Tensor:
        """``(R, n_real)`` int64 positions inside each run class (uniform, without replacement), on ``device``,
        from one ``torch.rand((R, n_max))`` of ``g`` (a generator on ``device``)."""
        u = torch.rand(self.invalid.shape, generator=g, device=self.device).masked_fill_(self.invalid, 2.0)
        return u.topk(self.n_real, dim=1, largest=False).indices

    def class_batch(self, g: torch.Generator, t: int = 0, embed=None) -> torch.Tensor:
        """The step's real batch: ``(L * n_real, C, H, W)`` float32 on ``device``, class-major in local order,
        drawn by :meth:`positions` for all run classes and sliced to the local ones.

        With representative batches (:meth:`use_representative`) the batch is each local class's representative
        samples instead, re-clustered when due; the uniform positions are drawn all the same, so ``g``'s later
        draws (DSA's) are those of a uniform run.

        Args:
            g: the iteration's DATA generator (on ``device``).
            t: the iteration (representative batches: whether it re-clusters).
            embed: representative batches: the matching network's ``embed``, ``(P, C, H, W)`` -> ``(P, D)``.
        """
        pos = self.positions(g)
        if self.representative is not None:
            sel = self.representative
            if sel.due(t):
                sel.recluster(t, embed, self.local_class_images)
            rows = sel.positions.to(self.device) + self.offsets.index_select(0, self.local_rows)[:, None]
            return self.gather(rows.flatten())
        rows = pos + self.offsets[:, None]
        rows = (rows if self.all_local else rows.index_select(0, self.local_rows)).flatten()
        return self.gather(rows)

    def initial_images(self, k: int, g: torch.Generator) -> torch.Tensor:
        """``k`` real images per local class, ``(L * k, C, H, W)`` float32 on the host, class-major; positions
        uniform without replacement from one ``torch.rand((R, n_max))`` of ``g`` (a CPU generator). A class
        smaller than ``k`` reuses its images (cyclically)."""
        n_max = self.invalid.shape[1]
        u = torch.rand(self.num_run, n_max, generator=g).masked_fill_(self.invalid.cpu(), 2.0)
        pos = u.topk(min(k, n_max), dim=1, largest=False).indices  # (R, <=k) positions inside each class
        if k > int(self.counts.min()):  # topk is sorted: a class's first `count` positions are its own
            pos = pos.gather(1, torch.arange(k)[None, :] % self.counts[:, None])
        pick = (pos + self.starts[:, None])[self.local_rows.cpu()].flatten()
        return self.images.index_select(0, pick.to(self.images.device)).cpu()

    @functools.cached_property
    def _run_rows(self) -> torch.Tensor:
        """``(sum of run class sizes,)`` int64 (host): every sorted row of the run's classes."""
        return torch.cat([torch.arange(int(s), int(s) + int(n)) for s, n in zip(self.starts, self.counts)])

    def uniform_batch(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images drawn uniformly (with replacement) from the run's classes and their labels:
        ``((n, C, H, W) float32, (n,) int64)`` on ``device``. The rows come from ``g``, a CPU generator, wherever the
        pool lives, so a resumed or class-parallel run draws the same batch."""
        rows = self._run_rows
        pick = rows.index_select(0, torch.randint(len(rows), (n,), generator=g))
        pick = pick.to(self.images.device, non_blocking=True)
        x = self.images.index_select(0, pick).to(self.device, non_blocking=True)
        y = self.labels.index_select(0, pick).to(self.device, non_blocking=True)
        return x, y


def _pool_fits(pool: torch.Tensor, device: torch.device, budget_mb: float | None) -> bool:
    """Whether the real pool may live on ``device``: under the explicit budget, or half the free CUDA memory."""
    size_mb = pool.numel() * pool.element_size() / 2**20
    if budget_mb is not None:
        return size_mb <= budget_mb
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return size_mb <= 0.5 * free / 2**20
    return True
