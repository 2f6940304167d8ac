"""Golden outputs: the ``atom`` help texts, compared byte for byte with tests/golden/ (the report tables' goldens:
tests/benchmarks/test_report_golden.py).

A refactoring must leave these unchanged; a deliberate change (a new flag) regenerates them:

    UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden.py     # or: python tests/test_golden.py --regen

and the diff of tests/golden/ is reviewed with the change. Help texts are formatted at a fixed width
(``COLUMNS=100``); argparse's layout can differ between Python versions, so regenerate with the project's Python.
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
COMMANDS = ("", "condense", "evaluate", "baseline", "show", "report")  # "" = ``atom --help``
WIDTH = "100"


def _help(command: str) -> str:
    """``atom [COMMAND] --help`` as printed at ``COLUMNS=100`` (in this process)."""
    from atom_plugin.cli import main

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            status = main([command, "--help"] if command else ["--help"])
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    assert status == 0
    return out.getvalue()


def _golden_help(command: str) -> Path:
    return GOLDEN / f"help_{command or 'atom'}.txt"


def check_golden(path: Path, actual: str) -> None:
    """Compare ``actual`` with the golden file ``path`` (with UPDATE_GOLDEN set: write it instead)."""
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"{path.name} missing: run UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py"
    expected = path.read_text()
    assert actual == expected, f"{path.name} changed; if on purpose, regenerate (see this module's docstring)"


@pytest.mark.parametrize("command", COMMANDS, ids=[c or "atom" for c in COMMANDS])
def test_help_text_is_unchanged(command):
    check_golden(_golden_help(command), _help(command))


def test_python_m_atom_plugin_prints_the_same_help():
    env = dict(os.environ, COLUMNS=WIDTH)
    out = subprocess.run([sys.executable, "-m", "atom_plugin", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True).stdout
    check_golden(_golden_help(""), out)


def test_a_changed_help_text_fails(monkeypatch):
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match="changed"):
        check_golden(_golden_help("show"), _help("show").replace("--scale", "--zoom"))


if __name__ == "__main__":
    if sys.argv[1:] != ["--regen"]:
        raise SystemExit("usage: python tests/test_golden.py --regen   (rewrites tests/golden/)")
    os.environ["UPDATE_GOLDEN"] = "1"
    for c in COMMANDS:
        check_golden(_golden_help(c), _help(c))
    print(f"wrote {GOLDEN.relative_to(ROOT)}/")
