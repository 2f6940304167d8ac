"""Re-drawing a network's weights in place from an explicit generator.

Condensation samples a fresh random network every iteration (DM, Zhao & Bilen, WACV 2023, Sec. 3). Building a
new module each time costs Python and allocations; re-drawing the parameters in place with PyTorch's default
initialisation (Kaiming-uniform with a = sqrt(5) for weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for biases,
ones/zeros for normalisation layers) gives the same distribution from a seeded generator, so a run is
reproducible and resumable from the iteration number alone.
"""
from __future__ import annotations

import math

import torch
from torch import nn

_NORMS = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)


@torch.no_grad()
def reinit_(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw every parameter of ``model`` in place, as PyTorch's default ``reset_parameters`` would.

    Conv/Linear weights ~ Kaiming-uniform(a=sqrt(5)), biases ~ U(±1/sqrt(fan_in)); norm weights 1, biases 0;
    BatchNorm running statistics reset. The generator must live on the parameters' device.
    Returns ``model``.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, _NORMS):
            if getattr(m, "weight", None) is not None:
                m.weight.fill_(1.0)
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.reset_running_stats()
    return model
