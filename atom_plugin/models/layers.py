"""The one home of the layer choices the networks build from names: normalisation, activation, pooling.

Every network family of the registry (ConvNet, VGG, ResNet, AlexNet) and the NNI search space take their choices
from here, so a name means the same layer everywhere:

* ``NORMS``: ``instancenorm`` is DC's "instancenorm", i.e. ``GroupNorm(C, C)`` with affine (per-channel
  statistics, as in the DC/DSA/DM code); ``batchnorm`` is ``BatchNorm2d(C)``; ``groupnorm`` is
  ``GroupNorm(4, C)`` with affine; ``layernorm`` is DC's layernorm, ``LayerNorm([C, H, W])`` with element-wise
  affine (so it needs the map size); ``none`` is the identity.
* ``ACTIVATIONS``: ``relu``, ``sigmoid``, ``leakyrelu`` (negative slope 0.01).
* ``POOLINGS``: ``avgpool`` and ``maxpool`` (2x2, stride 2), ``none``.

Source: the ``_get_normlayer`` / ``_get_activation`` / ``_get_pooling`` methods of DC's ``ConvNet``
(Zhao et al., ICLR 2021; github.com/VICO-UoE/DatasetCondensation, ``networks.py``).
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import ConfigError, check_choice

#: Normalisation layers by name (:func:`make_norm`).
NORMS: tuple[str, ...] = ("instancenorm", "batchnorm", "groupnorm", "layernorm", "none")
#: Activations by name (:func:`make_activation`).
ACTIVATIONS: tuple[str, ...] = ("relu", "sigmoid", "leakyrelu")
#: Poolings by name (:func:`make_pool`).
POOLINGS: tuple[str, ...] = ("avgpool", "maxpool", "none")


def make_norm(name: str, channels: int, hw: Sequence[int] | None = None, *,
              choices: Sequence[str] = NORMS, what: str = "norm") -> nn.Module:
    """A fresh normalisation layer for ``(B, channels, H, W)`` float maps (output of the same shape).

    Args:
        name: one of ``choices`` (default :data:`NORMS`).
        channels: C, the channels of the map it normalises.
        hw: ``(H, W)`` of the map; needed by ``layernorm`` only (it normalises over ``(C, H, W)``).
        choices: the subset of :data:`NORMS` a network family allows (VGG and ResNet:
            ``("instancenorm", "batchnorm")``).
        what: how the error message names the option (e.g. ``"VGG11 norm"``).

    Returns:
        ``nn.GroupNorm(C, C, affine=True)`` (instancenorm), ``nn.BatchNorm2d(C)``, ``nn.GroupNorm(4, C,
        affine=True)`` (groupnorm), ``nn.LayerNorm([C, H, W], elementwise_affine=True)`` or ``nn.Identity()``,
        with PyTorch's default initialisation.

    Raises:
        ConfigError: ``name`` not in ``choices`` (``"norm must be one of: ... (got 'x')"``), or ``layernorm``
            without ``hw``.
    """
    check_choice(name, what, choices)
    if name == "instancenorm":  # DC's "instancenorm": per-channel statistics with affine, = GroupNorm(C, C)
        return nn.GroupNorm(channels, channels, affine=True)
    if name == "batchnorm":
        return nn.BatchNorm2d(channels)
    if name == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    if name == "layernorm":  # DC's layernorm: over (C, H, W) with element-wise affine
        if hw is None:
            raise ConfigError("layernorm needs the map size (H, W) of the layer it normalises")
        return nn.LayerNorm([channels, int(hw[0]), int(hw[1])], elementwise_affine=True)
    return nn.Identity()


def make_activation(name: str, *, what: str = "act") -> nn.Module:
    """A fresh activation module (element-wise, no parameters): ``nn.ReLU()``, ``nn.Sigmoid()`` or
    ``nn.LeakyReLU(0.01)``.

    Raises:
        ConfigError: ``name`` not in :data:`ACTIVATIONS` (``what`` names the option in the message).
    """
    check_choice(name, what, ACTIVATIONS)
    if name == "relu":
        return nn.ReLU()
    if name == "sigmoid":
        return nn.Sigmoid()
    return nn.LeakyReLU(0.01)


def make_pool(name: str, *, what: str = "pool") -> nn.Module:
    """A fresh 2x2, stride-2 pooling module (``(B, C, H, W)`` -> ``(B, C, H // 2, W // 2)``):
    ``nn.AvgPool2d(2, 2)``, ``nn.MaxPool2d(2, 2)``, or ``nn.Identity()`` for ``none``.

    Raises:
        ConfigError: ``name`` not in :data:`POOLINGS` (``what`` names the option in the message).
    """
    check_choice(name, what, POOLINGS)
    if name == "avgpool":
        return nn.AvgPool2d(2, 2)
    if name == "maxpool":
        return nn.MaxPool2d(2, 2)
    return nn.Identity()
