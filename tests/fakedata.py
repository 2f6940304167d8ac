"""Writers of small, learnable fake datasets in the REAL on-disk formats read by ``atom_plugin.data``.

Every writer returns a :class:`FakeData`: ``root`` is the directory to pass as ``load_dataset(..., root=...)``
(a ``FakeData`` is also path-like, so ``root=fake`` works), and the arrays hold exactly what was written,
in file order, so tests can compare pixel by pixel (JPEG writers excepted: JPEG is lossy).

Images are learnable: each class has its own fixed coarse pattern (and tint, for colour sets); every image is
that pattern, shifted by up to 2 pixels, plus noise, as uint8 0..255. Train and test share the patterns, so a
small ConvNet (or even a nearest-class-mean rule) beats chance by far. Labels are shuffled, as in real files.

Public API (kept stable; other test modules rely on it):

- ``write_fashion_mnist(root, n_train_per_class=20, n_test_per_class=10, gz=True, seed=0, layout="flat")``
- ``write_mnist(root, n_train_per_class=20, n_test_per_class=10, gz=True, seed=0, layout="flat")``
- ``write_cifar10(root, n_train_per_class=10, n_test_per_class=5, seed=0)``
- ``write_cifar100(root, n_train_per_class=2, n_test_per_class=1, seed=0)``
- ``write_svhn(root, n_train_per_class=10, n_test_per_class=5, seed=0)``
- ``write_tinyimagenet(root, num_classes=3, n_train_per_class=4, n_val_per_class=2, seed=0, words=True)``
- ``write_imagefolder(root, sizes=((32, 32),), modes=("RGB",), classes=("a", "b", "c"), n_per_class=4,
  splits=None, seed=0)``
- ``make_images(num_classes, n_per_class, shape, seed, split_seed)`` -> ``(x (N, C, H, W) uint8, y (N,) int64)``
- ``FASHION_MNIST_CLASSES``, ``IDX_FILES``
"""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@dataclass
class FakeData:
    """What a writer produced.

    Attributes:
        root: pass this as ``root=`` to ``load_dataset`` (``os.fspath(fake)`` gives it too).
        files_dir: the folder that actually holds the files (``root`` itself, ``root/FashionMNIST/raw``, ...).
        classes: class names, index = label.
        train_x, test_x: ``(N, C, H, W)`` uint8 as written, in file order (None for mixed-size folders).
        train_y, test_y: ``(N,)`` int64 labels in file order.
        files: the written files, by role (e.g. ``files["train_images"]``).
    """

    root: Path
    files_dir: Path
    classes: list[str]
    train_x: np.ndarray | None
    train_y: np.ndarray
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.root)


# -- learnable images ----------------------------------------------------------------------------------------

def _prototypes(num_classes: int, shape: Sequence[int], seed: int) -> np.ndarray:
    """``(K, C, H, W)`` float patterns in 0..255: a random 4x4 grid per class, upsampled, with a colour tint."""
    c, h, w = shape
    rng = np.random.default_rng(10_000 + seed)
    grid = rng.random((num_classes, 1, 4, 4)) > 0.5
    tint = rng.uniform(0.4, 1.0, size=(num_classes, c, 1, 1)) if c > 1 else np.ones((num_classes, 1, 1, 1))
    rows, cols = (np.arange(h) * 4) // h, (np.arange(w) * 4) // w
    pattern = grid[:, :, rows][:, :, :, cols].astype(np.float64)
    return 30.0 + 190.0 * pattern * tint


def make_images(num_classes: int, n_per_class: int, shape: Sequence[int] = (1, 28, 28), seed: int = 0,
                split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x (N, C, H, W) uint8, y (N,) int64)``, N = num_classes * n_per_class, labels shuffled.

    ``seed`` fixes the class patterns (share it between splits); ``split_seed`` the noise, shifts and order.
    """
    protos = _prototypes(num_classes, shape, seed)
    rng = np.random.default_rng([seed, split_seed])
    y = rng.permutation(np.repeat(np.arange(num_classes), n_per_class)).astype(np.int64)
    x = protos[y] + rng.normal(0.0, 25.0, size=(len(y),) + tuple(shape))
    shifts = rng.integers(-2, 3, size=(len(y), 2))
    for i, (dy, dx) in enumerate(shifts):
        x[i] = np.roll(x[i], (int(dy), int(dx)), axis=(1, 2))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), y


# -- idx (Fashion-MNIST, MNIST) --------------------------------------------------------------------------------

def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding (big-endian header, magic ``0x0000080<ndim>``) of a uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, gz: bool | None = None) -> Path:
    """Write ``array`` as an idx file; gzip-compressed when ``gz`` (default: when ``path`` ends in ``.gz``)."""
    path = Path(path)
    gz = path.suffix == ".gz" if gz is None else gz
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def _write_idx_set(root, subdir, classes, n_train_per_class, n_test_per_class, gz, seed) -> FakeData:
    root = Path(root)
    files_dir = root / subdir
    k = len(classes)
    train_x, train_y = make_images(k, n_train_per_class, (1, 28, 28), seed, split_seed=1)
    test_x, test_y = make_images(k, n_test_per_class, (1, 28, 28), seed, split_seed=2)
    files = {}
    for split, (x, y) in {"train": (train_x, train_y), "test": (test_x, test_y)}.items():
        img_name, lab_name = IDX_FILES[split]
        ext = ".gz" if gz else ""
        files[f"{split}_images"] = write_idx(files_dir / (img_name + ext), x[:, 0], gz)
        files[f"{split}_labels"] = write_idx(files_dir / (lab_name + ext), y.astype(np.uint8), gz)
    return FakeData(root, files_dir, list(classes), train_x, train_y, test_x, test_y, files)


def write_fashion_mnist(root, n_train_per_class: int = 20, n_test_per_class: int = 10, gz: bool = True,
                        seed: int = 0, layout: str = "flat") -> FakeData:
    """A tiny Fashion-MNIST: the four idx files, 28x28 grey, 10 classes.

    Args:
        layout: ``"flat"`` (Debian's: files directly in ``root``), ``"torchvision"`` (``root/FashionMNIST/raw/``)
            or ``"folder"`` (``root/fashion-mnist/``).
        gz: write ``.gz`` files (as Debian and torchvision downloads do) or plain ones.

    Returns a :class:`FakeData` (``train_x`` ``(10 * n_train_per_class, 1, 28, 28)`` uint8, ...).
    """
    sub = {"flat": "", "torchvision": "FashionMNIST/raw", "folder": "fashion-mnist"}[layout]
    return _write_idx_set(root, sub, FASHION_MNIST_CLASSES, n_train_per_class, n_test_per_class, gz, seed)


def write_mnist(root, n_train_per_class: int = 20, n_test_per_class: int = 10, gz: bool = True, seed: int = 0,
                layout: str = "flat") -> FakeData:
    """A tiny MNIST, like :func:`write_fashion_mnist` (``layout="torchvision"``: ``root/MNIST/raw/``)."""
    sub = {"flat": "", "torchvision": "MNIST/raw", "folder": "mnist"}[layout]
    return _write_idx_set(root, sub, [str(i) for i in range(10)], n_train_per_class, n_test_per_class, gz, seed)


# -- CIFAR ----------------------------------------------------------------------------------------------------

def _pickle(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


def _cifar_entry(x: np.ndarray, y: np.ndarray, label_key: str, name: str, extra: dict | None = None) -> dict:
    entry = {"batch_label": name, label_key: [int(v) for v in y], "data": x.reshape(len(x), -1),
             "filenames": [f"img_{i}.png" for i in range(len(x))]}
    entry.update(extra or {})
    return entry


def write_cifar10(root, n_train_per_class: int = 10, n_test_per_class: int = 5, seed: int = 0) -> FakeData:
    """``root/cifar-10-batches-py/``: ``data_batch_1..5`` (train split over five batches), ``test_batch``,
    ``batches.meta``; rows of 3072 uint8 (CHW), labels under ``"labels"``."""
    root = Path(root)
    d = root / "cifar-10-batches-py"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    train_x, train_y = make_images(10, n_train_per_class, (3, 32, 32), seed, split_seed=1)
    test_x, test_y = make_images(10, n_test_per_class, (3, 32, 32), seed, split_seed=2)
    files = {}
    for b, part in enumerate(np.array_split(np.arange(len(train_y)), 5), start=1):
        files[f"data_batch_{b}"] = _pickle(d / f"data_batch_{b}",
                                           _cifar_entry(train_x[part], train_y[part], "labels", f"batch {b}"))
    files["test_batch"] = _pickle(d / "test_batch", _cifar_entry(test_x, test_y, "labels", "test batch"))
    files["meta"] = _pickle(d / "batches.meta", {"label_names": classes, "num_cases_per_batch": len(train_y) // 5,
                                                 "num_vis": 3072})
    return FakeData(root, d, classes, train_x, train_y, test_x, test_y, files)


def write_cifar100(root, n_train_per_class: int = 2, n_test_per_class: int = 1, seed: int = 0) -> FakeData:
    """``root/cifar-100-python/{train, test, meta}``, 100 fine classes (``fine_labels``, ``fine_label_names``)
    and 20 coarse ones (``coarse_labels`` = fine // 5)."""
    root = Path(root)
    d = root / "cifar-100-python"
    classes = [f"fine_{i:02d}" for i in range(100)]
    train_x, train_y = make_images(100, n_train_per_class, (3, 32, 32), seed, split_seed=1)
    test_x, test_y = make_images(100, n_test_per_class, (3, 32, 32), seed, split_seed=2)
    files = {
        "train": _pickle(d / "train", _cifar_entry(train_x, train_y, "fine_labels", "training",
                                                   {"coarse_labels": [int(v) // 5 for v in train_y]})),
        "test": _pickle(d / "test", _cifar_entry(test_x, test_y, "fine_labels", "testing",
                                                 {"coarse_labels": [int(v) // 5 for v in test_y]})),
        "meta": _pickle(d / "meta", {"fine_label_names": classes,
                                     "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)]}),
    }
    return FakeData(root, d, classes, train_x, train_y, test_x, test_y, files)


# -- SVHN -----------------------------------------------------------------------------------------------------

def write_svhn(root, n_train_per_class: int = 10, n_test_per_class: int = 5, seed: int = 0) -> FakeData:
    """``root/train_32x32.mat`` and ``root/test_32x32.mat``: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1) uint8 with
    10 standing for the digit 0 (``train_y``/``test_y`` hold the 0..9 classes)."""
    from scipy.io import savemat

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    train_x, train_y = make_images(10, n_train_per_class, (3, 32, 32), seed, split_seed=1)
    test_x, test_y = make_images(10, n_test_per_class, (3, 32, 32), seed, split_seed=2)
    files = {}
    for split, (x, y) in {"train": (train_x, train_y), "test": (test_x, test_y)}.items():
        stored = np.where(y == 0, 10, y).astype(np.uint8).reshape(-1, 1)
        path = root / f"{split}_32x32.mat"
        savemat(str(path), {"X": np.ascontiguousarray(x.transpose(2, 3, 1, 0)), "y": stored})
        files[split] = path
    return FakeData(root, root, [str(i) for i in range(10)], train_x, train_y, test_x, test_y, files)


# -- image files ----------------------------------------------------------------------------------------------

def _save_image(path: Path, chw: np.ndarray, mode: str, fmt: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0))
    if img.mode != mode:
        img = img.convert(mode)
    img.save(path, format=fmt)


def write_tinyimagenet(root, num_classes: int = 3, n_train_per_class: int = 4, n_val_per_class: int = 2,
                       seed: int = 0, words: bool = True) -> FakeData:
    """``root/tiny-imagenet-200/`` with ``num_classes`` wnids: ``wnids.txt`` (unsorted, as the real one),
    ``words.txt`` (when ``words``), ``train/<wnid>/images/<wnid>_<i>.JPEG`` (+ ``<wnid>_boxes.txt``),
    ``val/images/val_<i>.JPEG`` and ``val/val_annotations.txt``; 64x64 JPEGs, the first train image of each
    class saved grey (mode ``L``). ``classes`` are the readable names in sorted-wnid order; arrays are the
    pixels before JPEG compression, train in (sorted wnid, file name) order, val in annotation order."""
    root = Path(root)
    d = root / "tiny-imagenet-200"
    wnids = [f"n{1000 + 7 * i:08d}" for i in range(num_classes)][::-1]  # reverse: sorting matters
    order = sorted(wnids)
    names = {w: f"thing {w[-4:]}, synonym" for w in wnids}
    (d / "train").mkdir(parents=True, exist_ok=True)
    (d / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    if words:
        (d / "words.txt").write_text("n00000001\tentity\n" + "".join(f"{w}\t{names[w]}\n" for w in wnids))
    train_x, train_y = make_images(num_classes, n_train_per_class, (3, 64, 64), seed, split_seed=1)
    val_x, val_y = make_images(num_classes, n_val_per_class, (3, 64, 64), seed, split_seed=2)
    sort = np.argsort(train_y, kind="stable")
    train_x, train_y = train_x[sort], train_y[sort]
    counters = [0] * num_classes
    for x, k in zip(train_x, train_y):
        w = order[k]
        i = counters[k]
        counters[k] += 1
        _save_image(d / "train" / w / "images" / f"{w}_{i}.JPEG", x, "L" if i == 0 else "RGB", "JPEG")
        with open(d / "train" / w / f"{w}_boxes.txt", "a") as f:
            f.write(f"{w}_{i}.JPEG\t0\t0\t63\t63\n")
    lines = []
    for i, (x, k) in enumerate(zip(val_x, val_y)):
        _save_image(d / "val" / "images" / f"val_{i}.JPEG", x, "RGB", "JPEG")
        lines.append(f"val_{i}.JPEG\t{order[k]}\t0\t0\t63\t63\n")
    (d / "val" / "val_annotations.txt").write_text("".join(lines))
    classes = [names[w].split(",")[0] for w in order] if words else order
    return FakeData(root, d, classes, train_x, train_y, val_x, val_y, {"wnids": d / "wnids.txt"})


def write_imagefolder(root, sizes: Sequence[tuple[int, int]] = ((32, 32),), modes: Sequence[str] = ("RGB",),
                      classes: Sequence[str] = ("a", "b", "c"), n_per_class: int = 4,
                      splits: Sequence[str] | None = None, seed: int = 0) -> FakeData:
    """PNG files in torchvision's ImageFolder layout: ``root/<class>/<class>_<i>.png`` or, with
    ``splits=("train", "test")``, ``root/<split>/<class>/...``.

    ``sizes`` are ``(H, W)`` and ``modes`` PIL modes (``"L"``, ``"RGB"``, ``"RGBA"``), cycled over the images
    of each class (image i gets ``sizes[i % len(sizes)]``), so one entry gives a uniform folder. ``train_x``/
    ``test_x`` (``(N, C, H, W)`` uint8, class-then-file order) are set only when the folder is uniform.
    """
    root = Path(root)
    out = {}
    for s_i, split in enumerate(splits or ["train"]):
        base = root / split if splits else root
        xs, ys = [], []
        for k, name in enumerate(classes):
            for i in range(n_per_class):
                h, w = sizes[i % len(sizes)]
                mode = modes[i % len(modes)]
                c = 1 if mode == "L" else 3
                xk = _class_image(len(classes), k, (c, h, w), seed, 1000 * s_i + 100 * k + i)
                _save_image(base / name / f"{name}_{i:03d}.png", xk, mode)
                xs.append(xk)
                ys.append(k)
        uniform = len(set(sizes)) == 1 and len({1 if m == "L" else 3 for m in modes}) == 1
        out[split] = (np.stack(xs) if uniform else None, np.array(ys, dtype=np.int64))
    train = out.get("train", (None, np.zeros(0, dtype=np.int64)))
    test = out.get("test", (None, None))
    return FakeData(root, root, list(classes), train[0], train[1], test[0], test[1])


def _class_image(num_classes: int, k: int, shape: Sequence[int], seed: int, noise_seed: int) -> np.ndarray:
    """One ``(C, H, W)`` uint8 image of class ``k``."""
    proto = _prototypes(num_classes, shape, seed)[k]
    rng = np.random.default_rng([seed, noise_seed])
    return np.clip(np.rint(proto + rng.normal(0.0, 25.0, size=proto.shape)), 0, 255).astype(np.uint8)
