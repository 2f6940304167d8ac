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

The CPU study (``--budget cpu``; issue 26) answers "is the proxy better than what a searcher would do instead, at
the same cost":
  * 40 architectures (``--num-archs``), a seeded sample stratified over depth, norm, activation and pooling
    (``sample_stratified``), restricted to POOLED networks of width <= 128: unpooled and width-256 networks cost
    several times more per sample on this CPU.
  * ONE learning-rate schedule for every run: a CONSTANT lr (0.01), so every intermediate validation is the score a
    shorter run would have had (a legitimate early stop); ``train_model``'s decay at half the epochs would bias
    the early points.
  * Cost is counted in sample passes (training samples x epochs), at aligned cost points
    (``atom_plugin.integrations.proxy.plan.CPU_RUNS``): ~30k: the 100-sample proxies (condensed IPC 10 at factor 1,
    random 100, herding 100) at 300 epochs, the 400-sample proxies (condensed IPC 10 at factor 2, the default, and
    random 400) at 75 epochs, full data at 1/2 epoch; ~120k: the 400-sample proxies at 300 epochs, full data at 2
    epochs; the reference: full data at 4 epochs (220k). Wall seconds are recorded too, but not the axis (two jobs
    share the cores).
  * Condensed proxies: 200 iterations, from the 55,000 non-validation images only, with their config pinned here
    (``CPU_CONDENSE``) and the resolved config recorded; cached sets of other benchmarks are never reused.
  * Reliability: a second seed for the first 10 architectures on full data and on the condensed default; the
    per-architecture seed variance gives each side's reliability and the noise ceiling sqrt(rel_proxy * rel_full).
  * The full-data networks are saved (safetensors), so the picks are tested, not retrained; candidates are ranked
    on the validation split and the test set is touched only for the picks.
  * Every measured run is logged at once in benchmarks/results/proxy_validity_cpu_runs/ (``--runs-dir``; one
    JSON-lines file per shard) and committed with the records: the study goes on in a later session or on another
    machine from where it stopped. The proxies are committed there too (``sets/``, about 2 MB): a condensation is
    bit-exact only on the same CPU, torch and thread count (a second --prepare, single-thread, gave other condensed
    and herding sets than the first, whose command set no thread count), and every run's key holds its set's
    fingerprint, so a later session must train on the very same sets. The networks stay in ``--cache-dir``; a pick whose network
    was trained elsewhere is trained again at --summary, which stops if its validation accuracies differ from the
    log's (a saved network is checked against the log the same way before it is tested).
  * --summary writes one record per (proxy, cost point), the reference (full data at 4 epochs) flagged
    ``reference``; computed again, its records replace the old ones (they are statistics of the logged runs).

  python benchmarks/proxy_validity.py --budget cpu --plan        # CPU-hour estimate (and measured speed so far)
  python benchmarks/proxy_validity.py --budget cpu --prepare     # condense / select the proxies once
  OMP_NUM_THREADS=1 nohup python benchmarks/proxy_validity.py --budget cpu --shard 0/2 > shard0.log 2>&1 &
  OMP_NUM_THREADS=1 nohup python benchmarks/proxy_validity.py --budget cpu --shard 1/2 > shard1.log 2>&1 &
  python benchmarks/proxy_validity.py --budget cpu --summary     # records: benchmarks/results/proxy_validity_cpu.json
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from _common import (RESULTS, CandidateCache, ResultsFile, add_budget_args, add_out_arg, cached_set, log,
                     set_threads, stamp)

from atom_plugin import (ATOMConfig, CondensedDataset, accuracy_on, condense, herding_subset, load_dataset,
                         random_subset, validation_split)
from atom_plugin import device_name, resolve_device
from atom_plugin.data import VAL_SIZE
from atom_plugin.runner import run_script

try:  # the installed package is the one way in (these modules need no NNI)
    from atom_plugin.integrations.nni import data as nni_data
    from atom_plugin.integrations.proxy import plan, space as nni_space, stats, train as nni_train
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
    ap.add_argument("--budget", choices=["gpu", "cpu"], default="gpu", help="gpu: the study above (default); cpu: "
                    "the equal-cost CPU study (see the module doc; its design is pinned)")
    ap.add_argument("--plan", action="store_true", help="cpu: print the CPU-hour estimate and exit")
    ap.add_argument("--prepare", action="store_true", help="cpu: make the proxies (condense, select) and exit")
    ap.add_argument("--shard", default=None, metavar="I/K", help="cpu: train the architectures i, i+k, ... only "
                    "(resumable; one single-thread job per core)")
    ap.add_argument("--summary", action="store_true", help="cpu: the unsharded step: statistics, test picks, records")
    ap.add_argument("--runs-dir", default=None, help="cpu: where every measured run is logged, one JSON-lines file "
                    "per shard (default benchmarks/results/proxy_validity_cpu_runs, committed with the records, so "
                    "the study goes on in a later session or on another machine; quick: --cache-dir)")
    args = ap.parse_args(argv)
    if args.budget == "cpu":
        return _cpu_args(ap, args)
    if args.plan or args.prepare or args.shard or args.summary:
        ap.error("--plan, --prepare, --shard and --summary belong to the CPU study: add --budget cpu")
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
                    # plain images, random networks, a start from random real images: the proxies the recorded
                    # study measured (a factorised proxy trains on 4x the samples per epoch, a different
                    # cost/fidelity point; a herding start would fold the coreset into the condensed proxy)
                    cfg = ATOMConfig(preset="atom", ipc=ipc, iterations=args.iterations, batch_real=args.batch_real,
                                     factor=1, networks="random", init="real", **width)
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
    if args.budget == "cpu":
        return cpu_main(args)
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


# == the CPU study (--budget cpu) ==================================================================================

# Condensation settings of the CPU proxies, pinned (the per-IPC defaults may change): IPC 10, 200 iterations, random
# networks, lr_images 1.0; "condensed f2" is the default's factor 2 (400 decoded samples), "condensed f1" factor 1.
CPU_CONDENSE = dict(preset="atom", ipc=10, iterations=200, batch_real=64, networks="random", lr_images=1.0)
# Each proxy kind: (how it is made, IPC, factor); its size is IPC x factor^2 x classes.
CPU_SETS = {"condensed f1": ("atom", 10, 1), "condensed f2": ("atom", 10, 2), "random 100": ("random", 10, 1),
            "random 400": ("random", 40, 1), "herding 100": ("herding", 10, 1)}
FULL_KIND = plan.FULL_KIND
# --quick: the same kinds and shape on 16 images per class, IPC 1, a few epochs (a check of the code, not evidence).
QUICK_SETS = {"condensed f1": ("atom", 1, 1), "condensed f2": ("atom", 1, 2), "random 100": ("random", 1, 1),
              "random 400": ("random", 4, 1), "herding 100": ("herding", 1, 1)}
QUICK_POINTS = {"160": 160, "640": 640}
CPU_RECORD_KEY = ("dataset", "budget", "proxy", "cost_point", "num_architectures", "arch_seed", "train_seed", "quick")


def _cpu_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Check and complete the CPU study's flags (a flag the design pins is an error, exit 2)."""
    pinned = [f for f in ("ipc", "proxy_epochs", "full_epochs", "iterations", "full_subsample") if getattr(args, f) is not None]
    if pinned or args.atom_proxy:
        ap.error(f"--budget cpu pins the proxies, epochs and iterations; drop {', '.join('--' + f.replace('_', '-') for f in pinned) or '--atom-proxy'}")
    if sum(bool(x) for x in (args.plan, args.prepare, args.shard, args.summary)) > 1:
        ap.error("give one of --plan, --prepare, --shard I/K, --summary (none: all steps in this process)")
    args.shard_index, args.shard_count = 0, 1
    if args.shard:
        try:
            i, k = (int(x) for x in args.shard.split("/"))
            assert 0 <= i < k
        except (ValueError, AssertionError):
            ap.error(f"--shard {args.shard}: give I/K with 0 <= I < K, e.g. --shard 0/2")
        args.shard_index, args.shard_count = i, k
    q = args.quick
    defaults = dict(num_archs=6 if q else 40, bootstrap=100 if q else 1000, full_subsample=16 if q else 0,
                    cache_dir="runs/proxy_validity_cpu_quick" if q else "runs/proxy_validity_cpu",
                    out=str(RESULTS / ("proxy_validity_cpu_quick.json" if q else "proxy_validity_cpu.json")))
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.runs_dir is None:
        args.runs_dir = args.cache_dir if q else str(RESULTS / "proxy_validity_cpu_runs")
    if args.num_archs < (6 if q else 40):
        log(f"note: {args.num_archs} architectures; the study needs >= 40 for a 95 % half-width <= 0.15")
    args.lr_schedule = "constant"
    return args


def cpu_design(args):
    """(runs, cost points, sets, reliability architectures) of the CPU study (--quick: the small version)."""
    if not args.quick:
        return plan.CPU_RUNS, plan.COST_POINTS, CPU_SETS, plan.RELIABILITY_ARCHS
    runs = tuple(plan.Run(k, 10, 16, (16,)) for k in ("condensed f1", "random 100", "herding 100")) + (
        plan.Run("condensed f2", 40, 16, (4, 16), seeds=(0, 1)), plan.Run("random 400", 40, 16, (4, 16)),
        plan.Run(FULL_KIND, 160, 4, (1, 4), seeds=(0, 1)))
    return runs, QUICK_POINTS, QUICK_SETS, 2


def cpu_data(args):
    """(train (the 55,000 non-validation images, or the quick subsample), val, classes)."""
    full_train = load_dataset(args.dataset, args.data_root, split="train", download=args.download)
    train, val = validation_split(full_train, args.val_size or None, quick=args.quick)
    if args.full_subsample:
        train = random_subset(train, args.full_subsample, seed=1)
    return train, val


def cpu_sets(args, train, dev, cache_dir: Path, sets: dict, *, make: bool) -> dict:
    """{kind: dataset} of every proxy kind, made once and kept in ``cache_dir / "sets"`` (with ``make`` False a
    missing set is an error: run --prepare first)."""
    out = {}
    for kind, (how, ipc, factor) in sets.items():
        tag = kind.replace(" ", "-") + f"-ipc{ipc}-f{factor}-n{len(train)}" + ("-quick" if args.quick else "")
        path = cache_dir / "sets" / f"{tag}.safetensors"
        if not path.exists() and not make:
            raise SystemExit(f"error: the proxy {kind!r} is not prepared ({path} is missing); run "
                             "python benchmarks/proxy_validity.py --budget cpu --prepare first")

        def build(how=how, ipc=ipc, factor=factor) -> CondensedDataset:
            if how == "random":
                return random_subset(train, ipc, seed=0)
            if how == "herding":
                return herding_subset(train, ipc, seed=0, device=dev, feature_epochs=0 if args.quick else 1)
            cfg = ATOMConfig(**dict(CPU_CONDENSE, ipc=ipc, factor=factor,
                                    **(dict(iterations=3, width=16) if args.quick else {})))
            s = condense(train, cfg, device=dev, seed=args.seed)
            s.provenance["condensed_on"] = device_name(dev)
            return s

        data, seconds = cached_set(path, build, dev)
        data.provenance.setdefault("seconds", round(seconds, 2))
        out[kind] = data
        log(f"proxy {kind}: {len(data)} training samples ({path})")
    return out


def _cpu_cache(args) -> CandidateCache:
    return CandidateCache(Path(args.runs_dir) / f"candidates-{args.shard_index}of{args.shard_count}.jsonl")


def _cpu_entries(runs_dir: str | Path) -> dict:
    """Every measured run of every shard's log in ``runs_dir``, by key."""
    entries = {}
    for f in sorted(Path(runs_dir).glob("candidates-*of*.jsonl")):
        entries.update(CandidateCache(f).entries)
    return entries


def _cpu_key(kind: str, arch: dict, seed: int, data, args) -> str:
    return "|".join(str(v) for v in ("cpu", kind, nni_space.arch_key(arch), seed, _fingerprint(data), args.lr,
                                    args.weight_decay, args.batch_size, args.lr_schedule))


def cpu_train(args, dev, cache: CandidateCache, run, kind_data, arch: dict, seed: int, nets_dir: Path) -> dict:
    """Train ``arch`` on ``kind_data`` for ``run.epochs`` (constant lr) validating at ``run.report_at``; the entry
    holds [epochs, sample passes, validation accuracy %, seconds] per point. Full-data networks are saved in
    ``nets_dir`` (the entry's ``network``: the file name)."""
    key = _cpu_key(run.kind, arch, seed, kind_data, args)
    if key in cache.entries:
        return cache.entries[key]
    net, points, seconds = _train_run(args, dev, run, kind_data, arch, seed)
    entry = dict(key=key, kind=run.kind, arch=nni_space.arch_key(arch), seed=seed, train_size=len(kind_data),
                 epochs=run.epochs, points=points, seconds=round(seconds, 3), device=device_name(dev))
    if run.kind == FULL_KIND:
        entry["network"] = _save_network(net, nets_dir, arch, seed)
    cache.put(entry)
    return entry


def _train_run(args, dev, run, train, arch: dict, seed: int):
    """(network, points, seconds) of one run: ``arch`` on ``train`` for ``run.epochs``, validated at
    ``run.report_at`` (points: [epochs, sample passes, validation accuracy %, seconds]); deterministic on the CPU."""
    c, h, w = train.image_shape
    net = nni_space.build_network(arch, channels=c, num_classes=train.num_classes, image_size=(h, w))
    points, t0 = [], time.perf_counter()

    def on_report(epoch, acc):
        points.append([epoch, plan.sample_passes(len(train), epoch), round(100.0 * acc, 3),
                       round(time.perf_counter() - t0, 3)])

    res = nni_train.train_and_validate(net, train, args._val, epochs=run.epochs, lr=args.lr,
                                       weight_decay=args.weight_decay, batch_size=args.batch_size, seed=seed,
                                       device=dev, lr_schedule=args.lr_schedule, report_at=run.report_at,
                                       on_report=on_report)
    return net, points, res.seconds


def _point(entry: dict, epochs: float) -> list:
    """The logged point ``[epochs, sample passes, validation accuracy %, seconds]`` of ``entry`` at ``epochs``.

    Raises:
        SystemExit: the run was not validated at ``epochs`` (a log from another design).
    """
    for p in entry["points"]:
        if float(p[0]) == float(epochs):
            return p
    raise SystemExit(f"error: {entry.get('kind', 'the run')} on {entry['arch']} (seed {entry['seed']}) has no "
                     f"validation at {epochs} epochs in the log (it has {[p[0] for p in entry['points']]}): a run "
                     "from another design; the study's runs must be measured again")


def _save_network(net, nets_dir: Path, arch: dict, seed: int) -> str:
    """Save ``net``'s weights as ``nets_dir/<arch key>-s<seed>.safetensors``; returns the file name."""
    from safetensors.torch import save_file

    nets_dir.mkdir(parents=True, exist_ok=True)
    name = f"{nni_space.arch_key(arch)}-s{seed}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(nets_dir / name))
    return name


def _full_network(args, dev, run, train, arch: dict, entry: dict, nets_dir: Path):
    """(network, retrained) of a pick: its saved full-data network or, when the run was logged in another session
    or on another machine (no file in ``nets_dir``), the same run again (``entry``'s seed), saved for next time.

    Raises:
        SystemExit: the saved network, or the run again, gives other validation accuracies than the log (it would
            test another network than the one ranked).
    """
    from safetensors.torch import load_file

    path = nets_dir / Path(entry["network"]).name
    if path.exists():
        c, h, w = train.image_shape
        net = nni_space.build_network(arch, channels=c, num_classes=train.num_classes, image_size=(h, w))
        net.load_state_dict(load_file(str(path)))
        # the file name holds no set, lr or epochs: an older design's network would otherwise be tested silently
        saved, logged = round(accuracy_on(net, args._val), 3), _point(entry, run.epochs)[2]
        if abs(saved - logged) > 0.01:
            raise SystemExit(f"error: {path} gives {saved} % on the validation split, the log has {logged} % for "
                             f"{entry['arch']} seed {entry['seed']}: it is another network; move it away and rerun "
                             "--summary (the pick is then trained again and checked)")
        return net, False
    log(f"{path} is missing (the run was logged elsewhere): training {entry['arch']} on full data again, "
        f"seed {entry['seed']}")
    net, points, _ = _train_run(args, dev, run, train, arch, entry["seed"])
    again, logged = [p[2] for p in points], [p[2] for p in entry["points"]]
    if again != logged:
        raise SystemExit(f"error: {entry['arch']} trained again gives validation accuracies {again}, the log has "
                         f"{logged}; test the picks where they were trained (copy their networks into {nets_dir})")
    _save_network(net, nets_dir, arch, entry["seed"])
    return net, True


def cpu_main(args) -> list[dict]:
    """The CPU study's steps: --plan, --prepare, --shard I/K, --summary (none: all of them here)."""
    set_threads()
    dev = resolve_device(args.device)
    cache_dir = Path(args.cache_dir)
    runs, points, sets, rel_archs = cpu_design(args)
    archs = nni_space.sample_stratified(args.num_archs, args.arch_seed, image_size=(28, 28))
    if args.plan:
        # making the proxies, at ConvNet-3 width-128 cost: two condensations (per iteration 64 real images per class
        # forwarded, counted as 2 passes with the synthetic set's update) and herding's one feature epoch
        making = 2 * CPU_CONDENSE["iterations"] * CPU_CONDENSE["batch_real"] * 10 * 2 + plan.FULL_SIZE
        est = plan.estimate(archs, runs, reliability_archs=rel_archs, extra_passes=0 if args.quick else making)
        for line in est.lines():
            print(line)
        print("  evaluations (kind, epochs, sample passes, cost point):")
        for e in plan.evaluations(runs):
            print(f"    {e}")
        measured = [e for e in _cpu_entries(args.runs_dir).values() if e.get("seconds")]
        if measured:
            ms = 1000 * sum(e["seconds"] for e in measured) / sum(e["train_size"] * e["epochs"] for e in measured)
            # the same runs at the plan's cost model: how far the measured machine is from it
            predicted = sum(e["train_size"] * e["epochs"] * plan.ms_per_sample(nni_space.parse_arch_key(e["arch"]))
                            for e in measured) / 1000
            ratio = sum(e["seconds"] for e in measured) / predicted
            print(f"  measured so far: {len(measured)} runs, {ms:.2f} ms per sample pass on average, {ratio:.2f}x "
                  f"the plan's model for the same runs: at that speed the study is ~{est.cpu_hours * ratio:.1f} "
                  "CPU-hours (re-plan: drop the herding proxy or the 120k point before dropping architectures if "
                  "the total is over 25 CPU-h)")
        return []
    train, val = cpu_data(args)
    args._val = val
    # the proxies live beside the runs' log (committed; see the module doc), not in the cache
    kind_data = cpu_sets(args, train, dev, Path(args.runs_dir), sets, make=not (args.shard or args.summary))
    kind_data[FULL_KIND] = train
    if args.prepare:
        return []
    if not args.summary:
        cache = _cpu_cache(args)
        mine = [i for i in range(len(archs)) if i % args.shard_count == args.shard_index]
        log(f"shard {args.shard_index}/{args.shard_count}: {len(mine)} of {len(archs)} architectures, "
            f"{len(runs)} runs each; log {cache.path}")
        for n, i in enumerate(mine, 1):
            for run in runs:
                for seed in run.seeds if i < rel_archs else run.seeds[:1]:
                    e = cpu_train(args, dev, cache, run, kind_data[run.kind], archs[i], args.seed + seed,
                                  cache_dir / "nets")
                    log(f"[{n}/{len(mine)}] {e['arch']} {run.kind} seed {seed}: "
                        f"{[(p[0], p[2]) for p in e['points']]} in {e['seconds']:.0f} s")
        if args.shard:
            return []
    return cpu_summary(args, dev, archs, runs, points, kind_data, rel_archs, cache_dir)


def cpu_summary(args, dev, archs, runs, points, kind_data, rel_archs, cache_dir) -> list[dict]:
    """One record per (proxy kind, cost point) from every shard's measurements; the test set once, for the picks."""
    entries = _cpu_entries(args.runs_dir)
    missing = [f"{run.kind} on {nni_space.arch_key(a)} (seed {seed})" for i, a in enumerate(archs) for run in runs
               for seed in (run.seeds if i < rel_archs else run.seeds[:1])
               if _cpu_key(run.kind, a, args.seed + seed, kind_data[run.kind], args) not in entries]
    if missing:
        raise SystemExit(f"error: {len(missing)} run(s) not measured yet, e.g. {'; '.join(missing[:3])}; finish the "
                         "--shard jobs first")

    def run_entry(run, arch, seed):
        return entries[_cpu_key(run.kind, arch, args.seed + seed, kind_data[run.kind], args)]

    # scores[(kind, cost point)] = {"epochs", "passes", "acc": [per arch], "seconds": [per arch], "acc2": {i: second seed}}
    scores: dict = {}
    for run in runs:
        for ep in run.report_at:
            passes = plan.sample_passes(len(kind_data[run.kind]), ep)
            cp = plan.cost_point(passes, points)
            if (run.kind, cp) in scores:
                raise SystemExit(f"error: {run.kind} validates twice at the {cp} cost point; give each run one "
                                 "report point per cost point (plan.CPU_RUNS)")
            row = scores[(run.kind, cp)] = dict(epochs=ep, passes=passes, acc=[], seconds=[], acc2={})
            for i, a in enumerate(archs):
                p = _point(run_entry(run, a, 0), ep)
                row["acc"].append(p[2])
                row["seconds"].append(p[3])
                if len(run.seeds) > 1 and i < rel_archs:
                    row["acc2"][i] = _point(run_entry(run, a, run.seeds[1]), ep)[2]
    ref_cp = max(points, key=points.get)
    ref = scores[(FULL_KIND, ref_cp)]
    full = ref["acc"]
    chance = 100.0 / kind_data[FULL_KIND].num_classes

    def rel(row):
        idx = sorted(row["acc2"])
        return stats.reliability([row["acc"][i] for i in idx], [row["acc2"][i] for i in idx]) if len(idx) >= 3 else None

    rel_full = rel(ref)
    best = stats.pick(full)
    picks = {best} | {stats.pick(row["acc"]) for row in scores.values()}
    test = load_dataset(args.dataset, args.data_root, split="test", download=args.download)
    test_acc, retrained = {}, []
    full_run = next(r for r in runs if r.kind == FULL_KIND)
    for i in sorted(picks):  # the saved full-data (reference) networks of the picks: tested, not retrained
        net, again = _full_network(args, dev, full_run, kind_data[FULL_KIND], archs[i],
                                   run_entry(full_run, archs[i], 0), cache_dir / "nets")
        test_acc[i] = round(accuracy_on(net.to(dev), test), 3)
        retrained += [nni_space.arch_key(archs[i])] if again else []
    names = [nni_space.arch_key(a) for a in archs]
    ref_seconds = sum(ref["seconds"])
    env = stamp(dev)
    records = []
    for (kind, cp), row in scores.items():
        acc = row["acc"]
        top = stats.pick(acc)
        how, ipc, factor = (CPU_SETS if not args.quick else QUICK_SETS).get(kind, ("full", None, 1))
        data = kind_data[kind]
        make = float(data.provenance.get("seconds", 0.0)) if kind != FULL_KIND else 0.0
        search = sum(row["seconds"])
        rho = stats.spearman(acc, full)
        ci = stats.bootstrap_ci(acc, full, n_boot=args.bootstrap, seed=0)
        rel_p = rel(row)
        rec = dict(
            dataset=args.dataset, budget="cpu", proxy=kind, ipc=ipc, factor=factor, proxy_size=len(data),
            cost_point=cp, epochs=row["epochs"], sample_passes=row["passes"], lr_schedule=args.lr_schedule,
            spearman_all=_r(rho), spearman_all_ci=[_r(ci[0]), _r(ci[1])],
            spearman_all_fisher_ci=[_r(x) for x in stats.fisher_ci(rho, len(acc))],
            kendall=_r(stats.kendall(acc, full)),
            kendall_ci=[_r(x) for x in stats.bootstrap_stat(stats.kendall, acc, full, n_boot=args.bootstrap, seed=0)],
            spearman_top20=_r(stats.spearman_top(acc, full, args.top_frac)),
            spearman_top20_ci=[_r(x) for x in stats.bootstrap_ci(acc, full, fraction=args.top_frac,
                                                                 n_boot=args.bootstrap, seed=0)],
            top_fraction=args.top_frac,
            spearman_above_chance=_r(stats.spearman_above_chance(acc, full, chance)),
            num_above_chance=int(len(stats.above_chance(full, chance))),
            chance_accuracy=chance, above_chance_margin=stats.ABOVE_CHANCE_MARGIN,
            top5_overlap=stats.top_k_overlap(acc, full, min(5, len(acc))),
            top_pick=names[top], top_pick_full_accuracy=test_acc[top], best_architecture=names[best],
            picks_retrained=retrained,
            best_full_accuracy=test_acc[best], best_full_val_accuracy=full[best],
            regret_points=round(stats.regret(test_acc[best], test_acc[top]), 3),
            regret_signed=round(test_acc[best] - test_acc[top], 3),
            reliability=_r(rel_p), reliability_full=_r(rel_full), noise_ceiling=_r(stats.noise_ceiling(rel_p, rel_full)),
            num_architectures=len(archs), search_seconds=round(search, 2), condense_seconds=round(make, 2),
            seconds_total=round(search + make, 2), seconds_per_candidate=round(search / len(archs), 3),
            full_seconds_total=round(ref_seconds, 2),
            speedup_vs_full=round(ref_seconds / (search + make), 2) if search + make > 0 else None,
            speedup_vs_full_amortised=round(ref_seconds / search, 2) if search > 0 else None,
            speedup_vs_full_passes_amortised=round(ref["passes"] / row["passes"], 2),
            reference=(kind, cp) == (FULL_KIND, ref_cp),
            full_epochs=ref["epochs"], full_train_size=len(kind_data[FULL_KIND]), val_size=len(args._val),
            arch_seed=args.arch_seed, train_seed=args.seed, lr=args.lr, weight_decay=args.weight_decay,
            batch_size=args.batch_size, bootstrap=args.bootstrap, quick=args.quick,
            config=data.config if how == "atom" else None, candidates=[list(c) for c in zip(names, acc)], **env)
        if how in ("atom",):  # paired bootstraps at equal cost: condensed - random of the same size, - early stop
            size_twin = {"condensed f1": "random 100", "condensed f2": "random 400"}[kind]
            for field, other in (("vs_random", size_twin), ("vs_early_stop", FULL_KIND)):
                if (other, cp) in scores and (other, cp) != (FULL_KIND, ref_cp):
                    pb = stats.paired_bootstrap(acc, scores[(other, cp)]["acc"], full, n_boot=args.bootstrap, seed=0)
                    rec[field] = dict(against=other, difference=_r(pb["difference"]),
                                      ci=[_r(x) for x in pb["ci"]], p_not_above_zero=_r(pb["p_not_above_zero"]))
        records.append(rec)
    # the records are statistics of the logged runs: computed again (after a fix), they replace the old ones
    replaced = ResultsFile(args.out, CPU_RECORD_KEY).replace(records)
    if replaced:
        log(f"{replaced} record(s) with the same settings replaced in {args.out}")
    for r in records:
        log(f"{r['proxy']:22s} {r['cost_point']:>5s} ({r['sample_passes']} passes): rho {r['spearman_all']} "
            f"{r['spearman_all_ci']}, tau {r['kendall']}, top-20 % {r['spearman_top20']}, above chance "
            f"{r['spearman_above_chance']}, top-5 overlap {r['top5_overlap']}, regret {r['regret_points']}")
    return records


if __name__ == "__main__":
    run_script(main)
