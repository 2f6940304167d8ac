"""Fixtures for the tests of the benchmark scripts (benchmarks/*.py, which are scripts, not a package).

Fixtures:
    load_benchmark: session-scoped function ``load_benchmark(name)`` returning a fresh module object of
        ``benchmarks/NAME.py`` (its ``if __name__ == "__main__"`` block not run). The benchmarks folder is put on
        ``sys.path`` (last, so it shadows nothing) for the scripts' own ``from _common import ...``. Each call
        executes the script again, so a test may set its module globals (``RESULTS``, ``DRAW``) freely.
    bench_dir: the :class:`pathlib.Path` of benchmarks/.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    return BENCH_DIR


@pytest.fixture(scope="session")
def load_benchmark():
    if str(BENCH_DIR) not in sys.path:
        sys.path.append(str(BENCH_DIR))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up while it loads
        spec.loader.exec_module(mod)
        return mod

    return load
