"""Refactors of the condensation loop leave its CPU images bit-identical (issue 24).

The hashes below are SHA-256 digests of the stored images (float32 bytes) and labels of short, deterministic CPU
runs on the bundled digits, recorded on the code *before* ``RealPool`` was extracted from ``Matcher`` (main at
834a76a), with torch 2.14.1 on an AVX-512 CPU. They were produced by::

    .venv/bin/python tests/test_bit_identity.py

which prints the ``RECORDED`` dict. The cases cover factor 2 and factor 1, the network pool (its real batches come
from the real pool), the real pool streamed from host memory with the real batch forwarded in class chunks
(a tiny ``device_memory_budget_mb``), noise init and a class subset.

Bit identity of float arithmetic holds only for the same torch build on the same kind of CPU (other SIMD widths
change the reduction order of convolutions), so the test runs only under the recorded torch version with AVX-512;
elsewhere it is skipped with that reason. Behaviour across machines is covered by the resume and equivalence tests.
"""
from __future__ import annotations

import hashlib

import pytest
import torch

from atom_plugin import ATOMConfig, condense, load_dataset

RECORDED_TORCH = "2.14.1"
RECORDED_CPU = "AVX512"

#: name -> (ATOMConfig fields, condense() keyword arguments)
CASES: dict[str, tuple[dict, dict]] = {
    "factor2_random": (dict(ipc=2, factor=2, networks="random"), {}),
    "factor1_random": (dict(ipc=2, factor=1, networks="random"), {}),
    "factor2_pool": (dict(ipc=1, factor=2, networks="pool", pool_size=3, pool_batch=32, pool_cap=4), {}),
    "factor1_streamed_chunked": (dict(ipc=2, factor=1, networks="random"), dict(device_memory_budget_mb=0.01)),
    "factor2_noise_classes": (dict(ipc=2, factor=2, init="noise", networks="random"), dict(classes=[1, 4, 7])),
}

RECORDED: dict[str, str] = {
    'factor2_random': 'c3dbda11c61743dcf4d6c361285512918c67f009f1b98f57177487a39c11f725',
    'factor1_random': 'bb602d4dd1228c601e2b74c07e3fd8808a56078bf69d5d44996b1144c7368d17',
    'factor2_pool': '4f99035f57f008d8effae47acbb098492637067ed43b08d5b7ca76f51e8c275c',
    'factor1_streamed_chunked': 'bb602d4dd1228c601e2b74c07e3fd8808a56078bf69d5d44996b1144c7368d17',
    'factor2_noise_classes': '9df8275ac2693255f3765436ab1bfd07b9ad6da465bbd5fd966bbda8dcbd8448',
}


def run_hash(digits, name: str) -> str:
    fields, kwargs = CASES[name]
    cfg = ATOMConfig(preset="atom", iterations=4, width=16, batch_real=16, **fields)
    out = condense(digits, cfg, device="cpu", seed=3, compile=False, **kwargs)
    h = hashlib.sha256(out.stored_images.contiguous().numpy().tobytes())
    h.update(out.stored_labels.numpy().tobytes())
    return h.hexdigest()


def _same_machine_kind() -> str | None:
    """None when this is the recorded torch version on an AVX-512 CPU, else why not."""
    if not torch.__version__.startswith(RECORDED_TORCH):
        return f"hashes recorded with torch {RECORDED_TORCH}; float results differ across torch builds"
    if torch.backends.cpu.get_cpu_capability() != RECORDED_CPU:
        return f"hashes recorded on an {RECORDED_CPU} CPU; other SIMD widths change the float reduction order"
    return None


@pytest.mark.parametrize("name", sorted(CASES))
def test_condensed_images_are_bit_identical_to_the_recorded_run(digits, name):
    why = _same_machine_kind()
    if why:
        pytest.skip(why)
    assert run_hash(digits, name) == RECORDED[name]


if __name__ == "__main__":
    data = load_dataset("digits", split="train")
    print("RECORDED: dict[str, str] = {")
    for case in CASES:
        print(f"    {case!r}: {run_hash(data, case)!r},")
    print("}")
