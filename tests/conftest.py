"""Shared test setup: puts ``tests/`` on ``sys.path`` (for ``from fakedata import ...``) and offers fixtures.

Fixtures:
    tiny_fmnist_root: session-scoped :class:`pathlib.Path` of a tiny Fashion-MNIST written in Debian's layout
        (the four ``.gz`` idx files directly in the folder; 20 train and 10 test images per class, 28x28, made by
        ``fakedata.write_fashion_mnist(seed=0)``, learnable). Use it as ``load_dataset("fashion-mnist",
        root=tiny_fmnist_root, download=False)`` or ``--data-root``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fakedata import write_fashion_mnist  # noqa: E402


@pytest.fixture(scope="session")
def tiny_fmnist_root(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST (200 train / 100 test images) in Debian's .gz layout; returns its folder."""
    root = tmp_path_factory.mktemp("tiny_fmnist")
    write_fashion_mnist(root, n_train_per_class=20, n_test_per_class=10, gz=True, seed=0, layout="flat")
    return root
