"""The dataset loaders read the real on-disk formats written by ``fakedata`` (never the network)."""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from atom_plugin.data import (DEFAULT_DSA_STRATEGY, DIGIT_DSA_STRATEGY, ImageTensorDataset, list_datasets,
                              load_dataset, register_dataset)
from atom_plugin.data import _common, _idx, _registry
from atom_plugin.errors import ConfigError, DataError, DatasetNotFoundError
from fakedata import (FASHION_MNIST_CLASSES, write_cifar10, write_cifar100, write_fashion_mnist, write_imagefolder,
                      write_mnist, write_svhn, write_tinyimagenet)

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No $ATOM_DATA, no Debian system folder, an empty download cache: only what a test writes is found."""
    monkeypatch.delenv("ATOM_DATA", raising=False)
    monkeypatch.setattr(_idx, "FASHION_MNIST_SYSTEM_DIRS", ())
    monkeypatch.setattr(_idx, "MNIST_SYSTEM_DIRS", ())
    monkeypatch.setattr(_common, "DEFAULT_DATA_DIR", str(tmp_path / "cache"))


def normalised(x_uint8: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(x_uint8).float() / 255
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def assert_one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


# -- Fashion-MNIST / MNIST ---------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["flat", "torchvision", "folder"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_fashion_mnist_formats_and_layouts(tmp_path, gz, layout, split):
    fake = write_fashion_mnist(tmp_path, n_train_per_class=3, n_test_per_class=2, gz=gz, layout=layout)
    ds = load_dataset("fashion-mnist", root=tmp_path, split=split, download=False)
    x, y = (fake.train_x, fake.train_y) if split == "train" else (fake.test_x, fake.test_y)
    assert isinstance(ds, ImageTensorDataset)
    assert ds.images.shape == (len(y), 1, 28, 28) and ds.images.dtype == torch.float32
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == y.tolist()
    assert ds.classes == FASHION_MNIST_CLASSES
    assert ds.mean == (0.2861,) and ds.std == (0.3530,)
    assert torch.allclose(ds.images, normalised(x, ds.mean, ds.std), atol=1e-6)
    assert ds.name == "fashion-mnist" and ds.dsa_strategy == DEFAULT_DSA_STRATEGY


def test_tiny_fmnist_fixture_and_aliases(tiny_fmnist_root):
    assert sorted(p.name for p in tiny_fmnist_root.iterdir()) == sorted(
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"])
    a = load_dataset("fashion-mnist", root=tiny_fmnist_root, download=False)
    for alias in ("fmnist", "FashionMNIST", "fashion_mnist"):
        b = load_dataset(alias, root=str(tiny_fmnist_root), download=False)
        assert b.fingerprint() == a.fingerprint() and b.name == "fashion-mnist"
    assert len(a) == 200 and a.class_counts().tolist() == [20] * 10
    assert len(load_dataset("fmnist", root=tiny_fmnist_root, split="test", download=False)) == 100


def test_fake_images_are_learnable(tiny_fmnist_root):
    train = load_dataset("fmnist", root=tiny_fmnist_root, download=False)
    test = load_dataset("fmnist", root=tiny_fmnist_root, split="test", download=False)
    centroids = torch.stack([train.images[train.labels == k].mean(0) for k in range(10)]).flatten(1)
    pred = torch.cdist(test.images.flatten(1), centroids).argmin(1)
    assert (pred == test.labels).float().mean() > 0.5  # chance is 0.1


def test_mnist_torchvision_layout(tmp_path):
    fake = write_mnist(tmp_path, n_train_per_class=2, n_test_per_class=1, layout="torchvision", gz=False)
    assert fake.files_dir == tmp_path / "MNIST" / "raw"
    ds = load_dataset("mnist", root=tmp_path, split="test", download=False)
    assert ds.classes == [str(i) for i in range(10)] and ds.dsa_strategy == DIGIT_DSA_STRATEGY
    assert ds.mean == (0.1307,) and ds.std == (0.3081,)
    assert torch.allclose(ds.images, normalised(fake.test_x, ds.mean, ds.std), atol=1e-6)


@pytest.mark.parametrize("size, hw", [(16, (16, 16)), ((20, 24), (20, 24))])
def test_image_size_resizes(tiny_fmnist_root, size, hw):
    ds = load_dataset("fmnist", root=tiny_fmnist_root, split="test", image_size=size, download=False)
    assert ds.images.shape == (100, 1) + hw


def test_search_order_root_then_env_then_system(tmp_path, monkeypatch):
    in_root = write_fashion_mnist(tmp_path / "root", n_train_per_class=1, n_test_per_class=1)
    in_env = write_fashion_mnist(tmp_path / "env", n_train_per_class=2, n_test_per_class=1, layout="torchvision")
    in_sys = write_fashion_mnist(tmp_path / "sys", n_train_per_class=3, n_test_per_class=1, gz=False)
    monkeypatch.setattr(_idx, "FASHION_MNIST_SYSTEM_DIRS", (str(in_sys.root),))
    assert len(load_dataset("fmnist", download=False)) == 30  # only the system place
    monkeypatch.setenv("ATOM_DATA", str(in_env.root))
    assert len(load_dataset("fmnist", download=False)) == 20  # $ATOM_DATA before the system place
    assert len(load_dataset("fmnist", root=in_root.root, download=False)) == 10  # root first


def test_download_cache_is_searched_and_download_goes_to_root(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    calls = []

    class FakeFashionMNIST:  # stands in for torchvision's downloader: writes the files, no network
        def __init__(self, root, train=True, download=False):
            calls.append(Path(root))
            write_fashion_mnist(root, n_train_per_class=1, n_test_per_class=1, layout="torchvision")

    monkeypatch.setattr(tvd, "FashionMNIST", FakeFashionMNIST)
    root = tmp_path / "empty"
    root.mkdir()
    assert len(load_dataset("fmnist", root=root, download=True)) == 10
    assert calls == [root] and (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    assert len(load_dataset("fmnist", root=root, download=False)) == 10  # found without downloading again
    # without root or $ATOM_DATA the download goes to the cache, which later loads search
    assert len(load_dataset("fmnist", download=True)) == 10
    assert calls[-1] == _common.default_data_dir() == tmp_path / "cache"
    assert len(load_dataset("fmnist", download=False)) == 10


def test_not_found_names_every_place(tmp_path, monkeypatch):
    root, env, system = (tmp_path / n for n in ("root", "env", "system"))
    root.mkdir()
    monkeypatch.setenv("ATOM_DATA", str(env))
    monkeypatch.setattr(_idx, "FASHION_MNIST_SYSTEM_DIRS", (str(system),))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", root=root, download=False)
    msg = assert_one_line(info)
    assert msg.startswith("fashion-mnist not found")
    for place in (root, env, system, tmp_path / "cache"):
        assert str(place) in msg
    assert "FashionMNIST/raw" in msg and "apt-get install dataset-fashion-mnist" in msg and "`root`" in msg


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried https://..., got URLError")

    monkeypatch.setattr(tvd, "FashionMNIST", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path, download=True)
    msg = assert_one_line(info)
    assert f"downloading into {tmp_path} failed" in msg and "URLError" in msg and "apt-get" in msg


def test_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", root=tmp_path / "nope", download=False)
    msg = assert_one_line(info)
    assert str(tmp_path / "nope") in msg and "does not exist" in msg


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_file(tmp_path, gz):
    fake = write_fashion_mnist(tmp_path, n_train_per_class=2, n_test_per_class=1, gz=gz)
    path = fake.files["train_images"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    msg = assert_one_line(info)
    assert str(path) in msg and "truncated" in msg


def test_truncated_payload_inside_valid_gzip(tmp_path):
    fake = write_fashion_mnist(tmp_path, n_train_per_class=2, n_test_per_class=1)
    path = fake.files["train_images"]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(DataError, match="truncated idx file"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


def test_not_an_idx_file_and_count_mismatch(tmp_path):
    fake = write_fashion_mnist(tmp_path, n_train_per_class=2, n_test_per_class=1, gz=False)
    fake.files["train_labels"].write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    msg = assert_one_line(info)
    assert str(fake.files["train_labels"]) in msg and "not an idx1-ubyte file" in msg
    from fakedata import write_idx
    write_idx(fake.files["train_labels"], fake.train_y[:-1].astype(np.uint8), gz=False)
    with pytest.raises(DataError, match="20 images but .* 19 labels"):
        load_dataset("fashion-mnist", root=tmp_path, download=False)


# -- CIFAR / SVHN / Tiny ImageNet ------------------------------------------------------------------------

@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10(tmp_path, split):
    fake = write_cifar10(tmp_path, n_train_per_class=2, n_test_per_class=1)
    ds = load_dataset("cifar10", root=tmp_path, split=split, download=False)
    x, y = (fake.train_x, fake.train_y) if split == "train" else (fake.test_x, fake.test_y)
    assert ds.images.shape == (len(y), 3, 32, 32) and ds.images.dtype == torch.float32
    assert ds.labels.tolist() == y.tolist() and ds.classes == fake.classes
    assert ds.mean == (0.4914, 0.4822, 0.4465) and ds.std == (0.2023, 0.1994, 0.2010)
    assert torch.allclose(ds.images, normalised(x, ds.mean, ds.std), atol=1e-6)
    assert ds.name == "cifar10" and ds.dsa_strategy == DEFAULT_DSA_STRATEGY


def test_cifar100_fine_labels(tmp_path):
    fake = write_cifar100(tmp_path, n_train_per_class=1, n_test_per_class=1)
    ds = load_dataset("cifar100", root=tmp_path, split="test", image_size=16, download=False)
    assert ds.images.shape == (100, 3, 16, 16) and ds.num_classes == 100
    assert ds.labels.tolist() == fake.test_y.tolist() and ds.classes[:2] == ["fine_00", "fine_01"]
    assert ds.mean == (0.5071, 0.4866, 0.4409) and ds.std == (0.2673, 0.2564, 0.2762)


def test_cifar_corrupt_batch(tmp_path):
    fake = write_cifar10(tmp_path, n_train_per_class=1, n_test_per_class=1)
    fake.files["data_batch_3"].write_bytes(fake.files["data_batch_3"].read_bytes()[:50])
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", root=tmp_path, download=False)
    assert "cifar-10-batches-py" in assert_one_line(info)
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python/"):
        load_dataset("cifar100", root=tmp_path, download=False)


def test_svhn_label_10_is_zero(tmp_path):
    pytest.importorskip("scipy")
    fake = write_svhn(tmp_path / "d" / "svhn", n_train_per_class=2, n_test_per_class=1)
    ds = load_dataset("svhn", root=tmp_path / "d", download=False)  # found in d/svhn/
    assert ds.images.shape == (20, 3, 32, 32) and ds.labels.tolist() == fake.train_y.tolist()
    assert 0 in ds.labels.tolist() and ds.classes == [str(i) for i in range(10)]
    assert torch.allclose(ds.images, normalised(fake.train_x, ds.mean, ds.std), atol=1e-6)
    assert ds.dsa_strategy == DIGIT_DSA_STRATEGY and ds.mean == (0.4377, 0.4438, 0.4728)
    assert len(load_dataset("svhn", root=fake.root, split="test", download=False)) == 10


@pytest.mark.parametrize("words", [True, False])
def test_tinyimagenet(tmp_path, words):
    fake = write_tinyimagenet(tmp_path, num_classes=3, n_train_per_class=3, n_val_per_class=2, words=words)
    train = load_dataset("tinyimagenet", root=tmp_path, download=False)
    assert train.images.shape == (9, 3, 64, 64) and train.labels.tolist() == fake.train_y.tolist()
    assert train.classes == fake.classes and train.mean == (0.485, 0.456, 0.406)
    if words:
        assert train.classes[0].startswith("thing ")
    test = load_dataset("tinyimagenet", root=fake.files_dir, split="test", download=False)  # folder itself
    assert test.images.shape == (6, 3, 64, 64) and test.labels.tolist() == fake.test_y.tolist()
    pixels = train.denormalize() * 255  # JPEG is lossy: compare loosely; the grey image is now RGB
    assert (pixels - torch.from_numpy(fake.train_x).float()).abs().mean() < 25


# -- ImageFolder ------------------------------------------------------------------------------------------

def test_imagefolder_flat_is_train_only(tmp_path):
    fake = write_imagefolder(tmp_path / "imgs", sizes=((20, 24),), n_per_class=3)
    ds = load_dataset(tmp_path / "imgs")
    assert ds.images.shape == (9, 3, 20, 24) and ds.classes == ["a", "b", "c"]
    assert ds.labels.tolist() == fake.train_y.tolist() and ds.name == str(tmp_path / "imgs")
    x = torch.from_numpy(fake.train_x).float() / 255
    assert ds.mean == pytest.approx(tuple(x.mean(dim=(0, 2, 3)).tolist()), abs=1e-5)
    assert ds.std == pytest.approx(tuple(x.std(dim=(0, 2, 3), unbiased=False).tolist()), abs=1e-5)
    assert torch.allclose(ds.images, normalised(fake.train_x, ds.mean, ds.std), atol=1e-5)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(str(tmp_path / "imgs"), split="test")
    assert str(tmp_path / "imgs" / "test") in assert_one_line(info)


def test_imagefolder_splits_use_train_statistics(tmp_path):
    fake = write_imagefolder(tmp_path, modes=("L",), n_per_class=2, splits=("train", "test"))
    train = load_dataset(tmp_path, split="train")
    test = load_dataset(tmp_path, split="test")
    assert test.images.shape == (6, 1, 32, 32) and test.labels.tolist() == fake.test_y.tolist()
    assert test.mean == train.mean and test.std == train.std
    assert torch.allclose(test.images, normalised(fake.test_x, train.mean, train.std), atol=1e-5)


def test_imagefolder_mixed_sizes(tmp_path):
    write_imagefolder(tmp_path, sizes=((32, 32), (30, 40)), n_per_class=2)
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path)
    msg = assert_one_line(info)
    assert "several sizes" in msg and "32x32" in msg and "40x30" in msg and "`image_size`" in msg
    ds = load_dataset(tmp_path, image_size=24)
    assert ds.images.shape == (6, 3, 24, 24)


def test_imagefolder_mixed_channels(tmp_path):
    write_imagefolder(tmp_path, modes=("L", "L", "RGBA"), n_per_class=3)
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path)
    assert "grey and colour" in assert_one_line(info) and "`image_size`" in str(info.value)
    ds = load_dataset(tmp_path, image_size=(32, 32))
    assert ds.images.shape == (9, 1, 32, 32)  # the majority (grey) wins


# -- digits -------------------------------------------------------------------------------------------------

def test_digits_fixed_split():
    pytest.importorskip("sklearn")
    train, test = load_dataset("digits"), load_dataset("digits", split="test")
    assert len(train) == 1497 and len(test) == 300
    assert train.image_shape == (1, 32, 32) and test.image_shape == (1, 32, 32)
    assert (train.class_counts() > 0).all() and (test.class_counts() > 0).all()
    assert train.classes == [str(i) for i in range(10)] and train.dsa_strategy == DIGIT_DSA_STRATEGY
    assert test.mean == train.mean and abs(float(train.images.mean())) < 1e-3
    assert load_dataset("digits", split="test").fingerprint() == test.fingerprint()
    assert len(load_dataset("digits", image_size=16)) == 1497


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ConfigError, match="pip install scikit-learn"):
        load_dataset("digits")


# -- registry and arguments ------------------------------------------------------------------------------

def test_unknown_name_bad_split_bad_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_dataset("imagenet-9000")
    msg = assert_one_line(info)
    assert msg.startswith("unknown dataset 'imagenet-9000'; choose one of: ")
    assert "fashion-mnist" in msg and "digits" in msg and msg.endswith("or give an ImageFolder directory")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", split="val")
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset("digits", image_size=(0, 32))


def test_registry(monkeypatch):
    monkeypatch.setattr(_registry, "_LOADERS", dict(_registry._LOADERS))
    monkeypatch.setattr(_registry, "_ALIASES", dict(_registry._ALIASES))
    assert set(list_datasets()) >= {"fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "tinyimagenet",
                                    "digits"}

    @register_dataset("toy", aliases=("toy-set",))
    def load_toy(root, *, split, image_size, download):
        n = 4 if split == "train" else 2
        return ImageTensorDataset(torch.zeros(n, 1, 8, 8), torch.arange(n) % 2, ["x", "y"], [0.0], [1.0],
                                  name="toy")

    assert "toy" in list_datasets() and len(load_dataset("TOY_SET", split="test")) == 2
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("fmnist")(load_toy)


# -- the real Debian files, when installed -------------------------------------------------------------

@pytest.mark.skipif(not (REAL_FMNIST / "train-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.setattr(_idx, "FASHION_MNIST_SYSTEM_DIRS", (str(REAL_FMNIST),))
    ds = load_dataset("fashion-mnist", split="test", download=False)
    assert ds.images.shape == (10000, 1, 28, 28)
    assert ds.class_counts().tolist() == [1000] * 10
    assert abs(float(ds.images.mean())) < 0.05 and abs(float(ds.images.std()) - 1) < 0.05


def test_find_idx_files_is_the_search_of_the_loader_and_the_adapters(tmp_path, monkeypatch):
    from atom_plugin.data import find_idx_files

    tv, deb = tmp_path / "tv", tmp_path / "deb"
    write_fashion_mnist(tv, n_train_per_class=1, n_test_per_class=1, gz=False, layout="torchvision")
    write_fashion_mnist(deb, n_train_per_class=1, n_test_per_class=1, gz=True, layout="flat")
    found = find_idx_files(tv)
    assert list(found) == ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                           "t10k-labels-idx1-ubyte"]
    assert {p.parent for p in found.values()} == {tv / "FashionMNIST" / "raw"}
    monkeypatch.setenv("ATOM_DATA", str(deb))  # searched after root, before the system places
    assert find_idx_files(None, splits=("test",)) == {"t10k-images-idx3-ubyte": deb / "t10k-images-idx3-ubyte.gz",
                                                      "t10k-labels-idx1-ubyte": deb / "t10k-labels-idx1-ubyte.gz"}
    assert find_idx_files(tv)["train-images-idx3-ubyte"].parent == tv / "FashionMNIST" / "raw"  # root first
    (deb / "t10k-labels-idx1-ubyte.gz").unlink()  # an incomplete folder is skipped, not half used
    monkeypatch.delenv("ATOM_DATA")
    with pytest.raises(DatasetNotFoundError) as info:
        find_idx_files(deb, "fashion-mnist", splits=("test",))
    assert "t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]" in assert_one_line(info)
    write_mnist(tmp_path / "m", n_train_per_class=1, n_test_per_class=1, layout="folder")
    assert find_idx_files(tmp_path / "m", "mnist", splits=("train",))["train-labels-idx1-ubyte"].parent.name == "mnist"
    with pytest.raises(ConfigError, match="name must be one of: fashion-mnist, mnist"):
        find_idx_files(tv, "cifar10")
