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

import warnings
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


def _term_weights(num_maps: int, w: LossWeights) -> list[float]:
    """The weight of each statistic, in the order of :func:`_terms` and of :func:`real_statistics`' list."""
    per_map = [x for x in (w.w_spatial, w.w_channel) if x > 0]
    return per_map * num_maps + ([w.w_embed] if w.w_embed > 0 else [])


def _terms(maps: list[torch.Tensor], embedding: torch.Tensor, w: LossWeights) -> list[torch.Tensor]:
    """The per-sample statistics that enter the loss, ``(B, D_j)`` each, weighted by :func:`_term_weights`."""
    stats = []
    for f in maps:
        a_s, a_c = attention_maps(f, w.power, spatial=w.w_spatial > 0, channel=w.w_channel > 0)
        stats += [a for a in (a_s, a_c) if a is not None]
    if w.w_embed > 0:
        stats.append(embedding.flatten(1))
    return stats


def _cat(xs: list[torch.Tensor]) -> torch.Tensor:
    return xs[0] if len(xs) == 1 else torch.cat(xs, dim=1)


@torch.no_grad()
def real_statistics(maps: list[torch.Tensor], embedding: torch.Tensor, num_classes: int,
                    weights: LossWeights) -> list[torch.Tensor]:
    """Class means of the real batch's attention maps and embedding: a list of ``(K, D_j)`` float tensors.

    Args:
        maps: matched feature maps of the real batch, each ``(K*n_real, C, H, W)``, class-major.
        embedding: ``(K*n_real, D)``.
        num_classes: K, the number of classes in the batch.
        weights: the loss weights (a zero weight drops its term).
    """
    stats = _terms(maps, embedding, weights)
    means = class_means(_cat(stats), num_classes)  # one reduction for all terms
    return list(means.split([s.shape[1] for s in stats], dim=1))


def statistic_weights(real_stats: list[torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """``(sum_j D_j,)`` float: the loss weight of every column of :func:`real_statistics`' output, concatenated
    (on its device). Pass it as ``matching_loss(..., column_weights=...)`` to build it once per run."""
    per_map = int(weights.w_spatial > 0) + int(weights.w_channel > 0)
    num_maps = (len(real_stats) - int(weights.w_embed > 0)) // per_map if per_map else 0
    term_w = _term_weights(num_maps, weights)
    return torch.cat([s.new_full((s.shape[1],), w) for w, s in zip(term_w, real_stats, strict=True)])


def matching_loss(real_stats: list[torch.Tensor], syn_maps: list[torch.Tensor], syn_embedding: torch.Tensor,
                  num_classes: int, weights: LossWeights, *, column_weights: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """The ATOM-style loss L above (a 0-d float tensor, differentiable w.r.t. the synthetic side).

    All terms are reduced together: one class-mean over the concatenated statistics, one weighted sum of
    squares (equal to the term-by-term sum up to float summation order).

    Args:
        real_stats: output of :func:`real_statistics` for the same layers and weights.
        syn_maps: the synthetic batch's matched maps, each ``(K*ipc, C, H, W)``, class-major.
        syn_embedding: ``(K*ipc, D)``.
        num_classes: K, the number of classes in both batches.
        weights: the loss weights ``real_stats`` was computed with.
        column_weights: :func:`statistic_weights` of ``real_stats`` (built here when None).
    """
    syn = class_means(_cat(_terms(syn_maps, syn_embedding, weights)), num_classes)
    if column_weights is None:
        column_weights = statistic_weights(real_stats, weights)
    d = syn - _cat(real_stats)  # syn first: its gradient passes the subtraction without a negation
    return (d * d * column_weights).sum()


def atom_loss(real_maps: list[torch.Tensor], real_embedding: torch.Tensor, syn_maps: list[torch.Tensor],
              syn_embedding: torch.Tensor, num_classes: int, weights: LossWeights) -> torch.Tensor:
    """Deprecated: the loss's one public name is :func:`matching_loss`. This equals
    ``matching_loss(real_statistics(real_maps, real_embedding, num_classes, weights), syn_maps, syn_embedding,
    num_classes, weights)`` and warns (DeprecationWarning).

    Args:
        real_maps: as :func:`real_statistics`' ``maps``.
        real_embedding: as :func:`real_statistics`' ``embedding``.
        syn_maps: as :func:`matching_loss`'s.
        syn_embedding: as :func:`matching_loss`'s.
        num_classes: K.
        weights: the loss weights.
    """
    warnings.warn("atom_plugin.loss.atom_loss is deprecated; use atom_plugin.loss.matching_loss(real_statistics(...), "
                  "...)", DeprecationWarning, stacklevel=2)
    return matching_loss(real_statistics(real_maps, real_embedding, num_classes, weights),
                         syn_maps, syn_embedding, num_classes, weights)
