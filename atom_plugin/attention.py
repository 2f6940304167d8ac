"""Attention maps of a feature map, the quantities ATOM and DataDAM match.

For a feature map ``f`` of shape ``(B, C, H, W)`` and power ``p``:

* spatial attention  ``a_s(f) = normalize_2( flatten_{h,w} sum_c |f[:, c]|^p )``       -> ``(B, H*W)``
  (DataDAM, Sajedi et al., ICCV 2023, Eq. 2; Zagoruyko & Komodakis' attention transfer, ICLR 2017)
* channel attention  ``a_c(f) = normalize_2( (sum_{h,w} |f[:, c, h, w]|^p)_c )``          -> ``(B, C)``
  (ATOM, Khaki et al., CVPRW 2024, Sec. 3: the channel-wise counterpart; its exact formula was never
  published in code, so this is our reconstruction.)

``normalize_2`` divides each row by its L2 norm (eps 1e-12, as ``torch.nn.functional.normalize``); with a
graph it is one autograd node whose backward is the closed form ``(g - y <g, y>) / max(||x||, eps)`` (the
``<g, y>`` part only for rows whose norm reached eps, as autograd through the clamp gives): the gradient
``F.normalize`` gives, up to float rounding, in 6 kernels instead of about 14.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


_EPS = 1e-12


class _UnitRows(torch.autograd.Function):
    """``x / max(||x||_2, eps)`` over dim 1 of a 2-D tensor, with a closed-form backward."""

    @staticmethod
    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = torch.linalg.vector_norm(x, 2, dim=1, keepdim=True)
        d = n.clamp_min(_EPS)
        return x / d, d, n >= _EPS

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        y, d, through = output
        ctx.mark_non_differentiable(d, through)
        ctx.set_materialize_grads(False)  # no zero tensors for the non-differentiable outputs' gradients
        ctx.save_for_backward(y, d, through)

    @staticmethod
    def backward(ctx, g: torch.Tensor | None, _gd, _gt) -> torch.Tensor | None:
        if g is None:
            return None
        y, d, through = ctx.saved_tensors
        c = (g * y).sum(dim=1, keepdim=True) * through  # the norm's share; none where the clamp held it at eps
        return (g - y * c) / d


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """``F.normalize(x, dim=1)`` for ``(B, D)`` float ``x``; through :class:`_UnitRows` when a graph is built."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _UnitRows.apply(x)[0]
    return F.normalize(x, dim=1, eps=_EPS)


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
    return _unit_rows(_abs_pow(f, p).sum(dim=1).flatten(1))


def channel_attention(f: torch.Tensor, p: float = 4.0) -> torch.Tensor:
    """Channel attention: ``(B, C, H, W)`` float -> ``(B, C)``, each row of unit L2 norm (zero rows stay 0)."""
    return _unit_rows(_abs_pow(f, p).sum(dim=(2, 3)))


def attention_maps(f: torch.Tensor, p: float = 4.0, *, spatial: bool = True,
                   channel: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Both maps of one feature map from a single ``|f|^p`` pass: ``(a_s (B, H*W) | None, a_c (B, C) | None)``.

    Equal to ``(spatial_attention(f, p), channel_attention(f, p))``; the loss uses this so that ``|f|^p`` of a
    large real batch (e.g. 640 x 128 x 32 x 32 floats) is computed and kept once, not twice.
    """
    e = _abs_pow(f, p)
    a_s = _unit_rows(e.sum(dim=1).flatten(1)) if spatial else None
    a_c = _unit_rows(e.sum(dim=(2, 3))) if channel else None
    return a_s, a_c
