"""The ATOM-style matching loss (reconstructed from the ATOM and DataDAM papers) -- the heart of the library.

With classes k, matched layers l, real batch T_k and synthetic images S_k of class k, and the network's
flattened embedding phi (the input of its classifier):

    L = sum_k sum_l [ w_s || mean_{T_k} a_s(f_l) - mean_{S_k} a_s(f_l) ||^2
                    + w_c || mean_{T_k} a_c(f_l) - mean_{S_k} a_c(f_l) ||^2 ]
        + w_e sum_k || mean_{T_k} phi(x) - mean_{S_k} phi(s) ||^2

* the attention terms: DataDAM's spatial attention matching (Sajedi et al., ICCV 2023, Eq. 3-4) and ATOM's
  channel-attention counterpart (Khaki et al., CVPRW 2024, Sec. 3); a_s, a_c in :mod:`atom_plugin.attention`;
* the last term: DM's linear-kernel MMD on the final embedding (Zhao & Bilen, WACV 2023, Eq. 3).

Batches are laid out class-major: ``n_real`` rows for each class, then ``ipc`` rows for each, classes in the
same order on both sides. The real side needs no graph: :func:`real_statistics` reduces it to class means once,
under ``no_grad``, and :func:`matching_loss` compares the synthetic side against them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .attention import attention_maps


@dataclass(frozen=True)
class LossWeights:
    """The resolved loss fields of an :class:`atom_plugin.ATOMConfig` (see there)."""

    w_spatial: float
    w_channel: float
    w_embed: float
    power: float

    @classmethod
    def from_config(cls, cfg) -> "LossWeights":
        return cls(float(cfg.w_spatial), float(cfg.w_channel), float(cfg.w_embed), float(cfg.power))


def class_means(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(K*n, D...)`` class-major rows -> ``(K, D)`` per-class means (trailing dims flattened)."""
    return x.reshape(num_classes, x.shape[0] // num_classes, -1).mean(dim=1)


def _terms(maps: list[torch.Tensor], embedding: torch.Tensor, num_classes: int, w: LossWeights):
    """The per-class mean statistics that enter the loss, as a list of ``(weight, (K, D) tensor)``."""
    stats = []
    for f in maps:
        a_s, a_c = attention_maps(f, w.power, spatial=w.w_spatial > 0, channel=w.w_channel > 0)
        if a_s is not None:
            stats.append((w.w_spatial, class_means(a_s, num_classes)))
        if a_c is not None:
            stats.append((w.w_channel, class_means(a_c, num_classes)))
    if w.w_embed > 0:
        stats.append((w.w_embed, class_means(embedding, num_classes)))
    return stats


@torch.no_grad()
def real_statistics(maps: list[torch.Tensor], embedding: torch.Tensor, num_classes: int,
                    weights: LossWeights) -> list[torch.Tensor]:
    """Class means of the real batch's attention maps and embedding: a list of ``(K, D)`` float tensors.

    Args:
        maps: matched feature maps of the real batch, each ``(K*n_real, C, H, W)``, class-major.
        embedding: ``(K*n_real, D)``.
    """
    return [s for _, s in _terms(maps, embedding, num_classes, weights)]


def matching_loss(real_stats: list[torch.Tensor], syn_maps: list[torch.Tensor], syn_embedding: torch.Tensor,
                  num_classes: int, weights: LossWeights) -> torch.Tensor:
    """The ATOM-style loss L above (a 0-d float tensor, differentiable w.r.t. the synthetic side).

    Args:
        real_stats: output of :func:`real_statistics` for the same layers and weights.
        syn_maps: the synthetic batch's matched maps, each ``(K*ipc, C, H, W)``, class-major.
        syn_embedding: ``(K*ipc, D)``.
        num_classes: K, the number of classes in both batches.
    """
    syn = _terms(syn_maps, syn_embedding, num_classes, weights)
    loss = syn_embedding.new_zeros(())
    for (w, s), r in zip(syn, real_stats):
        loss = loss + w * (r - s).pow(2).sum()
    return loss


def atom_loss(real_maps: list[torch.Tensor], real_embedding: torch.Tensor, syn_maps: list[torch.Tensor],
              syn_embedding: torch.Tensor, num_classes: int, weights: LossWeights) -> torch.Tensor:
    """Convenience: the loss from both sides' raw features (the real side is detached). See the module doc."""
    return matching_loss(real_statistics(real_maps, real_embedding, num_classes, weights),
                         syn_maps, syn_embedding, num_classes, weights)
