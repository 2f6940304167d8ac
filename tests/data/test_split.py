"""stratified_split: seeded, proportional, exact sizes, clear errors."""
from __future__ import annotations

import pytest
import torch

from atom_plugin.data import ImageTensorDataset, stratified_split
from atom_plugin.errors import ConfigError


def make_set(counts, classes=None) -> ImageTensorDataset:
    labels = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(123))]
    images = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return ImageTensorDataset(images, labels, classes or [f"c{k}" for k in range(len(counts))], [0.5], [0.25],
                              name="toy", dsa_strategy="crop")


def ids(ds) -> list[int]:
    return ds.images[:, 0, 0, 0].long().tolist()  # each image stores its source index


def test_sizes_proportions_and_disjointness():
    ds = make_set([600, 300, 100])
    train, val = stratified_split(ds, 100, seed=0)
    assert len(train) == 900 and len(val) == 100
    assert val.class_counts().tolist() == [60, 30, 10]
    assert sorted(ids(train) + ids(val)) == list(range(1000))
    assert ids(val) == sorted(ids(val)) and ids(train) == sorted(ids(train))  # source order kept
    assert val.classes == ds.classes and val.mean == (0.5,) and val.name == "toy" and val.dsa_strategy == "crop"
    assert torch.equal(val.labels, ds.labels[torch.tensor(ids(val))])


def test_largest_remainder_adds_up_exactly():
    ds = make_set([7, 7, 7, 0, 4])  # an absent class is fine
    for size in range(1, 15):
        _, val = stratified_split(ds, size, seed=3)
        counts = val.class_counts()
        assert int(counts.sum()) == size and counts[3] == 0
        quota = torch.tensor([7, 7, 7, 0, 4]) * size / 25
        assert ((counts - quota).abs() < 1).all()


def test_fraction():
    _, val = stratified_split(make_set([50, 50]), 0.2)
    assert val.class_counts().tolist() == [10, 10]


def test_seeded_and_deterministic():
    ds = make_set([40, 40, 20])
    a = ids(stratified_split(ds, 30, seed=1)[1])
    assert a == ids(stratified_split(ds, 30, seed=1)[1])
    assert a != ids(stratified_split(ds, 30, seed=2)[1])


@pytest.mark.parametrize("bad", [0, -5, 100, 150, 0.0, 1.0, 1.5, True, "10"])
def test_bad_val_size(bad):
    with pytest.raises(ConfigError, match="val_size"):
        stratified_split(make_set([50, 50]), bad)


def test_class_left_without_training_images():
    with pytest.raises(ConfigError) as info:
        stratified_split(make_set([10, 1], classes=["big", "lonely"]), 6)
    assert "lonely" in str(info.value) and "without training images" in str(info.value)


def test_validation_split_is_the_recipe_5000_images_seed_0_or_a_fifth_when_quick():
    from atom_plugin.data import VAL_SEED, VAL_SIZE, validation_split

    assert (VAL_SIZE, VAL_SEED) == (5000, 0)
    ds = make_set([4000, 3000, 3000])
    train, val = validation_split(ds)
    assert len(val) == 5000 and ids(val) == ids(stratified_split(ds, 5000, seed=0)[1])
    small = make_set([60, 40])
    _, quick = validation_split(small, quick=True)
    assert len(quick) == 20 and ids(quick) == ids(stratified_split(small, 20, seed=0)[1])
    _, given = validation_split(small, 7, quick=True, seed=2)  # a given size wins over quick
    assert ids(given) == ids(stratified_split(small, 7, seed=2)[1])
    with pytest.raises(ConfigError, match="val_size"):
        validation_split(small)  # 5,000 of 100 images
