"""Regenerate the result tables in README.md and docs/*.md from benchmarks/results/*.json (and the .md summaries
that the Avalanche and proxy-validity benchmarks write beside their JSON).

Tables live between markers ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; everything between
them is replaced, nothing else is touched. Run after any benchmark:

    python benchmarks/report.py
"""
from __future__ import annotations

import re
import statistics
from pathlib import Path

from atom_plugin.cli import run_script
from atom_plugin.results import markdown_table, read_records

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


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


def protocol_table() -> str:
    recs = [r for r in read_records(RESULTS / "fashion_mnist.json") if r.get("split") == "test"]
    if not recs:
        return "_no results yet: run benchmarks/fashion_mnist.py_"
    order = {m: i for i, m in enumerate(["atom", "datadam", "dm", "herding", "random"])}
    recs.sort(key=lambda r: (r["model"] != "convnet", r["model"], r["ipc"], order.get(r["method"], 9)))
    for r in recs:
        r["acc"] = _fmt_acc(r)
        r["budget"] = (f"{r['iterations']} it, {r['batch_real']} real/class; " if r["iterations"] else "") + \
            f"{r['num_models']} × {r['eval_epochs']} ep"
    table = markdown_table(recs, [("IPC", "ipc"), ("method", "method"), ("model", "model"), ("test acc. %", "acc"),
                                  ("budget", "budget"), ("device", "device")])
    return table + "\n\n" + _minimum_bar(recs) + "\n\n" + _provenance(recs)


def _control(recs: list[dict], of: dict, method: str, keys: tuple[str, ...], **fixed) -> dict | None:
    """The first record of ``method`` that equals ``of`` on ``keys`` and has the ``fixed`` values (a missing
    ``norm`` reads as the default instancenorm): the baseline ``of`` is compared with."""
    def get(r, k):
        return r.get(k, "instancenorm") if k == "norm" else r.get(k)
    return next((r for r in recs if r is not of and r["method"] == method
                 and all(get(r, k) == get(of, k) for k in keys)
                 and all(r.get(k) == v for k, v in fixed.items())), None)


def _paired_delta(a: dict, b: dict) -> str:
    """Mean ± std over evaluation seeds of a's accuracy minus b's: both evaluate networks drawn from the same seeds,
    so the network-to-network spread that both share cancels."""
    xs, ys = a.get("accuracies") or [], b.get("accuracies") or []
    if len(xs) != len(ys) or len(xs) < 2 or a.get("seed") != b.get("seed"):
        return "n/a"
    d = [x - y for x, y in zip(xs, ys)]
    return f"{statistics.mean(d):+.2f} ± {statistics.stdev(d):.2f}"


def _minimum_bar(recs: list[dict]) -> str:
    """The issue's minimum bar, checked on the records shown: at every IPC, atom's mean exceeds the dm preset's and
    the random subset's (same device and evaluation budget; dm with atom's iterations) by more than the larger of
    the two standard deviations."""
    lines = ["Minimum bar (atom's mean above both dm's and random's by more than the larger of their stds), "
             "computed from the records above:", ""]
    same = ("model", "ipc", "device", "num_models", "eval_epochs")
    for a in (r for r in recs if r["method"] == "atom" and r["model"] == "convnet"):
        dm = _control(recs, a, "dm", same + ("iterations",))
        rnd = _control(recs, a, "random", same)
        head = f"- IPC {a['ipc']} ({a['iterations']} it; {a['num_models']} × {a['eval_epochs']} ep): "
        paired = f" (atom − dm paired by evaluation seed: {_paired_delta(a, dm)})" if dm else ""
        if dm is None and rnd is None:
            lines.append(head + "dm and random missing at this budget")
            continue
        if dm is None or rnd is None:  # the larger std is at least the present control's: a miss there decides
            name, ctl = ("dm", dm) if dm else ("random", rnd)
            d = a["accuracy_mean"] - ctl["accuracy_mean"]
            verdict = "**not met**" if d <= ctl["accuracy_std"] else "undecided"
            lines.append(head + f"atom − {name} = {d:+.2f}, {name}'s std {ctl['accuracy_std']:.2f}, "
                         f"{'random' if dm else 'dm'} not measured at this budget → {verdict}{paired}")
            continue
        margin = max(dm["accuracy_std"], rnd["accuracy_std"])
        d_dm, d_rnd = a["accuracy_mean"] - dm["accuracy_mean"], a["accuracy_mean"] - rnd["accuracy_mean"]
        ok = d_dm > margin and d_rnd > margin
        lines.append(head + f"atom − dm = {d_dm:+.2f}, atom − random = {d_rnd:+.2f}, larger std {margin:.2f} → "
                     f"**{'met' if ok else 'not met'}**{paired}")
    measured = {r["ipc"] for r in recs if r["method"] == "atom" and r["model"] == "convnet"}
    lines += [f"- IPC {ipc}: not measured" for ipc in (1, 10, 50) if ipc not in measured]
    return "\n".join(lines)


def ablation_table() -> str:
    recs = read_records(RESULTS / "ablation_fmnist.json")
    if not recs:
        return "_no results yet: run benchmarks/ablation.py_"
    recs.sort(key=lambda r: (r.get("round", 0), r["iterations"] or 10**9, -r["accuracy_mean"]))  # random last
    for r in recs:
        r["acc"] = _fmt_acc(r)
        r["loss"] = "—" if r["method"] == "random" else \
            f"{r['w_spatial']:g} / {r['w_channel']:g} / {r['w_embed']:g} / {r['power']:g} / {tuple(r['layers'])}"
        r["net"] = "—" if r["method"] == "random" else r.get("norm", "instancenorm")
        r["budget"] = f"{r['iterations']} it × {r['batch_real']} real/class; {r['num_models']} × {r['eval_epochs']} ep"
        r["fl"] = "" if r.get("final_loss") is None else f"{r['final_loss']:.3g}"
    for r in recs:  # vs the dm control of the same budget and matching-network norm
        budget = ("ipc", "iterations", "batch_real", "num_models", "eval_epochs", "device", "norm")
        dm = None if r["method"] == "random" else _control(recs, r, "dm", budget, w_embed=1)
        r["vs_dm"] = _paired_delta(r, dm) if dm else ""
    table = markdown_table(recs, [("round", "round"), ("setting", "setting"),
                                  ("w_s / w_c / w_e / p / layers", "loss"), ("matching net norm", "net"),
                                  ("val. acc. %", "acc"), ("− dm, paired", "vs_dm"),
                                  ("final loss", "fl"), ("budget", "budget"), ("condense s", "condense_seconds")])
    return table + "\n\n" + _provenance(recs)


def speed_table() -> str:
    recs = [r for r in read_records(RESULTS / "speed.json") if r.get("benchmark") == "speed"]
    if not recs:
        return "_no results yet: run benchmarks/speed.py_"
    latest: dict = {}
    for r in recs:  # the newest record per (device, ipc, mode)
        latest[(r["device"], r["ipc"], r["mode"])] = r
    rows = sorted(latest.values(), key=lambda r: (r["device"], r["ipc"], r["mode"]))
    for r in rows:
        ref = latest.get((r["device"], r["ipc"], "reference"))
        r["ratio"] = f"{ref['ms_per_iter_median'] / r['ms_per_iter_median']:.1f}×" if ref and r["mode"] != "reference" else ""
        r["ms"] = f"{r['ms_per_iter_median']:.1f} ({r['ms_per_iter_p10']:.1f}–{r['ms_per_iter_p90']:.1f})"
        r["mem"] = "" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}"
    table = markdown_table(rows, [("device", "device"), ("IPC", "ipc"), ("mode", "mode"),
                                  ("ms/iter median (p10–p90)", "ms"), ("speed-up vs reference", "ratio"),
                                  ("peak GPU MB", "mem"), ("timed iters", "timed_iterations")])
    return table + "\n\n" + _provenance(rows)


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
            new = pat.sub(lambda m: f"{m.group(1)}\n{fn()}\n{m.group(2)}", new)
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
