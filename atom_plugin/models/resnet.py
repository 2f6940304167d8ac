"""ResNet-18 in the small-image form of the DC/DSA/DM cross-architecture tables (Zhao et al., ICLR 2021).

CIFAR-style ResNet (He et al., CVPR 2016): a 3x3 stride-1 stem convolution -> norm -> ReLU (no max-pool), four
residual layers of two BasicBlocks each, widths 64/128/256/512 and strides 1/2/2/2, global average pooling and a
``Linear(512, num_classes)`` classifier. Convolutions have no bias (a norm follows each one). A BasicBlock is
conv3x3 -> norm -> ReLU -> conv3x3 -> norm, plus a shortcut (identity, or conv1x1 -> norm when the stride or
width changes), then ReLU. A 32x32 input ends in a 512 x 4 x 4 map (28x28: 512 x 4 x 4 as well, via
28 -> 14 -> 7 -> 4); the embedding is its 512-d spatial average.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_choice
from ._registry import register_model
from ._common import check_io, check_layers
from .layers import make_norm

#: The norms ResNet takes (a subset of :data:`atom_plugin.models.NORMS`, built by
#: :func:`~atom_plugin.models.make_norm`).
NORMS = ("instancenorm", "batchnorm")


def _norm(kind: str, channels: int) -> nn.Module:
    return make_norm(kind, channels, choices=NORMS, what="ResNet norm")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut: ``(B, cin, H, W)`` -> ``(B, cout, ceil(H/s), ceil(W/s))``."""

    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.norm2 = _norm(norm, cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), _norm(norm, cout))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """DC's small-image ResNet: images ``(B, C, H, W)`` float32 -> logits ``(B, num_classes)``.

    Args:
        channels: input channels C.
        num_classes: number of classes (output logits).
        image_size: ``(H, W)``.
        norm: ``instancenorm`` (default; GroupNorm(C, C) with affine, DC's choice) or ``batchnorm``.
        num_blocks_per_layer: BasicBlocks in each of the four residual layers (default ``(2, 2, 2, 2)``:
            ResNet-18).

    Attributes:
        num_blocks: 4, the residual layers whose outputs ``forward_intermediates`` can return.
        embed_dim: 512 (global average pool of the last layer).
        feature_hw: ``(h, w)`` of the last layer's map before pooling (4x4 for 28x28 and 32x32 inputs).

    Raises:
        ConfigError: unknown ``norm``; bad ``channels``/``num_classes``/``image_size``; an image smaller than
            8x8 (the last layer would see a 1x1 map).
    """

    widths = (64, 128, 256, 512)
    strides = (1, 2, 2, 2)

    def __init__(self, channels: int, num_classes: int, image_size: Sequence[int] = (32, 32), *,
                 norm: str = "instancenorm", num_blocks_per_layer: Sequence[int] = (2, 2, 2, 2),
                 name: str = "ResNet18"):
        super().__init__()
        check_choice(norm, f"{name} norm", NORMS)
        h, w = check_io(name, channels, num_classes, image_size)
        if h < 8 or w < 8:
            raise ConfigError(f"{name} needs images of at least 8x8, got {(h, w)}")
        if len(num_blocks_per_layer) != 4 or min(num_blocks_per_layer) < 1:
            raise ConfigError(f"{name} needs four residual layers of >= 1 block, got {tuple(num_blocks_per_layer)}")
        self.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        self.norm1 = _norm(norm, 64)
        layers = []
        cin = 64
        for width, stride, n in zip(self.widths, self.strides, num_blocks_per_layer):
            blocks = []
            for s in [stride] + [1] * (int(n) - 1):
                blocks.append(BasicBlock(cin, width, s, norm))
                cin = width
            layers.append(nn.Sequential(*blocks))
            h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        self.layers = nn.ModuleList(layers)
        self.feature_hw = (h, w)
        self.embed_dim = cin
        self.num_blocks = len(layers)
        self.classifier = nn.Linear(self.embed_dim, num_classes)
        self._name = name

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] = ()
                              ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Run the feature extractor once, returning the matched residual-layer outputs and the embedding.

        timm's name for this entry point; unlike timm's, ``indices`` are 1-based, the maps come first and the
        second output is the classifier's input (see :mod:`atom_plugin.models`).

        Args:
            x: ``(B, C, H, W)`` float32.
            indices: 1-based residual-layer indices (1..4) whose outputs (after the final ReLU of the layer's last
                block) are returned, in the order given; repeats are allowed.

        Returns:
            ``(maps, embedding)``: on a 32x32 input ``maps[i]`` is ``(B, 64, 32, 32)``, ``(B, 128, 16, 16)``,
            ``(B, 256, 8, 8)`` or ``(B, 512, 4, 4)`` for layers 1..4 (28x28: 28, 14, 7, 4); ``embedding`` is
            ``(B, 512)``, the spatial mean of layer 4's output (the classifier's input).

        Raises:
            ConfigError: an index outside ``1..4``.
        """
        indices = check_layers(indices, self.num_blocks, self._name)
        wanted = set(indices)
        acts: dict[int, torch.Tensor] = {}
        x = F.relu(self.norm1(self.conv1(x)))
        for d, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if d in wanted:
                acts[d] = x
        return [acts[i] for i in indices], F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features before the classifier head (timm's ``forward_features`` followed by its pre-logits global
        pool): ``(B, C, H, W)`` float32 -> ``(B, 512)`` float32, the spatial mean of layer 4's output."""
        return self.forward_intermediates(x, ())[1]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`forward_features`: ``(B, C, H, W)`` -> ``(B, 512)`` embedding."""
        return self.forward_features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` float32 -> ``(B, num_classes)`` logits."""
        return self.classifier(self.forward_features(x))


@register_model("resnet18")
def resnet18(*, channels: int, num_classes: int, image_size, norm: str = "instancenorm") -> ResNet:
    """DC's small-image ResNet-18 (default instancenorm = GroupNorm(C, C); ``norm="batchnorm"`` for ResNet-18-BN)."""
    return ResNet(channels, num_classes, image_size, norm=norm, num_blocks_per_layer=(2, 2, 2, 2), name="ResNet18")
