"""Every ``examples/*.py`` honours the examples' contract on a tiny Fashion-MNIST:

    python examples/X.py --quick --data-root ROOT --out DIR     # exits 0

Each runs as a subprocess (a fresh interpreter, as a user runs it) with a temporary ``HOME`` so nothing lands in
the real home directory. The data is written in torchvision's uncompressed layout (``ROOT/FashionMNIST/raw/``),
which Avalanche's SplitFMNIST reads as well as our loader. An example that needs an optional toolkit that is
not installed is skipped with the reason, not failed.
"""
import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakedata import write_fashion_mnist

# Modules with a leading underscore (shared set-up) are not examples.
EXAMPLES = sorted(p for p in (Path(__file__).resolve().parent.parent / "examples").glob("*.py")
                  if not p.name.startswith("_"))
TIMEOUT_S = 300
# Optional toolkits (extras of pyproject): top-level module -> the extra that installs it.
OPTIONAL = {"avalanche": "avalanche", "nni": "nni", "pytorch_lightning": "nni", "lightning": "nni", "optuna": "optuna"}


def optional_toolkits(path: Path) -> set[str]:
    """Optional top-level modules an example needs: its own imports, ``atom_plugin.integrations.<toolkit>...``
    imports, and its file name (``avalanche_replay.py`` needs avalanche)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    needed = set()
    for name in modules:
        parts = name.split(".")
        if parts[0] in OPTIONAL:
            needed.add(parts[0])
        if parts[:2] == ["atom_plugin", "integrations"] and len(parts) > 2:
            head = parts[2].split("_")[0]
            if head in OPTIONAL:
                needed.add(head)
    needed |= {m for m in OPTIONAL if path.stem.split("_")[0] == m}
    return needed


@pytest.fixture(scope="module")
def fmnist_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("examples_fmnist")
    write_fashion_mnist(root, n_train_per_class=20, n_test_per_class=10, gz=False, seed=0, layout="torchvision")
    return root


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_quick_run(example: Path, fmnist_root: Path, tmp_path: Path):
    for module in sorted(optional_toolkits(example)):
        # find_spec, not an import: importing avalanche alone takes ~15 s, and the subprocess imports it anyway.
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{example.name} needs {module}: pip install 'atom-plugin[{OPTIONAL[module]}]'")
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_CONFIG_HOME=str(home / ".config"), MPLBACKEND="Agg")
    cmd = [sys.executable, str(example), "--quick", "--data-root", str(fmnist_root), "--out", str(tmp_path / "out")]
    try:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.name} --quick took longer than {TIMEOUT_S} s; output tail:\n"
                    f"{_tail(exc.stdout)}\n{_tail(exc.stderr)}")
    assert proc.returncode == 0, (f"{' '.join(cmd)} exited with {proc.returncode}\n--- stdout\n{_tail(proc.stdout)}"
                                  f"\n--- stderr\n{_tail(proc.stderr)}")
    if example.stem == "avalanche_replay":  # condensation and training seconds, apart
        rows = json.loads((tmp_path / "out" / "results.json").read_text())
        for r in rows:
            assert r["train_seconds_without_condensation"] == pytest.approx(
                r["train_seconds"] - r["condense_seconds"], abs=2e-3), r
        assert any(r["condense_seconds"] > 0 for r in rows) and all(r["train_seconds_without_condensation"] > 0
                                                                    for r in rows)


def test_bad_data_is_one_error_line_and_status_2(tmp_path: Path):
    """A truncated idx file (the download broke off) ends the example with one ``error:`` line, status 2."""
    root = tmp_path / "data"
    write_fashion_mnist(root, n_train_per_class=4, n_test_per_class=2, gz=False, seed=0, layout="torchvision")
    images = next(root.rglob("train-images-idx3-ubyte"))
    images.write_bytes(images.read_bytes()[:1000])
    example = next(p for p in EXAMPLES if p.name == "condense_fashion_mnist.py")
    proc = subprocess.run([sys.executable, str(example), "--quick", "--data-root", str(root), "--out",
                           str(tmp_path / "out")], cwd=tmp_path, env=dict(os.environ, HOME=str(tmp_path)),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "train-images-idx3-ubyte" in lines[0], lines
    assert not (tmp_path / "out").exists()


def _tail(text, n: int = 3000) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return (text or "")[-n:]
