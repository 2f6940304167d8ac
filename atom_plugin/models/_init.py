"""Re-drawing a network's weights in place from an explicit generator.

Condensation samples a fresh random network every iteration (DM, Zhao & Bilen, WACV 2023, Sec. 3). Building a
new module each time costs Python and allocations; re-drawing the parameters in place with PyTorch's default
initialisation (Kaiming-uniform with a = sqrt(5) for weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases,
ones/zeros for normalisation layers) gives the same distribution from a seeded generator, so a run is
reproducible and resumable from the iteration number alone.

:func:`reinit_` re-draws everything (evaluation, herding, the network pool, NNI). The matcher's per-iteration
re-draw needs less (:func:`matching_redraw`): the norm layers' affine parameters stay at 1 and 0 (nothing trains
them), and a trailing classifier is never used by the matching loss; leaving them out of the re-draw leaves the
random numbers every other weight gets unchanged, since they come in the same order from the same generator.
"""
from __future__ import annotations

import math

import torch
from torch import nn

_NORMS = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)
_DRAWN = (nn.Conv2d, nn.Linear)


def _draw_(m: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default ``reset_parameters`` of a Conv2d/Linear, from ``generator``."""
    nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
    if m.bias is not None:
        fan_in = m.weight[0].numel()
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(m.bias, -bound, bound, generator=generator)


@torch.no_grad()
def reinit_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every parameter of ``model`` in place, as PyTorch's default ``reset_parameters`` would.

    Conv/Linear weights ~ Kaiming-uniform(a=sqrt(5)), biases ~ U(±1/sqrt(fan_in)); norm weights 1, biases 0;
    BatchNorm running statistics reset. The generator must live on the parameters' device.
    Returns ``model``.
    """
    for m in model.modules():
        if isinstance(m, _DRAWN):
            _draw_(m, generator)
        elif isinstance(m, _NORMS):
            if getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.reset_running_stats()
    return model


def matching_redraw(model: nn.Module) -> list[nn.Module]:
    """The Conv2d/Linear modules a never-trained matching network re-draws each iteration, in :func:`reinit_`'s
    order: all of them except a trailing ``model.classifier`` (Conv/Linear modules inside ``model.classifier``
    after the last other one). :func:`redraw_` of this list gives those modules the numbers :func:`reinit_` with
    the same generator state gives them.

    Norm layers are not re-drawn: their affine parameters keep the 1/0 of construction as long as nothing
    trains them, and BatchNorm's running statistics do not enter a forward in training mode.
    """
    head = getattr(model, "classifier", None)
    in_head = {id(m) for m in head.modules()} if isinstance(head, nn.Module) else set()
    drawn = [m for m in model.modules() if isinstance(m, _DRAWN)]
    while drawn and id(drawn[-1]) in in_head:
        drawn.pop()
    return drawn


@torch.no_grad()
def redraw_(modules: list[nn.Module], generator: torch.Generator) -> None:
    """Re-draw the Conv2d/Linear ``modules`` (from :func:`matching_redraw`) in order, as :func:`reinit_` would."""
    for m in modules:
        _draw_(m, generator)
