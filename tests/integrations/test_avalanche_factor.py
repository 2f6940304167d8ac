"""Factorised (multi-formation) memories in the Avalanche buffer, and DSA on memory samples (``MemoryDSAPlugin``).

Benchmarks as in ``test_avalanche.py``: Avalanche's ``SplitFMNIST`` on a tiny generated Fashion-MNIST (6 train
images per class) and hand-made tensor experiences. The ``atom`` preset's per-IPC table (``ATOM_BY_IPC``) gives
factor 2 up to 10 stored images per class and factor 1 above; ``iterations=0`` keeps the (encoded) real initial
images where a test checks bookkeeping only.
"""
from __future__ import annotations

import dataclasses
import types
import warnings

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("avalanche")

from avalanche.benchmarks.classic import SplitFMNIST  # noqa: E402
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin, SupervisedPlugin  # noqa: E402

from atom_plugin import ATOMConfig, build_model  # noqa: E402
from atom_plugin.config import preset_defaults  # noqa: E402
from atom_plugin.errors import ConfigError  # noqa: E402
from atom_plugin.integrations.avalanche import (ATOMBuffer, ATOMReplayPlugin, CondensedGDumbPlugin,  # noqa: E402
                                                MemoryDSAPlugin, default_config, group_factor)
from atom_plugin.multiformation import decode  # noqa: E402
from fakedata import write_fashion_mnist  # noqa: E402

TABLE = ATOMConfig(preset="atom", iterations=0, batch_real=4, width=8, dsa=False)  # factor from the table
TINY_TABLE = dataclasses.replace(TABLE, iterations=1)
CPU = types.SimpleNamespace(device=torch.device("cpu"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("avalanche_fmnist_factor")
    write_fashion_mnist(root, n_train_per_class=6, n_test_per_class=3, gz=False, seed=0, layout="torchvision")
    return SplitFMNIST(5, seed=0, dataset_root=str(root))


def tensor_experience(classes, exp_id, n):
    g = torch.Generator().manual_seed(exp_id)
    x = torch.randn(n * len(classes), 1, 28, 28, generator=g)
    y = torch.tensor(classes).repeat_interleave(n)
    return types.SimpleNamespace(dataset=_make_taskaware_tensor_classification_dataset(x, y, task_labels=0),
                                 current_experience=exp_id)


def quiet_evaluator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EvaluationPlugin(loggers=[])


def model():
    torch.manual_seed(0)
    return build_model("convnet", channels=1, num_classes=10, image_size=(28, 28), width=8)


class Probe(SupervisedPlugin):
    """Records every minibatch (x, y) and the adapted dataset of each experience."""

    def __init__(self):
        super().__init__()
        self.batches, self.datasets = {}, {}

    def before_forward(self, strategy, **kwargs):
        e = strategy.experience.current_experience
        self.batches.setdefault(e, []).append((strategy.mb_x.clone(), strategy.mb_y.clone()))
        self.datasets.setdefault(e, strategy.adapted_dataset)


# -- sizes: stored vs decoded -------------------------------------------------------------------------------------

def test_default_config_takes_the_cores_per_ipc_table():
    cfg = default_config()
    assert cfg.preset == "atom" and cfg.factor is None and cfg.networks is None
    for ipc in (1, 5, 10, 11, 50):
        assert group_factor(cfg, ipc) == preset_defaults("atom", ipc).factor
    assert group_factor(cfg, 10) == 2 and group_factor(cfg, 11) == 1  # the table's rows today
    assert group_factor(cfg.replace(factor=1), 10) == 1  # an explicit factor wins
    # the start: random real images at every share (the core's table says herding above IPC 10), unless set
    assert cfg.init == "real" and preset_defaults("atom", 50).init == "herding"
    assert ATOMBuffer(100, config=ATOMConfig(iterations=1), progress=False).config.init == "real"
    assert ATOMBuffer(100, config=ATOMConfig(iterations=1, init="herding"), progress=False).config.init == "herding"


def test_factorised_memory_counts_stored_images_and_serves_decoded_samples(bench):
    exp = bench.train_stream[0]
    buf = ATOMBuffer(8, config=TABLE, progress=False)
    buf.post_adapt(CPU, exp)
    a, b = sorted(exp.classes_in_this_experience)
    assert buf.images_per_class() == {a: 4, b: 4} and buf.stored_size == 8 == buf.max_size
    assert buf.images_per_class(decoded=True) == {a: 16, b: 16} and len(buf.buffer) == buf.decoded_size == 32
    assert set(buf.factors().values()) == {2}
    for group in buf.buffer_groups.values():
        assert group.max_size == 4 and len(group.buffer) == 16 and group.condensed.stored_images.shape[0] == 4
    h = buf.history[-1]
    assert h["memory_size"] == 8 and h["memory_decoded"] == 32
    assert set(h["images_per_class"].values()) == {4} and set(h["decoded_per_class"].values()) == {16}
    assert set(h["factor_per_class"].values()) == {2}
    # items: the benchmark's shape and dtype; each is the decoding of the stored images, in the benchmark's
    # (normalised) space: with 0 iterations every decoded sample is a real sample shrunk to a tile and grown back
    ref_x = exp.dataset.eval()[0][0]
    items = [buf.buffer[i] for i in range(len(buf.buffer))]
    xs = torch.stack([x for x, _, _ in items])
    assert xs.shape[1:] == ref_x.shape and xs.dtype == ref_x.dtype
    assert sorted(y for _, y, _ in items) == [a] * 16 + [b] * 16 and {t for _, _, t in items} == {0}
    stored = torch.cat([g.condensed.stored_images for g in buf.buffer_groups.values()])
    assert torch.equal(xs, decode(stored, 2))
    ds = exp.dataset.eval()
    real = torch.stack([ds[i][0] for i in range(len(ds))])
    blurred = F.interpolate(F.interpolate(real, size=(14, 14), mode="bilinear", align_corners=False, antialias=True),
                            size=(28, 28), mode="bilinear", align_corners=False)
    dist = torch.cdist(xs.flatten(1), blurred.flatten(1))
    assert dist.min(1).values.max() < 0.05 < 50 * 0.05 < dist.median()  # each is one blurred real sample (to rounding)


def test_shrinking_recondenses_into_the_share_and_its_factor():
    buf = ATOMBuffer(24, config=TINY_TABLE, progress=False)
    buf.post_adapt(CPU, tensor_experience([0, 1], 0, n=12))  # shares 12 > 10: factor 1
    assert buf.images_per_class() == {0: 12, 1: 12} and set(buf.factors().values()) == {1} and len(buf.buffer) == 24
    old = {k: g.condensed.images.clone() for k, g in buf.buffer_groups.items()}
    buf.post_adapt(CPU, tensor_experience([2, 3], 1, n=12))  # shares 6 <= 10: factor 2, old classes re-condensed
    assert buf.images_per_class() == {0: 6, 1: 6, 2: 6, 3: 6} and buf.stored_size == 24
    assert set(buf.factors().values()) == {2} and buf.images_per_class(decoded=True) == {k: 24 for k in range(4)}
    assert sorted(map(tuple, buf.history[-1]["recondensed"])) == sorted(old)
    for key, before in old.items():  # re-condensed (one iteration from the decoded samples), not truncated
        assert torch.cdist(buf.condensed[key].images.flatten(1), before.flatten(1)).min() > 1e-4
    group = buf.buffer_groups[(0, 0)]
    group.resize(CPU, 3)  # Avalanche's per-group resize: stored count = the new share, at that share's factor
    assert group.max_size == 3 and group.factor == 2 and len(group.buffer) == 12 and buf.stored_size == 21
    assert buf.get_group_lengths(4) == [6, 6, 6, 6]  # the policy's accounting stays in stored images


def test_an_explicit_factor_is_honoured():
    one = ATOMBuffer(8, config=TABLE.replace(factor=1), progress=False)  # the table would say 2 at share 4
    one.post_adapt(CPU, tensor_experience([0, 1], 0, n=12))
    assert set(one.factors().values()) == {1} and one.decoded_size == one.stored_size == 8
    two = ATOMBuffer(24, config=TABLE.replace(factor=2), progress=False)  # the table would say 1 at share 12
    two.post_adapt(CPU, tensor_experience([0, 1], 0, n=12))
    assert set(two.factors().values()) == {2} and two.stored_size == 24 and two.decoded_size == 96
    bad = ATOMBuffer(8, config=TABLE.replace(factor=3), progress=False)
    with pytest.raises(ConfigError, match="factor 3 does not divide the image size 28x28"):
        bad.post_adapt(CPU, tensor_experience([0, 1], 0, n=12))


# -- the plugins train on decoded samples ---------------------------------------------------------------------------

def test_replay_minibatches_collate_decoded_memory_items(bench):
    net = model()
    plugin = ATOMReplayPlugin(mem_size=8, config=TABLE, progress=False, batch_size_mem=4)
    probe = Probe()
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.01), train_mb_size=4,
                     train_epochs=1, device="cpu", plugins=[plugin, probe], evaluator=quiet_evaluator())
    for exp in (bench.train_stream[0], bench.train_stream[1]):
        strategy.train(exp, eval_streams=[])
    buf = plugin.storage_policy
    assert buf.stored_size == 8 and buf.decoded_size == 4 * 2 * 4  # 4 classes x 2 stored x factor 2²
    first = set(bench.train_stream[0].classes_in_this_experience)
    for x, y in probe.batches[1]:
        assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert set(y[4:].tolist()) <= first  # the memory part: decoded samples of the first experience's classes
    metrics = strategy.evaluator.get_all_metrics()
    assert metrics["MemorySize/train_phase/train_stream"][1][-1] == 8
    assert metrics["MemoryDecoded/train_phase/train_stream"][1][-1] == 32


def test_condensed_gdumb_trains_on_the_decoded_samples(bench):
    net = model()
    plugin = CondensedGDumbPlugin(mem_size=6, config=TABLE, progress=False)
    probe = Probe()
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), train_mb_size=4,
                     train_epochs=2, device="cpu", plugins=[plugin, probe], evaluator=quiet_evaluator())
    strategy.train(bench.train_stream[0], eval_streams=[])
    buf = plugin.storage_policy
    assert buf.stored_size == 6 and buf.decoded_size == 24  # shares 3 and 3 at factor 2
    assert sum(x.shape[0] for x, _ in probe.batches[0]) == 2 * 24


# -- DSA on memory samples ------------------------------------------------------------------------------------------

def replay_batches(bench, memory_dsa: bool):
    net = model()
    plugins = [ATOMReplayPlugin(mem_size=8, config=TABLE, progress=False, batch_size_mem=4)]
    if memory_dsa:
        plugins.append(MemoryDSAPlugin(memory_only=False, seed=3))
    probe = Probe()
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.01), train_mb_size=4,
                     train_epochs=1, device="cpu", plugins=plugins + [probe], evaluator=quiet_evaluator())
    torch.manual_seed(0)
    for exp in (bench.train_stream[0], bench.train_stream[1]):
        strategy.train(exp, eval_streams=[])
    return probe.batches, plugins[-1]


def test_memory_dsa_changes_the_memory_part_of_replay_batches_only(bench):
    plain, _ = replay_batches(bench, False)
    again, _ = replay_batches(bench, False)
    augmented, dsa = replay_batches(bench, True)
    assert dsa.augmented == [1]  # no memory during the first experience
    for (x0, y0), (x1, y1), (xa, ya) in zip(plain[1], again[1], augmented[1]):
        assert torch.equal(x0, x1)  # off: the same batches
        assert torch.equal(y0, ya) and torch.equal(x0[:4], xa[:4])  # the current data untouched
    assert not torch.equal(torch.cat([x[4:] for x, _ in plain[1]]), torch.cat([x[4:] for x, _ in augmented[1]]))
    for (x0, _), (xa, _) in zip(plain[0], augmented[0]):
        assert torch.equal(x0, xa)  # the first experience has no memory: nothing to augment


def test_memory_dsa_augments_gdumbs_memory(bench):
    net = model()
    plugin = CondensedGDumbPlugin(mem_size=6, config=TABLE, progress=False)
    dsa = MemoryDSAPlugin(memory_only=True, seed=3)
    probe = Probe()
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), train_mb_size=4,
                     train_epochs=1, device="cpu", plugins=[plugin, dsa, probe], evaluator=quiet_evaluator())
    strategy.train(bench.train_stream[0], eval_streams=[])
    memory, trained = plugin.storage_policy.buffer, probe.datasets[0]
    assert len(trained) == len(memory) == 24 and dsa.augmented == [0]
    assert [trained[i][1] for i in range(24)] == [memory[i][1] for i in range(24)]
    assert sum(not torch.equal(trained[i][0], memory[i][0]) for i in range(24)) > 12


def test_the_recipe_adds_the_dsa_plugin_only_when_on():
    from atom_plugin.integrations.avalanche import QUICK_RECIPE, build_strategy

    def plugins(method, on):
        recipe = dataclasses.replace(QUICK_RECIPE, memory_dsa=on)
        strategy, _ = build_strategy(method, memory=10, recipe=recipe, num_classes=10, image_shape=(1, 28, 28),
                                     device="cpu", seed=0)
        return [p for p in strategy.plugins if isinstance(p, MemoryDSAPlugin)]

    for method in ("replay", "herding", "gdumb", "atom-replay", "atom-gdumb"):
        assert plugins(method, False) == []
        (p,) = plugins(method, True)
        assert p.memory_only == (method in ("gdumb", "atom-gdumb"))
    assert plugins("naive", True) == []  # no memory, nothing to augment
