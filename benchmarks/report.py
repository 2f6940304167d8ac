"""Every Markdown table and figure of the docs, rendered from the records in benchmarks/results/*.json.

Tables live between markers ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in README.md and docs/*.md;
everything between them is replaced, nothing else is touched. Figures go to docs/figures/. The benchmark scripts
write records only; run this after any of them:

    python benchmarks/report.py
"""
from __future__ import annotations

import re
import statistics
from collections import Counter
from pathlib import Path

from _common import FIGURES, RESULTS, ROOT, mean_std, provenance, pyplot
from avalanche_replay import BENCHMARK as AVALANCHE, PAIRS, TARGETS as AVALANCHE_TARGETS, variant
from avalanche_replay import (FINETUNE_CHOICE, GRID_CONDENSE, GRID_TARGETS, QUALITY_FLAGS, SEEDS as GRID_SEEDS,
                              condense_label, memory_condense)
from ablation import ROUNDS as ABLATION_ROUNDS
from fashion_mnist import PROTOCOL

from atom_plugin import ATOMConfig
from atom_plugin.config import LEGACY_CONFIG, PUBLISHED_DEFAULTS, preset_defaults
from atom_plugin.integrations.avalanche import MEMORY_NOTE, METHODS as AVALANCHE_METHODS
from atom_plugin.integrations.avalanche.methods import (
    FINETUNED as _FINETUNED, GRID as _GRID, MEMORY_KINDS as _KINDS, PRIMARY_STRATEGY as _PRIMARY,
    STRATEGIES as _STRATEGIES, cell_of as _cell_of)
from atom_plugin.integrations.proxy.plan import CPU_RUNS, FULL_KIND  # the proxy kinds, in the study's order
from atom_plugin.results import FREED_MEMORY_DEFAULT, markdown_table, read_records, records_table
from atom_plugin.runner import run_script

CONDENSED = ("atom", "dm", "datadam")  # methods whose records carry factor, networks and the images' lr
DRAW = True  # False: figures are linked, not drawn (the golden tests)


def _figure(name: str, alt: str, draw) -> str:
    """``![alt](figures/NAME)`` (links are written from docs/) after ``draw(plt, path)`` has drawn it; "" when
    matplotlib is missing or ``draw`` returns False (nothing to plot)."""
    path = FIGURES / name
    if DRAW:
        plt = pyplot(name)
        if plt is None:
            return ""
        path.parent.mkdir(parents=True, exist_ok=True)
        if draw(plt, path) is False:
            return ""
    return f"![{alt}](figures/{name})"


def _fmt_acc(r: dict) -> str:
    return f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f}"


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


def _is_default(r: dict) -> bool:
    """Whether a condensed record is its method's default at its IPC: factor, networks, images' lr and start from
    ``preset_defaults`` (``atom``: the per-IPC table; ``dm``/``datadam``: as published), uniform real batches."""
    if r["method"] not in CONDENSED or _levers(r):
        return False
    d = preset_defaults(r["method"], r["ipc"])
    return (*_parametrisation(r), _lr(r)) == (d.factor, d.networks, d.lr_images)


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
        r["nets"] = _networks_label(r) + (f", {_levers(r)}" if _levers(r) else "")
        r["lr"] = "—" if _lr(r) is None else f"{_lr(r):g}"
        r["budget"] = (f"{r['iterations']} it, {r['batch_real']} real/class; " if r["iterations"] else "") + \
            f"{r['num_models']} × {r['eval_epochs']} ep"
    table = records_table(recs, [("IPC", "ipc"), ("method", "method"), ("factor", "factor"), ("networks", "nets"),
                                  ("image lr", "lr"), ("model", "model"), ("test acc. %", "acc"), ("budget", "budget"),
                                  ("device", "device")])
    figure = _ipc_figure([r for r in recs if r["model"] == "convnet"])
    return table + (f"\n\n{figure}" if figure else "") + "\n\n" + _targets(recs) + "\n\n" + provenance(recs)


def _ipc_series(recs: list[dict]) -> dict[str, list[dict]]:
    """The IPC figure's lines: ``{label: records}``, the ``atom`` default (its per-IPC choices) as one line, a
    selection by its method, every other set by method, factor, networks, lr, batch and start."""
    series: dict[str, list[dict]] = {}
    for r in recs:
        lr = _lr(r)
        if r["method"] == "atom" and _is_default(r):
            name = "atom default (per-IPC table)"
        elif r["networks"] is None and r["factor"] == 1:
            name = r["method"]
        else:  # a line's start is named when not random real images, the same at every IPC (not per-IPC default)
            levers = ", ".join(p for p in (_batch_lever(r), _start_lever(r, LEGACY_CONFIG["init"])) if p)
            name = f"{r['method']} (f {r['factor']}{', ' + _networks_label(r) if r['networks'] else ''}" \
                f"{'' if lr in (None, PUBLISHED_DEFAULTS.lr_images) else f', lr {lr:g}'}" \
                f"{', ' + levers if levers else ''})"
        series.setdefault(name, []).append(r)
    return series


def _ipc_figure(recs: list[dict]) -> str:
    """The link to a plot of test accuracy (mean ± std, %) against IPC, one line for the ``atom`` default (its
    per-IPC choices) and one per other method/factor/networks/lr. One budget only: the most common (iterations,
    networks x epochs) of the condensed sets, with the baselines evaluated alike. "" when nothing is condensed."""
    budgets = Counter((r["iterations"], r["num_models"], r["eval_epochs"]) for r in recs if r["iterations"])
    if not budgets:
        return ""
    its, models, epochs = budgets.most_common(1)[0][0]
    series = _ipc_series([r for r in recs if r["iterations"] in (0, its)
                          and (r["num_models"], r["eval_epochs"]) == (models, epochs)])

    def draw(plt, path: Path) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
        for i, (name, rs) in enumerate(sorted(series.items())):
            rs = sorted(rs, key=lambda r: r["ipc"])
            ax.errorbar([r["ipc"] for r in rs], [r["accuracy_mean"] for r in rs],
                        yerr=[r["accuracy_std"] for r in rs], marker="o", capsize=3, label=name,
                        linestyle="-" if i < 10 else "--")  # 10 colours, then dashed
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

    return _figure("fashion_mnist_ipc.png", "test accuracy against IPC", draw)


# The quality issue's targets (issue 25), the default (atom at its per-IPC table) minus each control, paired by
# evaluation seed: mean at least this and more than twice its paired std (the README's rule). The controls: today's
# dm (factor 1, random networks, lr 1, random real start) and, at IPC 50, the herding coreset.
TARGETS = {1: dict(dm=6.0), 10: dict(dm=3.0), 50: dict(dm=0.5, herding=0.3)}


def _start_label(init: str) -> str:
    return "random real" if init == "real" else init


def _targets(recs: list[dict]) -> str:
    """The paired targets, checked on the convnet records shown (same IPC, device and evaluation budget)."""
    goals = "; ".join(f"IPC {ipc}: " + ", ".join(f"− {c} ≥ +{t:g}" for c, t in ts.items()) for ipc, ts in TARGETS.items())
    lines = [f"Targets (the `atom` default − today's `dm` at factor 1 with random networks, and − the herding coreset, "
             f"paired by evaluation seed; {goals}; each paired mean above twice its paired std; and the default above "
             "the tiled random baseline at IPC 1 and 10), computed from the records above:", ""]
    same = ("model", "ipc", "device", "num_models", "eval_epochs", "seed")
    recs = [dict(r, **dict(zip(("factor", "networks"), _parametrisation(r)))) for r in recs]
    for ipc, targets in TARGETS.items():
        want = preset_defaults("atom", ipc)
        what = (f"factor {want.factor}, {want.networks} networks, image lr {want.lr_images:g}, "
                f"{_start_label(want.init)} start")
        default = [r for r in recs if r["method"] == "atom" and r["model"] == "convnet" and r["ipc"] == ipc
                   and _is_default(r)]
        if not default:
            lines.append(f"- IPC {ipc}: the default ({what}) not measured")
            continue
        a = default[0]
        controls = dict(dm=_control(recs, a, "dm", same + ("iterations",),
                                    **PUBLISHED_DEFAULTS._asdict(), real_batch=LEGACY_CONFIG["real_batch"]),
                        herding=_control(recs, a, "herding", same))
        head = f"- IPC {ipc} ({what}; {a['iterations']} it; {a['num_models']} × {a['eval_epochs']} ep): "
        parts = []
        for control, target in targets.items():
            c = controls[control]
            d = _paired(a, c) if c is not None else None
            if d is None:
                parts.append(f"{control} {'not measured at this budget' if c is None else 'not paired by evaluation seed'}")
                continue
            mean, std = d
            ok = mean >= target and mean > 2 * std
            parts.append(f"default − {control} = {mean:+.2f} ± {std:.2f} (target ≥ +{target:g}) → "
                         f"**{'met' if ok else 'not met'}**")
        if ipc in (1, 10):
            tiled = _control(recs, a, "tiled-random", same, factor=a["factor"])
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
        return (r.get(k, "instancenorm") if k == "norm" else _lr(r) if k == "lr_images"
                else r.get(k, LEGACY_CONFIG[k]) if k in ("init", "real_batch") else r.get(k))
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


def _commands_block(file: str, what) -> str:
    """A folded bash block of every distinct command that wrote a record of ``benchmarks/results/FILE``, in the
    order first used, each under a comment of what it wrote (``what(records) -> str``): the commands as recorded,
    so the list cannot drift from the records."""
    groups: dict[str, list[dict]] = {}
    for r in read_records(RESULTS / file):
        groups.setdefault(r["command"], []).append(r)
    if not groups:
        return f"_no records in `benchmarks/results/{file}` yet_"
    block = "```bash\n" + "\n".join(f"# {what(rs)}\n{cmd}" for cmd, rs in groups.items()) + "\n```"
    return (f"<details><summary>The {len(groups)} commands that wrote <code>benchmarks/results/{file}</code>"
            f"</summary>\n\n{block}\n\n</details>")


def _joined(rs: list[dict], field: str, sep: str = ", ") -> str:
    return sep.join(str(v) for v in sorted({r.get(field) for r in rs if r.get(field) is not None}, key=str))


def protocol_commands_block() -> str:
    """The commands behind ``fashion_mnist.json`` (:func:`_commands_block`): per command its methods, IPCs, models
    and condensation iterations."""
    return _commands_block("fashion_mnist.json", lambda rs: (
        f"{_joined(rs, 'method')} at IPC {_joined(rs, 'ipc', '/')}, {_joined(rs, 'model')}"
        + (f", {_joined([r for r in rs if r['iterations']], 'iterations', '/')} iterations"
           if any(r["iterations"] for r in rs) else "")
        + f" ({len(rs)} record{'s' if len(rs) > 1 else ''}, {rs[0]['date'][:10]})"))


def speed_commands_block() -> str:
    """The commands behind ``speed.json`` (:func:`_commands_block`): per command its IPCs, factors (records written
    before factors existed: 1) and modes."""
    def what(rs: list[dict]) -> str:
        factors = _joined([dict(r, factor=r.get("factor") or 1) for r in rs], "factor", "/")
        return (f"IPC {_joined(rs, 'ipc', '/')}, factor {factors}, {_joined(rs, 'mode')} on {_joined(rs, 'device')} "
                f"({len(rs)} records, {rs[0]['date'][:10]})")

    return _commands_block("speed.json", what)


def ablation_unmeasured_line() -> str:
    """The settings ``benchmarks/ablation.py`` defines that have no record in their round yet, by round."""
    done = {(r.get("round"), r["setting"]) for r in read_records(RESULTS / "ablation_fmnist.json")}
    rounds = [f"round {n}: " + ", ".join(f"`{name}`" for name in names if (n, name) not in done)
              for n, names in ABLATION_ROUNDS.items() if any((n, name) not in done for name in names)]
    return ("Defined in `benchmarks/ablation.py` but **not measured yet**: " + "; ".join(rounds) + "."
            if rounds else "Every setting `benchmarks/ablation.py` defines is measured.")


def ablation_table() -> str:
    recs = read_records(RESULTS / "ablation_fmnist.json")
    if not recs:
        return "_no results yet: run benchmarks/ablation.py_"
    recs.sort(key=lambda r: (r.get("round", 0), r["ipc"], r["iterations"] or 10**9, -r["accuracy_mean"]))  # random last
    for r in recs:
        selection = r["method"] in ("random", "tiled-random", "herding")
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
        dm = None if r["method"] in ("random", "tiled-random", "herding") or \
            (r["method"] == "dm" and r["factor"] == 1 and r["networks"] == "random") else \
            _control(recs, r, "dm", budget, w_embed=1, **plain)
        if r["method"] in ("random", "tiled-random", "herding"):
            dm = _control(recs, r, "dm", ("ipc", "num_models", "eval_epochs", "device", "seed"), **plain)
        r["vs_dm"] = _paired_delta(r, dm) if dm else ""
    table = records_table(recs, [("round", "round"), ("IPC", "ipc"), ("setting", "setting"), ("factor", "factor"),
                                  ("w_s / w_c / w_e / p / layers", "loss"), ("matching net (norm, networks)", "net"),
                                  ("val. acc. %", "acc"), ("− dm, paired", "vs_dm"),
                                  ("final loss", "fl"), ("budget", "budget"), ("condense s", "condense_seconds")])
    return table + "\n\n" + provenance(recs)


def speed_ms(r: dict) -> tuple[float, str]:
    """(ms per iteration, its cell): block-timed records (speed.py now) give the median block's mean and the
    min–max over blocks; older records, single synchronised iterations' median and p10–p90."""
    if "ms_per_iter" in r:
        spread = f" ({r['ms_per_iter_min']:.1f}–{r['ms_per_iter_max']:.1f})" if r.get("blocks", 1) > 1 else ""
        return r["ms_per_iter"], f"{r['ms_per_iter']:.1f}{spread}"
    return r["ms_per_iter_median"], f"{r['ms_per_iter_median']:.1f} ({r['ms_per_iter_p10']:.1f}–{r['ms_per_iter_p90']:.1f})"


def _speed_key(r: dict, networks: str, mode: str) -> tuple:
    """A speed row's identity: device, freed memory (``keep_freed_memory`` or glibc's default), IPC, factor,
    networks, mode."""
    return r["device"], r["freed_memory"], r["ipc"], r["factor"], networks, mode


def speed_table() -> str:
    recs = [r for r in read_records(RESULTS / "speed.json") if r.get("benchmark") == "speed"]
    if not recs:
        return "_no results yet: run benchmarks/speed.py_"
    latest: dict = {}
    for r in recs:  # the newest record per (device, freed memory, ipc, factor, networks, mode)
        r["factor"], r["networks"] = int(r.get("factor") or 1), r.get("networks") or "random"
        r["freed_memory"] = r.get("freed_memory", FREED_MEMORY_DEFAULT)  # records before keep_freed_memory: glibc's default
        if _batch_lever(r):  # a row of its own (issue 25's representative batches; the start costs no time per iteration)
            r["networks"] += f", {_batch_lever(r)}"
        latest[_speed_key(r, r["networks"], r["mode"])] = r
    rows = sorted(latest.values(), key=lambda r: (r["device"], r["freed_memory"], r["ipc"], r["factor"], r["networks"],
                                                  r["mode"]))
    for r in rows:  # against the reference loop measured alike (same device and freed-memory setting)
        ref = latest.get(_speed_key(r, "random", "reference"))
        r["ratio"] = f"{speed_ms(ref)[0] / speed_ms(r)[0]:.1f}×" if ref and r["mode"] != "reference" else ""
        r["ms"] = speed_ms(r)[1]
        r["mem"] = "" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}"
    table = records_table(rows, [("device", "device"), ("freed memory", "freed_memory"), ("IPC", "ipc"),
                                  ("factor", "factor"),
                                  ("networks", "networks"), ("mode", "mode"),
                                  ("ms/iter (spread)", "ms"), ("speed-up vs reference", "ratio"),
                                  ("peak GPU MB", "mem"), ("timed iters", "timed_iterations")])
    note = ("ms/iter: records with `ms_per_iter` time blocks of iterations with one synchronisation per block "
            "(median block; spread = min–max over blocks); older records time single synchronised iterations "
            "(median; spread = p10–p90).")
    return table + "\n\n" + note + "\n\n" + provenance(rows)


# -- continual learning (benchmarks/avalanche_replay.py) -------------------------------------------------------------

# The record files of a benchmark, best first: the full budget, else the reduced CPU budget, else the quick check.
BUDGET_FILES = (
    ("", ""),
    ("_cpu", "**Reduced CPU budget, not the full recipe** (2 CPU cores; smaller networks and fewer epochs and "
             "iterations than the GPU recipe, so not comparable with full-budget numbers).\n\n"),
    ("_quick", "**Quick CPU check, not a result** (tiny budget; it shows the pipeline runs end to end, not how well "
               "the method works).\n\n"),
)
_BUDGET_NOTES = {"quick": "CPU smoke settings, not comparable to full runs",
                 "cpu": "reduced CPU recipe `CPU_RECIPE`, not the full recipe"}


def _best_file(stem: str, exclude: tuple[str, ...] = ()) -> tuple[Path, str, list[dict]] | None:
    """(path, label, records) of the first of :data:`BUDGET_FILES` (less the suffixes in ``exclude``) that holds
    records, or None."""
    for suffix, label in BUDGET_FILES:
        if suffix in exclude:
            continue
        path = RESULTS / f"{stem}{suffix}.json"
        recs = read_records(path)
        if recs:
            return path, label, recs
    return None


def _budget_heading(budget: str, recs: list[dict]) -> str:
    """``### budget: NAME (note: sizes) -- memory variant``, the sizes read from the recipe stored with the records."""
    factor, dsa = variant(recs[0])
    memory = (f" — ATOM memories: {'factor per the per-IPC table' if factor == 'table' else 'factor ' + factor}; "
              f"memory DSA {'on' if dsa else 'off'}")
    if budget == "full":
        return "### budget: full" + memory
    rc = recs[0].get("recipe") or {}
    sizes = (f"width {rc.get('width')}, {rc.get('train_epochs')} epoch(s) per experience, GDumb "
             f"{rc.get('gdumb_epochs')} epochs, {rc.get('condense_iterations')} condensation iterations with "
             f"{rc.get('condense_batch_real')} real images/class") if rc else ""
    return f"### budget: {budget} ({_BUDGET_NOTES.get(budget, 'reduced')}{': ' + sizes if sizes else ''})" + memory


def _method_order(method: str) -> int:
    return AVALANCHE_METHODS.index(method) if method in AVALANCHE_METHODS else 99


def avalanche_table_records(records: list[dict], budget: str, var: tuple[str, bool]) -> list[dict]:
    """The records of one table: the ATOM methods of memory variant ``var``; the real-sample methods (no factor)
    run with the same memory DSA, one record per (memory, method, seed), those of ``var`` itself first."""
    recs = [r for r in records if r.get("budget", "full") == budget and
            (variant(r) == var if r["method"].startswith("atom") else variant(r)[1] == var[1])]
    recs.sort(key=lambda r: variant(r) != var)
    seen, out = set(), []
    for r in recs:
        k = (int(r["memory"]), r["method"], r["seed"])
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def _paired_lines(recs: list[dict], budget: str) -> list[str]:
    """``ours - ref`` per memory, paired by seed (mean ± std over the seeds both have), against the targets."""
    acc = {(int(r["memory"]), r["method"], r["seed"]): r["final_avg_accuracy"] for r in recs
           if r.get("final_avg_accuracy") is not None}
    lines = []
    for mem in sorted({m for m, _, _ in acc}):
        for i, (ours, ref) in enumerate(PAIRS):
            diffs = [acc[(mem, ours, s)] - acc[(mem, ref, s)] for (m, meth, s) in sorted(acc, key=str)
                     if m == mem and meth == ours and (mem, ref, s) in acc]
            if not diffs:
                continue
            goals = [(name, t[mem][i]) for name, t in (("full recipe", AVALANCHE_TARGETS["full"]),
                                                       ("CPU recipe", AVALANCHE_TARGETS["cpu"]))
                     if mem in t and (name == "full recipe" or budget == "cpu")]
            verdict = "; ".join(f"{name} target {g:+.0f}: {'met' if statistics.mean(diffs) >= g else 'missed'}"
                                for name, g in goals)
            spread = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
            lines.append(f"- memory {mem}: {ours} − {ref} = {statistics.mean(diffs):+.2f}{spread} points over "
                         f"{len(diffs)} seed(s), paired by seed" + (f" ({verdict})" if verdict else ""))
    return lines


def _dsa_lines(records: list[dict], budget: str, var: tuple[str, bool]) -> list[str]:
    """For a table with memory DSA on: each method's ``on - off`` final average accuracy per memory, paired by seed
    (the off run of an ATOM method has the table's factor; a real-sample method's has no factor)."""
    if not var[1]:
        return []
    on = {(int(r["memory"]), r["method"], r["seed"]): r["final_avg_accuracy"]
          for r in avalanche_table_records(records, budget, var) if r.get("final_avg_accuracy") is not None}
    off = {(int(r["memory"]), r["method"], r["seed"]): r["final_avg_accuracy"]
           for r in avalanche_table_records(records, budget, (var[0], False))
           if r.get("final_avg_accuracy") is not None}
    lines = []
    for mem, method in sorted({(m, meth) for m, meth, _ in on}, key=lambda k: (k[0], _method_order(k[1]))):
        diffs = [on[k] - off[k] for k in sorted(on) if k[:2] == (mem, method) and k in off]
        if diffs:
            spread = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
            lines.append(f"- memory {mem}: {method} {statistics.mean(diffs):+.2f}{spread} points over {len(diffs)} "
                         f"seed(s), paired by seed")
    return lines


def avalanche_markdown(records: list[dict], figure: str = "") -> str:
    """Mean ± std over seeds per (memory, method), one table per budget and ATOM memory variant (the real-sample
    methods, which have no factor, appear in every table of their memory DSA), the paired-by-seed differences
    against the targets, one provenance line per table, and ``figure`` (a Markdown image) when given."""
    records = [r for r in records if r.get("benchmark") == AVALANCHE]
    if not records:
        return "_no results yet_"
    lines: list[str] = []
    atom = [r for r in records if r["method"].startswith("atom")] or records
    for budget, var in sorted({(r.get("budget", "full"), variant(r)) for r in atom}):
        recs = avalanche_table_records(records, budget, var)
        groups: dict[tuple[int, str], list[dict]] = {}
        for r in recs:
            groups.setdefault((int(r["memory"]), r["method"]), []).append(r)
        rows = []
        for mem, method in sorted(groups, key=lambda k: (k[0], _method_order(k[1]))):
            rs = groups[(mem, method)]
            acc = [r["final_avg_accuracy"] for r in rs if r.get("final_avg_accuracy") is not None]
            fgt = [r["avg_forgetting"] for r in rs if r.get("avg_forgetting") is not None]
            cs = [r["condense_seconds"] for r in rs] if method.startswith("atom") else []
            rows.append([mem, method, len(rs), mean_std(acc), mean_std(fgt), mean_std(cs) if cs else "-"])
        lines += [_budget_heading(budget, [r for r in recs if variant(r) == var] or recs), "", MEMORY_NOTE, "",
                  markdown_table(["memory (stored images)", "method", "seeds", "final avg accuracy (%)",
                                  "avg forgetting (%)", "condensation (s)"], rows)]
        targets = _paired_lines(recs, budget)
        if targets:
            lines += ["", "Final average accuracy, ATOM method − its real-sample counterpart:", "", *targets]
        dsa = _dsa_lines(records, budget, var)
        if dsa:
            lines += ["", "Final average accuracy, memory DSA on − off (same method, memory and seed):", "", *dsa]
        lines += ["", provenance(recs), ""]
    if figure:
        lines += [figure, ""]
    return "\n".join(lines).rstrip("\n")


def _avalanche_figure(records: list[dict], name: str) -> str:
    """Accuracy on the classes seen after each experience (mean over seeds), one line per method, one panel per
    memory (and budget and variant): the link, or "" when there is nothing to plot."""
    panels = sorted({(r.get("budget", "full"), variant(r), int(r["memory"])) for r in records if r.get("acc_curve")})
    if not panels:
        return ""

    def draw(plt, path: Path) -> None:
        fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
        for ax, (budget, var, mem) in zip(axes[0], panels):
            for method in AVALANCHE_METHODS:
                curves = [r["acc_curve"] for r in records if r["method"] == method and int(r["memory"]) == mem
                          and r.get("budget", "full") == budget and variant(r) == var and r.get("acc_curve")]
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                mean = [statistics.mean(c[i] for c in curves) for i in range(n)]
                ax.plot(range(1, n + 1), mean, marker="o", label=method, color=f"C{_method_order(method)}",
                        linestyle="-" if method.startswith("atom") else "--")
            tags = ([f"{budget} budget"] if budget != "full" else []) + \
                ([f"factor {var[0]}"] if var[0] != "1" else []) + (["memory DSA"] if var[1] else [])
            ax.set_title(f"memory {mem}" + (f" ({', '.join(tags)})" if tags else ""), fontsize=9)
            ax.set_xlabel("experiences trained")
            ax.set_ylabel("accuracy on seen classes (%)")
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=8)
        fig.suptitle(AVALANCHE)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return _figure(name, "accuracy on the classes seen after each experience", draw)


def avalanche_section() -> str:
    found = _best_file("avalanche_splitfmnist")
    if found is None:
        return "_no results yet: run benchmarks/avalanche_replay.py_"
    path, label, recs = found
    recs = [r for r in recs if r.get("benchmark") == AVALANCHE and r["method"] in AVALANCHE_METHODS  # the grid: below
            and memory_condense(r) in (None, ())]  # memory-quality variants: their own slot
    figure = _avalanche_figure(recs, path.with_suffix(".png").name)
    return f"{label}From `benchmarks/results/{path.name}`:\n\n{avalanche_markdown(recs, figure)}"


# -- proxy validity (benchmarks/proxy_validity.py) -------------------------------------------------------------------

_PROXY_COLUMNS = [("proxy", "proxy"), ("IPC", "ipc"), ("archs", "num_architectures"), ("ρ all", "spearman_all"),
                  ("95 % CI", "spearman_all_ci"), ("ρ top 20 %", "spearman_top20"), ("95 % CI ", "spearman_top20_ci"),
                  ("top pick", "top_pick"), ("its test acc. %", "top_pick_full_accuracy"),
                  ("best test acc. %", "best_full_accuracy"), ("s / candidate", "seconds_per_candidate"),
                  ("total s", "seconds_total"), ("speed-up", "speedup_vs_full"),
                  ("amortised", "speedup_vs_full_amortised")]


def _cell(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        return "—" if all(x is None for x in v) else "[" + ", ".join(_cell(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _proxy_label(r: dict) -> str:
    return "full" if r["proxy"] == "full" else f"{r['proxy']} ipc {r['ipc']}"


def proxy_validity_markdown(records: list[dict], figure: str = "") -> str:
    """The proxy-validity study's records as a description, one table (a row per proxy), the provenance line,
    ``figure`` when given, and the per-architecture validation accuracies of the last run whose records hold them
    (``candidates``: ``[[architecture, accuracy %], ...]``)."""
    if not records:
        return "_no results yet_"
    r0 = records[0]
    resamples = f" ({r0['bootstrap']} resamples)" if r0.get("bootstrap") else ""
    lines = [
        f"{r0['num_architectures']} architectures sampled (seed {r0['arch_seed']}) from the 720-variant ConvNet "
        f"space; trained on each proxy for {r0['proxy_epochs']} epochs and on the full {r0['full_train_size']}-image "
        f"training split for {r0['full_epochs']} epochs (SGD lr {r0['lr']}, momentum 0.9, wd {r0['weight_decay']}, "
        f"batch {r0['batch_size']}, DSA, seed {r0['train_seed']}); ranked by accuracy on {r0['val_size']} held-out "
        f"validation images. ρ = Spearman (top 20 % = the best fifth by full-data accuracy); 95 % percentile-"
        f"bootstrap intervals over candidates{resamples}. Test accuracies: the full-data networks of the top picks "
        f"only (retrained, tested once). Speed-up = full-data search time / (proxy search time + condensation); "
        f"amortised = condensation excluded." + (" **Quick CPU check, not a result.**" if r0.get("quick") else ""),
        "", records_table([{k: _cell(v) for k, v in r.items()} for r in records], _PROXY_COLUMNS), "",
        provenance(records)]
    if figure:
        lines += ["", figure]
    last = _last_run_with_candidates(records)
    if last:
        accs = {_proxy_label(r): dict(map(tuple, r["candidates"])) for r in last}
        full = accs.get("full", {})
        archs = sorted(next(iter(accs.values())), key=lambda a: -full.get(a, 0.0))
        rows = [[a, *(f"{accs[label][a]:.2f}" if a in accs[label] else "—" for label in accs)] for a in archs]
        lines += ["", "### Per architecture (validation accuracy, %)", "",
                  markdown_table(["architecture", *accs], rows)]
    return "\n".join(lines)


def _last_run_with_candidates(records: list[dict]) -> list[dict]:
    """The records of the last run (one command at one date) whose records hold per-candidate accuracies."""
    runs = [r for r in records if r.get("candidates")]
    if not runs:
        return []
    last = (runs[-1].get("command"), runs[-1].get("date"))
    return [r for r in runs if (r.get("command"), r.get("date")) == last]


def _proxy_figure(records: list[dict], name: str) -> str:
    """Proxy against full validation accuracy per candidate, one panel per IPC (the last run's per-candidate
    accuracies): the link, or "" when no record holds them."""
    last = _last_run_with_candidates(records)
    full = next((dict(map(tuple, r["candidates"])) for r in last if r["proxy"] == "full"), None)
    groups = [r for r in last if r["proxy"] != "full"]
    if not full or not groups:
        return ""
    ipcs = sorted({r["ipc"] for r in groups})

    def draw(plt, path: Path) -> None:
        fig, axes = plt.subplots(1, len(ipcs), figsize=(5 * len(ipcs), 4.5), squeeze=False)
        for ax, ipc in zip(axes[0], ipcs):
            for r, marker in zip([r for r in groups if r["ipc"] == ipc], "oxs^"):
                accs = dict(map(tuple, r["candidates"]))
                archs = [a for a in accs if a in full]
                rho = "n/a" if r.get("spearman_all") is None else f"{r['spearman_all']:.2f}"
                ax.scatter([full[a] for a in archs], [accs[a] for a in archs], marker=marker, alpha=0.7,
                           label=f"{r['proxy']} (ρ = {rho})")
            ax.set_xlabel(f"validation accuracy, trained on full data ({groups[0]['full_epochs']} ep), %")
            ax.set_ylabel(f"validation accuracy, trained on proxy ({groups[0]['proxy_epochs']} ep), %")
            ax.set_title(f"IPC {ipc}")
            ax.legend(loc="lower right", fontsize=8)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return _figure(name, "proxy vs full validation accuracy", draw)


def proxy_validity_section() -> str:
    found = _best_file("proxy_validity", exclude=("_cpu",))  # the CPU study: proxy_cpu_section
    if found is None:
        return "_no results yet: run benchmarks/proxy_validity.py_"
    path, label, recs = found
    figure = _proxy_figure(recs, path.with_suffix(".png").name)
    return f"{label}From `benchmarks/results/{path.name}`:\n\n{proxy_validity_markdown(recs, figure)}"


# -- the equal-cost CPU proxy study (benchmarks/proxy_validity.py --budget cpu) --------------------------------------

_CPU_PROXY_FILES = ("proxy_validity_cpu.json", "proxy_validity_cpu_quick.json")  # the study, else its quick check
# the figure's lines and the table's row order
_CPU_PROXY_KINDS = ("condensed f2", "condensed f1", "random 100", "random 400", "herding 100", FULL_KIND)
assert set(_CPU_PROXY_KINDS) == {r.kind for r in CPU_RUNS}
_CPU_PROXY_TODO = ("_not yet measured: the CPU study's commands are above (`--plan`, `--prepare`, two `--shard i/2` "
                   "jobs, `--summary`)_")


def _cpu_proxy_records() -> tuple[str, list[dict]] | None:
    """(file name, records of its last study) of the first of :data:`_CPU_PROXY_FILES` with records, or None."""
    for name in _CPU_PROXY_FILES:
        recs = [r for r in read_records(RESULTS / name) if r.get("budget") == "cpu"]
        if recs:
            last = recs[-1].get("command")
            return name, [r for r in recs if r.get("command") == last]
    return None


def _cpu_order(r: dict) -> tuple:
    k = r["proxy"]
    return (_CPU_PROXY_KINDS.index(k) if k in _CPU_PROXY_KINDS else len(_CPU_PROXY_KINDS), r["sample_passes"])


def _is_reference(r: dict) -> bool:
    """Whether a CPU-study record is the reference itself (full data at the reference's epochs), not a proxy; records
    written before the ``reference`` field are recognised by their proxy and epochs."""
    return r.get("reference", r["proxy"] == FULL_KIND and r["epochs"] == r["full_epochs"])


def _vs_early_stop(r: dict, recs: list[dict]) -> dict | None:
    """A condensed record's paired comparison with the full-data early stop at its cost point; None at the
    reference's cost point (records written before the ``reference`` field compared with the reference itself)."""
    if r["cost_point"] in {x["cost_point"] for x in recs if _is_reference(x)}:
        return None
    return r.get("vs_early_stop")


def _delta(d: dict | None) -> str:
    if not d or d.get("difference") is None:
        return "—"
    return f"{d['difference']:+.3f} {_cell(d.get('ci'))}"


def _cpu_verdicts(recs: list[dict]) -> list[str]:
    """The issue's targets, each stated as met or missed from the records (a miss is a finding)."""
    out = []
    for r in (x for x in recs if x["proxy"].startswith("condensed")):
        lo, hi = r.get("spearman_all_ci") or [None, None]
        half = None if lo is None or hi is None else (hi - lo) / 2
        rnd, es = r.get("vs_random") or {}, _vs_early_stop(r, recs) or {}
        ok = [("ρ ≥ 0.75", r["spearman_all"] is not None and r["spearman_all"] >= 0.75),
              ("95 % half-width ≤ 0.15", half is not None and half <= 0.15),
              (f"ρ − ρ({rnd.get('against', 'random')}) ≥ +0.10 with the paired interval above 0",
               rnd.get("difference") is not None and rnd["difference"] >= 0.10 and (rnd["ci"][0] or 0) > 0),
              ("ρ ≥ ρ(full-data early stop)", es.get("difference") is not None and es["difference"] >= 0),
              ("regret ≤ 0.5 points", r["regret_points"] <= 0.5)]
        if not es:  # at the reference's own cost there is no early stop to compare with
            ok = [x for x in ok if not x[0].startswith("ρ ≥ ρ(full-data")]
        out.append(f"- {r['proxy']} at {r['cost_point']} passes: " + "; ".join(
            f"{name} **{'met' if good else 'missed'}**" for name, good in ok)
            + f"; speed-up vs the 4-epoch reference: {_cell(r.get('speedup_vs_full'))}× in wall seconds, making the "
            "proxy included" + (f" ({_cell(r['speedup_vs_full_passes_amortised'])}× in sample passes, making "
                                 "excluded)." if r.get("speedup_vs_full_passes_amortised") else "."))
    return out


def _cpu_proxy_figure(recs: list[dict], name: str) -> str:
    """ρ against sample passes, one line per proxy kind (the figure a searcher decides from)."""
    def draw(plt, path):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for kind in _CPU_PROXY_KINDS:
            pts = sorted((r["sample_passes"], r["spearman_all"]) for r in recs
                         if r["proxy"] == kind and r["spearman_all"] is not None and not _is_reference(r))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=kind)
        ax.set_xscale("log")
        ax.set_xlabel("sample passes per architecture (training samples × epochs)")
        ax.set_ylabel("Spearman ρ vs full data (4 epochs)")
        ax.set_title(f"Rank agreement at equal cost ({recs[0]['num_architectures']} architectures)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return _figure(name, "Spearman rho against sample passes, one line per proxy kind", draw)


def proxy_cpu_section() -> str:
    """The CPU study: a table per (proxy, cost point), the targets met or missed, the figure, the provenance."""
    found = _cpu_proxy_records()
    if found is None:
        return _CPU_PROXY_TODO
    name, recs = found
    recs = sorted(recs, key=_cpu_order)
    r0 = recs[0]
    quick = "**Quick CPU check, not a result.** " if r0.get("quick") else ""
    head = ["proxy", "passes", "epochs", "ρ all [95 % CI]", "τ [95 % CI]", "ρ top 20 %", "ρ above chance",
            "top-5 overlap", "regret (points)", "Δρ vs random, same size", "Δρ vs early stop", "noise ceiling",
            "s (with making)"]
    rows = [[f"{r['proxy']} (the reference)", f"{r['sample_passes']:,}", _cell(r["epochs"]),
             *["—"] * 9, _cell(r["seconds_total"])] if _is_reference(r) else
            [r["proxy"], f"{r['sample_passes']:,}", _cell(r["epochs"]),
             f"{_cell(r['spearman_all'])} {_cell(r.get('spearman_all_ci'))}",
             f"{_cell(r['kendall'])} {_cell(r.get('kendall_ci'))}", _cell(r["spearman_top20"]),
             f"{_cell(r['spearman_above_chance'])} (n = {r['num_above_chance']})", _cell(r["top5_overlap"]),
             _cell(r["regret_points"]), _delta(r.get("vs_random")), _delta(_vs_early_stop(r, recs)),
             _cell(r.get("noise_ceiling")), _cell(r["seconds_total"])] for r in recs]
    text = (f"{quick}From `benchmarks/results/{name}`: {r0['num_architectures']} architectures (stratified, pooled, "
            f"width ≤ 128); {r0['lr_schedule']} learning rate {r0['lr']} for every run; reference = full data "
            f"({r0['full_train_size']} images) at {_cell(r0['full_epochs'])} epochs; ranked on {r0['val_size']} "
            f"validation images, the picks' saved full-data networks tested once. Intervals: percentile bootstrap "
            f"over architectures; Δρ: paired bootstrap. Noise ceiling: √(reliability of the proxy × of full data) "
            f"from a second seed.\n\n" + markdown_table(head, rows) + "\n\n" + "\n".join(_cpu_verdicts(recs)))
    figure = _cpu_proxy_figure(recs, "proxy_validity_cpu.png")
    return text + (f"\n\n{figure}" if figure else "") + f"\n\n{provenance(recs)}"


def proxy_cpu_line() -> str:
    """One README line: the condensed default's ρ at equal cost against its controls, or "not yet measured"."""
    found = _cpu_proxy_records()
    if found is None:
        return "**Proxy at equal cost** (CPU study, 40 architectures): not yet measured."
    recs = found[1]
    f2 = sorted((r for r in recs if r["proxy"] == "condensed f2"), key=lambda r: -r["sample_passes"])
    if not f2:
        return "**Proxy at equal cost** (CPU study): no condensed-proxy record yet."
    r = f2[0]
    note = " — a quick CPU check, not a result" if r.get("quick") else ""
    return (f"**Proxy at equal cost** (CPU study, {r['num_architectures']} architectures, {r['sample_passes']:,} "
            f"sample passes each): condensed ρ = {_cell(r['spearman_all'])} {_cell(r.get('spearman_all_ci'))}; "
            f"vs random of the same size Δρ {_delta(r.get('vs_random'))}; vs full-data early stop "
            f"{_delta(r.get('vs_early_stop'))}; regret {_cell(r['regret_points'])} points{note}.")


# -- the README's summary: the headline table and one line per downstream use ---------------------------------------

HEADLINE_IPC = (1, 10, 50)
HEADLINE_ROWS = (("atom", "the default (`atom`, per-IPC table)"), ("dm", "`dm` (DM as published)"),
                 ("herding", "herding (coreset)"), ("random", "random real images"))


def _headline_cell(recs: list[dict], method: str, ipc: int, budget: tuple) -> dict | None:
    """The ConvNet record of ``method`` at ``ipc`` evaluated at ``budget`` (iterations, networks, epochs, device):
    the ``atom`` default at its per-IPC choices, ``dm`` as published, a selection at any iterations."""
    its, models, epochs, device = budget
    for r in recs:
        if (r["method"], r["ipc"], r["model"], r["num_models"], r["eval_epochs"], r["device"]) != \
                (method, ipc, "convnet", models, epochs, device):
            continue
        if method in CONDENSED:
            if r["iterations"] == its and _is_default(r):
                return r
        elif _parametrisation(r)[0] == 1:
            return r
    return None


def headline_table() -> str:
    """Test accuracy at IPC 1 / 10 / 50 of the default, ``dm``, herding and random, all at one budget: the one with
    the most cells measured (then the most iterations), its budget stated under the table."""
    recs = [r for r in read_records(RESULTS / "fashion_mnist.json") if r.get("split") == "test"]
    budgets = {(r["iterations"], r["num_models"], r["eval_epochs"], r["device"]) for r in recs
               if r["method"] in CONDENSED and r["model"] == "convnet"}
    if not budgets:
        return "_no results yet: run benchmarks/fashion_mnist.py_"

    def cells(budget):
        return {(m, ipc): _headline_cell(recs, m, ipc, budget) for m, _ in HEADLINE_ROWS for ipc in HEADLINE_IPC}

    budget = max(budgets, key=lambda b: (sum(c is not None for c in cells(b).values()), b[0]))
    got = cells(budget)
    rows = [[label, *(_fmt_acc(got[(m, ipc)]) if got[(m, ipc)] else "—" for ipc in HEADLINE_IPC)]
            for m, label in HEADLINE_ROWS]
    table = markdown_table(["Fashion-MNIST, test accuracy %", *(f"IPC {ipc}" for ipc in HEADLINE_IPC)], rows)
    its, models, epochs, _ = budget
    shown = [r for r in got.values() if r]
    real = sorted({r["batch_real"] for r in shown if r["iterations"]})
    reduced = (its, epochs, models) < (PROTOCOL["iterations"], PROTOCOL["eval_epochs"], PROTOCOL["num_models"])
    note = (f" A reduced budget, not the published protocol ({PROTOCOL['iterations']} iterations, "
            f"{PROTOCOL['num_models']} × {PROTOCOL['eval_epochs']}-epoch evaluations): see "
            f"[benchmarks](benchmarks.md).") if reduced else ""
    return (f"{table}\n\nBudget: {its} condensation iterations × {'/'.join(map(str, real))} real images per class; "
            f"{models} ConvNet-3 networks × {epochs} epochs per evaluation, each tested once; mean ± std over "
            f"networks.{note} {provenance(shown)}")


_RECIPE_NAMES = {"full": "full recipe", "cpu": "reduced CPU recipe", "quick": "quick CPU check, not a result"}


def continual_learning_line() -> str:
    """One line: per strategy of the strategies × memories grid (memory 100), the ATOM memory minus the strategy's
    better real memory, paired by seed (the primary strategy first; a strategy on fewer seeds than the line's says
    how many), then the primary strategy's memory-quality variants against the same counterpart; before the grid
    existed, each of the first methods' ATOM memory against its real-sample counterpart at the smallest memory, the
    default memory variant (the per-IPC factor table, no memory DSA) when measured."""
    found = _grid_records(variants=True)
    every = [r for r in found[2] if int(r["memory"]) == 100] if found else []
    recs = [r for r in every if not memory_condense(r)]  # the grid's own memories
    seeds = len({r["seed"] for r in recs})

    def delta(runs: dict, strategy: str, ref: str) -> str:  # "+1.89 ± 0.94 (vs herding)"; "(2 seeds, vs herding)"
        text = _paired_text(runs, _by_seed(recs, 100, (strategy, ref)))[1]  # "+1.89 ± 0.94 (3 seeds)"
        n = len(_paired_diffs(runs, _by_seed(recs, 100, (strategy, ref))))
        return f"{text[:-1]}, vs {ref})" if n < seeds else f"{text.split(' (')[0]} (vs {ref})"

    parts = []
    for strategy in sorted(_STRATEGIES, key=lambda st: st != _PRIMARY):
        ref = _counterpart(recs, 100, strategy)
        atom = _by_seed(recs, 100, (strategy, "atom"))
        if ref and _paired_diffs(atom, _by_seed(recs, 100, (strategy, ref))):
            name = f"**{strategy}**" if strategy == _PRIMARY else strategy
            parts.append(f"{name} {delta(atom, strategy, ref)}")
    if parts:
        ref = _counterpart(recs, 100, _PRIMARY)
        variants = {memory_condense(r) for r in every if r["_cell"] == (_PRIMARY, "atom")} - {(), None}
        for changes in sorted(variants) if ref else ():
            var = {r["seed"]: r for r in every if r["_cell"] == (_PRIMARY, "atom") and memory_condense(r) == changes}
            if _paired_diffs(var, _by_seed(recs, 100, (_PRIMARY, ref))):
                parts.append(f"**{_PRIMARY}** with memories condensed with {condense_label(changes)} "
                             f"{delta(var, _PRIMARY, ref)}")
        budget = recs[0].get("budget", "full")
        return (f"**Continual learning** (SplitFMNIST-5, {_RECIPE_NAMES.get(budget, budget)}, memory 100 stored "
                f"images, {seeds} seeds): final average accuracy of the ATOM memory minus the "
                f"better real memory (random or herding) in the same Avalanche strategy, points, paired by seed — "
                + ", ".join(parts) + ".")
    found = _best_file("avalanche_splitfmnist")
    if found is None:
        return "_no continual-learning results yet_"
    _, _, recs = found
    recs = [r for r in recs if r.get("benchmark") == AVALANCHE and r.get("final_avg_accuracy") is not None]
    var = ("table", False) if any(variant(r) == ("table", False) for r in recs) else variant(recs[0])
    budget = recs[0].get("budget", "full")
    mem = min(int(r["memory"]) for r in recs)
    recs = [r for r in avalanche_table_records(recs, budget, var) if int(r["memory"]) == mem]
    acc = {(r["method"], r["seed"]): r["final_avg_accuracy"] for r in recs}
    parts = []
    for ours, ref in PAIRS:
        seeds = sorted(s for m, s in acc if m == ours and (ref, s) in acc)
        if seeds:
            diff = mean_std([acc[(ours, s)] - acc[(ref, s)] for s in seeds])
            parts.append(f"{ours} {mean_std([acc[(ours, s)] for s in seeds])} vs {ref} "
                         f"{mean_std([acc[(ref, s)] for s in seeds])} ({'+' if not diff.startswith('-') else ''}"
                         f"{diff} paired)")
    return (f"**Continual learning** (SplitFMNIST-5, {_RECIPE_NAMES.get(budget, budget)}, memory {mem} stored images, "
            f"final average accuracy %, {len({r['seed'] for r in recs})} seeds): " + "; ".join(parts) + ".")


def nas_line() -> str:
    """One line: Spearman ρ between the proxies' and full data's rankings of the sampled architectures."""
    found = _best_file("proxy_validity", exclude=("_cpu",))  # the CPU study: proxy_cpu_section
    if found is None:
        return "_no architecture-search results yet_"
    _, label, recs = found
    proxies = [r for r in recs if r["proxy"] != "full"]
    rho = "; ".join(f"{r['proxy']} IPC {r['ipc']} ρ = {_cell(r['spearman_all'])}" for r in proxies)
    note = " — a quick CPU check, not a result" if label and proxies and proxies[0].get("quick") else ""
    return (f"**Architecture search** (Fashion-MNIST, {proxies[0]['num_architectures'] if proxies else 0} sampled "
            f"ConvNets; rank correlation of proxy-trained with full-data-trained validation accuracy): {rho}{note}.")


# -- the strategies x memories grid (benchmarks/avalanche_replay.py --strategies/--memory-kinds; issue 22) -----------

_GRID_RUN = ("`OMP_NUM_THREADS=1 python benchmarks/avalanche_replay.py --budget cpu --memories 100 --strategies "
             + " ".join(_STRATEGIES) + " --memory-kinds " + " ".join(_KINDS) + " --cache-dir runs/avalanche-memories`")


def _current_finetune(r: dict) -> bool:
    """Whether a fine-tuned strategy's record used its budget's recipe's fine-tune (records of a former choice stay
    in the file, out of the tables); True for the other strategies."""
    if _cell_of(r)[0] not in _FINETUNED:
        return True
    from atom_plugin.integrations.avalanche.comparison import RECIPES

    recipe = RECIPES.get(r.get("budget", "full"))
    return recipe is None or (r.get("finetune_epochs"), r.get("finetune_lr")) == (recipe.finetune_epochs,
                                                                                   recipe.finetune_lr)


def _grid_records(variants: bool = False) -> tuple[str, str, list[dict]] | None:
    """(file name, budget label, records) of the grid: the default memory variant (ATOM memories at the per-IPC
    factor table, no memory DSA; real memories without memory DSA) with the recipe's fine-tune, one record per
    (memory, cell, seed); CPU ATOM memories condensed with the pinned settings, or with ``variants`` also the
    memory-quality variants' (one record per (memory, cell, seed, :func:`memory_condense`))."""
    found = _best_file("avalanche_splitfmnist")
    if found is None:
        return None
    path, label, recs = found
    out, seen = [], set()
    for r in recs:
        if r.get("benchmark") != AVALANCHE or r.get("final_avg_accuracy") is None:
            continue
        cell = _cell_of(r)
        factor, dsa = variant(r)
        if cell not in _GRID or dsa or (cell[1] == "atom" and factor != "table") or not _current_finetune(r):
            continue
        changes = memory_condense(r)
        if not variants and changes:
            continue
        k = (int(r["memory"]), cell, r["seed"], changes)
        if k not in seen:
            seen.add(k)
            out.append(dict(r, _cell=cell))
    return path.name, label, out


def _by_seed(recs: list[dict], memory: int, cell: tuple) -> dict:
    return {r["seed"]: r for r in recs if int(r["memory"]) == memory and r["_cell"] == cell}


def _paired_diffs(a: dict, b: dict) -> list[float]:
    """a's accuracy minus b's per seed both have (``{seed: record}``), in seed order."""
    return [a[s]["final_avg_accuracy"] - b[s]["final_avg_accuracy"] for s in sorted(set(a) & set(b))]


def _paired_text(a: dict, b: dict) -> tuple[float | None, str]:
    """(mean, text) of a's accuracy minus b's over the seeds both have (``{seed: record}``)."""
    d = _paired_diffs(a, b)
    if not d:
        return None, "not yet measured"
    spread = f" ± {statistics.stdev(d):.2f}" if len(d) > 1 else ""
    return statistics.mean(d), f"{statistics.mean(d):+.2f}{spread} ({len(d)} seed{'s' if len(d) > 1 else ''})"


def _mean_acc(runs: dict) -> float:
    return statistics.mean(r["final_avg_accuracy"] for r in runs.values())


def _counterpart(recs: list[dict], memory: int, strategy: str) -> str | None:
    """The better real memory of ``strategy`` (higher mean accuracy over its seeds), None when neither is measured."""
    real = {k: _by_seed(recs, memory, (strategy, k)) for k in ("random", "herding") if (strategy, k) in _GRID}
    real = {k: v for k, v in real.items() if v}
    return max(real, key=lambda k: _mean_acc(real[k])) if real else None


def _grid_table(recs: list[dict], memory: int) -> str:
    """The table at ``memory``: every strategy at memory 100 (the grid), elsewhere those measured and the primary."""
    rows = []
    for strategy in _STRATEGIES:
        if memory != 100 and strategy != _PRIMARY and not any(_by_seed(recs, memory, (strategy, k)) for k in _KINDS):
            continue
        cells = []
        for kind in _KINDS:
            runs = _by_seed(recs, memory, (strategy, kind))
            cells.append("—" if (strategy, kind) not in _GRID else
                         mean_std([r["final_avg_accuracy"] for r in runs.values()]) + f" (n={len(runs)})" if runs
                         else "not yet measured")
        ref = _counterpart(recs, memory, strategy)
        atom = _by_seed(recs, memory, (strategy, "atom"))
        delta = _paired_text(atom, _by_seed(recs, memory, (strategy, ref)))[1] if ref else "not yet measured"
        cond = mean_std([r["condense_seconds"] for r in atom.values()], 0) if atom else ""
        train = [_training_seconds(r) for r in atom.values()]
        train = ("—" if None in train else mean_std(train, 0)) if atom else ""
        rows.append([f"**{strategy}**" if strategy == _PRIMARY else strategy, *cells,
                     f"{delta}{f' vs {ref}' if ref else ''}", cond, train])
    return markdown_table(["strategy", *(f"{k} (%)" for k in _KINDS), "ATOM − counterpart (points, paired)",
                           "ATOM condensation (s)", "ATOM training (s)"], rows)


def _training_seconds(r: dict) -> float | None:
    """A run's wall seconds without condensation. A memory update read from the cache (``cached_updates``) spent no
    condensation time in the run although ``condense_seconds`` counts its original time; records written before
    ``condense_seconds_spent`` existed are exact when all of their updates or none were cached (else None)."""
    if "condense_seconds_spent" in r:
        return r["train_seconds"] - r["condense_seconds_spent"]
    cached, updates = int(r.get("cached_updates") or 0), len(r.get("acc_curve") or [])
    return r["train_seconds"] - r["condense_seconds"] if not cached else r["train_seconds"] if cached == updates else None


def _grid_best(recs: list[dict], memory: int, atom: bool) -> tuple[tuple, dict] | None:
    """The cell with the best mean accuracy among the ATOM (or the real-sample) cells measured at ``memory``."""
    cells = {c: _by_seed(recs, memory, c) for c in _GRID if (c[1] == "atom") == atom}
    cells = {c: v for c, v in cells.items() if v}
    if not cells:
        return None
    best = max(cells, key=lambda c: _mean_acc(cells[c]))
    return best, cells[best]


def _wins(diffs: list[float]) -> bool:
    """The README's rule on paired differences: their mean above twice their std (at least 2 pairs)."""
    return len(diffs) > 1 and statistics.mean(diffs) > 2 * statistics.stdev(diffs)


def _quality_pick(memory: int, strategy: str) -> tuple[tuple, dict, dict] | None:
    """The memory-quality variant of ``strategy`` at ``memory`` to recommend: among the variants that win over the
    grid's pinned memory by :func:`_wins` (paired by seed), the one with the best mean accuracy; ``(changes, {seed:
    variant record}, {seed: pinned record})``, or None when none wins."""
    found = _grid_records(variants=True)
    recs = [r for r in found[2] if int(r["memory"]) == memory and r["_cell"] == (strategy, "atom")] if found else []
    pinned = {r["seed"]: r for r in recs if memory_condense(r) == ()}
    best = None
    for changes in sorted({memory_condense(r) for r in recs} - {(), None}):
        var = {r["seed"]: r for r in recs if memory_condense(r) == changes}
        if _wins(_paired_diffs(var, pinned)) and (best is None or _mean_acc(var) > _mean_acc(best[1])):
            best = (changes, var, pinned)
    return best


def _provisional(seeds: int) -> str:
    return f", provisional: {seeds} of {len(GRID_SEEDS)} seeds" if seeds < len(GRID_SEEDS) else ""


def _grid_target_lines(recs: list[dict]) -> list[str]:
    """The targets of issue 22 on the grid's pinned memories, then on the primary strategy's best memory-quality
    variant (:func:`_quality_pick`), where one wins over the pinned memory."""
    lines = []
    for memory, goal in sorted(GRID_TARGETS["primary"].items()):
        ref = _counterpart(recs, memory, _PRIMARY)
        mean, text = _paired_text(_by_seed(recs, memory, (_PRIMARY, "atom")),
                                  _by_seed(recs, memory, (_PRIMARY, ref))) if ref else (None, "not yet measured")
        seeds = len(set(_by_seed(recs, memory, (_PRIMARY, "atom"))) & set(_by_seed(recs, memory, (_PRIMARY, ref)))) \
            if ref else 0
        verdict = "" if mean is None else f": {'met' if mean >= goal else 'missed'}{_provisional(seeds)}"
        lines.append(f"- memory {memory}, primary strategy {_PRIMARY}: ATOM − {ref or 'counterpart'} = {text} "
                     f"(target {goal:+.1f}{verdict})")
    for memory, goal in sorted(GRID_TARGETS["best"].items()):
        ours, ref = _grid_best(recs, memory, True), _grid_best(recs, memory, False)
        if ours is None or ref is None:
            lines.append(f"- memory {memory}: best ATOM method − best real-sample method: not yet measured "
                         f"(target {goal:+.1f})")
            continue
        mean, text = _paired_text(ours[1], ref[1])
        left = sum(not _by_seed(recs, memory, c) for c in _GRID)
        verdict = "" if mean is None else f": {'met' if mean >= goal else 'missed'}" + (
            f", provisional: {left} of {len(_GRID)} cells not yet measured" if left else "")
        lines.append(f"- memory {memory}: best ATOM method ({'/'.join(ours[0])}) − best real-sample method "
                     f"({'/'.join(ref[0])}) = {text} (target {goal:+.1f}{verdict})")
    for memory, goal in sorted(GRID_TARGETS["primary"].items()):
        pick, ref = _quality_pick(memory, _PRIMARY), _counterpart(recs, memory, _PRIMARY)
        if pick is None or ref is None:
            continue
        changes, var, _ = pick
        what = (f"primary strategy {_PRIMARY}, its memory condensed with {condense_label(changes)} (the best "
                f"memory-quality variant that wins over the pinned memory)")
        targets = [(f"ATOM − {ref}", _by_seed(recs, memory, (_PRIMARY, ref)), goal)]
        best_real = _grid_best(recs, memory, False) if memory in GRID_TARGETS["best"] else None
        if best_real:
            targets.append((f"ATOM − the grid's best real-sample method ({'/'.join(best_real[0])})", best_real[1],
                            GRID_TARGETS["best"][memory]))
        for label, other, target in targets:
            mean, text = _paired_text(var, other)
            if mean is not None:
                seeds = len(_paired_diffs(var, other))
                lines.append(f"- memory {memory}, {what}: {label} = {text} (target {target:+.1f}: "
                             f"{'met' if mean >= target else 'missed'}{_provisional(seeds)})")
    return lines


def _grid_figure(recs: list[dict], memory: int) -> str:
    def draw(plt, path: Path):
        fig, ax = plt.subplots(figsize=(8, 3.6))
        width = 0.8 / len(_KINDS)
        drawn = False
        for j, kind in enumerate(_KINDS):
            xs, ys, es = [], [], []
            for i, strategy in enumerate(_STRATEGIES):
                accs = [r["final_avg_accuracy"] for r in _by_seed(recs, memory, (strategy, kind)).values()]
                if accs:
                    xs.append(i + (j - 1) * width)
                    ys.append(statistics.mean(accs))
                    es.append(statistics.stdev(accs) if len(accs) > 1 else 0.0)
            if xs:
                drawn = True
                ax.bar(xs, ys, width, yerr=es, label=kind, color=f"C{j}")
        if not drawn:
            plt.close(fig)
            return False
        ax.set_xticks(range(len(_STRATEGIES)), _STRATEGIES)
        ax.set_ylabel("final average accuracy (%)")
        ax.set_ylim(50, 90)
        ax.set_title(f"{AVALANCHE}, memory {memory}: strategies × memories (mean ± std over seeds)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    return _figure(f"avalanche_grid_{memory}.png", f"strategies x memories at memory {memory}", draw)


def avalanche_grid_section() -> str:
    """The strategies × memories table per memory (mean ± std over seeds; ATOM − its counterpart, paired by seed;
    condensation beside training seconds), the targets of issue 22 and a plot; "not yet measured" for what is missing."""
    found = _grid_records()
    if found is None or not found[2]:
        return f"_not yet measured: run {_GRID_RUN}_"
    name, label, recs = found
    parts = [f"{label}From `benchmarks/results/{name}` (ATOM memories at the per-IPC factor table, no memory DSA; "
             f"bold: the primary strategy, named before the runs; counterpart: the better real memory of the same "
             f"strategy; seconds: mean per run on the recording machine, a cached memory counting its original "
             f"condensation time):", ""]
    for memory in sorted({int(r["memory"]) for r in recs}):
        parts += [f"**Memory {memory}**", "", _grid_table(recs, memory), ""]
    parts += ["Targets (issue 22):", "", *_grid_target_lines(recs), ""]
    figure = _grid_figure(recs, 100) if any(int(r["memory"]) == 100 for r in recs) else ""
    parts += [figure, "", provenance(recs)] if figure else [provenance(recs)]
    parts += ["", f"Missing cells: {_GRID_RUN}."] if any(
        not _by_seed(recs, 100, c) for c in _GRID) else []
    return "\n".join(parts)


#: The two lines of code of each strategy family, filled with the run's memory (and fine-tune).
_RECIPE_CODE = {
    "er_ace": ("strategy = ER_ACE(model=model, optimizer=optimizer, mem_size={m}, batch_size_mem={b}{ft})",
               "use_atom_memory(strategy, ATOMBuffer({m}{cfg}))"),
    "replay": ("plugins = [ATOMReplayPlugin(mem_size={m}{cfg}){ftp}]",
               "strategy = Naive(model=model, optimizer=optimizer, plugins=plugins)"),
    "gdumb": ("plugins = [CondensedGDumbPlugin(mem_size={m}{cfg})]",
              "strategy = Naive(model=model, optimizer=optimizer, train_epochs=100, plugins=plugins)"),
    "der": ("strategy = DER(model=model, optimizer=optimizer, mem_size={m}, batch_size_mem={b})",
            "use_atom_memory(strategy, ATOMLogitsBuffer({m}{cfg}))"),
}
#: The recipe whose condensation a budget's records used, when it is not the buffers' default (``default_config()``,
#: the full recipe's): the recommended code passes its ``condense_config()``, so it makes the memory measured.
_RECIPE_CONFIG = {"cpu": "CPU_RECIPE", "quick": "QUICK_RECIPE"}


def avalanche_recommended_section(memory: int = 100) -> str:
    """The grid's best ATOM method at ``memory`` -- once every ATOM cell of the grid is measured there -- with its
    accuracy, its counterpart's, its cost and the two lines of code."""
    found = _grid_records()
    recs = found[2] if found else []
    missing = [c for c in _GRID if c[1] == "atom" and not _by_seed(recs, memory, c)]
    if not recs or missing:
        return (f"_not yet measured: the recommendation is the grid's best ATOM method at memory {memory}; missing "
                f"ATOM cells: {', '.join(s for s, _ in missing) or 'all'} ({_GRID_RUN})._")
    (strategy, _), runs = _grid_best(recs, memory, True)
    ref = _counterpart(recs, memory, strategy)
    _, delta = _paired_text(runs, _by_seed(recs, memory, (strategy, ref))) if ref else (None, "not yet measured")
    r0 = next(iter(runs.values()))
    ft = strategy.endswith("+ft")
    ft_args = f"BalancedFineTunePlugin({r0.get('finetune_epochs')}, {r0.get('finetune_lr')})" if ft else ""
    lines = _RECIPE_CODE[strategy.replace("+ft", "")]
    recipe = _RECIPE_CONFIG.get(r0.get("budget", "full"))
    if recipe:
        lines = (f"from atom_plugin.integrations.avalanche.comparison import {recipe}  # the condensation measured",
                 *lines)
    code = "\n".join(line.format(m=memory, b=r0.get("batch_size_mem") or 64, ft=f", plugins=[{ft_args}]" if ft_args
                                  else "", ftp=f", {ft_args}" if ft_args else "",
                                  cfg=f", config={recipe}.condense_config()" if recipe else "") for line in lines)
    cond = mean_std([r["condense_seconds"] for r in runs.values()], 0)
    seconds = [_training_seconds(r) for r in runs.values()]
    total = mean_std([t for t in seconds if t is not None], 0)
    text = (f"{found[1]}**Use an `ATOMBuffer` with {strategy}** — the grid's best ATOM method at memory {memory} "
            f"(SplitFMNIST-5): final average accuracy {mean_std([r['final_avg_accuracy'] for r in runs.values()])} "
            f"% over {len(runs)} seeds, {delta} points over its counterpart ({ref}, paired by seed). Cost per run: "
            f"{cond} s of condensation (per seed and memory; reused by every strategy given the same experiences) "
            f"and {total} s of training and evaluation ({r0.get('device', '?')}).\n\n```python\n{code}\n```")
    pick = _quality_pick(memory, strategy) if recipe else None
    if pick is None:
        return text
    changes, var, pinned = pick
    seeds = len(_paired_diffs(var, _by_seed(recs, memory, (strategy, ref)))) if ref else 0
    _, gain = _paired_text(var, pinned)
    _, delta = _paired_text(var, _by_seed(recs, memory, (strategy, ref))) if ref else (None, "not yet measured")
    # the median of the per-seed ratios: one seed run beside another job on the same cores should not set it
    cost = statistics.median(var[s]["condense_seconds"] / runs[s]["condense_seconds"] for s in var if s in runs)
    replace = ", ".join(f"{f}={v}" for f, v in changes)
    line = f"use_atom_memory(strategy, ATOMBuffer({memory}, config={recipe}.condense_config().replace({replace})))"
    return (f"{text}\n\n**The better memory, at {cost:.0f}× the condensation** (median over seeds): the same strategy with its memory "
            f"condensed with {condense_label(changes)} (the best memory-quality variant that wins over the pinned "
            f"memory by the README's rule, {gain} points paired) reaches "
            f"{mean_std([r['final_avg_accuracy'] for r in var.values()])} % over {len(var)} seeds, {delta} points "
            f"over its counterpart ({ref}){_provisional(seeds).replace(', provisional', '; provisional')}. "
            f"Condensation "
            f"{mean_std([r['condense_seconds'] for r in var.values()], 0)} s per seed and memory on the same "
            f"machine:\n\n```python\n{line}\n```")


def avalanche_memory_quality_section() -> str:
    """Memory-quality variants (``--memory-iterations``, ``--memory-batch-real``, ``--memory-width``): per memory,
    strategy and variant, the ATOM memory against the grid's (the pinned settings) and against the strategy's
    counterpart, paired by seed."""
    found = _grid_records(variants=True)
    recs = found[2] if found else []
    variants = sorted({(int(r["memory"]), r["_cell"][0], memory_condense(r)) for r in recs
                       if r["_cell"][1] == "atom" and memory_condense(r)})
    if not variants:
        return ("_not yet measured: run `OMP_NUM_THREADS=1 python benchmarks/avalanche_replay.py --budget cpu "
                "--memories 100 --strategies er_ace+ft --memory-kinds atom --memory-iterations 1000 --cache-dir "
                "runs/avalanche-memories`_")

    def runs(memory, cell, changes):
        return {r["seed"]: r for r in recs if int(r["memory"]) == memory and r["_cell"] == cell
                and memory_condense(r) == (changes if cell[1] == "atom" else None)}

    def wins(a, b):  # the README's rule: the paired mean above twice its paired std
        d = _paired_diffs(a, b)
        return "—" if len(d) < 2 else "**yes**" if _wins(d) else "no"

    rows, used = [], []
    for memory, strategy, changes in variants:
        var, pinned = runs(memory, (strategy, "atom"), changes), runs(memory, (strategy, "atom"), ())
        ref = _counterpart([r for r in recs if memory_condense(r) is None], memory, strategy)
        vs_ref = _paired_text(var, runs(memory, (strategy, ref), None))[1] if ref else "not yet measured"
        rows.append([str(memory), strategy, condense_label(changes),
                     mean_std([r["final_avg_accuracy"] for r in var.values()]),
                     mean_std([r["final_avg_accuracy"] for r in pinned.values()]) if pinned else "—",
                     _paired_text(var, pinned)[1], wins(var, pinned), f"{vs_ref} ({ref})" if ref else vs_ref,
                     mean_std([r["condense_seconds"] for r in var.values()], 0)])
        used += list(var.values())
    pinned_label = ", ".join(f"{f} {GRID_CONDENSE[f]}" for f in QUALITY_FLAGS)
    table = markdown_table(["memory", "strategy", "condensation", "ATOM (%)", f"ATOM, pinned ({pinned_label}) (%)",
                            "− pinned (points, paired)", "wins (Δ > 2 std)", "− counterpart (points, paired)",
                            "condensation (s)"], rows)
    return (f"{found[1]}From `benchmarks/results/{found[0]}` (the grid's settings otherwise: factor table, no memory "
            f"DSA, the recipe's fine-tune):\n\n{table}\n\n{provenance(used)}")


def avalanche_finetune_choice_section() -> str:
    """The balanced fine-tune's candidates on the validation split (``--choose-finetune``): validation accuracy per
    (epochs, lr) and memory kind, their mean, and the choice (the best mean)."""
    path = RESULTS / FINETUNE_CHOICE.name  # RESULTS: the golden test freezes it
    if not path.exists():
        return "_not yet measured: run `OMP_NUM_THREADS=1 python benchmarks/avalanche_replay.py --budget cpu " \
            "--choose-finetune`_"
    import json

    done = json.loads(path.read_text())
    kinds = sorted({c["memory_kind"] for c in done["candidates"]}, key=["random", "herding", "atom"].index)
    acc = {(c["epochs"], c["lr"], c["memory_kind"]): c["val_accuracy"] for c in done["candidates"]}
    choice = done.get("choice") or {}
    rows = []
    for epochs, lr in sorted({(c["epochs"], c["lr"]) for c in done["candidates"]}):
        vals = [acc.get((epochs, lr, k)) for k in kinds]
        mean = f"{statistics.mean(vals):.2f}" if None not in vals else "—"
        chosen = (epochs, lr) == (choice.get("epochs"), choice.get("lr"))
        rows.append([str(epochs), str(lr), *("—" if v is None else f"{v:.2f}" for v in vals),
                     f"**{mean}** (chosen)" if chosen else mean])
    table = markdown_table(["epochs", "lr", *(f"{k} memory, val. %" for k in kinds), "mean"], rows)
    return (f"From `benchmarks/results/{path.name}` ({done.get('rule', '')}):\n\n{table}\n\n"
            f"{_choice_position(done)}{provenance([done])}")


def _choice_position(done: dict) -> str:
    """Where the choice lies among the measured candidates: on an edge of the (epochs, lr) grid (a wider grid may
    choose otherwise) or inside it; and the spread of the candidates' means."""
    choice = done.get("choice") or {}
    if not choice:
        return ""
    epochs = sorted({c["epochs"] for c in done["candidates"]})
    lrs = sorted({c["lr"] for c in done["candidates"]})
    edges = [name for name, value, axis in (("epochs", choice["epochs"], epochs), ("lr", choice["lr"], lrs))
             if len(axis) > 1 and value in (axis[0], axis[-1])]
    by = {}
    for c in done["candidates"]:
        by.setdefault((c["epochs"], c["lr"]), []).append(c["val_accuracy"])
    means = [statistics.mean(v) for v in by.values()]
    where = (f"on the edge of the candidates in {' and '.join(edges)}" if edges
             else "inside the candidates (not at their fewest or most epochs, nor at their lowest or highest lr)")
    return (f"The choice ({choice['epochs']} epochs, lr {choice['lr']}) lies {where}; the candidates' means span "
            f"{min(means):.2f}–{max(means):.2f} % (one seed, one validation split).\n\n")


# -- the budget curve (quality issue 25): the default and dm as the condensation budget grows -----------------------

#: The budget curve's points (test split): IPC -> condensation iterations; each point at the CPU evaluation budget.
BUDGET_CURVE = {1: (200, 1000, 2000), 10: (200, 1000)}
BUDGET_CURVE_EVAL = (3, 300)  # (networks, epochs) of every point's evaluation


def _batch_lever(r: dict) -> str:
    """``"representative batches"`` for a record with them, "" for uniform batches (records without the field)."""
    batch = r.get("real_batch", LEGACY_CONFIG["real_batch"])
    return "" if batch == "uniform" else f"{batch} batches"


def _levers(r: dict) -> str:
    """A record's real batch and start where they differ from its method's default at its IPC
    (``"representative batches, herding start"``; the ``atom`` default starts above IPC 10 from the herding coreset,
    so a start from random real images is named there: ``"random real start"``), "" for the defaults. Records
    without the fields (older ones) used uniform batches from random real images."""
    method = r.get("method", "atom")
    default = preset_defaults(method, r["ipc"]).init if method in CONDENSED else LEGACY_CONFIG["init"]
    return ", ".join(p for p in (_batch_lever(r), _start_lever(r, default)) if p)


def _start_lever(r: dict, default: str) -> str:
    """``"herding start"`` / ``"random real start"`` for a record whose start is not ``default``, else "" (records
    without the field started from random real images)."""
    init = r.get("init", LEGACY_CONFIG["init"])
    return "" if init == default else f"{_start_label(init)} start"


def _curve_points(recs: list[dict], ipc: int) -> dict[str, dict[int, dict]]:
    """``{"default": {iterations: record}, "dm": {...}, "herding": {0: record}}`` at ``ipc``: ConvNet-3 test records
    at :data:`BUDGET_CURVE_EVAL` of the ``atom`` default (its per-IPC factor, networks, lr and start), today's ``dm``
    (factor 1, random networks, lr 1, random real images as the start) -- both with uniform real batches -- and the
    herding coreset (the flat line). The first record of each point wins."""
    out: dict[str, dict[int, dict]] = {"default": {}, "dm": {}, "herding": {}}
    for r in recs:
        if (r.get("split") != "test" or r.get("model") != "convnet" or r["ipc"] != ipc
                or (r["num_models"], r["eval_epochs"]) != BUDGET_CURVE_EVAL or _levers(r)):
            continue
        if r["method"] == "atom" and _is_default(r):
            out["default"].setdefault(r["iterations"], r)
        elif r["method"] == "dm" and _is_default(r):
            out["dm"].setdefault(r["iterations"], r)
        elif r["method"] == "herding":
            out["herding"].setdefault(0, r)
    return out


def _budget_trend(points: dict[str, dict[int, dict]]) -> str:
    """``"grows"`` / ``"shrinks"`` / ``"holds"``: the paired gain of the default over dm at the largest measured budget
    against the smallest (beyond the two paired stds combined: else it holds); "" with fewer than two paired points."""
    gains = {it: _paired(a, points["dm"][it]) for it, a in points["default"].items() if it in points["dm"]}
    gains = {it: g for it, g in gains.items() if g is not None}
    if len(gains) < 2:
        return ""
    (lo, (m0, s0)), (hi, (m1, s1)) = min(gains.items()), max(gains.items())
    margin = (s0 ** 2 + s1 ** 2) ** 0.5
    word = "grows" if m1 - m0 > margin else "shrinks" if m0 - m1 > margin else "holds"
    return f"the gain over dm {word} from {m0:+.2f} ({lo} it) to {m1:+.2f} ({hi} it)"


def budget_line() -> str:
    """One line for the README: per IPC of the budget curve, whether the default's paired gain over dm grows,
    shrinks or holds with the condensation iterations (:func:`_budget_trend`)."""
    recs = read_records(RESULTS / "fashion_mnist.json")
    trends = [f"IPC {ipc}: " + (_budget_trend(_curve_points(recs, ipc)) or "not yet measured at two budgets")
              for ipc in BUDGET_CURVE]
    return (f"**More condensation** (test split, paired by evaluation seed, "
            f"[budget curve](benchmarks.md#budget-curve)): " + "; ".join(trends) + ".")


def budget_curve_section() -> str:
    """The budget curve: a table (IPC, iterations, the default, dm, default − dm paired by evaluation seed, herding)
    and docs/figures/fashion_mnist_budget.png; a placeholder line when no record of the curve exists."""
    recs = read_records(RESULTS / "fashion_mnist.json")
    curves = {ipc: _curve_points(recs, ipc) for ipc in BUDGET_CURVE}
    if not any(c["default"] or c["dm"] for c in curves.values()):
        return "_no budget-curve records yet: run the commands under [budget curve](benchmarks.md#budget-curve)_"
    rows, used, trends = [], [], []
    for ipc, its in BUDGET_CURVE.items():
        c = curves[ipc]
        herd = c["herding"].get(0)
        for it in its:
            a, b = c["default"].get(it), c["dm"].get(it)
            used += [r for r in (a, b) if r is not None]
            rows.append([str(ipc), str(it), _fmt_acc(a) if a else "—", _fmt_acc(b) if b else "—",
                         _paired_delta(a, b) if a and b else "—", _fmt_acc(herd) if herd else "—"])
        used += [herd] if herd else []
        trend = _budget_trend(c)
        trends.append(f"- IPC {ipc}: " + (trend or "fewer than two budgets measured with both methods"))
    table = markdown_table(["IPC", "iterations", "default, test acc. %", "dm, test acc. %", "default − dm, paired",
                            "herding (flat)"], rows)

    def draw(plt, path: Path):
        fig, axes = plt.subplots(1, len(BUDGET_CURVE), figsize=(6.4 * len(BUDGET_CURVE) / 1.5, 3.8), dpi=110)
        for ax, (ipc, its) in zip(axes, BUDGET_CURVE.items()):
            c = curves[ipc]
            for name, label in (("default", "atom default"), ("dm", "dm")):
                pts = sorted(c[name].items())
                if pts:
                    ax.errorbar([it for it, _ in pts], [r["accuracy_mean"] for _, r in pts],
                                yerr=[r["accuracy_std"] for _, r in pts], marker="o", capsize=3, label=label)
            if c["herding"]:
                ax.axhline(c["herding"][0]["accuracy_mean"], color="grey", linestyle="--", label="herding")
            ax.set_xscale("log")
            ax.set_xticks(list(its), labels=[str(i) for i in its])
            ax.set_xticks([], minor=True)  # the log axis's minor labels (3 x 10^2 ...) would overprint the points'
            ax.set_xlabel("condensation iterations")
            ax.set_ylabel("test accuracy, %")
            ax.set_title(f"IPC {ipc}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"Fashion-MNIST, ConvNet-3 ({BUDGET_CURVE_EVAL[0]} × {BUDGET_CURVE_EVAL[1]} ep)", fontsize=9)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)

    figure = _figure("fashion_mnist_budget.png", "test accuracy against condensation iterations", draw)
    return "\n\n".join(p for p in (table, figure, "\n".join(trends), provenance(used)) if p)


# -- the quality levers (issue 25): what each gave, paired by evaluation seed, on the validation split -------------

#: (lever, setting, its control) of ablation rounds 5, 8 and 9 (docs/ablation.md): each a paired difference at every
#: IPC where both were measured alike. The lr 0.3 row at the herding start is the one that decides at IPC 50 (the
#: herding start is adopted there). The last rows are IPC 50's bar: the condensed sets against ``dm`` and the herding
#: coreset (the herding start's own images at factor 1, so its row is the gain over the start).
LEVER_PAIRS = (
    ("representative batches", "s10c10-p4-f2-rep", "s10c10-p4-f2"),
    ("representative batches, at lr 0.3", "s10c10-p4-f2-lr0.3-rep", "s10c10-p4-f2-lr0.3"),
    ("images' lr 0.3 (factor 2)", "s10c10-p4-f2-lr0.3", "s10c10-p4-f2"),
    ("random real start (factor 1) − dm", "s10c10-p4-f1", "dm"),
    ("herding start", "s10c10-p4-f1-herd", "s10c10-p4-f1"),
    ("herding start (factor 2)", "s10c10-p4-f2-herd", "s10c10-p4-f2"),
    ("images' lr 0.3 (factor 1)", "s10c10-p4-f1-lr0.3", "s10c10-p4-f1"),
    ("herding start and lr 0.3", "s10c10-p4-f1-herd-lr0.3", "s10c10-p4-f1"),
    ("images' lr 0.3, at the herding start", "s10c10-p4-f1-herd-lr0.3", "s10c10-p4-f1-herd"),
    ("herding start − dm", "s10c10-p4-f1-herd", "dm"),
    ("herding start − the herding coreset (the gain over the start)", "s10c10-p4-f1-herd", "herding"),
    ("random real start (factor 1) − the herding coreset", "s10c10-p4-f1", "herding"),
)


def _setting(recs: list[dict], setting: str, like: dict) -> dict | None:
    """The first ablation record of ``setting`` evaluated as ``like`` (IPC, device, networks × epochs, seed) and, both
    being condensed, at the same iterations and real batch size."""
    same = ("ipc", "device", "num_models", "eval_epochs", "seed")
    return next((r for r in recs if r["setting"] == setting and all(r.get(k) == like.get(k) for k in same)
                 and (not (r["iterations"] and like["iterations"])
                      or (r["iterations"], r["batch_real"]) == (like["iterations"], like["batch_real"]))), None)


def quality_levers_section() -> str:
    """One row per (IPC, lever of :data:`LEVER_PAIRS`) measured with its control: the paired difference on the
    validation split and whether it wins (its mean above twice its paired std, the README's rule); a placeholder
    line before any is measured."""
    recs = read_records(RESULTS / "ablation_fmnist.json")
    rows, used = [], []
    for ipc in sorted({r["ipc"] for r in recs}):
        for lever, setting, control in LEVER_PAIRS:
            for a in (r for r in recs if r["setting"] == setting and r["ipc"] == ipc):
                b = _setting(recs, control, a)
                d = _paired(a, b) if b else None
                if d is None:
                    continue
                used += [a, b]
                rows.append([str(ipc), lever, f"`{setting}` − `{control}`", f"{d[0]:+.2f} ± {d[1]:.2f}",
                             "**yes**" if d[0] > 2 * d[1] else "no"])
                break
    if not rows:
        return "_no lever measured yet: run ablation round 9 (the commands under " \
            "[round 9](#round-9-the-quality-levers))_"
    table = markdown_table(["IPC", "lever", "settings", "paired Δ, val. acc. points", "wins (Δ > 2 std)"], rows)
    return table + "\n\n" + provenance(used)


# -- filling the documents -------------------------------------------------------------------------------------------

SECTIONS = {"protocol": protocol_table, "ablation": ablation_table, "ablation_unmeasured": ablation_unmeasured_line,
            "speed": speed_table, "protocol_commands": protocol_commands_block,
            "speed_commands": speed_commands_block,
            "avalanche": avalanche_section, "proxy_validity": proxy_validity_section, "headline": headline_table,
            "continual_learning": continual_learning_line, "nas": nas_line,
            "avalanche_grid": avalanche_grid_section, "avalanche_recommended": avalanche_recommended_section,
            "avalanche_finetune_choice": avalanche_finetune_choice_section,
            "avalanche_memory_quality": avalanche_memory_quality_section,
            "proxy_cpu": proxy_cpu_section, "proxy_cpu_line": proxy_cpu_line,
            "budget_curve": budget_curve_section, "budget_line": budget_line,
            "quality_levers": quality_levers_section}
DOCUMENTS = ("README.md", "docs/ablation.md", "docs/benchmarks.md", "docs/avalanche.md", "docs/nni.md")
RESULTS_PAGE = "docs/results.md"  # written whole from RESULTS_TEMPLATE (the full tables)


RESULTS_TEMPLATE = """# Results

Generated by `python benchmarks/report.py` from the records in `benchmarks/results/` (each carries its device,
torch version, date and command); never edit this page by hand. What each benchmark measures, how, and the
commands: [benchmarks](benchmarks.md). The other result tables: the preset's ablation on the validation split in
[ablation](ablation.md), continual learning in [avalanche](avalanche.md), the proxies' validity for architecture
search in [nni](nni.md).

## Fashion-MNIST, the evaluation protocol

Test set, final synthetic set, no checkpoint picking; the protocol and its baselines:
[benchmarks](benchmarks.md#protocol-fashion-mnist).

<!-- results:protocol -->
<!-- /results:protocol -->

## Condensation speed

How it is timed: [benchmarks](benchmarks.md#speed).

<!-- results:speed -->
<!-- /results:speed -->
"""


def fill_text(text: str, bodies: dict[str, str], in_docs: bool = True) -> str:
    """``text`` with its generated slots replaced by ``bodies`` (links are written from docs/; ``in_docs`` False
    makes them work from the repository root, as README.md needs)."""
    for name, body in bodies.items():
        pat = re.compile(rf"(<!-- results:{name} -->).*?(<!-- /results:{name} -->)", re.S)
        if not in_docs:  # relative links (not URLs, not anchors) point into docs/
            body = re.sub(r"\]\((?![a-z]+:|/|#)", "](docs/", body)
        text = pat.sub(lambda m: f"{m.group(1)}\n{body}\n{m.group(2)}", text)
    return text


def fill(path: Path, bodies: dict[str, str], template: str | None = None) -> bool:
    """Fill the generated slots of ``path`` (of ``template`` when given: the page is written whole); True when the
    file changed."""
    if template is None and not path.exists():
        return False
    text = path.read_text() if path.exists() else ""
    new = fill_text(template if template is not None else text, bodies, in_docs=path.parent == ROOT / "docs")
    if new != text:
        path.write_text(new)
        return True
    return False


def main() -> None:
    bodies = {name: fn() for name, fn in SECTIONS.items()}
    for doc in DOCUMENTS:
        print(f"{doc}: {'updated' if fill(ROOT / doc, bodies) else 'unchanged'}")
    print(f"{RESULTS_PAGE}: {'updated' if fill(ROOT / RESULTS_PAGE, bodies, RESULTS_TEMPLATE) else 'unchanged'}")


if __name__ == "__main__":
    run_script(main)
