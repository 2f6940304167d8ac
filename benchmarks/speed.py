"""Condensation speed: ms per iteration of the fast path and of the official-structure reference mode.

For each IPC and mode, builds the matcher on the real Fashion-MNIST pool (60,000 images, 64 real images per
class by default, atom preset), runs --warmup iterations, then times --iters iterations one by one
(CUDA events on GPU, perf_counter on CPU; median, p10, p90) and records peak GPU memory
(torch.cuda.max_memory_allocated). One-time costs (pool to device, torch.compile warm-up) are reported
beside the loop. ``--full-run N`` also times a whole N-iteration condense() call per IPC (fast mode).

    python benchmarks/speed.py --data-root /usr/share/datasets/fashion-mnist --ipc 1 10 50 --iters 20 --warmup 3
    python benchmarks/speed.py --device cuda --ipc 1 10 50 --iters 300 --warmup 30 --modes fast fast+compile reference --full-run 8000
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, Timer, fashion_mnist, log, record, set_threads

from atom_plugin import ATOMConfig, condense, resolve_device
from atom_plugin.runner import run_script
from atom_plugin.config import NETWORKS
from atom_plugin.matcher import build_matcher


def time_steps(matcher, start: int, n: int, dev: torch.device) -> list[float]:
    """Milliseconds of each of ``n`` iterations (synchronised)."""
    out = []
    for t in range(start, start + n):
        if dev.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            matcher.step(t)
            b.record()
            b.synchronize()
            out.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            matcher.step(t)
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--modes", nargs="+", default=["fast", "reference"], choices=["fast", "fast+compile", "reference"])
    ap.add_argument("--preset", default="atom")
    ap.add_argument("--factor", type=int, nargs="+", default=[1], help="multi-formation factors to time (default 1)")
    ap.add_argument("--networks", nargs="+", default=["random"], choices=NETWORKS,
                    help="matching networks to time (default random; reference mode times random only)")
    ap.add_argument("--batch-real", type=int, default=64)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--full-run", type=int, default=0, help="also time a whole condense() of this many iterations")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=str(RESULTS / "speed.json"))
    args = ap.parse_args()
    set_threads()
    dev = resolve_device(args.device)
    train, _ = fashion_mnist(args.data_root, validation=False)
    for ipc, factor, networks, mode in itertools.product(args.ipc, args.factor, args.networks, args.modes):
        if mode == "reference" and networks != "random":
            continue
        cfg = ATOMConfig(preset=args.preset, ipc=ipc, batch_real=args.batch_real, factor=factor, networks=networks)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
            torch.cuda.synchronize(dev)
        with Timer() as setup:
            m = build_matcher(train, cfg, mode="reference" if mode == "reference" else "fast", device=dev, seed=0,
                              compile=(mode == "fast+compile"))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        with Timer() as warm:
            time_steps(m, 0, args.warmup, dev)
        ms = np.array(time_steps(m, args.warmup, args.iters, dev))
        rec = dict(benchmark="speed", dataset="fashion-mnist", method=args.preset, ipc=ipc, mode=mode,
                   factor=factor, networks=networks,
                   batch_real=m.n_real, ms_per_iter_median=round(float(np.median(ms)), 3),
                   ms_per_iter_p10=round(float(np.percentile(ms, 10)), 3),
                   ms_per_iter_p90=round(float(np.percentile(ms, 90)), 3), timed_iterations=args.iters,
                   warmup_iterations=args.warmup, setup_seconds=round(setup.seconds, 2),
                   warmup_seconds=round(warm.seconds, 2),
                   peak_mem_mb=round(torch.cuda.max_memory_allocated(dev) / 2**20, 1) if dev.type == "cuda" else None,
                   threads=torch.get_num_threads())
        record(Path(args.out), rec, dev)
        log(f"ipc {ipc:>2} f{factor} {networks:>6} {mode:>13}: median {rec['ms_per_iter_median']:.1f} ms "
            f"(p10 {rec['ms_per_iter_p10']:.1f}, p90 {rec['ms_per_iter_p90']:.1f}), setup {setup.seconds:.1f} s")
        del m
        if args.full_run and mode == args.modes[0]:
            with Timer() as full:
                res = condense(train, cfg.replace(iterations=args.full_run), device=dev, seed=0)
            rec = dict(benchmark="speed-full-run", dataset="fashion-mnist", method=args.preset, ipc=ipc, mode="fast",
                       factor=factor, networks=networks,
                       iterations=args.full_run, loop_seconds=res.provenance["seconds"],
                       total_seconds=round(full.seconds, 2),
                       one_time_seconds=round(full.seconds - res.provenance["seconds"], 2))
            record(Path(args.out), rec, dev)
            log(f"ipc {ipc:>2} full run of {args.full_run} iterations: loop {rec['loop_seconds']:.1f} s, "
                f"one-time {rec['one_time_seconds']:.1f} s")


if __name__ == "__main__":
    run_script(main)
