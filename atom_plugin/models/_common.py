"""Argument checks shared by every network family of the registry (and by the data loaders and adapters)."""
from __future__ import annotations

from typing import Sequence

from ..errors import ConfigError


def image_hw(image_size, *, name: str = "image_size") -> tuple[int, int]:
    """The one normalisation of an image size: an int ``n`` -> ``(n, n)``; a pair ``(H, W)`` -> ``(H, W)``.

    Args:
        image_size: a positive int, or a sequence of exactly two positive whole numbers (ints, NumPy/PyTorch
            integers, ``torch.Size``, or floats with an integral value such as ``32.0``).
        name: how the error message names the argument.

    Returns:
        ``(H, W)``, a tuple of two Python ints >= 1.

    Raises:
        ConfigError: a bool, a non-positive side, a fractional or non-numeric side, or not exactly two sides:
            ``"image_size must be a positive int or (height, width), got (0, 32)"``.
    """
    hw = None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        hw = (image_size, image_size)
    elif not isinstance(image_size, (str, bytes)):
        try:
            sides = tuple(image_size)
            if len(sides) == 2 and not any(isinstance(v, (bool, str, bytes)) for v in sides):
                as_int = tuple(int(v) for v in sides)
                if as_int == sides:  # rejects 32.5 (int() would truncate it); accepts 32.0 and NumPy ints
                    hw = as_int
        except (TypeError, ValueError, OverflowError):
            hw = None
    if hw is None or hw[0] < 1 or hw[1] < 1:
        raise ConfigError(f"{name} must be a positive int or (height, width), got {image_size!r}")
    return int(hw[0]), int(hw[1])


def check_layers(layers: Sequence[int], num_blocks: int, model: str) -> list[int]:
    """Validate 1-based block/stage indices for ``forward_intermediates``; returns them as a list of ints.

    Raises:
        ConfigError: an index that is not an int in ``1..num_blocks``.
    """
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= num_blocks:
            raise ConfigError(f"{model} has feature layers 1..{num_blocks}; got layer index {layer!r}")
        out.append(int(layer))
    return out


def check_io(model: str, channels: int, num_classes: int, image_size) -> tuple[int, int]:
    """Validate the common constructor arguments; returns ``(H, W)`` (see :func:`image_hw`).

    Raises:
        ConfigError: non-positive channels/num_classes, or an ``image_size`` that is not a positive int or two
            positive ints.
    """
    if int(channels) < 1 or int(num_classes) < 1:
        raise ConfigError(f"{model} needs channels >= 1 and num_classes >= 1, got {channels} and {num_classes}")
    return image_hw(image_size)
