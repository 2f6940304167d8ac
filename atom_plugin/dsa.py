"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021), vectorised on the device.

Each call draws ONE op per *group* from the strategy (``"color_crop_cutout_flip_scale_rotate"``) and one
parameter set per group; every image of a group gets its group's op and parameters. Two uses:

* condensation (Siamese): groups = classes. The same draw is applied to the real and the synthetic batch of a
  class (:func:`apply_params` with each image's class as its group), as in the official DSA/DM/DataDAM code.
* evaluation training: one op for the whole batch, parameters per image (:func:`augment_batch`).

Ops and ranges (the official ``ParamDiffAug`` defaults): color = brightness (+U(-0.5, 0.5)*1.0), saturation
(x U(0, 2) around the channel mean), contrast (x U(0.5, 1.5) around the image mean), applied in that order;
crop = integer translation by up to round(0.125*size) pixels with zero fill; cutout = a zero square of side
round(0.5*size); flip = horizontal mirror with probability 0.5; scale = x/y factors in U(1/1.2, 1.2);
rotate = U(-15, 15) degrees. Scale and rotate resample with ``grid_sample`` (bilinear, zeros,
align_corners=True). Everything is differentiable w.r.t. the images. No per-sample Python loop: each op is
computed for the whole batch and selected per image with ``torch.where`` (an image whose group drew another
op passes through unchanged, bit for bit).

Random numbers are drawn in a fixed order for all groups, whatever ops are drawn, so a run is reproducible
from its generator state and independent of how classes are split across processes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .errors import ConfigError

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSARanges:
    """Augmentation strengths (the official ParamDiffAug defaults)."""

    scale: float = 1.2
    rotate: float = 15.0  # degrees
    crop_pad: float = 0.125
    cutout: float = 0.5
    flip_p: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


@dataclass
class DSADraw:
    """One draw of DSA parameters for G groups (all tensors on one device, first dim G).

    op (G,) int64 index into ``ops``; brightness/saturation/contrast (G,) float; shift (G, 2) int64 (rows,
    cols); cutout_center (G, 2) int64; flip (G,) bool; scale (G, 2) float (x, y); angle (G,) float radians.
    """

    ops: tuple[str, ...]
    op: torch.Tensor
    brightness: torch.Tensor
    saturation: torch.Tensor
    contrast: torch.Tensor
    shift: torch.Tensor
    cutout_center: torch.Tensor
    flip: torch.Tensor
    scale: torch.Tensor
    angle: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        """The parameter tensors by name (for tests and for feeding a reference implementation)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "ops"}


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """``"color_crop_flip"`` -> ``("color", "crop", "flip")``. Raises ConfigError on an unknown or empty op."""
    ops = tuple(s for s in str(strategy).split("_") if s)
    bad = [o for o in ops if o not in OPS]
    if not ops or bad:
        raise ConfigError(f"bad DSA strategy {strategy!r}: ops must be '_'-joined names from {', '.join(OPS)}")
    return ops


def sample_params(ops: tuple[str, ...], groups: int, image_hw: tuple[int, int], generator: torch.Generator,
                  *, shared_op: bool = False, ranges: DSARanges = DSARanges()) -> DSADraw:
    """Draw one op and one parameter set per group, on the generator's device.

    Args:
        ops: from :func:`parse_strategy`. groups: G. image_hw: ``(H, W)`` of the images to augment.
        generator: a ``torch.Generator`` (its device decides where the parameters live).
        shared_op: one op for all groups (evaluation: "one op per batch, parameters per image").
    """
    dev = generator.device
    h, w = image_hw
    g = generator

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    n_op = 1 if shared_op else groups
    op = torch.randint(len(ops), (n_op,), generator=g, device=dev).expand(groups).contiguous()
    brightness = (rand(groups) - 0.5) * ranges.brightness
    saturation = rand(groups) * ranges.saturation
    contrast = rand(groups) + ranges.contrast
    sh, sw = int(h * ranges.crop_pad + 0.5), int(w * ranges.crop_pad + 0.5)
    shift = torch.stack([torch.randint(-sh, sh + 1, (groups,), generator=g, device=dev),
                         torch.randint(-sw, sw + 1, (groups,), generator=g, device=dev)], dim=1)
    ch, cw = int(h * ranges.cutout + 0.5), int(w * ranges.cutout + 0.5)
    cutout_center = torch.stack([torch.randint(0, h + (1 - ch % 2), (groups,), generator=g, device=dev),
                                 torch.randint(0, w + (1 - cw % 2), (groups,), generator=g, device=dev)], dim=1)
    flip = rand(groups) < ranges.flip_p
    scale = rand(groups, 2) * (ranges.scale - 1.0 / ranges.scale) + 1.0 / ranges.scale
    angle = (rand(groups) - 0.5) * 2 * ranges.rotate / 180 * math.pi
    return DSADraw(ops, op, brightness, saturation, contrast, shift, cutout_center, flip, scale, angle)


def _per_image(draw: DSADraw, group: torch.Tensor, name: str) -> torch.Tensor:
    return getattr(draw, name).index_select(0, group)


def apply_params(x: torch.Tensor, draw: DSADraw, group: torch.Tensor,
                 ranges: DSARanges = DSARanges()) -> torch.Tensor:
    """Augment ``x`` ``(B, C, H, W)`` float with each image's group parameters; returns a new ``(B, C, H, W)``.

    Args:
        group: ``(B,)`` int64, the group of each image (its class during condensation), on x's device.
    """
    b, c, h, w = x.shape
    op = _per_image(draw, group, "op")
    view = (b, 1, 1, 1)
    out = x
    if "color" in draw.ops:
        y = out + _per_image(draw, group, "brightness").view(view)
        m = y.mean(dim=1, keepdim=True)
        y = (y - m) * _per_image(draw, group, "saturation").view(view) + m
        m = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - m) * _per_image(draw, group, "contrast").view(view) + m
        out = torch.where((op == draw.ops.index("color")).view(view), y, out)
    if "crop" in draw.ops:
        is_crop = (op == draw.ops.index("crop")).unsqueeze(1)
        shift = torch.where(is_crop, _per_image(draw, group, "shift"), torch.zeros_like(draw.shift[:1]))
        out = _translate(out, shift)  # zero shift is an exact identity
    if "cutout" in draw.ops:
        ch, cw = int(h * ranges.cutout + 0.5), int(w * ranges.cutout + 0.5)
        centre = _per_image(draw, group, "cutout_center")
        top, left = centre[:, 0] - ch // 2, centre[:, 1] - cw // 2
        rows = torch.arange(h, device=x.device)
        cols = torch.arange(w, device=x.device)
        in_r = (rows[None] >= top[:, None]) & (rows[None] < (top + ch)[:, None])
        in_c = (cols[None] >= left[:, None]) & (cols[None] < (left + cw)[:, None])
        hole = (in_r[:, :, None] & in_c[:, None, :]) & (op == draw.ops.index("cutout")).view(b, 1, 1)
        out = out * (~hole).unsqueeze(1).to(out.dtype)
    if "flip" in draw.ops:
        do = (op == draw.ops.index("flip")) & _per_image(draw, group, "flip")
        out = torch.where(do.view(view), out.flip(3), out)
    if "scale" in draw.ops or "rotate" in draw.ops:
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=out.dtype)
        theta[:, 0, 0] = 1
        theta[:, 1, 1] = 1
        affine = torch.zeros(b, dtype=torch.bool, device=x.device)
        if "scale" in draw.ops:
            is_s = op == draw.ops.index("scale")
            s = _per_image(draw, group, "scale").to(out.dtype)
            theta[:, 0, 0] = torch.where(is_s, s[:, 0], theta[:, 0, 0])
            theta[:, 1, 1] = torch.where(is_s, s[:, 1], theta[:, 1, 1])
            affine |= is_s
        if "rotate" in draw.ops:
            is_r = op == draw.ops.index("rotate")
            a = _per_image(draw, group, "angle").to(out.dtype)
            cos, sin = torch.cos(a), torch.sin(a)
            theta[:, 0, 0] = torch.where(is_r, cos, theta[:, 0, 0])
            theta[:, 0, 1] = torch.where(is_r, -sin, theta[:, 0, 1])
            theta[:, 1, 0] = torch.where(is_r, sin, theta[:, 1, 0])
            theta[:, 1, 1] = torch.where(is_r, cos, theta[:, 1, 1])
            affine |= is_r
        grid = F.affine_grid(theta, [b, c, h, w], align_corners=True)
        warped = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        out = torch.where(affine.view(view), warped, out)
    return out


def _translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift each image by whole pixels (``shift`` (B, 2) rows/cols) with zero fill: out[r, c] = x[r+dy, c+dx]."""
    b, c, h, w = x.shape
    xp = F.pad(x, (1, 1, 1, 1))
    rows = (torch.arange(h, device=x.device)[None] + shift[:, :1] + 1).clamp(0, h + 1)  # (B, H)
    cols = (torch.arange(w, device=x.device)[None] + shift[:, 1:] + 1).clamp(0, w + 1)  # (B, W)
    xp = xp.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2))
    return xp.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def augment_batch(x: torch.Tensor, strategy: str | tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Evaluation-time DSA: one op for the batch, parameters drawn per image. ``(B, C, H, W)`` -> same shape."""
    ops = parse_strategy(strategy) if isinstance(strategy, str) else strategy
    draw = sample_params(ops, x.shape[0], (x.shape[2], x.shape[3]), generator, shared_op=True)
    return apply_params(x, draw, torch.arange(x.shape[0], device=x.device))


RESAMPLING_OPS = ("scale", "rotate")  # the ops that go through grid_sample


def check_deterministic(ops: tuple[str, ...], device: torch.device) -> None:
    """Refuse, before any work, a run that ``torch.use_deterministic_algorithms(True)`` would stop mid-way.

    DSA's scale and rotate resample with ``grid_sample``, whose CUDA backward (reached through the synthetic
    images) has no deterministic implementation: in deterministic mode without ``warn_only`` torch raises at
    the first such iteration. Other devices, ``warn_only=True`` and strategies without those ops pass.

    Args:
        ops: the DSA ops of the run (from :func:`parse_strategy`; empty when DSA is off). device: the run's device.

    Raises:
        ConfigError: CUDA, deterministic algorithms on (not ``warn_only``) and a scale/rotate op in ``ops``.
    """
    resampling = [o for o in ops if o in RESAMPLING_OPS]
    if (torch.device(device).type != "cuda" or not resampling or not torch.are_deterministic_algorithms_enabled()
            or torch.is_deterministic_algorithms_warn_only_enabled()):
        return
    raise ConfigError(f"DSA's {' and '.join(resampling)} use grid_sample, whose CUDA backward has no deterministic "
                      "implementation, but torch.use_deterministic_algorithms(True) is on: call it with "
                      "warn_only=True (or turn it off), drop those ops from `dsa_strategy`, or pass `dsa=False`")
