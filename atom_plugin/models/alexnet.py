"""AlexNet in the small-image form of the DC/DSA/DM cross-architecture tables (Zhao et al., ICLR 2021).

Five convolutions, ReLU, three max-pools, one linear layer; no normalisation, no dropout:

    conv5x5(C, 128, pad 2; pad 4 for 28x28) -> ReLU -> maxpool2
    conv5x5(128, 192, pad 2) -> ReLU -> maxpool2
    conv3x3(192, 256, pad 1) -> ReLU
    conv3x3(256, 192, pad 1) -> ReLU
    conv3x3(192, 192, pad 1) -> ReLU -> maxpool2
    flatten -> Linear(192 * h * w, num_classes)

A 32x32 input (and a 28x28 one, padded by 4 in the first convolution so that it behaves like 32x32) ends in a
192 x 4 x 4 map: a 3072-d embedding.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ._common import check_io, check_layers
from ._registry import register_model
from .layers import make_activation, make_pool


class AlexNet(nn.Module):
    """DC's AlexNet: images ``(B, C, H, W)`` float32 -> logits ``(B, num_classes)``.

    Args:
        channels: input channels C.
        num_classes: number of classes (output logits).
        image_size: ``(H, W)``. A 28x28 input gets padding 4 in the first convolution (a 32x32 map after it);
            any other size gets padding 2.

    Attributes:
        num_blocks: 5, the five ReLU outputs that ``forward_intermediates`` can return.
        embed_dim: ``192 * h * w`` for the final ``h x w`` map (3072 for 28x28 and 32x32 inputs).
        feature_hw: ``(h, w)`` of the final map.

    Raises:
        ConfigError: bad ``channels``/``num_classes``/``image_size``, or an image too small for the three
            max-pools (smaller than 8x8 in practice).
    """

    def __init__(self, channels: int, num_classes: int, image_size: Sequence[int] = (32, 32)):
        super().__init__()
        size = check_io("AlexNet", channels, num_classes, image_size)  # (H, W)
        h, w = size
        pad0 = 4 if (h, w) == (28, 28) else 2
        # (cin, cout, kernel, padding, pool after the ReLU)
        spec = [(channels, 128, 5, pad0, True), (128, 192, 5, 2, True), (192, 256, 3, 1, False),
                (256, 192, 3, 1, False), (192, 192, 3, 1, True)]
        convs = []
        for i, (cin, cout, k, pad, pool) in enumerate(spec, start=1):
            convs.append(nn.Conv2d(cin, cout, k, padding=pad))
            h, w = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            if pool:
                if h < 2 or w < 2:
                    raise ConfigError(f"AlexNet needs larger images than {size}: "
                                      f"stage {i} would max-pool a {h}x{w} map; use at least 8x8 images")
                h, w = h // 2, w // 2
        self.convs = nn.ModuleList(convs)
        self.pool_after = tuple(s[4] for s in spec)
        self.act = make_activation("relu")
        self.pool = make_pool("maxpool")
        self.feature_hw = (h, w)
        self.embed_dim = 192 * h * w
        self.num_blocks = len(spec)
        self.classifier = nn.Linear(self.embed_dim, num_classes)

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] = ()
                              ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the feature extractor once, returning the matched stage outputs and the embedding.

        timm's name for this entry point; unlike timm's, ``indices`` are 1-based, the maps come first and the
        second output is the classifier's input (see :mod:`atom_plugin.models`).

        Args:
            x: ``(B, C, H, W)`` float32.
            indices: 1-based stage indices (1..5) whose ReLU outputs (before any max-pool) are returned, in the
                order given; repeats are allowed.

        Returns:
            ``(maps, embedding)``: ``maps[i]`` has 128, 192, 256, 192, 192 channels for stages 1..5 and the
            spatial size of that stage's convolution output (32, 16, 8, 8, 8 for a 32x32 input);
            ``embedding`` is ``(B, embed_dim)``, the flattened final map (the classifier's input).

        Raises:
            ConfigError: an index outside ``1..5``.
        """
        indices = check_layers(indices, self.num_blocks, "AlexNet")
        wanted = set(indices)
        acts: dict[int, torch.Tensor] = {}
        for d, (conv, pool) in enumerate(zip(self.convs, self.pool_after), start=1):
            x = self.act(conv(x))
            if d in wanted:
                acts[d] = x
            if pool:
                x = self.pool(x)
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


@register_model("alexnet")
def alexnet(*, channels: int, num_classes: int, image_size) -> AlexNet:
    """DC's small-image AlexNet (no normalisation); see :class:`AlexNet`."""
    return AlexNet(channels, num_classes, image_size)
