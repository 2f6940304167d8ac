"""Rewrite committed records, goldens and docs so that they hold no machine paths: every absolute path inside a
repository (this clone's location, or any absolute path through a top-level repository folder such as
``/home/u/atom-plugin/runs/bench-fmnist``) becomes relative to the repository; data roots such as
``/usr/share/datasets`` stay as given (``_common.portable``). Idempotent: a second run changes nothing, so it can be
applied again to records appended by an older checkout.

    python benchmarks/portable_paths.py            # rewrite in place; lists the files changed
    python benchmarks/portable_paths.py --check    # change nothing; exit 1 if a file would change
    python benchmarks/portable_paths.py FILE ...   # only these files
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import ROOT, log, portable

from atom_plugin.results import atomic_write_text
from atom_plugin.runner import run_script

# What is committed and may hold recorded commands: records, goldens, docs.
TARGETS = ("benchmarks/results/*.json", "tests/golden/**/*", "README.md", "docs/**/*.md")


def targets() -> list[Path]:
    """The committed text files :data:`TARGETS` names (figures and other binary files skipped)."""
    files = {p for pattern in TARGETS for p in ROOT.glob(pattern) if p.is_file()}
    return sorted(p for p in files if p.suffix in (".json", ".md", ".txt"))


def rewrite(path: Path, check: bool = False) -> bool:
    """Make ``path``'s machine paths portable (unless ``check``); True when it held any."""
    text = path.read_text()
    new = portable(text)
    if new != text and not check:
        atomic_write_text(path, new)
    return new != text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="files to rewrite (default: the committed records, goldens and docs)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file holds machine paths")
    args = ap.parse_args()
    changed = [p for p in (map(Path, args.files) if args.files else targets()) if rewrite(p, args.check)]
    for p in changed:
        log(f"{'holds machine paths' if args.check else 'rewrote'}: {p}")
    if args.check and changed:
        raise SystemExit(1)


if __name__ == "__main__":
    run_script(main)
