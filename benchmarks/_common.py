"""The benchmark toolkit (not part of the library): every script in benchmarks/ reads and writes results here.

- where results live: :data:`ROOT`, :data:`RESULTS`, :data:`FIGURES`;
- one results-file type, :class:`ResultsFile`: read, append a record with its provenance (device, versions, date,
  the command with paths inside the repository made relative to it), skip what is done (a resume key);
- the per-candidate caches: :class:`CandidateCache` (one JSON object per measured candidate) and
  :func:`cached_set` (a condensed or selected set on disk), whose condensation checkpoints and resumes
  (:func:`resumable`);
- :func:`portable`: absolute paths inside a repository made relative (data roots such as /usr/share/datasets stay
  as given); :data:`MACHINE_PATH` finds the ones left;
- :func:`pyplot` (the matplotlib guard), :func:`provenance` (the one provenance line of a table), :func:`mean_std`;
- the shared flags (:func:`add_common_args`, :func:`add_budget_args`, :func:`add_out_arg`) and the data splits.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from atom_plugin import CondensedDataset, load_dataset, validation_split
from atom_plugin.results import FREED_MEMORY_KEPT, append_records, environment, read_records, replace_records

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"  # the committed records
FIGURES = ROOT / "docs" / "figures"  # the figures report.py draws from them

# -- paths: what a record may say about the machine that wrote it --------------------------------------------------

# Folders at a repository's top level (committed or conventional: runs/, results/ and data/ are git-ignored). An
# absolute path through one of them is a path inside a repository, meaningful on one machine only.
REPO_DIRS = ("benchmarks", "runs", "results", "data", "tests", "docs", "examples", "atom_plugin", "integrations")
# Shared data folders: recorded as given (another machine has them at the same place, or says where with a flag).
DATA_ROOTS = ("/usr/share/datasets/",)
_NOT_DATA = "".join(f"(?!{re.escape(d[1:])})" for d in DATA_ROOTS)
# An absolute path that runs through a repository folder: group 1 is the machine's part, group 2 the repository's.
# At least one folder before the repository's (a clone's location is never /), and the repository folder ends the
# path or a slash follows it (``<!-- /results:NAME -->`` is no path).
MACHINE_PATH = re.compile(rf"(?<![\w.~/-])(/{_NOT_DATA}(?:[\w.+@-]+/)+?)((?:{'|'.join(REPO_DIRS)})(?:/[\w.+@=-]*)*)"
                          r"(?![\w.+@:-])")


def portable(text: str, root: Path | None = ROOT) -> str:
    """``text`` with every absolute path inside a repository made relative to that repository: first this clone's
    location (``root``), then any absolute path through a top-level repository folder (:data:`REPO_DIRS`), so
    records written in another clone are rewritten too. Paths under :data:`DATA_ROOTS` stay as given. Idempotent.

    >>> portable("x.py --out /home/u/atom-plugin/benchmarks/results/a.json --data-root /usr/share/datasets/fm")
    'x.py --out benchmarks/results/a.json --data-root /usr/share/datasets/fm'
    """
    if root is not None:
        inside = rf"(?<![\w.~/-]){re.escape(str(root))}"
        text = re.sub(rf"{inside}(?![\w.-])(/?)", lambda m: "" if m.group(1) else ".", text)
    return MACHINE_PATH.sub(lambda m: m.group(2), text)


def command(argv: Sequence[str] | None = None) -> str:
    """This process's command line as a user would type it from the repository root (``python benchmarks/x.py
    ...``), paths inside the repository relative to it."""
    argv = list(sys.argv if argv is None else argv)
    if argv and argv[0].endswith(".py"):
        script = Path(argv[0]).resolve()
        argv[0] = "python " + (str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else argv[0])
    return portable(" ".join(shlex.quote(a) if i else a for i, a in enumerate(argv)))


def stamp(device) -> dict:
    """The provenance fields of a record: ``device``, ``torch``, ``python``, ``atom_plugin``, ``date`` (UTC) and
    ``command`` (:func:`command`)."""
    return dict(environment(device), command=command())


# -- results files -------------------------------------------------------------------------------------------------

def resume_key(rec: dict, fields: Sequence[str] | None, legacy: dict | Callable[[dict], dict] | None = None) -> tuple:
    """A record's identity: its ``fields`` as strings, a field older records lack read from ``legacy`` (a dict, or a
    function of the record giving one); with ``fields`` None, the whole record."""
    if fields is None:
        return (json.dumps(rec, sort_keys=True),)
    old = legacy(rec) if callable(legacy) else (legacy or {})
    return tuple(str(rec[f] if f in rec else old.get(f)) for f in fields)


class ResultsFile:
    """One JSON list of flat records (``benchmarks/results/NAME.json``), appended one record at a time.

    ``key`` names the fields that identify a measurement (its resume key): :meth:`done` says whether a record with
    the same key is already in the file, so an interrupted benchmark resumes where it stopped. ``legacy`` fills the
    fields that older records lack before their key is read (``{field: value}`` or a function of the record).
    Without ``key`` the whole record is its key (:meth:`append_new` then skips exact duplicates).
    """

    def __init__(self, path: str | os.PathLike, key: Sequence[str] | None = None,
                 legacy: dict | Callable[[dict], dict] | None = None):
        self.path = Path(path)
        self.key_fields = tuple(key) if key is not None else None
        self._legacy = legacy
        self._done: set[tuple] | None = None

    def records(self, **where) -> list[dict]:
        """The file's records ([] before the first), only those whose fields equal ``where``'s values."""
        return [r for r in read_records(self.path) if all(r.get(k) == v for k, v in where.items())]

    def key(self, rec: dict) -> tuple:
        """A record's resume key: its :attr:`key_fields` as strings (older records' missing fields filled)."""
        return resume_key(rec, self.key_fields, self._legacy)

    def done(self, rec: dict) -> bool:
        """Whether a record with ``rec``'s key is in the file (read once, then kept up to date by the appends)."""
        if self._done is None:
            self._done = {self.key(r) for r in read_records(self.path)}
        return self.key(rec) in self._done

    def append(self, rec: dict, device=None) -> dict:
        """Append one record, with :func:`stamp`'s provenance fields when ``device`` is given; returns it."""
        full = dict(rec, **stamp(device)) if device is not None else dict(rec)
        append_records(self.path, [full])
        if self._done is not None:
            self._done.add(self.key(full))
        return full

    def append_new(self, recs: Iterable[dict]) -> list[dict]:
        """Append the records whose key is not in the file yet (nor earlier in ``recs``); returns those."""
        fresh = []
        for r in recs:
            if not self.done(r):
                self._done.add(self.key(r))
                fresh.append(r)
        append_records(self.path, fresh)
        return fresh

    def replace(self, recs: Sequence[dict]) -> int:
        """Write ``recs`` in place of the file's records with the same key (:func:`atom_plugin.results.replace_records`:
        for records computed from logged measurements, which a corrected computation supersedes); returns how many
        old records were replaced."""
        n = replace_records(self.path, recs, self.key)
        self._done = None
        return n


class CandidateCache:
    """Per-candidate results, one JSON object per line (``{"key": ..., ...}``), flushed as soon as each is measured,
    so an interrupted search loses at most the candidate it was training; a line cut short is ignored."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    e = json.loads(line)
                    self.entries[e["key"]] = e
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, entry: dict) -> None:
        self.entries[entry["key"]] = entry
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()


#: Iterations between the checkpoints of a benchmark's condensation: a killed run loses at most this many.
CHECKPOINT_EVERY = 25


def checkpoint_path(path: Path) -> Path:
    """Where the condensation making the cached set ``path`` checkpoints: ``<stem>.ckpt.safetensors`` beside it."""
    return path.with_name(f"{path.stem}.ckpt.safetensors")


def resumable(path: Path) -> dict:
    """The :func:`atom_plugin.condense` keywords that checkpoint the run making the cached set ``path`` every
    :data:`CHECKPOINT_EVERY` iterations and continue it after an interruption (the core's resume: bit-exact on
    CPU; the set's provenance then counts the interrupted process's loop seconds up to its checkpoint)."""
    return dict(checkpoint=checkpoint_path(path), checkpoint_every=CHECKPOINT_EVERY, resume=True)


def cached_set(path: Path, make: Callable[[], CondensedDataset], device=None) -> tuple[CondensedDataset, float]:
    """The set saved at ``path``, or ``make()``'s (timed, saved there, its checkpoint removed): (set, seconds it
    took to make, also kept in its provenance as ``seconds``). A ``make`` that condenses with
    ``**resumable(path)`` continues an interrupted run; the seconds then add the loop seconds its checkpoint holds
    (``seconds_before_resume``) and a herding start's selection (``init``, not redone) to this process's.
    ``device``: a CUDA device is synchronised before the clock stops."""
    if path.exists():
        checkpoint_path(path).unlink(missing_ok=True)  # a kill between saving the set and removing it
        s = CondensedDataset.load(path)
        return s, float(s.provenance.get("seconds", 0.0))
    with Timer() as t:
        s = make()
        if device is not None and torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
    prov = s.provenance
    before = float(prov.get("seconds_before_resume") or 0.0)
    if prov.get("resumed_from") and "init" in prov:  # a resumed herding start is not selected again: count it once
        before += float(prov["init"].get("seconds", 0.0))
    seconds = t.seconds + before
    s.provenance["seconds"] = round(seconds, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    s.save(path)
    checkpoint_path(path).unlink(missing_ok=True)
    return s, seconds


# -- reporting helpers ---------------------------------------------------------------------------------------------

def pyplot(what: str = "figure"):
    """``matplotlib.pyplot`` with the non-interactive Agg backend, or None (and a note naming ``what`` is not
    drawn) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log(f"matplotlib is not installed: no {what} (pip install matplotlib)")
        return None
    return plt


def mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``"83.10 ± 0.21"`` (sample std), one value alone, or "" for none."""
    values = list(values)
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _argument_groups(cmd: str) -> tuple[str, list[tuple[str, ...]]]:
    """(the script, [(flag, *values)]) of a recorded command."""
    words = shlex.split(cmd)
    head = 2 if words[:1] == ["python"] else 1
    groups: list[list[str]] = []
    for w in words[head:]:
        if w.startswith("--") or not groups:
            groups.append([w])
        else:
            groups[-1].append(w)
    return " ".join(words[:head]), [tuple(g) for g in groups]


def commands_line(commands: Iterable[str]) -> str:
    """The commands of a table in one line: the script with the arguments all of them share, then the flags whose
    values differ between records (each record keeps its full command in its ``command`` field)."""
    parsed = [_argument_groups(c) for c in sorted(set(commands)) if c]
    if not parsed:
        return "unknown commands"
    scripts = sorted({s for s, _ in parsed})
    shared = [g for g in parsed[0][1] if all(g in groups for _, groups in parsed)]
    varying = sorted({g[0] for _, groups in parsed for g in groups if g not in shared})
    head = f"`{' '.join([' / '.join(scripts), *(' '.join(g) for g in shared)])}`"
    return head + (f" with per-record {', '.join(f'`{v}`' for v in varying)}" if varying else "")


def provenance(records: Sequence[dict]) -> str:
    """The one provenance line of a table: devices, torch versions, dates, :func:`commands_line`, and how many
    records ran with freed memory kept (their ``freed_memory``; CPU seconds are not comparable across the two)."""
    if not records:
        return "_no results yet_"
    devices = sorted({str(r.get("device", "?")) for r in records})
    torches = sorted({str(r.get("torch", "?")) for r in records})
    dates = sorted(str(r.get("date", "?"))[:10] for r in records)
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    kept = sum(r.get("freed_memory") == FREED_MEMORY_KEPT for r in records)
    memory = (f" {kept} of {len(records)} records ran with glibc keeping freed memory "
              "(`atom_plugin.keep_freed_memory`: the same results; CPU seconds not comparable with the others').") if kept else ""
    return (f"Device: {', '.join(devices)}; torch {', '.join(torches)}; {span}. Written by "
            f"{commands_line(r.get('command', '') for r in records)}.{memory}")


# -- flags and data ------------------------------------------------------------------------------------------------

def add_common_args(ap: argparse.ArgumentParser, *, device: bool = True, seed: bool = True,
                    compile: bool = True) -> None:
    """``--data-root``, and ``--device``, ``--seed`` and ``--compile`` unless told otherwise."""
    ap.add_argument("--data-root", default=None, help="folder with the Fashion-MNIST idx files (default: $ATOM_DATA, "
                    "then the usual places)")
    if device:
        ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    if seed:
        ap.add_argument("--seed", type=int, default=0)
    if compile:
        ap.add_argument("--compile", action="store_true", help="through torch.compile")


def add_budget_args(ap: argparse.ArgumentParser, *, iterations: int | str, eval_epochs: int | None = None,
                    num_models: int | None = None) -> None:
    """:func:`add_common_args`, the condensation budget (``--iterations``, ``--batch-real``) and, when given a
    default, the evaluation budget (``--eval-epochs``, ``--num-models``). ``iterations`` given as text (e.g.
    ``"default 8000; quick 3"``) describes a default the script fills in itself (the flag's default is then None)."""
    add_common_args(ap)
    ap.add_argument("--iterations", type=int, default=None if isinstance(iterations, str) else iterations,
                    help=f"condensation iterations ({iterations})")
    ap.add_argument("--batch-real", type=int, default=64, help="real images per class per iteration (64)")
    if eval_epochs is not None:
        ap.add_argument("--eval-epochs", type=int, default=eval_epochs, help=f"epochs per evaluation ({eval_epochs})")
    if num_models is not None:
        ap.add_argument("--num-models", type=int, default=num_models, help=f"networks per evaluation ({num_models})")


def add_out_arg(ap: argparse.ArgumentParser, name: str | None, what: str = "") -> None:
    """``--out``: the records file (default ``benchmarks/results/NAME``; None: the script chooses)."""
    default = None if name is None else str(RESULTS / name)
    shown = what or f"default benchmarks/results/{name}"
    ap.add_argument("--out", default=default, help=f"records file ({shown})")


def fashion_mnist(data_root: str | None, *, validation: bool, val_size: int | None = None):
    """(train, eval) splits: with ``validation`` the project's validation recipe
    (:func:`atom_plugin.validation_split`: ``val_size`` images held out, default 5,000), else the full 60,000
    training images and the 10,000 test images."""
    train = load_dataset("fashion-mnist", data_root, split="train")
    if validation:
        return validation_split(train, val_size)
    return train, load_dataset("fashion-mnist", data_root, split="test")


def set_threads() -> None:
    """Use every core for intra-op work but do not oversubscribe (honours OMP_NUM_THREADS)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)


class Timer:
    """``with Timer() as t: ...``; then ``t.seconds`` (wall clock, perf_counter)."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
