"""The DC/DM ConvNet search space as plain Python (no NNI, no Optuna): dimensions, seeded samplers, validity.

The space (Zhao et al., ICLR 2021, NAS experiment; DataDAM, Sajedi et al., ICCV 2023, Sec. 4.4) has
4 depths x 4 widths x 3 activations x 5 normalisations x 3 poolings = 720 ConvNets. Every point is built by the
core factory, ``atom_plugin.build_model("convnet", ...)`` (``atom_plugin/models/convnet.py``); nothing here
re-implements a layer. The NNI :class:`~atom_plugin.integrations.nni.nas.ConvNetSpace` declares the same
dimensions with NNI mutables and builds the same networks.

An architecture is a dict ``{"depth": int, "width": int, "act": str, "norm": str, "pool": str}``.

Validity: pooling halves the feature map after every block, so with ``pool != "none"`` a deep net needs a large
enough image. At 28x28 (padded to 32 in the first block, as DC) and 32x32 all 720 points are valid; at 8x8, depth 4
with pooling is not (block 4 would pool a 1x1 map). :func:`check_architecture` raises
:class:`~atom_plugin.integrations.proxy.errors.InvalidArchitectureError` naming the choice and the image size;
:func:`sample_architectures` with ``image_size`` skips invalid points (and logs how many), so a study never trains
an impossible network; the NNI space adds a constraint so NNI's strategies never propose them, and the NNI
evaluator reports accuracy 0.0 (with a logged reason) for any invalid point that reaches it anyway.
"""
from __future__ import annotations

import itertools
import logging
import random
from typing import Iterable, Sequence

from torch import nn

from atom_plugin import build_model
from atom_plugin.errors import ConfigError, check_choice
from atom_plugin.models import ACTIVATIONS, NORMS, POOLINGS, image_hw

from .errors import InvalidArchitectureError

_logger = logging.getLogger(__name__)



def _core_choices(values: tuple, name: str, core: tuple) -> tuple:
    """``values`` in the space's own order, each checked to be a choice the core ConvNet builds
    (``atom_plugin.models.NORMS`` / ``ACTIVATIONS`` / ``POOLINGS``); raises ConfigError at import otherwise."""
    return tuple(check_choice(v, name, core) for v in values)


#: The dimensions and their values, in a fixed order (the order of :func:`all_architectures` and of seeded
#: samples, so it is DC's order, not the core's). act/norm/pool are the core ConvNet's choices
#: (``atom_plugin.models.ACTIVATIONS``/``NORMS``/``POOLINGS``): all of them today, checked at import.
DIMENSIONS: dict[str, tuple] = {
    "depth": (1, 2, 3, 4),
    "width": (32, 64, 128, 256),
    "act": _core_choices(("sigmoid", "relu", "leakyrelu"), "act", ACTIVATIONS),
    "norm": _core_choices(("none", "batchnorm", "layernorm", "instancenorm", "groupnorm"), "norm", NORMS),
    "pool": _core_choices(("none", "maxpool", "avgpool"), "pool", POOLINGS),
}
#: Number of points in the space (720).
SPACE_SIZE = 1
for _values in DIMENSIONS.values():
    SPACE_SIZE *= len(_values)

#: The DC/DM default network (ConvNet-3, width 128, ReLU, instancenorm, average pooling).
DEFAULT_ARCHITECTURE = {"depth": 3, "width": 128, "act": "relu", "norm": "instancenorm", "pool": "avgpool"}


def arch_key(arch: dict) -> str:
    """A short stable id, e.g. ``"d3-w128-relu-instancenorm-avgpool"`` (used as a cache key and a label)."""
    return f"d{arch['depth']}-w{arch['width']}-{arch['act']}-{arch['norm']}-{arch['pool']}"


def parse_arch_key(key: str) -> dict:
    """Inverse of :func:`arch_key`. Raises InvalidArchitectureError for a malformed key."""
    parts = key.split("-")
    try:
        d, w, act, norm, pool = parts
        arch = {"depth": int(d[1:]), "width": int(w[1:]), "act": act, "norm": norm, "pool": pool}
    except ValueError:
        raise InvalidArchitectureError(f"{key!r} is not an architecture key like 'd3-w128-relu-instancenorm-avgpool'") from None
    check_in_space(arch)
    return arch


def check_in_space(arch: dict) -> dict:
    """Check that ``arch`` has exactly the five dimensions, each with a value of the space; returns a clean copy.

    Raises:
        InvalidArchitectureError: a missing/unknown dimension or a value outside the space (named).
    """
    if not isinstance(arch, dict):
        raise InvalidArchitectureError(f"an architecture is a dict of {list(DIMENSIONS)}, got {type(arch).__name__}")
    missing = [k for k in DIMENSIONS if k not in arch]
    extra = [k for k in arch if k not in DIMENSIONS]
    if missing or extra:
        raise InvalidArchitectureError(
            f"architecture {arch} has " + (f"missing dimension(s) {missing}" if missing else "")
            + (" and " if missing and extra else "") + (f"unknown dimension(s) {extra}" if extra else "")
            + f"; the dimensions are {list(DIMENSIONS)}")
    out = {}
    for k, values in DIMENSIONS.items():
        v = arch[k]
        if v not in values or isinstance(v, bool):
            raise InvalidArchitectureError(f"{k}={v!r} is not in the ConvNet space; choose one of {list(values)}")
        out[k] = v
    return out


def _pooling_fits(depth: int, image_size: tuple[int, int]) -> str | None:
    """None when ``depth`` pooled blocks fit ``image_size``, else the core ConvNet's reason."""
    try:  # a width-1 probe of the core ConvNet: the same arithmetic as the real network, no copy of it here
        build_model("convnet", channels=1, num_classes=1, image_size=image_size, width=1, depth=depth,
                    norm="none", act="relu", pool="maxpool")
    except ConfigError as exc:
        return str(exc)
    return None


def max_pooled_depth(image_size) -> int:
    """The largest depth of the space whose pooling fits ``image_size`` (0 when even one pooled block does not)."""
    hw = image_hw(image_size)
    best = 0
    for d in DIMENSIONS["depth"]:
        if _pooling_fits(d, hw) is None:
            best = d
    return best


def check_architecture(arch: dict, image_size) -> dict:
    """Check that ``arch`` is a point of the space and gives a valid network for ``image_size``.

    Returns the cleaned architecture dict.

    Raises:
        InvalidArchitectureError: naming the choice and the image size, e.g. "depth=4 with pool='maxpool' does
            not fit 8x8 images ...".
    """
    arch = check_in_space(arch)
    h, w = image_hw(image_size)
    if arch["pool"] != "none":
        reason = _pooling_fits(arch["depth"], (h, w))
        if reason is not None:
            raise InvalidArchitectureError(
                f"depth={arch['depth']} with pool={arch['pool']!r} does not fit {h}x{w} images (pooling after each "
                f"block would shrink the map below 1x1); use depth <= {max_pooled_depth((h, w))} or pool='none'")
    return arch


def is_valid(arch: dict, image_size) -> bool:
    """True when :func:`check_architecture` passes."""
    try:
        check_architecture(arch, image_size)
    except InvalidArchitectureError:
        return False
    return True


def all_architectures(image_size=None) -> list[dict]:
    """Every point of the space in a fixed order (depth, width, act, norm, pool; 720 dicts); only the valid
    ones for ``image_size`` when it is given."""
    keys = list(DIMENSIONS)
    archs = [dict(zip(keys, values)) for values in itertools.product(*DIMENSIONS.values())]
    if image_size is not None:
        archs = [a for a in archs if is_valid(a, image_size)]
    return archs


def sample_architectures(n: int, seed: int = 0, *, image_size=None) -> list[dict]:
    """``n`` distinct architectures drawn uniformly without replacement (``random.Random(seed)``).

    With ``image_size``, points invalid for that size are skipped (a log line says how many were left out);
    the same (n, seed, image_size) always gives the same list, and a larger ``n`` extends a smaller one.

    Raises:
        ConfigError: ``n`` < 1 or larger than the number of (valid) points.
    """
    pool = all_architectures()
    valid = [a for a in pool if image_size is None or is_valid(a, image_size)]
    if len(valid) < len(pool):
        h, w = image_hw(image_size)
        _logger.info("%d of %d ConvNet variants are invalid for %dx%d images and are never sampled",
                     len(pool) - len(valid), len(pool), h, w)
    if not 1 <= int(n) <= len(valid):
        raise ConfigError(f"can sample 1..{len(valid)} distinct architectures, got n={n}")
    order = list(range(len(valid)))
    random.Random(int(seed)).shuffle(order)
    return [dict(valid[i]) for i in order[: int(n)]]


#: The dimensions :func:`sample_stratified` balances (width is drawn from the allowed widths, balanced too).
STRATA = ("depth", "norm", "act", "pool")


def sample_stratified(n: int, seed: int = 0, *, widths: Sequence[int] = (32, 64, 128),
                      pools: Sequence[str] = ("maxpool", "avgpool"), image_size=None) -> list[dict]:
    """``n`` distinct architectures whose depth, norm, activation and pooling (:data:`STRATA`) and width are each
    as balanced as ``n`` allows: every value of a dimension appears ``n // k`` or ``n // k + 1`` times (k values),
    in seeded random combinations (``random.Random(seed)``; a draw with a repeated or invalid point is redrawn).

    The CPU proxy study uses the defaults: pooled networks of width <= 128 (unpooled and width-256 networks cost
    several times more per sample; reference.md Sec. 6).

    Args:
        n: how many architectures.
        seed: the seed of the draw (the same arguments always give the same list).
        widths: the widths allowed (values of ``DIMENSIONS["width"]``).
        pools: the poolings allowed (values of ``DIMENSIONS["pool"]``).
        image_size: when given, only points valid for it (:func:`is_valid`).

    Returns:
        ``n`` architecture dicts.

    Raises:
        ConfigError: ``n`` < 1, more than the restricted space holds, a value outside the space, or no balanced
            draw of distinct valid points found.
    """
    for name, values in (("width", widths), ("pool", pools)):
        for v in values:
            if v not in DIMENSIONS[name]:
                raise ConfigError(f"{name}={v!r} is not in the ConvNet space; choose from {list(DIMENSIONS[name])}")
    levels = dict(DIMENSIONS, width=tuple(widths), pool=tuple(pools))
    space = [a for a in (dict(zip(levels, v)) for v in itertools.product(*levels.values()))
             if image_size is None or is_valid(a, image_size)]
    if not 1 <= int(n) <= len(space):
        raise ConfigError(f"can sample 1..{len(space)} distinct architectures from the restricted space, got n={n}")
    rng = random.Random(int(seed))
    for _ in range(10_000):
        columns = {}
        for k, values in levels.items():
            col = [values[i % len(values)] for i in range(int(n))]
            rng.shuffle(col)
            columns[k] = col
        archs = [{k: columns[k][i] for k in DIMENSIONS} for i in range(int(n))]
        if len({arch_key(a) for a in archs}) == len(archs) and all(
                image_size is None or is_valid(a, image_size) for a in archs):
            return archs
    raise ConfigError(f"found no balanced draw of {n} distinct valid architectures (seed {seed}); lower n")


def build_network(arch: dict, *, channels: int, num_classes: int, image_size) -> nn.Module:
    """The core ConvNet for ``arch``: ``atom_plugin.build_model("convnet", ..., **arch)`` after
    :func:`check_architecture`. Input ``(B, channels, H, W)`` float32 -> logits ``(B, num_classes)``.

    Raises:
        InvalidArchitectureError: the point is not in the space or does not fit ``image_size``.
    """
    arch = check_architecture(arch, image_size)
    return build_model("convnet", channels=channels, num_classes=num_classes, image_size=image_hw(image_size), **arch)


def coverage(archs: Iterable[dict]) -> dict[str, set]:
    """``{dimension: set of values seen}`` over ``archs`` (to check that a sample reaches every value)."""
    seen: dict[str, set] = {k: set() for k in DIMENSIONS}
    for a in archs:
        for k in DIMENSIONS:
            seen[k].add(a[k])
    return seen


def describe(archs: Sequence[dict]) -> str:
    """One line per architecture key (for logs)."""
    return "\n".join(arch_key(a) for a in archs)
