"""Counter-based random streams: every random draw of a run is a pure function of (seed, iteration, stream).

A condensation run never carries generator state between iterations: iteration t re-seeds its generators
from (seed, t, stream). So a run resumes bit-exactly from the iteration number alone, and a class-parallel run
(every rank draws the numbers of *all* classes, then keeps its own) gives the same result however the classes
are split.
"""
from __future__ import annotations

import hashlib

import torch

# Stream ids: one per kind of randomness.
NETWORK = 0  # the random network's weights (shared by all classes / ranks)
DATA = 1     # real-batch indices and DSA parameters (drawn for all classes, sliced per class)
INIT = 2     # which real images initialise the synthetic set
POOL = 3     # network pool: which network matches, re-drawn weights (networks="pool")
POOL_DATA = 4  # network pool: the real batches its networks train on
POOL_INIT = 5  # network pool: the initial weights of slot i (iteration field = i)
REPRESENTATIVE = 6  # representative batches: the real pool clustered at a re-clustering iteration, k-means++ draws


def derive_seed(seed: int, iteration: int, stream: int) -> int:
    """A 63-bit seed from (seed, iteration, stream) via BLAKE2b; stable across platforms and versions."""
    h = hashlib.blake2b(f"{int(seed)}:{int(iteration)}:{int(stream)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def generator(seed: int, iteration: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A new ``torch.Generator`` on ``device`` seeded with :func:`derive_seed`."""
    return reseed(torch.Generator(device=device), seed, iteration, stream)


def reseed(g: torch.Generator, seed: int, iteration: int, stream: int) -> torch.Generator:
    """Re-seed an existing generator in place (no allocation; on CUDA a host-side call, no sync). Returns g."""
    g.manual_seed(derive_seed(seed, iteration, stream))
    return g
