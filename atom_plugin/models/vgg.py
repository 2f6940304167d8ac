"""VGG-11 in the small-image form of the DC/DSA/DM cross-architecture tables (Zhao et al., ICLR 2021).

Configuration ``[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M]``: each number is
conv3x3(pad 1) -> norm -> ReLU, each ``M`` a 2x2 max-pool; then a linear classifier on the flattened final map.
The first convolution of a 28x28 input gets padding 3 (a 32x32 map after it), as in DC, so a 28x28 or 32x32
input ends in a 512 x 1 x 1 map: a 512-d embedding.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ._registry import register_model
from ._common import check_io, check_layers
from .layers import make_activation, make_norm, make_pool

#: VGG-11's layers: ints are conv widths, ``"M"`` a max-pool.
VGG11_CFG: tuple = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
#: The norms VGG takes (a subset of :data:`atom_plugin.models.NORMS`, built by :func:`~atom_plugin.models.make_norm`).
NORMS = ("instancenorm", "batchnorm")


class VGGStage(nn.Module):
    """conv 3x3 -> norm -> ReLU (the matched activation output) -> optional 2x2 max-pool."""

    def __init__(self, cin: int, cout: int, padding: int, norm: str, pool: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=padding)
        self.norm = make_norm(norm, cout, choices=NORMS, what="VGG norm")
        self.act = make_activation("relu")
        self.pool = make_pool("maxpool" if pool else "none")


class VGG(nn.Module):
    """DC's VGG: images ``(B, C, H, W)`` float32 -> logits ``(B, num_classes)``.

    Args:
        channels: input channels C.
        num_classes: number of classes (output logits).
        image_size: ``(H, W)``.
        norm: ``instancenorm`` (default; GroupNorm(C, C) with affine, DC's choice) or ``batchnorm``.
        cfg: layer configuration (default VGG-11): ints are conv widths, ``"M"`` a max-pool.

    Attributes:
        num_blocks: the number of convolutions (8 for VGG-11), i.e. the ReLU outputs
            ``forward_intermediates`` can return.
        embed_dim: ``512 * h * w`` for the final ``h x w`` map (512 for 28x28 and 32x32 inputs).
        feature_hw: ``(h, w)`` of the final map.

    Raises:
        ConfigError: unknown ``norm``; bad ``channels``/``num_classes``/``image_size``; an image too small for
            the five max-pools (VGG-11 needs at least 32x32, or 28x28 with its padding).
    """

    def __init__(self, channels: int, num_classes: int, image_size: Sequence[int] = (32, 32), *,
                 norm: str = "instancenorm", cfg: Sequence = VGG11_CFG, name: str = "VGG11"):
        super().__init__()
        check_choice(norm, f"{name} norm", NORMS)
        size = check_io(name, channels, num_classes, image_size)  # (H, W)
        h, w = size
        cfg = list(cfg)
        if not cfg or cfg[0] == "M":
            raise ConfigError(f"{name} configuration must start with a convolution width, got {cfg}")
        stages = []
        cin = channels
        for i, v in enumerate(cfg):
            if v == "M":
                continue
            first = not stages
            pad = 3 if (first and (h, w) == (28, 28)) else 1
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            pool = i + 1 < len(cfg) and cfg[i + 1] == "M"
            if pool:
                if h < 2 or w < 2:
                    raise ConfigError(f"{name} needs larger images than {size}: convolution "
                                      f"{len(stages) + 1} would max-pool a {h}x{w} map; use 32x32 (or 28x28) images")
            stages.append(VGGStage(cin, int(v), pad, norm, pool))
            if pool:
                h, w = h // 2, w // 2
            cin = int(v)
        self.stages = nn.ModuleList(stages)
        self.feature_hw = (h, w)
        self.embed_dim = cin * h * w
        self.num_blocks = len(stages)
        self.classifier = nn.Linear(self.embed_dim, num_classes)
        self._name = name

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] = ()
                              ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the feature extractor once, returning the matched stage outputs and the embedding.

        timm's name for this entry point; unlike timm's, ``indices`` are 1-based, the maps come first and the
        second output is the classifier's input (see :mod:`atom_plugin.models`).

        Args:
            x: ``(B, C, H, W)`` float32.
            indices: 1-based convolution indices (1..num_blocks) whose ReLU outputs (after norm and ReLU, before
                any max-pool) are returned, in the order given; repeats are allowed.

        Returns:
            ``(maps, embedding)``: for VGG-11 on a 32x32 input ``maps[i]`` is ``(B, C_l, S_l, S_l)`` with
            ``(C_l, S_l)`` = (64, 32), (128, 16), (256, 8), (256, 8), (512, 4), (512, 4), (512, 2), (512, 2)
            for l = 1..8; ``embedding`` is ``(B, embed_dim)``, the flattened final map.

        Raises:
            ConfigError: an index outside ``1..num_blocks``.
        """
        indices = check_layers(indices, self.num_blocks, self._name)
        wanted = set(indices)
        acts: dict[int, torch.Tensor] = {}
        for d, stage in enumerate(self.stages, start=1):
            x = stage.act(stage.norm(stage.conv(x)))
            if d in wanted:
                acts[d] = x
            x = stage.pool(x)
        return [acts[i] for i in indices], x.flatten(1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features before the classifier head (timm's ``forward_features``): ``(B, C, H, W)`` float32 ->
        ``(B, embed_dim)`` float32, the flattened final map."""
        return self.forward_intermediates(x, ())[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`forward_features`: ``(B, C, H, W)`` -> ``(B, embed_dim)`` embedding."""
        return self.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` float32 -> ``(B, num_classes)`` logits."""
        return self.classifier(self.forward_features(x))


@register_model("vgg11")
def vgg11(*, channels: int, num_classes: int, image_size, norm: str = "instancenorm") -> VGG:
    """DC's small-image VGG-11 (default instancenorm = GroupNorm(C, C); ``norm="batchnorm"`` for VGG-11-BN)."""
    return VGG(channels, num_classes, image_size, norm=norm, cfg=VGG11_CFG, name="VGG11")
