"""Result records: flat JSON records with device, versions, date and the command that wrote them.

Every benchmark and CLI command writes lists of flat records to JSON files; README tables are generated from
those files (never typed by hand). Accuracy fields are in %, times in seconds, memory in MB.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Callable, Hashable, Iterable, Sequence

import torch

from ._device import device_name
from ._malloc import freed_memory_kept
from ._safeio import atomic_write_text  # public here: result files are written with it (benchmarks)
from .errors import CondensedFileError, ConfigError

#: A record's ``freed_memory``: glibc kept freed memory (:func:`atom_plugin.keep_freed_memory`), or its default
#: malloc (also what records written before the field existed mean). CPU seconds differ between the two.
FREED_MEMORY_KEPT, FREED_MEMORY_DEFAULT = "kept", "default"


def library_versions() -> dict[str, str]:
    """Versions of Python, atom-plugin, torch, torchvision and numpy: the one source of the versions recorded in
    condensed sets' provenance and in result records (strings, e.g. ``{"torch": "2.4.1", ...}``)."""
    import numpy as np
    import torchvision

    from . import __version__

    return dict(python=platform.python_version(), atom_plugin=__version__, torch=torch.__version__,
                torchvision=torchvision.__version__, numpy=np.__version__)


def environment(device: torch.device | str) -> dict:
    """``device`` (GPU model or "cpu"), ``torch``, ``python``, ``atom_plugin`` (from :func:`library_versions`),
    ``date`` (UTC, ISO 8601), ``command``, ``freed_memory`` (:data:`FREED_MEMORY_KEPT`, "kept", when
    :func:`atom_plugin.keep_freed_memory` or ``GLIBC_TUNABLES`` made glibc keep freed memory, else
    :data:`FREED_MEMORY_DEFAULT`, "default": CPU seconds differ between the two)."""
    v = library_versions()
    return dict(device=device_name(torch.device(device)), torch=v["torch"], python=v["python"],
                atom_plugin=v["atom_plugin"], date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                command=command_line(),
                freed_memory=FREED_MEMORY_KEPT if freed_memory_kept() else FREED_MEMORY_DEFAULT)


def command_line() -> str:
    """The command line of this process, as a user would type it (``python -m`` entry points resolved)."""
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "-c")):
        argv[0] = "python -m " + (sys.modules["__main__"].__spec__.name if getattr(sys.modules.get("__main__"), "__spec__", None) else "?")
    elif argv and argv[0].endswith(".py"):
        argv[0] = "python " + os.path.relpath(argv[0])
    elif argv:
        argv[0] = os.path.basename(argv[0])
    return " ".join(shlex.quote(a) if i else a for i, a in enumerate(argv))


def read_records(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON result file ([] when it does not exist). Raises CondensedFileError if unreadable."""
    p = Path(path)
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise CondensedFileError(f"result file {str(p)!r} is not valid JSON ({exc.msg}); fix or move it") from exc
    if not isinstance(data, list):
        raise CondensedFileError(f"result file {str(p)!r} must hold a JSON list of records")
    return data


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive advisory lock on ``folder`` (POSIX ``flock``; no lock file is left behind; a no-op where
    ``fcntl`` does not exist), so that benchmarks running side by side do not lose each other's appends."""
    try:
        import fcntl
    except ImportError:  # Windows: appends from concurrent processes are not serialised
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_records(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Append records to a JSON list file, atomically (the file is rewritten through a temporary file) and under
    an exclusive lock on its folder (read-modify-write: two processes appending at once would otherwise race)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(p.parent):
        existing = read_records(p)
        existing.extend(records)
        atomic_write_text(p, json.dumps(existing, indent=1) + "\n")


def replace_records(path: str | os.PathLike, records: Sequence[dict], key: Callable[[dict], Hashable]) -> int:
    """Write ``records`` in place of the JSON list file's records with the same ``key(record)`` (the others kept, in
    their order; ``records`` appended), atomically and under the folder's lock, as :func:`append_records`. For
    records computed from logged measurements, which a corrected computation supersedes.

    Args:
        path: the JSON list file (created when missing).
        records: the new records, appended in their order.
        key: a record's identity (e.g. a benchmark's resume key); old records with a new record's key are dropped.

    Returns:
        how many old records were replaced.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    new_keys = {key(r) for r in records}
    with _folder_lock(p.parent):
        old = read_records(p)
        kept = [r for r in old if key(r) not in new_keys]
        atomic_write_text(p, json.dumps(kept + list(records), indent=1) + "\n")
    return len(old) - len(kept)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """The one Markdown table syntax of the project (reports, benchmark summaries, the CLI, the adapters).

    Args:
        headers: column titles, one per column.
        rows: one sequence of cells per row, ``len(headers)`` cells each; every cell is written as ``str(cell)``
            (no escaping: a cell must not hold ``|`` or a newline).

    Returns:
        ``"| h1 | h2 |\\n|---|---|\\n| a | b |"``: lines joined by ``\\n``, no trailing newline.

    Raises:
        ConfigError: a row whose number of cells differs from ``len(headers)``.
    """
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    lines = [line(headers), "|" + "|".join("---" for _ in headers) + "|"]
    for n, row in enumerate(rows):
        row = list(row)
        if len(row) != len(headers):
            raise ConfigError(f"markdown_table: row {n} has {len(row)} cells for {len(headers)} `headers`")
        lines.append(line(row))
    return "\n".join(lines)


def records_table(records: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
    """:func:`markdown_table` of flat records; ``columns`` = [(header, key or format string with {field}
    placeholders)]. A missing key (or a format string that does not apply) gives an empty cell."""
    def cell(r: dict, key: str) -> str:
        try:
            return key.format(**r) if "{" in key else str(r.get(key, ""))
        except (KeyError, ValueError):
            return ""

    return markdown_table([h for h, _ in columns], ([cell(r, key) for _, key in columns] for r in records))
