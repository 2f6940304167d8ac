"""Shared test setup: puts ``tests/`` on ``sys.path`` (for ``from fakedata import ...``) and offers fixtures.

Fixtures:
    tiny_fmnist_root: session-scoped :class:`pathlib.Path` of a tiny Fashion-MNIST written in Debian's layout
        (the four ``.gz`` idx files directly in the folder; 20 train and 10 test images per class, 28x28, made by
        ``fakedata.write_fashion_mnist(seed=0)``, learnable). Use it as ``load_dataset("fashion-mnist",
        root=tiny_fmnist_root, download=False)`` or ``--data-root``.
    digits: session-scoped train split of the bundled digits (``load_dataset("digits", split="train")``; read it,
        do not modify it in place).
    digits_test: session-scoped test split of the bundled digits.
    deterministic_mode: a setter ``set(on, warn_only=False)`` for ``torch.use_deterministic_algorithms``; the
        previous mode is restored afterwards.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fakedata import write_fashion_mnist  # noqa: E402

from atom_plugin import keep_freed_memory, load_dataset  # noqa: E402

keep_freed_memory()  # as every script does (atom_plugin.runner.run_script): large CPU tensors without page faults


@pytest.fixture(scope="session")
def tiny_fmnist_root(tmp_path_factory) -> Path:
    """A tiny Fashion-MNIST (200 train / 100 test images) in Debian's .gz layout; returns its folder."""
    root = tmp_path_factory.mktemp("tiny_fmnist")
    write_fashion_mnist(root, n_train_per_class=20, n_test_per_class=10, gz=True, seed=0, layout="flat")
    return root


@pytest.fixture(scope="session")
def digits():
    """The bundled digits' train split (an ImageTensorDataset, 32x32, 10 classes)."""
    return load_dataset("digits", split="train")


@pytest.fixture(scope="session")
def digits_test():
    """The bundled digits' test split."""
    return load_dataset("digits", split="test")


@pytest.fixture
def deterministic_mode():
    """Yields a setter for torch's deterministic mode; restores the previous mode afterwards."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield lambda on, warn_only=False: torch.use_deterministic_algorithms(on, warn_only=warn_only)
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
