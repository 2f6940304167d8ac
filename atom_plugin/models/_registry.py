"""The model registry: the single extension point for network families (in the spirit of timm's)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..errors import ConfigError
from ._common import image_hw

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Decorator: register ``fn(*, channels, num_classes, image_size, **kwargs) -> nn.Module`` under ``name``.

    ``fn`` receives ``image_size`` already normalised to an ``(H, W)`` tuple of ints (:func:`image_hw`).
    A registered model must implement ``forward(x) -> logits (B, num_classes)``,
    ``forward_intermediates(x, indices) -> (list of feature maps, embedding (B, D))`` (``indices`` 1-based, the
    maps in the order asked for; the embedding is the classifier's input) and expose ``num_blocks`` (the largest
    index). The built-in networks also have ``forward_features(x) -> (B, D)`` (timm's name for the features
    before the classifier head), its alias ``embed(x)`` (the herding baseline calls it) and a ``classifier``
    module (IDM's class-aware term calls it). The contract is documented, not checked at registration.

    Raises:
        ConfigError: ``name`` is already registered (case-insensitive).
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


def is_model(name) -> bool:
    """True when :func:`build_model` knows ``name`` (case-insensitive, like :func:`build_model`); never raises."""
    return str(name).lower() in _MODELS


def check_model(name) -> str:
    """Check a model name the way :func:`build_model` does; returns its registry key (lower case).

    Raises:
        ConfigError: ``"unknown model 'x'; choose one of: alexnet, convnet, ..."``.
    """
    if not is_model(name):
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return str(name).lower()


def build_model(name: str, *, channels: int, num_classes: int, image_size, **kwargs) -> nn.Module:
    """Build a freshly initialised network by registry name.

    Args:
        name: e.g. ``"convnet"``, ``"alexnet"``, ``"vgg11"``, ``"resnet18"`` (see :func:`list_models`).
        channels: input channels C.
        num_classes: output logits.
        image_size: ``(H, W)`` or an int (normalised by :func:`image_hw`).
        **kwargs: family options (for ConvNet: width, depth, norm, act, pool).

    Returns:
        An ``nn.Module`` taking ``(B, C, H, W)`` float32 images to ``(B, num_classes)`` logits, with PyTorch's
        default initialisation (drawn from the global RNG).

    Raises:
        ConfigError: unknown name, a bad ``image_size``, or options that give no valid network for this image
            size.
    """
    key = check_model(name)
    return _MODELS[key](channels=channels, num_classes=num_classes, image_size=image_hw(image_size), **kwargs)
