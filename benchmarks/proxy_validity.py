"""Proxy validity: does training candidates on a condensed set rank architectures the way full data does?

Protocol (after DC's and DataDAM's NAS experiments; DataDAM, ICCV 2023, Sec. 4.4):
  * Fashion-MNIST; 5,000 training images held out as the validation split (``validation_split(train)``:
    stratified, seed 0); proxies are made from the other 55,000 only.
  * ``--num-archs`` (>= 100 for the real study) architectures sampled (seeded) from the 720-variant ConvNet space
    (depth 1-4, width 32-256, sigmoid/relu/leakyrelu, none/batch/layer/instance/group norm, none/max/avg pool).
  * Each architecture is trained, with the same seed and the core protocol (SGD 0.01, momentum 0.9, wd 5e-4,
    batch 256, lr x0.1 at half, DSA), on
      - the ATOM proxy (IPC 10 and 50; condensed here, or given with --atom-proxy) for --proxy-epochs epochs,
      - a random real subset of the same size (``random_subset``, seed 0) for --proxy-epochs epochs,
      - the 55,000 images ("full") for --full-epochs epochs,
    and ranked by its accuracy on the validation split.
  * Reported per proxy: Spearman rho (scipy.stats.spearmanr) of proxy vs full validation accuracy over all
    candidates and over the top 20 % (by full-data accuracy), percentile-bootstrap 95 % intervals (resampling
    candidates), and the test accuracy of the full-data-trained network of the proxy's top pick vs that of the true
    best. The test set is used once, for these top picks: their full-data networks are retrained (same seed and
    epochs) and tested, nothing else ever sees it.
  * Wall-clock per candidate and in total; speed-up = full-data search time / (proxy search time + condensation
    time), and amortised (condensation excluded: one proxy serves many searches).

No NNI here: the candidates are built by the core ConvNet factory over the same space
(``atom_plugin.integrations.nni.space``), so it runs on any machine with torch and SciPy (Spearman rho).

Resumable: each candidate's result goes to a JSON-lines cache (--cache-dir/candidates.jsonl) as soon as it is
measured; a rerun with the same settings skips what is there. Condensed proxies are cached there too.

Outputs: one record per proxy appended to benchmarks/results/proxy_validity.json (quick: proxy_validity_quick.json),
each with its per-candidate validation accuracies (``candidates``); ``python benchmarks/report.py`` renders them
(the table, the per-architecture accuracies and a scatter plot of proxy vs full validation accuracy) in docs/nni.md.

  GPU study:  python benchmarks/proxy_validity.py --device cuda --data-root DATA --ipc 10 50 --num-archs 100 \\
                  --proxy-epochs 300 --full-epochs 20 --iterations 8000
  CPU check:  python benchmarks/proxy_validity.py --quick --data-root DATA
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from _common import (RESULTS, CandidateCache, ResultsFile, add_budget_args, add_out_arg, cached_set, log,
                     set_threads, stamp)

from atom_plugin import ATOMConfig, CondensedDataset, condense, load_dataset, random_subset, validation_split
from atom_plugin import device_name, resolve_device
from atom_plugin.data import VAL_SIZE
from atom_plugin.runner import run_script

try:  # the installed package is the one way in (these modules need no NNI)
    from atom_plugin.integrations.nni import data as nni_data, space as nni_space, stats, train as nni_train
except ModuleNotFoundError as exc:
    if not (exc.name or "").startswith("atom_plugin"):
        raise
    raise SystemExit("error: atom_plugin.integrations is not installed (a bare checkout?); install the package "
                     "from the repository root: pip install -e '.[nni]'") from None


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_budget_args(ap, iterations="default 8000; quick 3")  # also --data-root, --device, --seed, --compile
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--ipc", type=int, nargs="+", default=None, help="proxy sizes (default 10 50; quick 2)")
    ap.add_argument("--atom-proxy", nargs="*", default=[], help="condensed .safetensors files to use instead of "
                    "condensing (their IPC replaces --ipc); they must come from the 55,000-image split")
    ap.add_argument("--proxies", nargs="+", default=["atom", "random", "full"], choices=["atom", "random", "full"])
    ap.add_argument("--num-archs", type=int, default=None, help="architectures sampled (default 100; quick 6)")
    ap.add_argument("--arch-seed", type=int, default=0)
    ap.add_argument("--proxy-epochs", type=int, default=None, help="epochs on a proxy (default 300; quick 2)")
    ap.add_argument("--full-epochs", type=int, default=None, help="epochs on full data (default 20; quick 1)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--val-size", type=int, default=None, help=f"validation images (default {VAL_SIZE}; quick: a fifth)")
    ap.add_argument("--full-subsample", type=int, default=None, help="real images per class standing in for the "
                    "full data (default all; quick 16)")
    ap.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples (default 1000; quick 100)")
    ap.add_argument("--top-frac", type=float, default=0.2)
    ap.add_argument("--download", action="store_true")
    ap.add_argument("--cache-dir", default=None, help="default runs/proxy_validity (quick: runs/proxy_validity_quick)")
    add_out_arg(ap, None, "default benchmarks/results/proxy_validity.json; quick: proxy_validity_quick.json")
    ap.add_argument("--quick", action="store_true", help="CPU-sized check: 6 architectures, 2/1 epochs, ipc 2, "
                    "3 condensation iterations with a width-16 network, 16 real images per class as 'full' data")
    args = ap.parse_args(argv)
    q = args.quick
    defaults = dict(ipc=[2] if q else [10, 50], num_archs=6 if q else 100, proxy_epochs=2 if q else 300,
                    full_epochs=1 if q else 20, iterations=3 if q else 8000, full_subsample=16 if q else 0,
                    bootstrap=100 if q else 1000,
                    cache_dir="runs/proxy_validity_quick" if q else "runs/proxy_validity",
                    out=str(RESULTS / ("proxy_validity_quick.json" if q else "proxy_validity.json")))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    return args


# A study's identity in the records file: a rerun with the same settings does not append it twice.
RECORD_KEY = ("dataset", "proxy", "ipc", "proxy_size", "num_architectures", "arch_seed", "train_seed", "proxy_epochs",
              "full_epochs", "full_train_size", "val_size", "iterations", "lr", "weight_decay", "batch_size", "device",
              "quick")


def make_proxies(args, train, val, dev, cache_dir: Path, split) -> list[dict]:
    """[{proxy: atom|random, ipc, data, make_seconds}] for every requested proxy. ``split`` is the training part
    of the validation split (before any --full-subsample): given proxies must have been condensed from it."""
    out = []
    atom_sets = []
    if "atom" in args.proxies:
        if args.atom_proxy:
            for p in args.atom_proxy:
                s = CondensedDataset.load(p)
                nni_data.check_compatible(s, val, proxy_name=f"proxy {p}")
                source = s.provenance.get("source_fingerprint")
                if source is not None and source != split.fingerprint():
                    raise nni_data.ProxyMismatchError(
                        f"proxy {p} was condensed from another set (fingerprint {source}) than the {len(split)}-image "
                        f"training part of the validation split ({split.fingerprint()}): it may have seen validation "
                        f"images; condense it from validation_split(train, {len(val)})[0]")
                if s.ipc is None:
                    raise SystemExit(f"error: {p} has unequal images per class; give an IPC-balanced proxy")
                atom_sets.append((s, s.provenance.get("seconds")))
        else:
            for ipc in args.ipc:
                width = {"width": 16} if args.quick else {}
                tag = f"atom-ipc{ipc}-it{args.iterations}-br{args.batch_real}-s{args.seed}-n{len(split)}" + \
                      ("-w16" if width else "")
                path = cache_dir / f"{tag}.safetensors"
                cached = path.exists()

                def make(ipc=ipc, width=width) -> CondensedDataset:
                    # plain images and random networks: the proxies the recorded study measured (a factorised
                    # proxy trains on 4x the samples per epoch, a different cost/fidelity point)
                    cfg = ATOMConfig(preset="atom", ipc=ipc, iterations=args.iterations, batch_real=args.batch_real,
                                     factor=1, networks="random", **width)
                    s = condense(split, cfg, device=dev, seed=args.seed, compile=args.compile)
                    s.provenance["condensed_on"] = device_name(dev)
                    return s

                s, seconds = cached_set(path, make, dev)
                log(f"proxy atom ipc {ipc}: {'cached' if cached else 'condensed'} {path} ({seconds:.1f} s to condense)")
                atom_sets.append((s, round(seconds, 2)))
        out += [dict(proxy="atom", ipc=s.ipc, data=s, make_seconds=sec) for s, sec in atom_sets]
    ipcs = [s.ipc for s, _ in atom_sets] if atom_sets else list(args.ipc)
    if "random" in args.proxies:
        for ipc in ipcs:
            t0 = time.perf_counter()
            s = random_subset(split, ipc, seed=0)
            out.append(dict(proxy="random", ipc=ipc, data=s, make_seconds=time.perf_counter() - t0))
    return out


_FINGERPRINTS: dict[int, str] = {}


def _fingerprint(data) -> str:
    if id(data) not in _FINGERPRINTS:  # hashing 55,000 images takes a while: once per set
        _FINGERPRINTS[id(data)] = data.fingerprint()
    return _FINGERPRINTS[id(data)]


def measure(cache: CandidateCache, kind: str, arch: dict, data, val_or_test, args, dev, epochs: int, tag: str) -> dict:
    """Train ``arch`` on ``data`` and measure accuracy (%) on ``val_or_test``, or return the cached result.
    The cache key holds the training set's fingerprint, the architecture, the training settings and the device."""
    key = "|".join(str(v) for v in (kind, tag, _fingerprint(data), nni_space.arch_key(arch), epochs, args.lr,
                                    args.weight_decay, args.batch_size, args.seed, device_name(dev)))
    hit = cache.get(key)
    if hit is not None:
        return hit
    res = nni_train.train_and_validate(arch, data, val_or_test, epochs=epochs, lr=args.lr,
                                       weight_decay=args.weight_decay, batch_size=args.batch_size, seed=args.seed,
                                       device=dev, compile=args.compile)
    entry = dict(key=key, kind=kind, proxy=tag, arch=nni_space.arch_key(arch), epochs=epochs, train_size=len(data),
                 accuracy=round(100.0 * res.accuracy, 3), seconds=round(res.seconds, 3), device=device_name(dev))
    cache.put(entry)
    return entry


def summarise(name: str, ipc, proxy_acc: list[float], full_acc: list[float], archs: list[dict], args) -> dict:
    rho = stats.spearman(proxy_acc, full_acc)
    rho_top = stats.spearman_top(proxy_acc, full_acc, args.top_frac)
    ci = stats.bootstrap_ci(proxy_acc, full_acc, n_boot=args.bootstrap, seed=0)
    ci_top = stats.bootstrap_ci(proxy_acc, full_acc, fraction=args.top_frac, n_boot=args.bootstrap, seed=0)
    top = max(range(len(archs)), key=lambda i: (proxy_acc[i], -i))
    return dict(proxy=name, ipc=ipc, spearman_all=_r(rho), spearman_all_ci=[_r(ci[0]), _r(ci[1])],
                spearman_top20=_r(rho_top), spearman_top20_ci=[_r(ci_top[0]), _r(ci_top[1])],
                top_fraction=args.top_frac, top_pick=nni_space.arch_key(archs[top]),
                top_pick_proxy_val_accuracy=proxy_acc[top], top_pick_full_val_accuracy=full_acc[top], _top=top)


def _r(x, nd: int = 4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    set_threads()
    dev = resolve_device(args.device)
    cache_dir = Path(args.cache_dir)
    cache = CandidateCache(cache_dir / "candidates.jsonl")
    t_start = time.perf_counter()

    full_train = load_dataset(args.dataset, args.data_root, split="train", download=args.download)
    train, val = validation_split(full_train, args.val_size or None, quick=args.quick)
    split = train
    if args.full_subsample:
        per_class = int(train.class_counts().min())
        if args.full_subsample < per_class:
            train = random_subset(train, args.full_subsample, seed=1)
    c, h, w = train.image_shape
    archs = nni_space.sample_architectures(args.num_archs, args.arch_seed, image_size=(h, w))
    log(f"{len(archs)} architectures; full data {len(train)} images; validation {len(val)}; device {device_name(dev)}")

    proxies = make_proxies(args, train, val, dev, cache_dir, split)
    # -- validation accuracy of every candidate on every training set ---------------------------------------------
    full_res = [measure(cache, "val", a, train, val, args, dev, args.full_epochs, "full") for a in _progress(archs, "full")]
    full_acc = [e["accuracy"] for e in full_res]
    per_arch = {}
    proxy_res = {}
    for p in proxies:
        label = f"{p['proxy']} ipc {p['ipc']}"
        proxy_res[label] = [measure(cache, "val", a, p["data"], val, args, dev, args.proxy_epochs, p["proxy"])
                            for a in _progress(archs, label)]
        per_arch[label] = [e["accuracy"] for e in proxy_res[label]]
    per_arch["full"] = full_acc

    # -- the test set, once: full-data networks of the top picks and of the true best --------------------------------
    test = load_dataset(args.dataset, args.data_root, split="test", download=args.download)
    best = max(range(len(archs)), key=lambda i: (full_acc[i], -i))
    summaries = [summarise(p["proxy"], p["ipc"], per_arch[f"{p['proxy']} ipc {p['ipc']}"], full_acc, archs, args)
                 for p in proxies]
    picks = sorted({best} | {s["_top"] for s in summaries})
    test_acc = {i: measure(cache, "test", archs[i], train, test, args, dev, args.full_epochs, "full")["accuracy"]
                for i in picks}

    full_total = sum(e["seconds"] for e in full_res)
    env = stamp(dev)
    names = [nni_space.arch_key(a) for a in archs]
    records = []
    for p, s in zip(proxies, summaries):
        label = f"{p['proxy']} ipc {p['ipc']}"
        res = proxy_res[label]
        search = sum(e["seconds"] for e in res)
        make = p["make_seconds"]
        total = search + (make or 0.0)
        top = s.pop("_top")
        records.append(dict(
            dataset=args.dataset, **s, num_architectures=len(archs), proxy_size=len(p["data"]),
            top_pick_full_accuracy=test_acc[top], best_architecture=nni_space.arch_key(archs[best]),
            best_full_accuracy=test_acc[best], best_full_val_accuracy=full_acc[best],
            regret_points=round(test_acc[best] - test_acc[top], 3),
            seconds_per_candidate=round(search / len(archs), 3), search_seconds=round(search, 2),
            condense_seconds=None if make is None else round(make, 2),
            seconds_total=round(total, 2) if make is not None else None,
            full_seconds_total=round(full_total, 2), full_seconds_per_candidate=round(full_total / len(archs), 3),
            speedup_vs_full=round(full_total / total, 2) if make is not None and total > 0 else None,
            speedup_vs_full_amortised=round(full_total / search, 2) if search > 0 else None,
            proxy_epochs=args.proxy_epochs, full_epochs=args.full_epochs, full_train_size=len(train),
            val_size=len(val), arch_seed=args.arch_seed, train_seed=args.seed, lr=args.lr,
            weight_decay=args.weight_decay, batch_size=args.batch_size,
            iterations=args.iterations if p["proxy"] == "atom" and not args.atom_proxy else None,
            bootstrap=args.bootstrap, quick=args.quick, candidates=[list(c) for c in zip(names, per_arch[label])],
            **env))
    if "full" in args.proxies:
        records.append(dict(
            dataset=args.dataset, proxy="full", ipc=None, spearman_all=1.0, spearman_top20=1.0,
            num_architectures=len(archs), proxy_size=len(train), top_pick=nni_space.arch_key(archs[best]),
            top_pick_full_accuracy=test_acc[best], best_architecture=nni_space.arch_key(archs[best]),
            best_full_accuracy=test_acc[best], best_full_val_accuracy=full_acc[best], regret_points=0.0,
            seconds_per_candidate=round(full_total / len(archs), 3), search_seconds=round(full_total, 2),
            condense_seconds=0.0, seconds_total=round(full_total, 2), full_seconds_total=round(full_total, 2),
            speedup_vs_full=1.0, speedup_vs_full_amortised=1.0, proxy_epochs=args.full_epochs,
            full_epochs=args.full_epochs, full_train_size=len(train), val_size=len(val), arch_seed=args.arch_seed,
            train_seed=args.seed, lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
            bootstrap=args.bootstrap, quick=args.quick, candidates=[list(c) for c in zip(names, full_acc)], **env))
    results = ResultsFile(args.out, RECORD_KEY)
    fresh = results.append_new(records)
    if len(fresh) < len(records):
        log(f"{len(records) - len(fresh)} record(s) with the same settings are already in {results.path}; not "
            "appended again")
    for r in records:
        log(f"{r['proxy']:6s} ipc {r['ipc']}: rho all {r['spearman_all']} (CI {r.get('spearman_all_ci')}), top 20 % "
            f"{r['spearman_top20']}; top pick {r['top_pick']} -> test {r['top_pick_full_accuracy']} % vs best "
            f"{r['best_full_accuracy']} %; {r['seconds_per_candidate']} s/candidate, speed-up {r['speedup_vs_full']} "
            f"(amortised {r['speedup_vs_full_amortised']})")
    log(f"wrote {results.path} in {time.perf_counter() - t_start:.1f} s; tables and plot: python benchmarks/report.py")
    return records


def _progress(items, label: str):
    n = len(items)
    for i, item in enumerate(items, 1):
        if i == 1 or i == n or i % max(1, n // 10) == 0:
            log(f"[{label}] candidate {i}/{n}: {nni_space.arch_key(item)}")
        yield item


if __name__ == "__main__":
    run_script(main)
