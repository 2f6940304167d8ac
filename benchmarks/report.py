"""Regenerate the result tables in README.md and docs/*.md from benchmarks/results/*.json (and the .md summaries
that the Avalanche and proxy-validity benchmarks write beside their JSON).

Tables live between markers ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; everything between
them is replaced, nothing else is touched. Run after any benchmark:

    python benchmarks/report.py
"""
from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path

from atom_plugin.runner import run_script
from atom_plugin import ATOMConfig
from atom_plugin.config import PUBLISHED_DEFAULTS, preset_defaults
from atom_plugin.results import read_records, records_table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONDENSED = ("atom", "dm", "datadam")  # methods whose records carry factor, networks and the images' lr


def _fmt_acc(r: dict) -> str:
    return f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f}"


def _provenance(records: list[dict]) -> str:
    """One line naming devices, torch versions, dates and commands of the records shown."""
    if not records:
        return "_no results yet_"
    devices = sorted({r.get("device", "?") for r in records})
    torches = sorted({r.get("torch", "?") for r in records})
    dates = sorted(r.get("date", "?")[:10] for r in records)
    cmds = sorted({r.get("command", "?") for r in records})
    lines = [f"Device: {', '.join(devices)}; torch {', '.join(torches)}; dates {dates[0]} to {dates[-1]}.",
             "Written by:"] + [f"`{c}`" for c in cmds]
    return "\n".join(lines[:1]) + "\n\n" + "<br>".join(lines[1:])


def _parametrisation(r: dict) -> tuple[int, str | None]:
    """A record's (factor, networks); records written before factors existed are factor 1 with random networks."""
    condensed = r["method"] in CONDENSED
    return int(r.get("factor") or 1), r.get("networks") or ("random" if condensed else None)


def _networks_label(r: dict) -> str:
    """``random``, or ``pool (S × B)``: a pool's SGD steps per iteration × real images per step (records without
    them used ATOMConfig's defaults)."""
    if r["networks"] != "pool":
        return r["networks"] or "—"
    steps = r.get("pool_steps", ATOMConfig.__dataclass_fields__["pool_steps"].default)
    batch = r.get("pool_batch", ATOMConfig.__dataclass_fields__["pool_batch"].default)
    return f"pool ({steps} × {batch})"


def _lr(r: dict) -> float | None:
    """A condensed record's images' learning rate (records without one used DM's lr 1); None for a selection."""
    if r["method"] not in CONDENSED:
        return None
    return r.get("lr_images", PUBLISHED_DEFAULTS.lr_images)


def protocol_table() -> str:
    recs = [r for r in read_records(RESULTS / "fashion_mnist.json") if r.get("split") == "test"]
    if not recs:
        return "_no results yet: run benchmarks/fashion_mnist.py_"
    order = {m: i for i, m in enumerate(["atom", "datadam", "dm", "herding", "tiled-random", "random"])}
    for r in recs:
        r["factor"], r["networks"] = _parametrisation(r)
    recs.sort(key=lambda r: (r["model"] != "convnet", r["model"], r["ipc"], order.get(r["method"], 9),
                             -r["factor"], r["networks"] or ""))
    for r in recs:
        r["acc"] = _fmt_acc(r)
        r["nets"] = _networks_label(r)
        r["lr"] = "—" if _lr(r) is None else f"{_lr(r):g}"
        r["budget"] = (f"{r['iterations']} it, {r['batch_real']} real/class; " if r["iterations"] else "") + \
            f"{r['num_models']} × {r['eval_epochs']} ep"
    table = records_table(recs, [("IPC", "ipc"), ("method", "method"), ("factor", "factor"), ("networks", "nets"),
                                  ("image lr", "lr"), ("model", "model"), ("test acc. %", "acc"), ("budget", "budget"),
                                  ("device", "device")])
    figure = _ipc_figure([r for r in recs if r["model"] == "convnet"], RESULTS / "fashion_mnist_ipc.png")
    link = f"\n\n![test accuracy against IPC](benchmarks/results/{figure.name})" if figure else ""
    return table + link + "\n\n" + _targets(recs) + "\n\n" + _provenance(recs)


def _ipc_figure(recs: list[dict], path: Path) -> Path | None:
    """A matplotlib plot of test accuracy (mean ± std, %) against IPC, one line for the ``atom`` default (its per-IPC
    choices) and one per other method/factor/networks/lr; None without matplotlib. One budget only: the most
    common (iterations, networks x epochs) of the condensed sets, with the baselines evaluated alike."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    budgets = Counter((r["iterations"], r["num_models"], r["eval_epochs"]) for r in recs if r["iterations"])
    if not budgets:
        return None
    its, models, epochs = budgets.most_common(1)[0][0]
    recs = [r for r in recs if r["iterations"] in (0, its) and (r["num_models"], r["eval_epochs"]) == (models, epochs)]
    series: dict[str, list[dict]] = {}
    for r in recs:
        lr = _lr(r)
        if r["method"] == "atom" and (r["factor"], r["networks"], lr) == preset_defaults("atom", r["ipc"]):
            name = "atom default (per-IPC table)"
        elif r["networks"] is None and r["factor"] == 1:
            name = r["method"]
        else:
            name = f"{r['method']} (f {r['factor']}{', ' + _networks_label(r) if r['networks'] else ''}" \
                f"{'' if lr in (None, PUBLISHED_DEFAULTS.lr_images) else f', lr {lr:g}'})"
        series.setdefault(name, []).append(r)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for i, (name, rs) in enumerate(sorted(series.items())):
        rs = sorted(rs, key=lambda r: r["ipc"])
        ax.errorbar([r["ipc"] for r in rs], [r["accuracy_mean"] for r in rs], yerr=[r["accuracy_std"] for r in rs],
                    marker="o", capsize=3, label=name, linestyle="-" if i < 10 else "--")  # 10 colours, then dashed
    ax.set_xscale("log")
    ax.set_xticks([1, 10, 50], labels=["1", "10", "50"])
    ax.set_xlabel("IPC (stored images per class)")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(f"Fashion-MNIST, ConvNet-3 ({its} it; {models} × {epochs} ep)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# The quality issue's targets: the default (atom at its per-IPC factor and networks) minus today's dm (factor 1,
# random networks), paired by evaluation seed: mean at least this, and (IPC 1, 10) more than twice its paired std.
TARGETS = {1: 6.0, 10: 2.0, 50: 0.0}


def _targets(recs: list[dict]) -> str:
    """The paired targets, checked on the convnet records shown (same IPC, device and evaluation budget)."""
    lines = ["Targets (the `atom` default − today's `dm` at factor 1 with random networks, paired by evaluation "
             "seed: IPC 1 ≥ +6, IPC 10 ≥ +2, each paired mean above twice its paired std; IPC 50 ≥ 0; and the "
             "default above the tiled random baseline at IPC 1 and 10), computed from the records above:", ""]
    same = ("model", "ipc", "device", "num_models", "eval_epochs", "seed")
    recs = [dict(r, **dict(zip(("factor", "networks"), _parametrisation(r)))) for r in recs]
    for ipc, target in TARGETS.items():
        want = preset_defaults("atom", ipc)
        default = [r for r in recs if r["method"] == "atom" and r["model"] == "convnet" and r["ipc"] == ipc
                   and (r["factor"], r["networks"], _lr(r)) == want]
        if not default:
            lines.append(f"- IPC {ipc}: the default (factor {want.factor}, {want.networks} networks, image lr "
                         f"{want.lr_images:g}) not measured")
            continue
        a = default[0]
        dm = _control(recs, a, "dm", same + ("iterations",), **PUBLISHED_DEFAULTS._asdict())
        tiled = _control(recs, a, "tiled-random", same, factor=a["factor"])
        head = (f"- IPC {ipc} (factor {want.factor}, {want.networks}, image lr {want.lr_images:g}; "
                f"{a['iterations']} it; {a['num_models']} × {a['eval_epochs']} ep): ")
        if dm is None:
            lines.append(head + "today's dm not measured at this budget")
            continue
        d = _paired(a, dm)
        if d is None:
            lines.append(head + "dm's record is not paired by evaluation seed")
            continue
        mean, std = d
        ok = mean >= target and (target == 0 or mean > 2 * std)
        parts = [f"default − dm = {mean:+.2f} ± {std:.2f} (target {'≥' if target == 0 else '≥ +'}{target:g}) "
                 f"→ **{'met' if ok else 'not met'}**"]
        if ipc in (1, 10):
            t = _paired(a, tiled) if tiled else None
            parts.append("tiled random not measured" if t is None else
                         f"default − tiled random = {t[0]:+.2f} ± {t[1]:.2f} → **{'met' if t[0] > 0 else 'not met'}**")
        lines.append(head + "; ".join(parts))
    return "\n".join(lines)


def _control(recs: list[dict], of: dict, method: str, keys: tuple[str, ...], **fixed) -> dict | None:
    """The first record of ``method`` that equals ``of`` on ``keys`` and has the ``fixed`` values (a missing
    ``norm`` reads as the default instancenorm, a missing ``lr_images`` as DM's lr 1): the baseline ``of`` is
    compared with."""
    def get(r, k):
        return r.get(k, "instancenorm") if k == "norm" else _lr(r) if k == "lr_images" else r.get(k)
    return next((r for r in recs if r is not of and r["method"] == method
                 and all(get(r, k) == get(of, k) for k in keys)
                 and all(get(r, k) == v for k, v in fixed.items())), None)


def _paired(a: dict, b: dict) -> tuple[float, float] | None:
    """(mean, std) over evaluation seeds of a's accuracy minus b's, or None when the records are not paired: both
    must evaluate networks drawn from the same seeds, so the network-to-network spread that both share cancels."""
    xs, ys = a.get("accuracies") or [], b.get("accuracies") or []
    if len(xs) != len(ys) or len(xs) < 2 or a.get("seed") != b.get("seed"):
        return None
    d = [x - y for x, y in zip(xs, ys)]
    return statistics.mean(d), statistics.stdev(d)


def _paired_delta(a: dict, b: dict) -> str:
    """:func:`_paired` as text (``"+0.19 ± 0.13"``, or ``"n/a"``)."""
    d = _paired(a, b)
    return "n/a" if d is None else f"{d[0]:+.2f} ± {d[1]:.2f}"


def ablation_table() -> str:
    recs = read_records(RESULTS / "ablation_fmnist.json")
    if not recs:
        return "_no results yet: run benchmarks/ablation.py_"
    recs.sort(key=lambda r: (r.get("round", 0), r["ipc"], r["iterations"] or 10**9, -r["accuracy_mean"]))  # random last
    for r in recs:
        selection = r["method"] in ("random", "tiled-random")
        r["factor"], r["networks"] = _parametrisation(r)
        r["acc"] = _fmt_acc(r)
        r["loss"] = "—" if selection else \
            f"{r['w_spatial']:g} / {r['w_channel']:g} / {r['w_embed']:g} / {r['power']:g} / {tuple(r['layers'])}"
        r["net"] = "—" if selection else f"{r.get('norm', 'instancenorm')}, {_networks_label(r)}"
        r["budget"] = f"{r['iterations']} it × {r['batch_real']} real/class; {r['num_models']} × {r['eval_epochs']} ep"
        r["fl"] = "" if r.get("final_loss") is None else f"{r['final_loss']:.3g}"
    for r in recs:  # vs the dm control of the same budget and matching-network norm
        budget = ("ipc", "iterations", "batch_real", "num_models", "eval_epochs", "device", "norm")
        plain = dict(factor=1, networks="random")  # today's dm: the control of every setting
        dm = None if r["method"] in ("random", "tiled-random") or (r["method"] == "dm" and r["factor"] == 1 and
                                                                   r["networks"] == "random") else \
            _control(recs, r, "dm", budget, w_embed=1, **plain)
        if r["method"] in ("random", "tiled-random"):
            dm = _control(recs, r, "dm", ("ipc", "num_models", "eval_epochs", "device", "seed"), **plain)
        r["vs_dm"] = _paired_delta(r, dm) if dm else ""
    table = records_table(recs, [("round", "round"), ("IPC", "ipc"), ("setting", "setting"), ("factor", "factor"),
                                  ("w_s / w_c / w_e / p / layers", "loss"), ("matching net (norm, networks)", "net"),
                                  ("val. acc. %", "acc"), ("− dm, paired", "vs_dm"),
                                  ("final loss", "fl"), ("budget", "budget"), ("condense s", "condense_seconds")])
    return table + "\n\n" + _provenance(recs)


def speed_ms(r: dict) -> tuple[float, str]:
    """(ms per iteration, its cell): block-timed records (speed.py now) give the median block's mean and the
    min–max over blocks; older records, single synchronised iterations' median and p10–p90."""
    if "ms_per_iter" in r:
        spread = f" ({r['ms_per_iter_min']:.1f}–{r['ms_per_iter_max']:.1f})" if r.get("blocks", 1) > 1 else ""
        return r["ms_per_iter"], f"{r['ms_per_iter']:.1f}{spread}"
    return r["ms_per_iter_median"], f"{r['ms_per_iter_median']:.1f} ({r['ms_per_iter_p10']:.1f}–{r['ms_per_iter_p90']:.1f})"


def speed_table() -> str:
    recs = [r for r in read_records(RESULTS / "speed.json") if r.get("benchmark") == "speed"]
    if not recs:
        return "_no results yet: run benchmarks/speed.py_"
    latest: dict = {}
    for r in recs:  # the newest record per (device, ipc, factor, networks, mode)
        r["factor"], r["networks"] = int(r.get("factor") or 1), r.get("networks") or "random"
        latest[(r["device"], r["ipc"], r["factor"], r["networks"], r["mode"])] = r
    rows = sorted(latest.values(), key=lambda r: (r["device"], r["ipc"], r["factor"], r["networks"], r["mode"]))
    for r in rows:
        ref = latest.get((r["device"], r["ipc"], r["factor"], "random", "reference"))
        r["ratio"] = f"{speed_ms(ref)[0] / speed_ms(r)[0]:.1f}×" if ref and r["mode"] != "reference" else ""
        r["ms"] = speed_ms(r)[1]
        r["mem"] = "" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}"
    table = records_table(rows, [("device", "device"), ("IPC", "ipc"), ("factor", "factor"),
                                  ("networks", "networks"), ("mode", "mode"),
                                  ("ms/iter (spread)", "ms"), ("speed-up vs reference", "ratio"),
                                  ("peak GPU MB", "mem"), ("timed iters", "timed_iterations")])
    note = ("ms/iter: records with `ms_per_iter` time blocks of iterations with one synchronisation per block "
            "(median block; spread = min–max over blocks); older records time single synchronised iterations "
            "(median; spread = p10–p90).")
    return table + "\n\n" + note + "\n\n" + _provenance(rows)


def _embedded(stem: str, what: str) -> str:
    """The Markdown summary a benchmark wrote beside its JSON: the full budget if there is one, else the reduced
    CPU budget, else the quick check -- each labelled."""
    candidates = (
        (stem, ""),
        (f"{stem}_cpu", "**Reduced CPU budget, not the full recipe** (2 CPU cores; smaller networks and fewer "
                        "epochs and iterations than the GPU recipe, so not comparable with full-budget numbers).\n\n"),
        (f"{stem}_quick", "**Quick CPU check, not a result** (tiny budget; it shows the pipeline runs end to end, "
                          "not how well the method works).\n\n"),
    )
    for name, label in candidates:
        md = RESULTS / f"{name}.md"
        if md.exists():
            body = md.read_text().strip()
            body = re.sub(r"^# .*\n+", "", body)  # its own title: the surrounding document has one
            body = re.sub(r"\]\(([^)/:]+\.png)\)", r"](../benchmarks/results/\1)", body)  # links from docs/
            return f"{label}From [`benchmarks/results/{md.name}`](../benchmarks/results/{md.name}):\n\n{body}"
    return f"_no results yet: run {what}_"


def avalanche_section() -> str:
    return _embedded("avalanche_splitfmnist", "benchmarks/avalanche_replay.py")


def proxy_validity_section() -> str:
    return _embedded("proxy_validity", "benchmarks/proxy_validity.py")


SECTIONS = {"protocol": protocol_table, "ablation": ablation_table, "speed": speed_table,
            "avalanche": avalanche_section, "proxy_validity": proxy_validity_section}


def fill(path: Path) -> bool:
    if not path.exists():
        return False
    text = path.read_text()
    new = text
    for name, fn in SECTIONS.items():
        pat = re.compile(rf"(<!-- results:{name} -->).*?(<!-- /results:{name} -->)", re.S)
        if pat.search(new):
            body = fn()
            if path.parent.name == "docs":  # links are written from the repository root
                body = body.replace("](benchmarks/results/", "](../benchmarks/results/")
            new = pat.sub(lambda m: f"{m.group(1)}\n{body}\n{m.group(2)}", new)
    if new != text:
        path.write_text(new)
        return True
    return False


def main() -> None:
    docs = [ROOT / "docs" / f for f in ("ablation.md", "benchmarks.md", "avalanche.md", "nni.md")]
    for p in (ROOT / "README.md", *docs):
        print(f"{p.relative_to(ROOT)}: {'updated' if fill(p) else 'unchanged'}")


if __name__ == "__main__":
    run_script(main)
