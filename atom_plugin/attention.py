"""Attention maps of a feature map, the quantities ATOM and DataDAM match.

For a feature map ``f`` of shape ``(B, C, H, W)`` and power ``p``:

* spatial attention  ``a_s(f) = normalize_2( flatten_{h,w} sum_c |f[:, c]|^p )``       -> ``(B, H*W)``
  (DataDAM, Sajedi et al., ICCV 2023, Eq. 2; Zagoruyko & Komodakis' attention transfer, ICLR 2017)
* channel attention  ``a_c(f) = normalize_2( (sum_{h,w} |f[:, c, h, w]|^p)_c )``          -> ``(B, C)``
  (ATOM, Khaki et al., CVPRW 2024, Sec. 3: the channel-wise counterpart; its exact formula was never
  published in code, so this is our reconstruction.)

``normalize_2`` divides each row by its L2 norm (eps 1e-12, as ``torch.nn.functional.normalize``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _abs_pow(f: torch.Tensor, p: float) -> torch.Tensor:
    # Matched maps are ReLU outputs (>= 0) for the default network, but other activations can be negative.
    # Even powers need no abs: f * f equals |f| * |f| bit for bit, and so do its gradients (one op less each way).
    if p == 2:
        return f * f
    if p == 4:
        f2 = f * f
        return f2 * f2
    a = f.abs()
    return a if p == 1 else a.pow(p)


def spatial_attention(f: torch.Tensor, p: float = 4.0) -> torch.Tensor:
    """Spatial attention: ``(B, C, H, W)`` float -> ``(B, H*W)``, each row of unit L2 norm (zero rows stay 0)."""
    return F.normalize(_abs_pow(f, p).sum(dim=1).flatten(1), dim=1)


def channel_attention(f: torch.Tensor, p: float = 4.0) -> torch.Tensor:
    """Channel attention: ``(B, C, H, W)`` float -> ``(B, C)``, each row of unit L2 norm (zero rows stay 0)."""
    return F.normalize(_abs_pow(f, p).sum(dim=(2, 3)), dim=1)


def attention_maps(f: torch.Tensor, p: float = 4.0, *, spatial: bool = True,
                   channel: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Both maps of one feature map from a single ``|f|^p`` pass: ``(a_s (B, H*W) | None, a_c (B, C) | None)``.

    Equal to ``(spatial_attention(f, p), channel_attention(f, p))``; the loss uses this so that ``|f|^p`` of a
    large real batch (e.g. 640 x 128 x 32 x 32 floats) is computed and kept once, not twice.
    """
    e = _abs_pow(f, p)
    a_s = F.normalize(e.sum(dim=1).flatten(1), dim=1) if spatial else None
    a_c = F.normalize(e.sum(dim=(2, 3)), dim=1) if channel else None
    return a_s, a_c
