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
(``atom_plugin.integrations.nni.space``), so it runs on any machine with torch and SciPy (Spearman rho); the plot
needs matplotlib and is skipped without it.

Resumable: each candidate's result goes to a JSON-lines cache (--cache-dir/candidates.jsonl) as soon as it is
measured; a rerun with the same settings skips what is there. Condensed proxies are cached there too.

Outputs: records appended to benchmarks/results/proxy_validity.json (quick: proxy_validity_quick.json), a
Markdown summary and a scatter plot (proxy vs full validation accuracy) next to it.

  GPU study:  python benchmarks/proxy_validity.py --device cuda --data-root DATA --ipc 10 50 --num-archs 100 \\
                  --proxy-epochs 300 --full-epochs 20 --iterations 8000
  CPU check:  python benchmarks/proxy_validity.py --quick --data-root DATA
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from _common import RESULTS, done_keys, log, set_threads

from atom_plugin import ATOMConfig, CondensedDataset, condense, load_dataset, random_subset, validation_split
from atom_plugin import device_name, resolve_device
from atom_plugin.data import VAL_SIZE
from atom_plugin.runner import run_script
from atom_plugin.results import append_records, environment, markdown_table, records_table

try:  # the installed package is the one way in (these modules need no NNI)
    from atom_plugin.integrations.nni import data as nni_data, space as nni_space, stats, train as nni_train
except ModuleNotFoundError as exc:
    if not (exc.name or "").startswith("atom_plugin"):
        raise
    raise SystemExit("error: atom_plugin.integrations is not installed (a bare checkout?); install the package "
                     "from the repository root: pip install -e '.[nni]'") from None


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None)
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
    ap.add_argument("--iterations", type=int, default=None, help="condensation iterations (default 8000; quick 3)")
    ap.add_argument("--batch-real", type=int, default=64)
    ap.add_argument("--val-size", type=int, default=None, help=f"validation images (default {VAL_SIZE}; quick: a fifth)")
    ap.add_argument("--full-subsample", type=int, default=None, help="real images per class standing in for the "
                    "full data (default all; quick 16)")
    ap.add_argument("--seed", type=int, default=0, help="training seed (the same for every candidate)")
    ap.add_argument("--bootstrap", type=int, default=None, help="bootstrap resamples (default 1000; quick 100)")
    ap.add_argument("--top-frac", type=float, default=0.2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--download", action="store_true")
    ap.add_argument("--cache-dir", default=None, help="default runs/proxy_validity (quick: runs/proxy_validity_quick)")
    ap.add_argument("--out", default=None, help="records file (default benchmarks/results/proxy_validity.json; "
                    "quick: proxy_validity_quick.json); the .md and .png go beside it")
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


class Cache:
    """Per-candidate results, one JSON object per line, appended and flushed as soon as measured."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    e = json.loads(line)
                    self.entries[e["key"]] = e
                except (json.JSONDecodeError, KeyError):
                    continue  # a line cut by an interruption
        path.parent.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, entry: dict) -> None:
        self.entries[entry["key"]] = entry
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()


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
                if path.exists():
                    s = CondensedDataset.load(path)
                    log(f"proxy atom ipc {ipc}: cached {path} ({s.provenance.get('seconds')} s to condense)")
                else:
                    t0 = time.perf_counter()
                    # plain images and random networks: the proxies the recorded study measured (a factorised
                    # proxy trains on 4x the samples per epoch, a different cost/fidelity point)
                    cfg = ATOMConfig(preset="atom", ipc=ipc, iterations=args.iterations, batch_real=args.batch_real,
                                     factor=1, networks="random", **width)
                    s = condense(split, cfg, device=dev, seed=args.seed, compile=args.compile)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    s.provenance["seconds"] = round(time.perf_counter() - t0, 2)
                    s.provenance["condensed_on"] = device_name(dev)
                    s.save(path)
                    log(f"proxy atom ipc {ipc}: condensed in {s.provenance['seconds']} s -> {path}")
                atom_sets.append((s, s.provenance.get("seconds")))
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


def measure(cache: Cache, kind: str, arch: dict, data, val_or_test, args, dev, epochs: int, tag: str) -> dict:
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


def scatter_plot(path: Path, groups: list[tuple[str, list[float], list[float], float | None]], full_epochs: int,
                 proxy_epochs: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no scatter plot (pip install matplotlib)")
        return False
    ipcs = sorted({g[0].split(" ipc ")[1] for g in groups}, key=int)
    fig, axes = plt.subplots(1, len(ipcs), figsize=(5 * len(ipcs), 4.5), squeeze=False)
    for ax, ipc in zip(axes[0], ipcs):
        for (label, proxy_acc, full_acc, rho), marker in zip([g for g in groups if g[0].endswith(f" ipc {ipc}")],
                                                              "oxs^"):
            rho_s = "n/a" if rho is None else f"{rho:.2f}"
            ax.scatter(full_acc, proxy_acc, marker=marker, alpha=0.7, label=f"{label.split(' ipc')[0]} (ρ = {rho_s})")
        ax.set_xlabel(f"validation accuracy, trained on full data ({full_epochs} ep), %")
        ax.set_ylabel(f"validation accuracy, trained on proxy ({proxy_epochs} ep), %")
        ax.set_title(f"IPC {ipc}")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_markdown(path: Path, records: list[dict], per_arch: dict, archs: list[dict], args, plot: Path | None) -> None:
    cols = [("proxy", "proxy"), ("IPC", "ipc"), ("archs", "num_architectures"), ("ρ all", "spearman_all"),
            ("95 % CI", "spearman_all_ci"), ("ρ top 20 %", "spearman_top20"), ("95 % CI ", "spearman_top20_ci"),
            ("top pick", "top_pick"), ("its test acc. %", "top_pick_full_accuracy"),
            ("best test acc. %", "best_full_accuracy"), ("s / candidate", "seconds_per_candidate"),
            ("total s", "seconds_total"), ("speed-up", "speedup_vs_full"), ("amortised", "speedup_vs_full_amortised")]
    def show(v):
        if v is None:
            return "—"
        if isinstance(v, list):
            return "—" if all(x is None for x in v) else "[" + ", ".join(show(x) for x in v) + "]"
        return f"{v:g}" if isinstance(v, float) else str(v)

    shown = [{k: show(v) for k, v in r.items()} for r in records]
    r0 = records[0]
    lines = [
        "# Proxy validity (Fashion-MNIST, ConvNet search space)", "",
        f"{r0['num_architectures']} architectures sampled (seed {args.arch_seed}) from the 720-variant ConvNet space; "
        f"trained on each proxy for {args.proxy_epochs} epochs and on the full {r0['full_train_size']}-image training "
        f"split for {args.full_epochs} epochs (SGD lr {args.lr}, momentum 0.9, wd {args.weight_decay}, batch "
        f"{args.batch_size}, DSA, seed {args.seed}); ranked by accuracy on {r0['val_size']} held-out validation "
        f"images. ρ = Spearman (top 20 % = the best fifth by full-data accuracy); 95 % percentile-bootstrap "
        f"intervals over candidates ({args.bootstrap} resamples). Test accuracies: the full-data networks of the "
        f"top picks only (retrained, tested once). Speed-up = full-data search time / (proxy search time + "
        f"condensation); amortised = condensation excluded." + (" **Quick CPU check, not a result.**" if args.quick else ""),
        "", records_table(shown, cols), "",
        f"Device: {r0['device']}; torch {r0['torch']}; {r0['date']}. Command: `{r0['command']}`", ""]
    if plot is not None:
        lines += [f"![proxy vs full validation accuracy]({plot.name})", ""]
    order = sorted(range(len(archs)), key=lambda i: -per_arch.get("full", [0] * len(archs))[i])
    rows = [[nni_space.arch_key(archs[i])] + [f"{v[i]:.2f}" for v in per_arch.values()] for i in order]
    lines += ["## Per architecture (validation accuracy, %)", "", markdown_table(["architecture", *per_arch], rows)]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    set_threads()
    dev = resolve_device(args.device)
    cache_dir = Path(args.cache_dir)
    cache = Cache(cache_dir / "candidates.jsonl")
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
    env = environment(dev)
    records = []
    for p, s in zip(proxies, summaries):
        res = proxy_res[f"{p['proxy']} ipc {p['ipc']}"]
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
            quick=args.quick, **env))
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
            quick=args.quick, **env))
    out = Path(args.out)
    done = done_keys(out, RECORD_KEY)
    fresh = [r for r in records if tuple(str(r.get(k)) for k in RECORD_KEY) not in done]
    if len(fresh) < len(records):
        log(f"{len(records) - len(fresh)} record(s) with the same settings are already in {out}; not appended again")
    append_records(out, fresh)
    plot = out.with_suffix(".png")
    groups = [(label, per_arch[label], full_acc, next(r["spearman_all"] for r in records
                                                       if f"{r['proxy']} ipc {r['ipc']}" == label))
              for label in per_arch if label != "full"]
    has_plot = bool(groups) and scatter_plot(plot, groups, args.full_epochs, args.proxy_epochs)
    write_markdown(out.with_suffix(".md"), records, per_arch, archs, args, plot if has_plot else None)
    for r in records:
        log(f"{r['proxy']:6s} ipc {r['ipc']}: rho all {r['spearman_all']} (CI {r.get('spearman_all_ci')}), top 20 % "
            f"{r['spearman_top20']}; top pick {r['top_pick']} -> test {r['top_pick_full_accuracy']} % vs best "
            f"{r['best_full_accuracy']} %; {r['seconds_per_candidate']} s/candidate, speed-up {r['speedup_vs_full']} "
            f"(amortised {r['speedup_vs_full_amortised']})")
    log(f"wrote {out}, {out.with_suffix('.md')}" + (f", {plot}" if has_plot else "") +
        f" in {time.perf_counter() - t_start:.1f} s")
    return records


def _progress(items, label: str):
    n = len(items)
    for i, item in enumerate(items, 1):
        if i == 1 or i == n or i % max(1, n // 10) == 0:
            log(f"[{label}] candidate {i}/{n}: {nni_space.arch_key(item)}")
        yield item


if __name__ == "__main__":
    run_script(main)
