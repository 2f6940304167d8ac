"""GPU check: the one prepared command for a lent GPU machine, in time-boxed stages that bring back records.

Each stage runs the matching benchmark script(s) in its own subprocess (own process group) under a hard time
box; at its end (or when its box runs out: the group is killed) the stage's status -- ok / timeout / error, with
the output's tail -- is appended to OUT/gpu_check.json beside the environment (GPU name, torch, CUDA, date).
The scripts append one record per measurement as soon as it is made, so a stage cut short keeps what finished.
Stages (STAGES below; what each runs and records: docs/benchmarks.md, "GPU check"): cuda-tests, speed and
ipc10 by default, 7 minutes in all (--budget); ipc1-50, proxy and val-split for later sessions (--stages). Each gets
its box, or what is left of --budget, unless --box says.

Records go to OUT (the environment variable OUT, or --out): gpu_check.json, speed.json, fashion_mnist.json,
proxy_validity.json, ablation_fmnist.json and the combined log gpu_check.log (6 files at most).
Back here, ``--collect DIR`` appends what a call brought back to benchmarks/results/ (de-duplicated); then
``python benchmarks/report.py`` renders the docs' tables and figures from them.

    mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/   # before the call
    make gpu-check                                    # on the GPU machine; carry data/fashion-mnist
    python benchmarks/gpu_check.py --stages proxy --budget 480
    python benchmarks/gpu_check.py --collect /path/to/files     # here, afterwards; then python benchmarks/report.py
    python benchmarks/gpu_check.py --smoke-cpu --data-root /usr/share/datasets/fashion-mnist   # every stage, tiny
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from _common import RESULTS, ROOT, ResultsFile, log, portable

from atom_plugin import device_name, resolve_device
from atom_plugin.errors import ConfigError, DataError, DeviceError
from atom_plugin.results import read_records
from atom_plugin.runner import run_script

BENCH = ROOT / "benchmarks"
DEFAULT_DATA = ROOT / "data" / "fashion-mnist"
LOG = "gpu_check.log"
STATUS = "gpu_check.json"
# Record files that --collect merges into benchmarks/results/.
RECORD_FILES = (STATUS, "speed.json", "fashion_mnist.json", "proxy_validity.json", "ablation_fmnist.json")
# The tests marked `cuda` (stage cuda-tests); neither needs scikit-learn, which the GPU machine lacks.
CUDA_TEST_FILES = ("test_cuda.py", "test_cuda_correctness.py")
TEST_LINE = re.compile(r"^(\S+::\S+)\s+(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b(.*)$")


@dataclass
class Context:
    """What a stage's commands need: interpreter, folders, device and whether this is the tiny CPU run."""

    python: str
    out: Path
    work: Path
    data: Path
    device: str
    smoke: bool

    def script(self, name: str, *args) -> list[str]:
        return [self.python, str(BENCH / name), "--data-root", str(self.data), "--device", self.device,
                *[str(a) for a in args]]


@dataclass(frozen=True)
class Stage:
    name: str
    box: float | None  # seconds; None: what is left of the budget
    files: tuple[str, ...]  # record files (under OUT) its commands append to
    commands: Callable[[Context], list[list[str]]]


def _tests(c: Context) -> list[list[str]]:
    return [[c.python, "-m", "pytest", "-m", "cuda", *(str(ROOT / "tests" / f) for f in CUDA_TEST_FILES), "-v", "-p",
             "no:cacheprovider"]]


def _speed(c: Context) -> list[list[str]]:
    out = ("--out", c.out / "speed.json")
    if c.smoke:
        return [c.script("speed.py", "--ipc", 1, "--modes", "fast", "reference", "--width", 8, "--batch-real", 4,
                         "--iters", 1, "--warmup", 1, "--profile", 1, *out)]
    timing = ("--iters", 50, "--blocks", 3, "--warmup", 10, "--profile", 5, *out)
    # the compiled mode last: its compilation is the one cost that may run past the box
    return [c.script("speed.py", "--ipc", 10, 50, "--modes", "fast", "reference", *timing),
            c.script("speed.py", "--ipc", 10, "--modes", "fast+compile", *timing)]


def _protocol(ipcs: tuple[int, ...], smoke: tuple) -> Callable[[Context], list[list[str]]]:
    def commands(c: Context) -> list[list[str]]:
        if c.smoke:
            return [c.script("fashion_mnist.py", *smoke, "--iterations", 2, "--eval-epochs", 1, "--num-models", 1,
                             "--batch-real", 4, "--cache-dir", c.work / "fmnist", "--out", c.out / "fashion_mnist.json")]
        return [c.script("fashion_mnist.py", "--ipc", *ipcs, "--methods", "atom", "dm", "random", "--iterations", 8000,
                         "--eval-epochs", 1000, "--num-models", 5, "--cache-dir", c.work / "fmnist",
                         "--out", c.out / "fashion_mnist.json")]
    return commands


def _proxy(c: Context) -> list[list[str]]:
    out = ("--cache-dir", c.work / "proxy", "--out", c.out / "proxy_validity.json")
    if c.smoke:
        return [c.script("proxy_validity.py", "--quick", "--num-archs", 2, "--val-size", 50, "--bootstrap", 10,
                         *out)]
    return [c.script("proxy_validity.py", "--ipc", 10, 50, "--num-archs", 100, "--proxy-epochs", 300,
                     "--full-epochs", 20, "--iterations", 8000, *out)]


def _val_split(c: Context) -> list[list[str]]:
    out = ("--out", c.out / "ablation_fmnist.json")
    if c.smoke:
        return [c.script("ablation.py", "--round", 1, "--only", "random", "--ipc", 1, "--val-size", 50,
                         "--iterations", 2, "--batch-real", 4, "--eval-epochs", 1, "--num-models", 1, *out)]
    budget = ("--ipc", 10, "--iterations", 8000, "--eval-epochs", 300, "--num-models", 3, *out)
    return [c.script("ablation.py", "--round", 1, "--only", "s10c10-p4", "dm", "random", *budget),
            c.script("ablation.py", "--round", 3, "--only", "s30c30-p4", *budget)]


STAGES = {s.name: s for s in (
    Stage("cuda-tests", 90, (), _tests),
    Stage("speed", 150, ("speed.json",), _speed),
    Stage("ipc10", None, ("fashion_mnist.json",), _protocol((10,), ("--ipc", 1, "--methods", "atom", "dm", "random"))),
    Stage("ipc1-50", None, ("fashion_mnist.json",), _protocol((1, 50), ("--ipc", 2, "--methods", "random"))),
    Stage("proxy", None, ("proxy_validity.json",), _proxy),
    Stage("val-split", None, ("ablation_fmnist.json",), _val_split),
)}
DEFAULT_STAGES = ("cuda-tests", "speed", "ipc10")
SMOKE_BOX = 240  # seconds per stage in --smoke-cpu (2 busy CPU cores; each stage takes well under a minute)


def run_stage(stage: Stage, ctx: Context, box: float, log_path: Path) -> dict:
    """Run a stage's commands one after another, each in its own process group, until ``box`` seconds are spent
    (a command still running then is killed with its group; later ones do not start); a failing command does
    not stop the next. Returns the stage's record: status ok / timeout / error (a command exited non-zero),
    seconds, the commands and their return codes (None: killed), new records per file, the output's tail."""
    before = {f: len(read_records(ctx.out / f)) for f in stage.files}
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    if ctx.smoke:  # tiny tensors: one thread (two threads on a loaded 2-core machine spin ~50x slower)
        env.setdefault("OMP_NUM_THREADS", "1")
    status, codes, commands = "ok", [], []
    t0 = time.monotonic()
    with open(log_path, "ab") as logf:
        start = logf.tell()
        for cmd in stage.commands(ctx):
            left = box - (time.monotonic() - t0)
            if left <= 0:
                status = "timeout"
                break
            commands.append(portable(" ".join(cmd)))
            logf.write(f"\n=== [{stage.name}] {commands[-1]}\n".encode())
            logf.flush()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                codes.append(proc.wait(timeout=left))
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                status = "timeout"
                codes.append(None)
                break
            except BaseException:
                _kill_group(proc)
                raise
            if codes[-1] != 0:  # the stage's other commands measure other things: they still run
                status = "error"
    seconds = time.monotonic() - t0
    text = log_path.read_bytes()[start:].decode(errors="replace")
    rec = dict(benchmark="gpu-check-stage", stage=stage.name, status=status, returncodes=codes,
               box_seconds=round(box, 1), seconds=round(seconds, 1), commands=commands,
               new_records={f: len(read_records(ctx.out / f)) - n for f, n in before.items()})
    if stage.name == "cuda-tests":
        rec["tests"] = {m.group(1).split("::", 1)[1]: m.group(2) for m in map(TEST_LINE.match, text.splitlines()) if m}
    if status != "ok":
        rec["output_tail"] = text[-3000:]
    return rec


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group, give it 5 s, then SIGKILL whatever of the group is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # the whole group is gone
            return
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def gpu_environment(dev: torch.device) -> dict:
    """The machine in one record: GPU name, memory, capability, CUDA and cuDNN versions (None on CPU)."""
    cuda = dev.type == "cuda"
    props = torch.cuda.get_device_properties(dev) if cuda else None
    return dict(benchmark="gpu-check-environment", gpu_memory_mb=round(props.total_memory / 2**20) if cuda else None,
                capability=".".join(map(str, torch.cuda.get_device_capability(dev))) if cuda else None,
                multiprocessors=props.multi_processor_count if cuda else None, cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version() if cuda else None, cpus=os.cpu_count())


def parse_boxes(items: list[str]) -> dict[str, float]:
    boxes = {}
    for item in items:
        name, _, sec = item.partition("=")
        if name not in STAGES or not re.fullmatch(r"\d+(\.\d+)?", sec):
            raise ConfigError(f"`--box` takes STAGE=SECONDS with a stage of {', '.join(STAGES)}; got {item!r}")
        boxes[name] = float(sec)
    return boxes


def check_data(root: Path) -> None:
    if not root.is_dir() or not any(root.rglob("train-images-idx3-ubyte*")):
        raise DataError(f"`--data-root` {root} holds no Fashion-MNIST idx files; before the GPU call run "
                        "`mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/`"
                        " and carry data/fashion-mnist")


def check(args) -> int:
    """Run the selected stages; returns the number of stages that did not end ok."""
    smoke = args.smoke_cpu
    try:
        dev = resolve_device(args.device or ("cpu" if smoke else "cuda"))
    except DeviceError as exc:
        raise DeviceError(f"{exc}; here, `--smoke-cpu` runs every stage on CPU with tiny sizes") from None
    log(f"device: {device_name(dev)} (torch {torch.__version__}, CUDA {torch.version.cuda})")
    data = Path(args.data_root).resolve()
    check_data(data)
    out = Path(args.out or os.environ.get("OUT") or ROOT / "runs" / "gpu-check" / "out").resolve()
    work = Path(args.work).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(sys.executable, out, work, data, str(dev), smoke)
    boxes = parse_boxes(args.box)
    stages = args.stages or (list(STAGES) if smoke else list(DEFAULT_STAGES))
    status = ResultsFile(out / STATUS)
    status.append(dict(gpu_environment(dev), stages=stages, smoke=smoke), dev)
    t_start, failed = time.monotonic(), 0
    for name in stages:
        stage = STAGES[name]
        left = args.budget - (time.monotonic() - t_start)
        box = min(boxes.get(name) or stage.box or left, left) if not smoke else boxes.get(name, SMOKE_BOX)
        if box < 1:
            rec = dict(benchmark="gpu-check-stage", stage=name, status="skipped", box_seconds=0, seconds=0,
                       reason=f"the {args.budget:.0f} s budget is spent")
        else:
            log(f"[{name}] up to {box:.0f} s")
            rec = run_stage(stage, ctx, box, out / LOG)
        status.append(dict(rec, smoke=smoke), dev)
        failed += rec["status"] != "ok"
        log(f"[{name}] {rec['status']} after {rec['seconds']:.0f} s; new records {rec.get('new_records', {})}"
            + (f"; tests {rec['tests']}" if rec.get("tests") else ""))
    log(f"records in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return failed


def collect(folder: Path, results: Path = RESULTS) -> dict[str, int]:
    """Append the records a GPU call brought back (``folder``, searched recursively) to ``results``, skipping
    records already there. Returns new records per file.

    Raises:
        ConfigError: ``folder`` holds no record file, comes from a ``--smoke-cpu`` run, or a record lacks the
            device / torch / date / command fields.
    """
    found = {p.name: p for p in sorted(Path(folder).rglob("*")) if p.name in RECORD_FILES}
    if not any(n in found for n in RECORD_FILES):
        raise ConfigError(f"`--collect` {folder} holds none of {', '.join(RECORD_FILES)}")
    if any(r.get("smoke") for r in read_records(found[STATUS])) if STATUS in found else False:
        raise ConfigError(f"`--collect` {folder} comes from a --smoke-cpu run: its records are not results")
    added = {}
    for name in RECORD_FILES:
        if name not in found:
            continue
        recs = read_records(found[name])
        for r in recs:
            missing = [k for k in ("device", "torch", "date", "command") if k not in r]
            if missing:
                raise ConfigError(f"`--collect`: a record in {found[name]} lacks {', '.join(missing)}")
        added[name] = len(ResultsFile(results / name).append_new(dict(r, command=portable(r["command"]))
                                                                 for r in recs))
    return added


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", nargs="+", choices=list(STAGES), default=None,
                    help=f"stages in order (default {' '.join(DEFAULT_STAGES)}; --smoke-cpu: all)")
    ap.add_argument("--budget", type=float, default=420, help="seconds for all stages together (420)")
    ap.add_argument("--box", nargs="*", default=[], metavar="STAGE=SECONDS", help="override a stage's time box")
    ap.add_argument("--data-root", default=str(DEFAULT_DATA), help="Fashion-MNIST idx files (data/fashion-mnist)")
    ap.add_argument("--out", default=None, help="records folder (default: $OUT, else runs/gpu-check/out)")
    ap.add_argument("--work", default=str(ROOT / "runs" / "gpu-check" / "work"), help="caches (condensed sets)")
    ap.add_argument("--device", default=None, help="cuda (default) | cuda:N | cpu (default with --smoke-cpu)")
    ap.add_argument("--smoke-cpu", action="store_true", help="every stage end to end on CPU with tiny sizes")
    ap.add_argument("--collect", metavar="DIR", help="merge the records a GPU call brought back into "
                    "benchmarks/results/ and exit")
    args = ap.parse_args()
    if args.collect:
        for name, n in collect(Path(args.collect)).items():
            log(f"{name}: {n} new record(s)")
        return
    failed = check(args)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    run_script(main)
