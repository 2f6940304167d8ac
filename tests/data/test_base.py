"""ImageTensorDataset's host-memory contract (the CUDA half: tests/test_cuda_correctness.py)."""
import pytest
import torch

from atom_plugin.data import ImageTensorDataset


def test_tensors_are_kept_in_host_memory():
    """Images and labels given on another device are moved to the CPU at construction (the matcher pins, indexes
    and streams the real pool from host memory). A CPU-only machine has no CUDA tensors, so the ``meta`` device
    stands in: its tensors hold no data, so the move must fail -- which shows that the constructor moves them."""
    x, y = torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 0, 1])
    d = ImageTensorDataset(x, y, ["a", "b"], [0.0], [1.0])
    assert d.images.device.type == d.labels.device.type == "cpu"
    assert d.images.data_ptr() == x.data_ptr() and d.labels.data_ptr() == y.data_ptr()  # no copy when on the CPU
    with pytest.raises(NotImplementedError, match="meta"):
        ImageTensorDataset(x.to("meta"), y, ["a", "b"], [0.0], [1.0], check_finite=False)
    with pytest.raises(NotImplementedError, match="meta"):
        ImageTensorDataset(x, y.to("meta"), ["a", "b"], [0.0], [1.0], check_finite=False)
