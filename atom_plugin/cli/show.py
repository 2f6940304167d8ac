"""``atom show`` (a PNG grid of a set) and ``atom report`` (a table of result records)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..results import read_records, records_table
from ._common import GRID_FILE, RESULT_FILE, UsageError, _load_condensed, _shape_text


def cmd_show(args: argparse.Namespace) -> int:
    """``atom show``: a PNG grid, one row per class."""
    if args.max_per_class is not None and args.max_per_class < 1:
        raise UsageError(f"--max-per-class must be >= 1, got {args.max_per_class}")
    if args.scale < 1:
        raise UsageError(f"--scale must be >= 1, got {args.scale}")
    condensed, path = _load_condensed(args.path)
    png = Path(args.out) if args.out else path.parent / GRID_FILE
    condensed.to_png_grid(png, max_per_class=args.max_per_class, scale=args.scale, decoded=args.decoded)
    print(f"wrote {png}: {_shape_text(condensed)} ({condensed.name}, {condensed.method})")
    return 0


#: ``atom report``'s columns: (header, record field).
REPORT_COLUMNS = [("dataset", "dataset"), ("split", "split"), ("method", "method"), ("ipc", "ipc"),
                  ("model", "model"), ("accuracy %", "acc"), ("models x epochs", "budget"),
                  ("iterations", "iterations"), ("device", "device"), ("date", "day")]


def cmd_report(args: argparse.Namespace) -> int:
    """``atom report``: a table of the accuracy records found in result files."""
    files: list[Path] = []
    for raw in args.paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.rglob(RESULT_FILE))
            if not found:
                raise UsageError(f"no {RESULT_FILE} under {str(p)!r}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"{str(p)!r} does not exist")
    rows = []
    for f in dict.fromkeys(files):  # a file named twice is read once
        for r in read_records(f):
            if isinstance(r, dict) and r.get("accuracy_mean") is not None:
                rows.append(dict(r, acc=f"{r['accuracy_mean']:.2f} ± {r.get('accuracy_std', 0):.2f}",
                                 budget=f"{r.get('num_models', '?')} x {r.get('eval_epochs', '?')}",
                                 split=r.get("split", ""), day=str(r.get("date", ""))[:16].replace("T", " ")))
    if not rows:
        raise UsageError(f"no accuracy records in {', '.join(map(str, files))}; run with --evaluate or "
                         "'atom evaluate' first")
    print(records_table(rows, REPORT_COLUMNS) if args.markdown else _text_table(rows, REPORT_COLUMNS))
    return 0


def _text_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    cells = [[h for h, _ in columns]] + [[str(r.get(k, "")) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
