"""Cost arithmetic of a proxy study: training runs counted in sample passes, cost points, a CPU-hour estimate.

A *sample pass* is one training sample seen once (training samples x epochs, fractions of an epoch allowed): the
cost axis of the proxy-validity study, because wall seconds depend on what else shares the cores. Every run of
:data:`CPU_RUNS` trains one architecture once, with a constant learning rate, and validates at its report points;
each report point is a legitimate early stop and lands on one of the aligned :data:`COST_POINTS` (30k, 120k, 220k
passes; issue 26). The CPU-hour estimate scales a measured milliseconds-per-sample-pass of ConvNet-3 width 128
(4.4-6.9 ms on this CPU, 2026-12; the midpoint is the default) by each architecture's multiply-accumulates
relative to it, with a fixed per-sample overhead share (DSA, data movement, the optimiser) that does not shrink.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn

from .space import DEFAULT_ARCHITECTURE, arch_key, build_network

#: Full data of the study: Fashion-MNIST's 60,000 training images less the 5,000-image validation split.
FULL_SIZE = 55_000
#: The aligned cost points, in sample passes.
COST_POINTS = {"30k": 30_000, "120k": 120_000, "220k": 220_000}
#: Milliseconds per sample pass of ConvNet-3 width 128 on one core of this CPU (midpoint of 4.4-6.9, 2026-12).
MS_PER_SAMPLE_REF = 5.65
#: Share of a sample pass's time that does not scale with the network's multiply-accumulates (an assumption).
OVERHEAD_SHARE = 0.25


@dataclass(frozen=True)
class Run:
    """One training run per architecture: ``train_size`` samples for ``epochs`` epochs, validated at ``report_at``
    (epochs, fractions allowed). ``kind`` names the proxy kind (one line of the figure); ``seeds`` the training seeds
    (a second seed only for the reliability subset, :data:`RELIABILITY_ARCHS` architectures)."""

    kind: str
    train_size: int
    epochs: int
    report_at: tuple[float, ...]
    seeds: tuple[int, ...] = (0,)

    @property
    def passes(self) -> int:
        """Sample passes of the whole run (one seed)."""
        return sample_passes(self.train_size, self.epochs)


#: The full-data runs' kind: their early points are the "full-data early stop" proxy, their last the reference.
FULL_KIND = "full-data early stop"
#: The runs of the CPU study per architecture (``benchmarks/proxy_validity.py --budget cpu``).
CPU_RUNS: tuple[Run, ...] = (
    Run("condensed f1", 100, 300, (300,)),
    Run("random 100", 100, 300, (300,)),
    Run("herding 100", 100, 300, (300,)),
    Run("condensed f2", 400, 300, (75, 300), seeds=(0, 1)),
    Run("random 400", 400, 300, (75, 300)),
    Run(FULL_KIND, FULL_SIZE, 4, (0.5, 2, 4), seeds=(0, 1)),
)
#: Architectures (the first ones of the sample) trained with the second seed, for the noise ceiling.
RELIABILITY_ARCHS = 10


def sample_passes(train_size: int, epochs: float) -> int:
    """Training samples x epochs (rounded to a whole number).

    Args:
        train_size: training samples (decoded samples for a factorised set).
        epochs: epochs, a fraction allowed.

    Raises:
        ValueError: a negative size or epochs.
    """
    if train_size < 0 or epochs < 0:
        raise ValueError(f"need train_size >= 0 and epochs >= 0, got {train_size} and {epochs}")
    return int(round(train_size * float(epochs)))


def cost_point(passes: float, points: dict[str, int] = COST_POINTS) -> str:
    """The name of the cost point nearest to ``passes`` on a log scale (27.5k -> "30k", 110k -> "120k").

    Args:
        passes: sample passes of an evaluation.
        points: ``{name: sample passes}``.

    Raises:
        ValueError: ``passes`` <= 0.
    """
    if passes <= 0:
        raise ValueError(f"passes must be > 0, got {passes}")
    return min(points, key=lambda k: abs(math.log(passes / points[k])))


def evaluations(runs: Sequence[Run] = CPU_RUNS) -> list[tuple[str, float, int, str]]:
    """Every (kind, epochs, sample passes, cost point) a study's runs report, in run order.

    Args:
        runs: the runs.
    """
    out = []
    for r in runs:
        for e in r.report_at:
            p = sample_passes(r.train_size, e)
            out.append((r.kind, float(e), p, cost_point(p)))
    return out


def macs(arch: dict, image_size=(28, 28), channels: int = 1, num_classes: int = 10) -> int:
    """Multiply-accumulates of one forward pass of ``arch`` (its convolutions and linear layers), counted with
    forward hooks on the core network for one ``(1, channels, H, W)`` image.

    Args:
        arch: an architecture of the ConvNet space.
        image_size: ``(H, W)``.
        channels: input channels.
        num_classes: classes of the classifier.
    """
    net = build_network(arch, channels=channels, num_classes=num_classes, image_size=image_size)
    total = [0]

    def hook(mod: nn.Module, inp, out) -> None:
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += out.numel() * k
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, channels, *image_size))
    for h in handles:
        h.remove()
    return total[0]


def ms_per_sample(arch: dict, *, ms_ref: float = MS_PER_SAMPLE_REF, overhead: float = OVERHEAD_SHARE,
                  image_size=(28, 28)) -> float:
    """Estimated milliseconds per sample pass of ``arch``: ``ms_ref * (overhead + (1 - overhead) * r)`` with ``r``
    its :func:`macs` relative to ConvNet-3 width 128 (:data:`DEFAULT_ARCHITECTURE`).

    Args:
        arch: an architecture of the ConvNet space.
        ms_ref: measured ms per sample pass of ConvNet-3 width 128.
        overhead: the share that does not scale with the network.
        image_size: ``(H, W)``.
    """
    r = macs(arch, image_size) / macs(DEFAULT_ARCHITECTURE, image_size)
    return ms_ref * (overhead + (1 - overhead) * r)


@dataclass
class Plan:
    """A study's cost: sample passes in all, the estimated CPU-hours, and the estimate per architecture."""

    num_architectures: int
    sample_passes: int
    cpu_hours: float
    per_architecture: dict  # {arch_key: (sample passes, CPU-hours)}

    def lines(self) -> list[str]:
        """The plan as text lines (for ``--plan``)."""
        worst = max(self.per_architecture.items(), key=lambda kv: kv[1][1])
        return [f"{self.num_architectures} architectures, {self.sample_passes / 1e6:.1f} M sample passes, "
                f"~{self.cpu_hours:.1f} CPU-hours (single-thread; {self.cpu_hours / 2:.1f} h on 2 cores)",
                f"  most expensive: {worst[0]} ~{worst[1][1]:.2f} CPU-h"]


def estimate(archs: Iterable[dict], runs: Sequence[Run] = CPU_RUNS, *, reliability_archs: int = RELIABILITY_ARCHS,
             ms_ref: float = MS_PER_SAMPLE_REF, overhead: float = OVERHEAD_SHARE,
             extra_passes: int = 0) -> Plan:
    """CPU-hours of training every run on every architecture (second seeds on the first ``reliability_archs``).

    Args:
        archs: the study's architectures, in order.
        runs: the runs per architecture.
        reliability_archs: how many (the first) architectures also train the runs' second seeds.
        ms_ref: see :func:`ms_per_sample`.
        overhead: see :func:`ms_per_sample`.
        extra_passes: passes at ConvNet-3 width 128 cost outside the per-architecture runs (e.g. condensation,
            counted as one sample pass per real image per matching step).

    Raises:
        ValueError: ``reliability_archs`` < 0.
    """
    if reliability_archs < 0:
        raise ValueError(f"reliability_archs must be >= 0, got {reliability_archs}")
    per, total_passes, total_ms = {}, extra_passes, extra_passes * ms_ref
    for i, a in enumerate(archs):
        passes = sum(r.passes * (len(r.seeds) if i < reliability_archs else 1) for r in runs)
        ms = passes * ms_per_sample(a, ms_ref=ms_ref, overhead=overhead)
        per[arch_key(a)] = (passes, ms / 3.6e6)
        total_passes += passes
        total_ms += ms
    return Plan(len(per), int(total_passes), total_ms / 3.6e6, per)
