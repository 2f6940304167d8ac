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
op passes through unchanged, bit for bit); when the caller knows the op on the host (evaluation), only that op
is computed (``apply_params(..., only=op)``), with the same result bit for bit.

Random numbers are drawn in a fixed order for all groups, whatever ops are drawn, so a run is reproducible
from its generator state and independent of how classes are split across processes.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .errors import ConfigError

#: The DSA ops a strategy string joins with ``_``.
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


def _randint_pair(rows: tuple[int, int], cols: tuple[int, int], groups: int, g: torch.Generator) -> torch.Tensor:
    """``(G, 2)`` int64: column 0 drawn in ``[rows[0], rows[1])``, then column 1 in ``[cols[0], cols[1])`` -- one
    ``randint`` call when the ranges are equal (square images), the same numbers as two calls on the CPU."""
    if rows == cols:
        return torch.randint(rows[0], rows[1], (2, groups), generator=g, device=g.device).t()
    return torch.stack([torch.randint(rows[0], rows[1], (groups,), generator=g, device=g.device),
                        torch.randint(cols[0], cols[1], (groups,), generator=g, device=g.device)], dim=1)


def sample_params(ops: tuple[str, ...], groups: int, image_hw: tuple[int, int], generator: torch.Generator,
                  *, shared_op: bool = False, ranges: DSARanges = DSARanges(), op_index: int | None = None) -> DSADraw:
    """Draw one op and one parameter set per group, on the generator's device.

    Args:
        ops: from :func:`parse_strategy`.
        groups: G, the number of parameter sets drawn.
        image_hw: ``(H, W)`` of the images to augment.
        generator: a ``torch.Generator`` (its device decides where the parameters live).
        shared_op: one op for all groups (evaluation: "one op per batch, parameters per image").
        ranges: the augmentation strengths.
        op_index: the op all groups take, already drawn by the caller (with ``torch.randint(len(ops), (1,))``,
            the draw this function would make first): no op is drawn here; the parameters are the ones the same
            generator state would give after that draw.
    """
    dev = generator.device
    h, w = image_hw
    g = generator

    def rand(*shape):
        return torch.rand(*shape, generator=g, device=dev)

    if op_index is not None:
        op = torch.full((groups,), int(op_index), dtype=torch.long, device=dev)
    else:
        n_op = 1 if shared_op else groups
        op = torch.randint(len(ops), (n_op,), generator=g, device=dev).expand(groups).contiguous()
    # Draws that follow each other in the stream are made as one call (fewer kernel launches): on the CPU the
    # generator fills a tensor element by element, so the numbers are the ones separate calls gave; on CUDA
    # (Philox offsets per call) the stream is a different, equally valid one.
    color = rand(3, groups)  # brightness, saturation, contrast
    brightness = color[0] - 0.5
    if ranges.brightness != 1.0:  # x * 1.0 is x: no kernel for it
        brightness = brightness * ranges.brightness
    saturation = color[1] * ranges.saturation
    contrast = color[2] + ranges.contrast
    sh, sw = int(h * ranges.crop_pad + 0.5), int(w * ranges.crop_pad + 0.5)
    shift = _randint_pair((-sh, sh + 1), (-sw, sw + 1), groups, g)
    ch, cw = int(h * ranges.cutout + 0.5), int(w * ranges.cutout + 0.5)
    cutout_center = _randint_pair((0, h + (1 - ch % 2)), (0, w + (1 - cw % 2)), groups, g)
    geo = rand(4 * groups)  # flip (G), scale (G x 2, row-major), angle (G)
    flip = geo[:groups] < ranges.flip_p
    scale = geo[groups:3 * groups].view(groups, 2) * (ranges.scale - 1.0 / ranges.scale) + 1.0 / ranges.scale
    angle = (geo[3 * groups:] - 0.5) * 2 * ranges.rotate / 180 * math.pi
    return DSADraw(ops, op, brightness, saturation, contrast, shift, cutout_center, flip, scale, angle)


def apply_params(x: torch.Tensor, draw: DSADraw, group: torch.Tensor | None,
                 ranges: DSARanges = DSARanges(), *, only: str | None = None) -> torch.Tensor:
    """Augment ``x`` ``(B, C, H, W)`` float with each image's group parameters; returns a new ``(B, C, H, W)``.

    Args:
        x: ``(B, C, H, W)`` float images.
        draw: the parameters from :func:`sample_params`.
        group: ``(B,)`` int64, the group of each image (its class during condensation), on x's device; None:
            one group per image (``draw`` has B groups).
        only: the op every image drew, when the caller knows it on the host (evaluation's shared op): only that
            op is computed, with the same result bit for bit (``draw.op`` is then not read). None: each image's
            drawn op is selected with ``torch.where``.
        ranges: the augmentation strengths ``draw`` was made with (the cutout size is read here).

    Raises:
        ConfigError: ``only`` not in ``draw.ops``.
    """
    if only is not None and only not in draw.ops:
        raise ConfigError(f"DSA op {only!r} is not in the strategy {'_'.join(draw.ops)!r}")
    b, c, h, w = x.shape

    params = draw.tensors() if group is None else _gather(draw, group)

    def per_image(name: str) -> torch.Tensor:
        return params[name]

    # (B, n_ops) bool, column k: the images that drew op k (one comparison for all ops); None: all take `only`
    hit = None if only is not None else (
        per_image("op")[:, None] == _arange(0, len(draw.ops), 1, x.device))

    def chosen(name: str) -> torch.Tensor | None:  # (B,) bool: the images that drew op `name`; None = all
        return None if hit is None else hit[:, draw.ops.index(name)]

    ops = draw.ops if only is None else (only,)
    out = x
    if "color" in ops:
        out = _color(out, per_image, chosen("color"))
    flip = None
    if "flip" in ops:
        do, sel = per_image("flip"), chosen("flip")
        flip = do if sel is None else sel & do
    if "crop" in ops:  # with flip in the same gathers (an image takes at most one of them; both copy exactly)
        shift, sel = per_image("shift"), chosen("crop")
        out = _translate(out, shift if sel is None else shift * sel.unsqueeze(1), flip)  # zero shift: identity
    elif flip is not None:
        out = torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)
    if "cutout" in ops:
        out = _cutout(out, per_image("cutout_center"), chosen("cutout"), ranges)
    kinds = [k for k in ("scale", "rotate") if k in ops]
    if kinds:
        out = _affine(out, per_image, kinds, chosen)
    return out


def _gather(draw: DSADraw, group: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every parameter of ``draw`` per image (row i = group ``group[i]``'s), exact copies gathered with two
    ``index_select`` calls (one on the float parameters, one on the integer and boolean ones)."""
    def pack(names):
        cols = [getattr(draw, n) for n in names]
        table = torch.cat([t.view(t.shape[0], -1) for t in cols], dim=1).index_select(0, group)
        return dict(zip(names, table.split([t[0].numel() for t in cols], dim=1)))

    out = pack(("brightness", "saturation", "contrast", "scale", "angle"))
    out.update(pack(("op", "shift", "cutout_center", "flip")))  # flip becomes 0/1 int64 here
    for name in ("brightness", "saturation", "contrast", "angle", "op"):
        out[name] = out[name].squeeze(1)
    out["flip"] = out["flip"].squeeze(1) != 0
    return out


def _color(x: torch.Tensor, per_image, sel: torch.Tensor | None) -> torch.Tensor:
    """Brightness, saturation, contrast (in that order) on the images of ``sel`` (all when None)."""
    view = (x.shape[0], 1, 1, 1)
    y = x + per_image("brightness").view(view)
    if x.shape[1] > 1:  # one channel: the channel mean is the image itself, so saturation is the identity
        m = y.mean(dim=1, keepdim=True)
        y = (y - m) * per_image("saturation").view(view) + m
    m = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - m) * per_image("contrast").view(view) + m
    return y if sel is None else torch.where(sel.view(view), y, x)


@functools.lru_cache(maxsize=64)
def _arange(start: int, end: int, step: int, device: torch.device) -> torch.Tensor:
    """``torch.arange(start, end, step)`` int64 on ``device``, made once per (range, device): index constants
    that every step would otherwise launch a kernel for. Read-only (never written in place)."""
    return torch.arange(start, end, step, device=device)


def _cutout(x: torch.Tensor, centre: torch.Tensor, sel: torch.Tensor | None, ranges: DSARanges) -> torch.Tensor:
    """Zero a square of side round(cutout * size) around ``centre`` ``(B, 2)`` on the images of ``sel``."""
    b, _, h, w = x.shape
    ch, cw = int(h * ranges.cutout + 0.5), int(w * ranges.cutout + 0.5)
    top, left = centre[:, 0] - ch // 2, centre[:, 1] - cw // 2
    rows, cols = _arange(0, h, 1, x.device), _arange(0, w, 1, x.device)
    in_r = (rows[None] >= top[:, None]) & (rows[None] < (top + ch)[:, None])
    in_c = (cols[None] >= left[:, None]) & (cols[None] < (left + cw)[:, None])
    hole = in_r[:, :, None] & in_c[:, None, :]
    if sel is not None:
        hole = hole & sel.view(b, 1, 1)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def _affine(x: torch.Tensor, per_image, kinds: list[str], chosen) -> torch.Tensor:
    """Scale and/or rotate (``kinds``) the images that drew them: bilinear ``grid_sample``, zeros,
    align_corners=True. ``chosen(kind)``: (B,) bool mask of the images that drew it, or None when every image
    takes the one kind given. The 2x2 part of each image's ``theta`` is diag(sx, sy), the rotation
    [[cos, -sin], [sin, cos]] or (neither drawn) the identity; the translation column is 0."""
    b, c, h, w = x.shape
    mats = {}
    if "scale" in kinds:
        mats["scale"] = torch.diag_embed(per_image("scale").to(x.dtype))
    if "rotate" in kinds:
        a = per_image("angle").to(x.dtype)
        cos, sin = torch.cos(a), torch.sin(a)
        mats["rotate"] = torch.stack([cos, -sin, sin, cos], dim=1).view(b, 2, 2)
    masks = {k: chosen(k) for k in kinds}
    if any(m is None for m in masks.values()):  # one kind for all images
        theta = F.pad(mats[kinds[0]], (0, 1))
        grid = F.affine_grid(theta, [b, c, h, w], align_corners=True)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    m = torch.eye(2, dtype=x.dtype, device=x.device).expand(b, 2, 2)
    for k in kinds:
        m = torch.where(masks[k].view(b, 1, 1), mats[k], m)
    affine = masks[kinds[0]] if len(kinds) == 1 else masks[kinds[0]] | masks[kinds[1]]
    grid = F.affine_grid(F.pad(m, (0, 1)), [b, c, h, w], align_corners=True)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return torch.where(affine.view(b, 1, 1, 1), warped, x)


def _translate(x: torch.Tensor, shift: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
    """Shift each image by whole pixels (``shift`` (B, 2) rows/cols) with zero fill: out[r, c] = x[r+dy, c+dx];
    images with ``flip`` (B,) bool (and a zero shift) are mirrored instead: out[r, c] = x[r, W-1-c]."""
    b, c, h, w = x.shape
    xp = F.pad(x, (1, 1, 1, 1))
    rows = (_arange(0, h, 1, x.device)[None] + shift[:, :1] + 1).clamp(0, h + 1)  # (B, H)
    cols = (_arange(0, w, 1, x.device)[None] + shift[:, 1:] + 1).clamp(0, w + 1)  # (B, W)
    if flip is not None:  # padded column W - c is column W-1-c of x
        cols = torch.where(flip[:, None], _arange(w, 0, -1, x.device), cols)
    xp = xp.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2))
    return xp.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def augment_batch(x: torch.Tensor, strategy: str | tuple[str, ...], generator: torch.Generator, *,
                  op_generator: torch.Generator | None = None) -> torch.Tensor:
    """Evaluation-time DSA: one op for the batch, parameters drawn per image. ``(B, C, H, W)`` -> same shape.

    The op is drawn from ``op_generator`` (default ``generator``) before the parameters. When that generator
    is a CPU one, the op is known on the host without a device read and only that op is computed (the images
    are the ones computing all ops and selecting would give, bit for bit); a device generator keeps the op on
    the device and computes every op of the strategy.
    """
    ops = parse_strategy(strategy) if isinstance(strategy, str) else strategy
    hw = (x.shape[2], x.shape[3])
    og = op_generator if op_generator is not None else generator
    if og.device.type != "cpu":
        draw = sample_params(ops, x.shape[0], hw, generator, shared_op=True)
        return apply_params(x, draw, None)
    k = int(torch.randint(len(ops), (1,), generator=og))
    draw = sample_params(ops, x.shape[0], hw, generator, op_index=k)
    return apply_params(x, draw, None, only=ops[k])


RESAMPLING_OPS = ("scale", "rotate")  #: the ops that go through grid_sample


def check_deterministic(ops: tuple[str, ...], device: torch.device) -> None:
    """Refuse, before any work, a run that ``torch.use_deterministic_algorithms(True)`` would stop mid-way.

    DSA's scale and rotate resample with ``grid_sample``, whose CUDA backward (reached through the synthetic
    images) has no deterministic implementation: in deterministic mode without ``warn_only`` torch raises at
    the first such iteration. Other devices, ``warn_only=True`` and strategies without those ops pass.

    Args:
        ops: the DSA ops of the run (from :func:`parse_strategy`; empty when DSA is off).
        device: the run's device.

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
