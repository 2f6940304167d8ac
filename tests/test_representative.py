"""The quality levers for short budgets: representative real batches (DREAM) and the herding start."""
import pytest
import torch

from atom_plugin import ATOMConfig, condense, herding_subset, load_dataset
from atom_plugin.representative import kmeans, nearest_to_centres

SMALL = dict(width=16, batch_real=8, factor=1, networks="random")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", split="train")


def test_kmeans_batch_is_the_samples_nearest_the_centres_by_hand():
    # Two blobs on a line: {0, 1, 2.5} (mean 1.1667) and {10, 11, 12.5} (mean 11.1667); k-means++ starts from row
    # floor(0.1 * 6) = 0 and, the blob at 0 having no weight left near it, a row of the other blob.
    x = torch.tensor([[0.0], [1.0], [2.5], [10.0], [11.0], [12.5]])
    centres, assign = kmeans(x, 2, torch.tensor([0.1, 0.5]))
    assert assign.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.allclose(centres.flatten(), torch.tensor([3.5 / 3, 33.5 / 3], dtype=torch.float64))
    assert nearest_to_centres(x, centres, assign).tolist() == [1, 4]  # 1 and 11: the samples nearest the centres
    # k = n: every sample is its own cluster, all taken once
    c, a = kmeans(x, 6, torch.rand(6, generator=torch.Generator().manual_seed(0)))
    assert sorted(nearest_to_centres(x, c, a).tolist()) == list(range(6))
    with pytest.raises(ValueError, match="1 <= k <= n"):
        kmeans(x, 7, torch.rand(7))


def test_herding_init_at_factor_1_starts_from_exactly_the_herding_subset(digits):
    cfg = ATOMConfig(preset="dm", ipc=2, iterations=0, init="herding", **SMALL)
    out = condense(digits, cfg, device="cpu", seed=3, classes=[1, 4, 7])
    coreset = herding_subset(digits, 2, seed=3, classes=[1, 4, 7], feature_config=cfg.resolved(), device="cpu")
    assert torch.equal(out.images, coreset.images) and torch.equal(out.labels, coreset.labels)
    assert out.provenance["init"]["method"] == "herding" and out.provenance["init"]["seconds"] > 0
    assert "trained 1 epoch" in out.provenance["init"]["feature_network"]
    plain = condense(digits, cfg.replace(init="real"), device="cpu", seed=3, classes=[1, 4, 7])
    assert not torch.equal(plain.images, out.images) and "init" not in plain.provenance
