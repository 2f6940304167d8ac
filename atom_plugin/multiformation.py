"""Multi-formation (factorised) synthetic images: one stored image holds ``factor x factor`` training samples.

IDC (Kim et al., ICML 2022, Sec. 3, "multi-formation") and IDM's partition-and-expansion (Zhao et al., CVPR 2023,
Sec. 3.2): a stored image ``(C, H, W)`` is a ``f x f`` grid of tiles of ``(H/f, W/f)``; *decoding* cuts the tiles
out (row-major: top-left, top-right, ..., bottom-right) and resizes each back to ``(H, W)`` (bilinear,
``align_corners=False``, as IDC's ``decode``). The storage budget is unchanged; the number of training samples
grows by f². ``factor = 1`` is the identity (the unfactorised set, bit for bit).

*Encoding* (:func:`encode`) is the inverse layout used to initialise a factorised set from real images: each real
image is downsampled to a tile (bilinear with antialiasing) and f² consecutive images fill one stored image.

Shapes: stored ``(N, C, H, W)`` float32 <-> decoded ``(N * f², C, H, W)``; decoded row ``n * f² + j`` is tile j
of stored image n, so a class-major stored set decodes to a class-major set.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import ConfigError


#: The smallest tile side in pixels (factor 4 on 28x28 images, 7-pixel tiles, is legal; 1-pixel tiles are not).
MIN_TILE = 4


def check_factor(factor: int, image_hw: tuple[int, int], *, name: str = "factor") -> int:
    """``factor`` as an int after checking it is >= 1 and divides both image sides.

    Raises:
        ConfigError: factor < 1, not a whole number, H/W not divisible by it, or tiles smaller than
            ``MIN_TILE`` x ``MIN_TILE`` pixels (names the sizes; a factor that large only costs memory: factor 28
            on 28x28 images decodes every stored image into 784 one-pixel samples).
    """
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {factor!r}")
    h, w = int(image_hw[0]), int(image_hw[1])
    if h % factor or w % factor:
        raise ConfigError(f"{name} {factor} does not divide the image size {h}x{w}; use a factor that divides both "
                          f"sides (e.g. 1{' or 2' if h % 2 == 0 and w % 2 == 0 else ''})")
    if factor > 1 and min(h, w) // factor < MIN_TILE:
        legal = max(f for f in range(1, max(1, min(h, w) // MIN_TILE) + 1) if h % f == 0 and w % f == 0)
        raise ConfigError(f"`{name}` {factor} gives {h // factor}x{w // factor}-pixel tiles on {h}x{w} images; tiles "
                          f"must be at least {MIN_TILE}x{MIN_TILE} pixels: use `{name}` <= {legal}")
    return factor


def decode(stored: torch.Tensor, factor: int) -> torch.Tensor:
    """Stored ``(N, C, H, W)`` -> decoded ``(N * factor², C, H, W)`` training samples (differentiable).

    ``factor == 1`` returns ``stored`` itself (no copy). H and W must be divisible by ``factor``
    (see :func:`check_factor`).
    """
    if factor == 1:
        return stored
    n, c, h, w = stored.shape
    th, tw = h // factor, w // factor
    tiles = stored.reshape(n, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5).reshape(n * factor * factor, c, th, tw)
    return F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)


def encode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Real ``(N * factor², C, H, W)`` images -> ``(N, C, H, W)`` stored images whose tiles are the downsampled
    images (image ``n * f² + j`` becomes tile j of stored image n). ``factor == 1`` returns a copy."""
    if factor == 1:
        return images.clone()
    m, c, h, w = images.shape
    if m % (factor * factor):
        raise ConfigError(f"encode needs a multiple of {factor * factor} images, got {m}")
    th, tw = h // factor, w // factor
    small = F.interpolate(images, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    n = m // (factor * factor)
    return small.reshape(n, factor, factor, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w).contiguous()
