"""Condensation speed: throughput of the fast path and of the official-structure reference mode.

For each IPC and mode, builds the matcher (``build_matcher``) on the real Fashion-MNIST pool (60,000 images,
64 real images per class by default, atom preset), runs --warmup iterations, then times --blocks blocks of
--iters iterations each (``Matcher.step``; the loop never synchronises inside a block): on CUDA, two CUDA
events around the block and ONE synchronisation at its end; on CPU, perf_counter around the block. Records the
milliseconds per iteration (the median block's mean; min/max over blocks), iterations per second and, on a
GPU, the peak memory of that mode alone (``gc.collect()``, ``torch.cuda.empty_cache()`` and
``reset_peak_memory_stats()`` before each mode). One-time costs (pool to device, torch.compile warm-up) are
reported beside the loop. ``--profile N`` adds a torch.profiler summary of N more steps per mode (host op time,
device kernel time and kernel count per step). ``--full-run N`` also times a whole N-iteration condense() call
per IPC (fast mode; through torch.compile with --compile). The resolved device is printed first and recorded.

    python benchmarks/speed.py --data-root /usr/share/datasets/fashion-mnist --ipc 1 10 50 --iters 20 --warmup 3

``--real-batch uniform representative`` times representative batches too (reference mode: uniform only); a block of
a multiple of ``recluster_every`` (10) iterations holds its share of re-clusterings, as a run does.
    python benchmarks/speed.py --device cuda --ipc 1 10 50 --iters 300 --warmup 30 --blocks 3 \\
        --modes fast fast+compile reference --profile 5 --full-run 8000 --compile
"""
from __future__ import annotations

import argparse
import gc
import itertools
import time
from collections import Counter

import numpy as np
import torch
from _common import ResultsFile, Timer, add_common_args, add_out_arg, fashion_mnist, log, set_threads

from atom_plugin import ATOMConfig, condense, device_name, resolve_device
from atom_plugin.config import NETWORKS, REAL_BATCHES
from atom_plugin.matcher import build_matcher
from atom_plugin.runner import one_line, run_script

MODES = ("fast", "fast+compile", "reference")


def sync(dev: torch.device) -> None:
    """Wait for the device's queued work (no-op on CPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def fresh_memory(dev: torch.device) -> None:
    """Free what earlier modes left and restart the peak-memory counter, so a peak belongs to one mode."""
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory_mb(dev: torch.device) -> float | None:
    """Peak allocated device memory (MB) since the last :func:`fresh_memory`; None on CPU."""
    return round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None


def time_block(matcher, start: int, n: int, dev: torch.device) -> float:
    """Milliseconds of iterations ``start .. start + n - 1`` run back to back: CUDA events around the block and one
    synchronisation at its end (none inside), or perf_counter around the block on CPU."""
    sync(dev)
    if dev.type == "cuda":
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for t in range(start, start + n):
            matcher.step(t)
        b.record()
        b.synchronize()
        return a.elapsed_time(b)
    t0 = time.perf_counter()
    for t in range(start, start + n):
        matcher.step(t)
    return (time.perf_counter() - t0) * 1e3


def profile_steps(matcher, start: int, n: int, dev: torch.device, top: int = 5) -> dict:
    """torch.profiler summary of ``n`` steps, per step: host op time (self CPU time of every profiled op, ms),
    device time and count of kernels and of memcpy/memset (None on CPU), and the ``top`` kernels by time.
    A profiler that cannot give them (its event API changed) yields ``profile_error`` instead of stopping the
    benchmark: the summary is a diagnostic beside the timings, not one of them."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    sync(dev)
    try:
        with profile(activities=activities) as prof:
            with Timer() as wall:
                for t in range(start, start + n):
                    matcher.step(t)
                sync(dev)
        return dict(profiled_steps=n, wall_ms_per_step=round(wall.seconds * 1e3 / n, 3),
                    **_summarise(prof.events(), n, dev.type == "cuda", top))
    except (AttributeError, RuntimeError) as exc:
        return dict(profiled_steps=n, profile_error=one_line(exc))


def _summarise(events, n: int, on_gpu: bool, top: int) -> dict:
    host_us = kernel_us = copy_us = 0.0
    kernels = copies = 0
    by_name: Counter = Counter()
    for e in events:
        if e.device_type == torch.autograd.DeviceType.CPU:
            host_us += e.self_cpu_time_total
        else:
            us = e.time_range.elapsed_us()
            if e.name.startswith(("Memcpy", "Memset")):
                copies, copy_us = copies + 1, copy_us + us
            else:
                kernels, kernel_us = kernels + 1, kernel_us + us
                by_name[e.name[:80]] += us
    return dict(host_op_ms_per_step=round(host_us / 1e3 / n, 3),
                kernel_ms_per_step=round(kernel_us / 1e3 / n, 3) if on_gpu else None,
                kernels_per_step=round(kernels / n, 1) if on_gpu else None,
                copy_ms_per_step=round(copy_us / 1e3 / n, 3) if on_gpu else None,
                copies_per_step=round(copies / n, 1) if on_gpu else None,
                top_kernels=[[k, round(v / 1e3 / n, 3)] for k, v in by_name.most_common(top)] if on_gpu else None)


def measure(train, cfg: ATOMConfig, mode: str, dev: torch.device, *, warmup: int, iters: int, blocks: int = 1,
            profile: int = 0, seed: int = 0) -> tuple[dict, dict | None]:
    """Time one mode (``fast``, ``fast+compile`` or ``reference``): (speed fields, profile fields or None).
    The matcher gets ``compile=True`` for fast+compile and ``compile=False`` otherwise (explicitly)."""
    fresh_memory(dev)
    with Timer() as setup:
        m = build_matcher(train, cfg, mode="reference" if mode == "reference" else "fast", device=dev, seed=seed,
                          compile=(mode == "fast+compile"))
        sync(dev)
    with Timer() as warm:
        time_block(m, 0, warmup, dev)
    block_ms = [time_block(m, warmup + b * iters, iters, dev) / iters for b in range(blocks)]
    ms = float(np.median(block_ms))
    fields = dict(mode=mode, compile=(mode == "fast+compile"), batch_real=m.n_real, ms_per_iter=round(ms, 3),
                  ms_per_iter_min=round(min(block_ms), 3), ms_per_iter_max=round(max(block_ms), 3),
                  iters_per_s=round(1e3 / ms, 2), timed_iterations=iters * blocks, blocks=blocks,
                  timing="cuda-events, one sync per block" if dev.type == "cuda" else "perf_counter per block",
                  warmup_iterations=warmup, setup_seconds=round(setup.seconds, 2),
                  warmup_seconds=round(warm.seconds, 2), peak_mem_mb=peak_memory_mb(dev),
                  threads=torch.get_num_threads())
    prof = profile_steps(m, warmup + blocks * iters, profile, dev) if profile > 0 else None
    del m
    fresh_memory(dev)
    return fields, prof


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, seed=False, compile=False)
    ap.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--modes", nargs="+", default=["fast", "reference"], choices=MODES)
    ap.add_argument("--preset", default="atom")
    ap.add_argument("--factor", type=int, nargs="+", default=[1], help="multi-formation factors to time (default 1)")
    ap.add_argument("--networks", nargs="+", default=["random"], choices=NETWORKS,
                    help="matching networks to time (default random; reference mode times random only)")
    ap.add_argument("--real-batch", nargs="+", default=["uniform"], choices=REAL_BATCHES,
                    help="real batches to time (default uniform; reference mode times uniform only)")
    ap.add_argument("--width", type=int, default=None, help="matching network width (default: the preset's)")
    ap.add_argument("--batch-real", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20, help="iterations per timed block")
    ap.add_argument("--blocks", type=int, default=1, help="timed blocks per mode (the median block is reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--profile", type=int, default=0, help="also profile this many steps per mode (torch.profiler)")
    ap.add_argument("--full-run", type=int, default=0, help="also time a whole condense() of this many iterations")
    ap.add_argument("--compile", action="store_true", help="the --full-run condense() goes through torch.compile")
    add_out_arg(ap, "speed.json")
    args = ap.parse_args()
    set_threads()
    dev = resolve_device(args.device)
    log(f"device: {device_name(dev)} (torch {torch.__version__})")
    results = ResultsFile(args.out)
    train, _ = fashion_mnist(args.data_root, validation=False)
    width = {} if args.width is None else dict(width=args.width)
    for ipc, factor, networks, real_batch in itertools.product(args.ipc, args.factor, args.networks, args.real_batch):
        # a start from random real images at every IPC: the setup the speed records measure (a herding start, the
        # atom default above IPC 10, adds a feature network's training to setup_seconds, not to an iteration)
        cfg = ATOMConfig(preset=args.preset, ipc=ipc, batch_real=args.batch_real, factor=factor, networks=networks,
                         real_batch=real_batch, init="real", **width)
        same = dict(dataset="fashion-mnist", method=args.preset, ipc=ipc, factor=factor, networks=networks,
                    width=cfg.width, real_batch=real_batch)
        for mode in args.modes:
            if mode == "reference" and (networks != "random" or real_batch != "uniform"):
                continue
            fields, prof = measure(train, cfg, mode, dev, warmup=args.warmup, iters=args.iters, blocks=args.blocks,
                                   profile=args.profile)
            rec = results.append(dict(benchmark="speed", **same, **fields), dev)
            log(f"ipc {ipc:>2} f{factor} {networks:>6} {real_batch:>14} {mode:>13}: {rec['ms_per_iter']:.2f} ms/iter "
                f"({rec['iters_per_s']:.1f} it/s; blocks {rec['ms_per_iter_min']:.2f}-{rec['ms_per_iter_max']:.2f}), "
                f"setup {rec['setup_seconds']:.1f} s, peak {rec['peak_mem_mb']} MB")
            if prof is not None:
                results.append(dict(benchmark="speed-profile", **same, mode=mode, **prof), dev)
                log(f"ipc {ipc:>2} {mode:>13} profile: host ops {prof.get('host_op_ms_per_step')} ms/step, kernels "
                    f"{prof.get('kernel_ms_per_step')} ms/step ({prof.get('kernels_per_step')} kernels/step)"
                    + (f"; {prof['profile_error']}" if "profile_error" in prof else ""))
        if args.full_run:
            fresh_memory(dev)
            with Timer() as full:
                res = condense(train, cfg.replace(iterations=args.full_run), device=dev, seed=0,
                               compile=bool(args.compile))
                sync(dev)
            mode = "fast+compile" if args.compile else "fast"
            rec = results.append(dict(benchmark="speed-full-run", **same, mode=mode, compile=bool(args.compile),
                                      iterations=args.full_run, loop_seconds=res.provenance["seconds"],
                                      total_seconds=round(full.seconds, 2),
                                      one_time_seconds=round(full.seconds - res.provenance["seconds"], 2),
                                      peak_mem_mb=peak_memory_mb(dev)), dev)
            log(f"ipc {ipc:>2} full run of {args.full_run} iterations: loop {rec['loop_seconds']:.1f} s, "
                f"one-time {rec['one_time_seconds']:.1f} s")


if __name__ == "__main__":
    run_script(main)
