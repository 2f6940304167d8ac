"""ConvNet, the network of the DC/DSA/DM/DataDAM family (Zhao et al., ICLR 2021; Zhao & Bilen, WACV 2023).

Block = Conv3x3(width) -> norm -> activation -> pool(2); ``depth`` blocks; then a linear classifier on the
flattened map. ConvNet-3 with width 128 on a 32x32 input gives a 128*4*4 = 2048-d embedding. A 28x28 input
(MNIST, Fashion-MNIST) gets padding 3 in the first convolution, as in DC, so it behaves like a 32x32 input.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ._common import check_layers, image_hw
from ._registry import register_model
from .layers import ACTIVATIONS, NORMS, POOLINGS, make_activation, make_norm, make_pool

__all__ = ["ACTIVATIONS", "NORMS", "POOLINGS", "ConvNet", "ConvNetBlock"]


class ConvNetBlock(nn.Module):
    """conv 3x3 -> norm -> act (the matched "activation output") -> pool."""

    def __init__(self, cin: int, cout: int, padding: int, hw: tuple[int, int], norm: str, act: str, pool: str):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=padding)
        self.norm = make_norm(norm, cout, hw)
        self.act = make_activation(act)
        self.pool = make_pool(pool)


class ConvNet(nn.Module):
    """ConvNet-D of width W: images ``(B, C, H, W)`` float32 -> logits ``(B, num_classes)``.

    Args:
        channels: input channels C.
        num_classes: number of classes (output logits).
        image_size: ``(H, W)``.
        width: channels of every conv (default 128).
        depth: number of blocks (default 3).
        norm: one of ``instancenorm`` (default; GroupNorm(C, C)), ``batchnorm``, ``groupnorm`` (4 groups),
            ``layernorm`` (over C, H, W), ``none``.
        act: ``relu`` | ``sigmoid`` | ``leakyrelu``.
        pool: ``avgpool`` | ``maxpool`` | ``none``.

    Raises:
        ConfigError: unknown option, or a depth whose pooling would shrink the map below 1x1.
    """

    def __init__(self, channels: int, num_classes: int, image_size: Sequence[int] = (32, 32), *, width: int = 128,
                 depth: int = 3, norm: str = "instancenorm", act: str = "relu", pool: str = "avgpool"):
        super().__init__()
        check_choice(norm, "ConvNet norm", NORMS)
        check_choice(act, "ConvNet act", ACTIVATIONS)
        check_choice(pool, "ConvNet pool", POOLINGS)
        if depth < 1 or width < 1:
            raise ConfigError(f"ConvNet needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
        image_size = image_hw(image_size)
        h, w = image_size
        blocks = []
        cin = channels
        for d in range(depth):
            pad = 3 if (d == 0 and (h, w) == (28, 28)) else 1
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            blocks.append(ConvNetBlock(cin, width, pad, (h, w), norm, act, pool))
            cin = width
            if pool != "none":
                if h < 2 or w < 2:
                    raise ConfigError(
                        f"ConvNet depth {depth} with {pool} needs larger images than {tuple(image_size)}: "
                        f"block {d + 1} would pool a {h}x{w} map; use a smaller depth or pool='none'"
                    )
                h, w = h // 2, w // 2
        self.blocks = nn.ModuleList(blocks)
        self.embed_dim = width * h * w
        self.feature_hw = (h, w)
        self.flatten = nn.Flatten()  # a named module, so a forward hook can read the embedding
        self.classifier = nn.Linear(self.embed_dim, num_classes)
        self.num_blocks = depth

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] = ()
                              ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the feature extractor once, returning the matched block outputs and the embedding.

        timm's name for this entry point; unlike timm's, ``indices`` are 1-based, the maps come first and the
        second output is the classifier's input (see :mod:`atom_plugin.models`).

        Args:
            x: ``(B, C, H, W)`` float32.
            indices: 1-based block indices whose activation outputs (after norm and activation, before pooling;
                DataDAM's matched ReLU outputs) are returned, in the order given; repeats are allowed.

        Raises:
            ConfigError: an index outside ``1..depth``.

        Returns:
            ``(maps, embedding)``: ``maps[i]`` is ``(B, width, H_i, W_i)`` float32 (32, 16, 8 for ConvNet-3 on a
            32x32 or 28x28 input); ``embedding`` is ``(B, embed_dim)`` float32, the flattened output of the last
            block (the input of the classifier, = :meth:`forward_features`).
        """
        indices = check_layers(indices, self.num_blocks, "ConvNet")
        wanted = set(indices)
        by_block: dict[int, torch.Tensor] = {}
        for d, block in enumerate(self.blocks, start=1):
            x = block.act(block.norm(block.conv(x)))
            if d in wanted:
                by_block[d] = x
            x = block.pool(x)
        return [by_block[d] for d in indices], self.flatten(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features before the classifier head (timm's ``forward_features``): ``(B, C, H, W)`` float32 ->
        ``(B, embed_dim)`` float32, the flattened output of the last block (its pooled map when pooling)."""
        return self.forward_intermediates(x, ())[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`forward_features`: ``(B, C, H, W)`` -> ``(B, embed_dim)`` embedding."""
        return self.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` float32 -> ``(B, num_classes)`` logits."""
        return self.classifier(self.forward_features(x))


@register_model("convnet")
def convnet(*, channels: int, num_classes: int, image_size, width: int = 128, depth: int = 3,
            norm: str = "instancenorm", act: str = "relu", pool: str = "avgpool") -> ConvNet:
    """ConvNet-D (default ConvNet-3, width 128, instancenorm, ReLU, average pooling)."""
    return ConvNet(channels, num_classes, image_size, width=width, depth=depth, norm=norm, act=act, pool=pool)


@register_model("convnet-bn")
def convnet_bn(*, channels: int, num_classes: int, image_size, **kwargs) -> ConvNet:
    """ConvNet-3 with BatchNorm, the network DataDAM's official code builds."""
    kwargs.setdefault("norm", "batchnorm")
    return ConvNet(channels, num_classes, image_size, **kwargs)
