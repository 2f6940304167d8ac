"""The model registry: the single extension point for network families (in the spirit of timm's)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Decorator: register ``fn(*, channels, num_classes, image_size, **kwargs) -> nn.Module`` under ``name``.

    A registered model must implement ``forward(x) -> logits`` and
    ``forward_features(x, layers) -> (list of feature maps, embedding (B, D))`` and expose ``num_blocks``.
    """

    def deco(fn):
        key = name.lower()
        if key in _MODELS:
            raise ConfigError(f"model {name!r} is already registered")
        _MODELS[key] = fn
        return fn

    return deco


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted(_MODELS)


def build_model(name: str, *, channels: int, num_classes: int, image_size, **kwargs) -> nn.Module:
    """Build a freshly initialised network by registry name.

    Args:
        name: e.g. ``"convnet"``, ``"alexnet"``, ``"vgg11"``, ``"resnet18"`` (see :func:`list_models`).
        channels: input channels C; num_classes: output logits; image_size: ``(H, W)`` or an int.
        **kwargs: family options (for ConvNet: width, depth, norm, act, pool).

    Raises:
        ConfigError: unknown name, or options that give no valid network for this image size.
    """
    key = str(name).lower()
    if key not in _MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    return _MODELS[key](channels=channels, num_classes=num_classes, image_size=tuple(image_size), **kwargs)
