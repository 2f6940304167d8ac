"""CondensedDataset files: exact round trip, clear errors for bad files, grids, subset/merge."""
import json

import pytest
import torch
from PIL import Image

from atom_plugin import CondensedDataset, merge_condensed
from atom_plugin.errors import CondensedFileError, ConfigError, OutputPathError


def make(classes=(0, 1, 2), ipc=3, shape=(1, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(classes) * ipc
    return CondensedDataset(torch.randn(n, *shape, generator=g), torch.tensor(classes).repeat_interleave(ipc),
                            [f"c{i}" for i in range(5)], [0.5] * shape[0], [0.25] * shape[0], name="toy",
                            method="atom", config={"ipc": ipc}, provenance={"seed": seed})


def test_save_load_round_trip_is_exact(tmp_path):
    ds = make()
    path = ds.save(tmp_path / "set")
    assert path.name == "set.safetensors"
    back = CondensedDataset.load(path)
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert (back.classes, back.mean, back.std, back.method, back.config, back.provenance) == \
        (ds.classes, ds.mean, ds.std, ds.method, ds.config, ds.provenance)
    assert back.ipc == 3 and len(back) == 9 and back[4][1] == 1
    assert CondensedDataset.load(tmp_path / "set").images.shape == ds.images.shape  # suffix optional


def test_zca_travels_with_the_file(tmp_path):
    from atom_plugin.zca import ZCA

    ds = make(shape=(1, 4, 4))
    ds.zca = ZCA.fit(torch.randn(64, 1, 4, 4))
    back = CondensedDataset.load(ds.save(tmp_path / "z.safetensors"))
    x = torch.randn(5, 1, 4, 4)
    assert torch.allclose(back.zca.inverse(x), ds.zca.inverse(x), atol=1e-5)


def test_truncated_corrupt_and_foreign_files(tmp_path):
    path = make().save(tmp_path / "ok.safetensors")
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CondensedFileError, match="truncated or corrupt"):
        CondensedDataset.load(tmp_path / "trunc.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CondensedFileError, match="truncated or corrupt"):
        CondensedDataset.load(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CondensedFileError, match="not written by atom-plugin"):
        CondensedDataset.load(tmp_path / "foreign.safetensors")
    header = {"format": "atom-plugin/checkpoint", "format_version": 1}
    save_file({"x": torch.zeros(2)}, str(tmp_path / "ckpt.safetensors"), metadata={"atom_plugin": json.dumps(header)})
    with pytest.raises(CondensedFileError, match="not 'atom-plugin/condensed' data"):
        CondensedDataset.load(tmp_path / "ckpt.safetensors")
    header = {"format": "atom-plugin/condensed", "format_version": 99}
    save_file({"x": torch.zeros(2)}, str(tmp_path / "new.safetensors"), metadata={"atom_plugin": json.dumps(header)})
    with pytest.raises(CondensedFileError, match="upgrade atom-plugin"):
        CondensedDataset.load(tmp_path / "new.safetensors")
    with pytest.raises(CondensedFileError, match="no file"):
        CondensedDataset.load(tmp_path / "missing.safetensors")


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="cannot write"):
        make().save(blocker / "sub" / "set.safetensors")


def test_png_grid_one_row_per_class(tmp_path):
    ds = make(classes=(0, 3), ipc=4, shape=(3, 8, 8))
    p = ds.to_png_grid(tmp_path / "grid.png", scale=1)
    img = Image.open(p).convert("L")
    w, h = img.size
    margin = w - (2 + 4 * (8 + 2))
    assert h == 2 + 2 * (8 + 2) and margin > 0  # a column for the class names on the left of the rows
    names = torch.from_numpy(__import__("numpy").asarray(img.crop((0, 0, margin, h))).copy()).flatten()
    assert int(names.min()) < 128 and float((names == 255).float().mean()) > 0.5  # dark text on white


def test_subset_and_merge():
    a, b = make(classes=(0, 1)), make(classes=(3,), seed=1)
    merged = merge_condensed([b, a])
    assert merged.labels.tolist() == [0, 0, 0, 1, 1, 1, 3, 3, 3]
    assert torch.equal(merged.subset([3]).images, b.images)
    assert merged.images_per_class() == {0: 3, 1: 3, 3: 3}
    with pytest.raises(ConfigError, match="more than one set"):
        merge_condensed([a, a])


def test_from_dataset_keeps_the_source_metadata_and_takes_overrides():
    from atom_plugin.data import ImageTensorDataset
    from atom_plugin.errors import DataError

    x = torch.randn(6, 2, 4, 4)
    real = ImageTensorDataset(x, torch.tensor([0, 0, 1, 1, 2, 2]), ["a", "b", "c"], [0.1, 0.2], [0.3, 0.4],
                              name="toy", dsa_strategy="crop")
    cd = CondensedDataset.from_dataset(real, method="random", provenance={"seed": 3})
    assert isinstance(cd, CondensedDataset) and torch.equal(cd.stored_images, x) and cd.factor == 1
    assert (cd.classes, cd.mean, cd.std, cd.name, cd.dsa_strategy, cd.zca) == (["a", "b", "c"], (0.1, 0.2),
                                                                              (0.3, 0.4), "toy", "crop", None)
    assert (cd.method, cd.config, cd.provenance, cd.ipc) == ("random", None, {"seed": 3}, 2)
    other = CondensedDataset.from_dataset(cd.select([0, 2]), mean=[0.5, 0.5], std=[1, 1], name="renamed")
    assert (other.mean, other.std, other.name, other.method, len(other)) == ((0.5, 0.5), (1.0, 1.0), "renamed",
                                                                             "real", 2)
    with pytest.raises(DataError, match="`dataset` must be an ImageTensorDataset"):
        CondensedDataset.from_dataset([(x[0], 0)])
    with pytest.raises(DataError, match="mean/std"):
        CondensedDataset.from_dataset(real, mean=[0.5])
