"""Golden outputs: the ``atom`` help texts and the report tables, compared byte for byte with tests/golden/.

A refactoring must leave these unchanged; a deliberate change (a new flag, a new column) regenerates them:

    UPDATE_GOLDEN=1 python -m pytest -q tests/test_golden.py     # or: python tests/test_golden.py --regen

and the diff of tests/golden/ is reviewed with the change. Help texts are formatted at a fixed width
(``COLUMNS=100``); argparse's layout can differ between Python versions, so regenerate with the project's Python.
The report tables are the Markdown bodies that benchmarks/report.py puts between the README's markers, made from
a frozen copy of the benchmarks/results/ files in tests/golden/results/ (so a new benchmark record changes the
docs, not this test; the IPC figure is not redrawn: only its link is part of the text).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_RESULTS = GOLDEN / "results"  # a frozen copy of benchmarks/results/ (the report's inputs)
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


def _report_module():
    spec = importlib.util.spec_from_file_location("golden_report", ROOT / "benchmarks" / "report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod._ipc_figure = lambda recs, path: path  # the link only: no plot written over the committed PNG
    mod.RESULTS = GOLDEN_RESULTS  # frozen inputs: new benchmark records change the docs, not this test
    return mod


def _report_sections() -> dict[str, str]:
    report = _report_module()
    return {name: fn() + "\n" for name, fn in report.SECTIONS.items()}


def _golden_help(command: str) -> Path:
    return GOLDEN / f"help_{command or 'atom'}.txt"


def _check(path: Path, actual: str) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"{path.name} missing: run UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py"
    expected = path.read_text()
    assert actual == expected, f"{path.name} changed; if on purpose, regenerate (see this module's docstring)"


@pytest.mark.parametrize("command", COMMANDS, ids=[c or "atom" for c in COMMANDS])
def test_help_text_is_unchanged(command):
    _check(_golden_help(command), _help(command))


def test_python_m_atom_plugin_prints_the_same_help():
    env = dict(os.environ, COLUMNS=WIDTH)
    out = subprocess.run([sys.executable, "-m", "atom_plugin", "--help"], capture_output=True, text=True, env=env,
                         cwd=ROOT, check=True).stdout
    _check(_golden_help(""), out)


def test_report_tables_are_unchanged():
    for name, text in _report_sections().items():
        _check(GOLDEN / f"report_{name}.md", text)


def test_a_changed_help_text_fails(monkeypatch):
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    with pytest.raises(AssertionError, match="changed"):
        _check(_golden_help("show"), _help("show").replace("--scale", "--zoom"))


if __name__ == "__main__":
    if sys.argv[1:] != ["--regen"]:
        raise SystemExit("usage: python tests/test_golden.py --regen   (rewrites tests/golden/)")
    os.environ["UPDATE_GOLDEN"] = "1"
    for c in COMMANDS:
        _check(_golden_help(c), _help(c))
    for name, text in _report_sections().items():
        _check(GOLDEN / f"report_{name}.md", text)
    print(f"wrote {GOLDEN.relative_to(ROOT)}/")
