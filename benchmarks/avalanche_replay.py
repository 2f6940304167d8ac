"""Continual learning with condensed memories: six methods on SplitFMNIST-5 at memory 100, 200 and 500 images.

Methods, recipe and metrics: ``atom_plugin.integrations.avalanche.comparison`` and ``docs/avalanche.md``
(one training recipe for all six; "memory" = total stored images; 3 seeds = 3 class orders and model inits).
Each (method, memory, seed) run appends one flat record to the JSON file (skipped when already there, so an
interrupted run resumes); then a Markdown table (mean ± std over seeds) and a plot (accuracy on the classes
seen after each experience, one line per method, one panel per memory) are regenerated next to it.

Full budget (GPU; memory 100 first):  python benchmarks/avalanche_replay.py --device cuda
Reduced CPU budget (CPU_RECIPE):      python benchmarks/avalanche_replay.py --budget cpu
CPU smoke test:                       python benchmarks/avalanche_replay.py --quick --memories 10 --seeds 0
Tables/plot only:                     python benchmarks/avalanche_replay.py --report-only

Memory variants (recorded, part of the resume key, one table each): ``--memory-factor`` (``table``, the default:
the ATOM memories' multi-formation factor per the core's per-IPC table at each class's share; or a fixed factor,
e.g. 1 for plain images) and ``--memory-dsa`` (DSA on memory samples, for every method with a memory). Records
written before these options existed count as factor 1 without memory DSA.

Records (``benchmarks/results/avalanche_splitfmnist.json``; ``--budget cpu`` and ``--quick`` runs go to
``..._cpu.json`` and ``..._quick.json`` and carry ``budget: "cpu"`` / ``"quick"``): benchmark ("SplitFMNIST-5"),
method, memory (images), seed, budget, final_avg_accuracy (%), avg_forgetting (%), acc_curve (% after each
experience), condense_seconds, train_seconds, memory_used (stored images), memory_decoded (ATOM methods: training
samples), memory_factor, memory_dsa, class_order, recipe, and device, torch, python,
atom_plugin, date, command. Naive uses no memory: its run for a seed is measured once and copied to the other
memories (``reused_from_memory``).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

from _common import RESULTS, log, record, set_threads

from atom_plugin.runner import run_script
from atom_plugin import device_name, resolve_device
from atom_plugin.results import append_records, environment, markdown_table, read_records
from atom_plugin.results import atomic_write_text
from atom_plugin.integrations.avalanche import MEMORY_NOTE, METHODS  # (importing them needs no Avalanche)


def variant(r: dict) -> tuple[str, bool]:
    """``(memory_factor, memory_dsa)`` of a record (legacy records: factor 1, no memory DSA)."""
    return str(r.get("memory_factor", LEGACY_VARIANT["memory_factor"])), bool(r.get("memory_dsa", False))


def with_variant(r: dict) -> dict:
    """The record with its variant fields filled (legacy records), for the resume key."""
    factor, dsa = variant(r)
    return dict(r, memory_factor=factor, memory_dsa=dsa)

BENCHMARK = "SplitFMNIST-5"
KEY = ("benchmark", "method", "memory", "seed", "budget", "device", "memory_factor", "memory_dsa")
LEGACY_VARIANT = dict(memory_factor="1", memory_dsa=False)  # records from before the variants were recorded
_BUDGET_NOTES = {"quick": "CPU smoke settings, not comparable to full runs",
                 "cpu": "reduced CPU recipe `CPU_RECIPE`, not the full recipe"}


def _budget_heading(budget: str, recs: list[dict]) -> str:
    """``## budget: NAME (note: sizes) -- memory variant``, the sizes read from the recipe stored with the records."""
    factor, dsa = variant(recs[0])
    memory = (f" — ATOM memories: {'factor per the per-IPC table' if factor == 'table' else 'factor ' + factor}; "
              f"memory DSA {'on' if dsa else 'off'}")
    if budget == "full":
        return "## budget: full" + memory
    rc = recs[0].get("recipe") or {}
    sizes = (f"width {rc.get('width')}, {rc.get('train_epochs')} epoch(s) per experience, GDumb "
             f"{rc.get('gdumb_epochs')} epochs, {rc.get('condense_iterations')} condensation iterations with "
             f"{rc.get('condense_batch_real')} real images/class") if rc else ""
    return f"## budget: {budget} ({_BUDGET_NOTES.get(budget, 'reduced')}{': ' + sizes if sizes else ''})" + memory


def _mean_std(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


# Targets, final average accuracy points over the real-sample counterpart, paired by seed: {memory: (atom-replay
# - herding, atom-gdumb - gdumb)}. The full recipe's (docs/avalanche.md) and the CPU recipe's (issue 13).
TARGETS = {"full": {100: (5.0, 5.0)}, "cpu": {100: (3.0, 5.0), 500: (0.0, 0.0)}}
PAIRS = (("atom-replay", "herding"), ("atom-gdumb", "gdumb"))


def table_records(records: list[dict], budget: str, var: tuple[str, bool]) -> list[dict]:
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


def paired_lines(recs: list[dict], budget: str) -> list[str]:
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
            goals = [(name, t[mem][i]) for name, t in (("full recipe", TARGETS["full"]), ("CPU recipe", TARGETS["cpu"]))
                     if mem in t and (name == "full recipe" or budget == "cpu")]
            verdict = "; ".join(f"{name} target {g:+.0f}: {'met' if statistics.mean(diffs) >= g else 'missed'}"
                                for name, g in goals)
            spread = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
            lines.append(f"- memory {mem}: {ours} − {ref} = {statistics.mean(diffs):+.2f}{spread} points over "
                         f"{len(diffs)} seed(s), "
                         f"paired by seed" + (f" ({verdict})" if verdict else ""))
    return lines


def dsa_lines(records: list[dict], budget: str, var: tuple[str, bool]) -> list[str]:
    """For a table with memory DSA on: each method's ``on - off`` final average accuracy per memory, paired by seed
    (the off run of an ATOM method has the table's factor; a real-sample method's has no factor)."""
    if not var[1]:
        return []
    on = {(int(r["memory"]), r["method"], r["seed"]): r["final_avg_accuracy"]
          for r in table_records(records, budget, var) if r.get("final_avg_accuracy") is not None}
    off = {(int(r["memory"]), r["method"], r["seed"]): r["final_avg_accuracy"]
           for r in table_records(records, budget, (var[0], False)) if r.get("final_avg_accuracy") is not None}
    lines = []
    for mem, method in sorted({(m, meth) for m, meth, _ in on},
                              key=lambda k: (k[0], METHODS.index(k[1]) if k[1] in METHODS else 99)):
        diffs = [on[k] - off[k] for k in sorted(on) if k[:2] == (mem, method) and k in off]
        if diffs:
            spread = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
            lines.append(f"- memory {mem}: {method} {statistics.mean(diffs):+.2f}{spread} points over {len(diffs)} "
                         f"seed(s), paired by seed")
    return lines


def summary_markdown(records: list[dict], plot_name: str | None = None) -> str:
    """Mean ± std over seeds per (memory, method), one table per budget and ATOM memory variant (the real-sample
    methods, which have no factor, appear in every table of their memory DSA), the paired-by-seed differences
    against the targets, the provenance of the records, and a link to the plot ``plot_name`` when given."""
    if not records:
        return "_no results yet_\n"
    lines = [f"# {BENCHMARK}: condensed memories vs. real-sample memories", ""]
    atom = [r for r in records if r["method"].startswith("atom")] or records
    tables = sorted({(r.get("budget", "full"), variant(r)) for r in atom})
    for budget, var in tables:
        recs = table_records(records, budget, var)
        rows = []
        groups: dict[tuple[int, str], list[dict]] = {}
        for r in recs:
            groups.setdefault((int(r["memory"]), r["method"]), []).append(r)
        for (mem, method) in sorted(groups, key=lambda k: (k[0], METHODS.index(k[1]) if k[1] in METHODS else 99)):
            rs = groups[(mem, method)]
            acc = [r["final_avg_accuracy"] for r in rs if r.get("final_avg_accuracy") is not None]
            fgt = [r["avg_forgetting"] for r in rs if r.get("avg_forgetting") is not None]
            cs = [r["condense_seconds"] for r in rs] if method.startswith("atom") else []
            rows.append([mem, method, len(rs), _mean_std(acc), _mean_std(fgt), _mean_std(cs) if cs else "-"])
        lines += [_budget_heading(budget, [r for r in recs if variant(r) == var] or recs), "", MEMORY_NOTE, "",
                  markdown_table(["memory (stored images)", "method", "seeds", "final avg accuracy (%)",
                                  "avg forgetting (%)", "condensation (s)"], rows)]
        targets = paired_lines(recs, budget)
        if targets:
            lines += ["", "Final average accuracy, ATOM method − its real-sample counterpart:", "", *targets]
        dsa = dsa_lines(records, budget, var)
        if dsa:
            lines += ["", "Final average accuracy, memory DSA on − off (same method, memory and seed):", "", *dsa]
        devices = sorted({r.get("device", "?") for r in recs})
        dates = sorted(r.get("date", "?")[:10] for r in recs)
        cmds = sorted({r.get("command", "?") for r in recs})
        lines += ["", f"Device: {', '.join(devices)}; torch {', '.join(sorted({r.get('torch', '?') for r in recs}))}; "
                      f"dates {dates[0]} to {dates[-1]}. Written by: " + "; ".join(f"`{c}`" for c in cmds), ""]
    if plot_name:
        lines += [f"![accuracy on the classes seen after each experience]({plot_name})", ""]
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path) -> Path | None:
    """Accuracy on the classes seen after each experience (mean over seeds), one line per method, one panel per
    memory (and budget). Returns the path, or None when matplotlib is missing or there is nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot (pip install 'atom-plugin[avalanche]')")
        return None
    panels = sorted({(r.get("budget", "full"), variant(r), int(r["memory"])) for r in records if r.get("acc_curve")})
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (budget, var, mem) in zip(axes[0], panels):
        for method in METHODS:
            curves = [r["acc_curve"] for r in records if r["method"] == method and int(r["memory"]) == mem
                      and r.get("budget", "full") == budget and variant(r) == var and r.get("acc_curve")]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            mean = [statistics.mean(c[i] for c in curves) for i in range(n)]
            ax.plot(range(1, n + 1), mean, marker="o", label=method, color=f"C{METHODS.index(method)}",
                    linestyle="-" if method.startswith("atom") else "--")
        tags = ([f"{budget} budget"] if budget != "full" else []) + ([f"factor {var[0]}"] if var[0] != "1" else []) + (
            ["memory DSA"] if var[1] else [])
        ax.set_title(f"memory {mem}" + (f" ({', '.join(tags)})" if tags else ""), fontsize=9)
        ax.set_xlabel("experiences trained")
        ax.set_ylabel("accuracy on seen classes (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(BENCHMARK)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(out: Path) -> None:
    records = [r for r in read_records(out) if r.get("benchmark") == BENCHMARK]
    md = out.with_suffix(".md")
    png = plot(records, out.with_suffix(".png"))
    atomic_write_text(md, summary_markdown(records, png.name if png else None))
    log(f"wrote {md}" + (f" and {png}" if png else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None, help="Fashion-MNIST idx files (default: $ATOM_DATA, then "
                    "/usr/share/datasets/fashion-mnist)")
    ap.add_argument("--memories", type=int, nargs="+", default=None, help="memory sizes in images "
                    "(default 100 200 500, in that order; 10 with --quick)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="class orders / model inits")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--budget", choices=("full", "cpu", "quick"), default="full",
                    help="recipe: full (Recipe(), for a GPU), cpu (CPU_RECIPE, a reduced recipe for 2 CPU cores) or "
                    "quick (QUICK_RECIPE, a smoke test); non-full results are labelled and go to their own file")
    ap.add_argument("--quick", action="store_true", help="same as --budget quick")
    ap.add_argument("--out", default=None, help="JSON file (default benchmarks/results/avalanche_splitfmnist.json, "
                    "or avalanche_splitfmnist_<budget>.json for cpu/quick); .md and .png are written next to it")
    ap.add_argument("--memory-factor", default="table", help="multi-formation factor of the ATOM memories: 'table' "
                    "(the core's per-IPC table at each class's share; default) or a whole number (1 = plain images)")
    ap.add_argument("--memory-dsa", action="store_true", help="DSA on memory samples, for every method with a "
                    "memory (default off)")
    ap.add_argument("--report-only", action="store_true", help="only regenerate the table and plot")
    args = ap.parse_args()
    budget = "quick" if args.quick else args.budget
    out = Path(args.out) if args.out else RESULTS / ("avalanche_splitfmnist.json" if budget == "full"
                                                     else f"avalanche_splitfmnist_{budget}.json")
    if args.report_only:
        report(out)
        return
    set_threads()
    dev = resolve_device(args.device)
    dname = device_name(dev)
    memories = args.memories or ([10] if budget == "quick" else [100, 200, 500])

    from avalanche.benchmarks.classic import SplitFMNIST

    from atom_plugin.integrations.avalanche import RECIPES, fashion_mnist_root, run_method
    from atom_plugin.integrations.avalanche.comparison import recipe_dict

    factor = None if args.memory_factor == "table" else int(args.memory_factor)
    recipe = dataclasses.replace(RECIPES[budget], condense_factor=factor, memory_dsa=args.memory_dsa)
    var = dict(memory_factor=args.memory_factor, memory_dsa=args.memory_dsa)
    root = fashion_mnist_root(args.data_root)
    done = {tuple(str(r.get(f)) for f in KEY) for r in map(with_variant, read_records(out))}
    for memory in memories:
        for seed in args.seeds:
            bench = None
            for method in args.methods:
                key = tuple(str(v) for v in (BENCHMARK, method, memory, seed, budget, dname, *var.values()))
                if key in done:
                    log(f"skip {method} memory {memory} seed {seed}: already measured")
                    continue
                if method == "naive":  # no memory: reuse this seed's run at another memory when there is one
                    prior = [r for r in read_records(out) if r.get("benchmark") == BENCHMARK and r["method"] == "naive"
                             and r["seed"] == seed and r.get("budget") == budget and r.get("device") == dname
                             and variant(r)[1] == args.memory_dsa]  # naive has no memory: any factor
                    if prior:
                        rec = dict(prior[0], memory=memory, reused_from_memory=prior[0]["memory"], **var,
                                   **{k: v for k, v in environment(dev).items() if k in ("date", "command")})
                        append_records(out, [rec])
                        done.add(key)
                        log(f"naive memory {memory} seed {seed}: copied from memory {prior[0]['memory']}")
                        continue
                if bench is None:
                    bench = SplitFMNIST(5, seed=seed, dataset_root=str(root))
                log(f"{method} memory {memory} seed {seed} ({budget}) on {dname}, class order {bench.classes_order}")
                res = run_method(method, bench, memory=memory, recipe=recipe, device=dev, seed=seed,
                                 progress=sys.stderr.isatty(), log=log)
                rec = record(out, dict(benchmark=BENCHMARK, budget=budget, class_order=list(bench.classes_order),
                                       recipe=recipe_dict(recipe), **{**res, **var}), dev)
                done.add(key)
                log(f"  -> final avg accuracy {rec['final_avg_accuracy']:.2f} %, forgetting "
                    f"{rec['avg_forgetting']:.2f} %, condensation {rec['condense_seconds']:.1f} s")
            report(out)  # after every (memory, seed): partial results are readable while the rest runs
    report(out)


if __name__ == "__main__":
    run_script(main)
