"""Argument checks shared by every network family of the registry."""
from __future__ import annotations

from typing import Sequence

from ..errors import ConfigError


def check_layers(layers: Sequence[int], num_blocks: int, model: str) -> list[int]:
    """Validate 1-based block/stage indices for ``forward_features``; returns them as a list of ints.

    Raises:
        ConfigError: an index that is not an int in ``1..num_blocks``.
    """
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= num_blocks:
            raise ConfigError(f"{model} has feature layers 1..{num_blocks}; got layer index {layer!r}")
        out.append(int(layer))
    return out


def check_io(model: str, channels: int, num_classes: int, image_size: Sequence[int]) -> tuple[int, int]:
    """Validate the common constructor arguments; returns ``(H, W)``.

    Raises:
        ConfigError: non-positive channels/num_classes, or an ``image_size`` that is not an int or two positive
            ints.
    """
    if int(channels) < 1 or int(num_classes) < 1:
        raise ConfigError(f"{model} needs channels >= 1 and num_classes >= 1, got {channels} and {num_classes}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"{model} needs image_size (H, W) with positive sides, got {tuple(image_size)}")
    return size  # type: ignore[return-value]
