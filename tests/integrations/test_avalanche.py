"""The Avalanche integration (``atom_plugin.integrations.avalanche``) on tiny generated benchmarks (CPU, seconds).

Benchmarks: Avalanche's own ``SplitFMNIST`` reading a tiny generated Fashion-MNIST (``fakedata``, 6 train / 3 test
images per class, uncompressed idx files in ``ROOT/FashionMNIST/raw/``), and hand-made experiences built from
tensors for the image-shape check. Condensation budgets are tiny (0-2 iterations, width 8).
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import types
import warnings

import pytest
import torch

pytest.importorskip("avalanche")

from avalanche.benchmarks.classic import SplitFMNIST  # noqa: E402
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin, SupervisedPlugin  # noqa: E402
from avalanche.training.storage_policy import (BalancedExemplarsBuffer, ClassBalancedBuffer,  # noqa: E402
                                               ExemplarsBuffer)

from atom_plugin import ATOMConfig, CondenseCallback, build_model  # noqa: E402
from atom_plugin.errors import ConfigError, DataError, DatasetNotFoundError  # noqa: E402
from atom_plugin.integrations.avalanche import (ATOMBuffer, ATOMReplayPlugin, AvalancheMissingError,  # noqa: E402
                                                CondensedGDumbPlugin, fashion_mnist_root)
from fakedata import write_fashion_mnist  # noqa: E402

N_TRAIN = 6  # real train images per class
# iterations=0 keeps the real initial images (fast) where a test only checks the bookkeeping.
STILL = ATOMConfig(preset="dm", iterations=0, batch_real=4, width=8, dsa=False)
TINY = ATOMConfig(preset="dm", iterations=2, batch_real=4, width=8)
CPU = types.SimpleNamespace(device=torch.device("cpu"))  # a minimal "strategy" for post_adapt


@pytest.fixture(scope="module")
def fm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("avalanche_fmnist")
    write_fashion_mnist(root, n_train_per_class=N_TRAIN, n_test_per_class=3, gz=False, seed=0, layout="torchvision")
    return root


@pytest.fixture(scope="module")
def bench(fm_root):
    return SplitFMNIST(5, seed=0, dataset_root=str(fm_root))


def real_images(exp) -> torch.Tensor:
    ds = exp.dataset.eval()
    return torch.stack([ds[i][0] for i in range(len(ds))])


def model(width=8):
    torch.manual_seed(0)
    return build_model("convnet", channels=1, num_classes=10, image_size=(28, 28), width=width)


def quiet_evaluator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return EvaluationPlugin(loggers=[])


# -- the buffer -------------------------------------------------------------------------------------------------

def test_buffer_fills_with_exact_counts_and_benchmark_items(bench):
    exp = bench.train_stream[0]
    buf = ATOMBuffer(7, config=STILL, progress=False)
    assert isinstance(buf, ExemplarsBuffer) and len(buf.buffer) == 0
    buf.post_adapt(CPU, exp)
    a, b = sorted(exp.classes_in_this_experience)
    assert buf.images_per_class() == {a: 4, b: 3}  # floor 3, +1 for the first class (rank by class index)
    assert len(buf.buffer) == 7
    ref = exp.dataset[0]
    labels = []
    for item in buf.buffer:
        x, y, t = item
        assert isinstance(x, torch.Tensor) and x.shape == ref[0].shape and x.dtype == ref[0].dtype
        assert isinstance(y, int) and isinstance(t, int) and t == 0
        labels.append(y)
    assert sorted(labels) == [a] * 4 + [b] * 3
    norm = buf.normalization
    assert norm["source"] == "Normalize transform" and norm["mean"] == (0.286,) and norm["std"] == (0.353,)
    assert norm["core_dataset"] == "fashion-mnist" and norm["matches_core"] is True
    assert buf.history[0]["memory_size"] == 7


def test_per_class_policy_grows_and_caps(bench):
    buf = ATOMBuffer(10, config=STILL, policy="per_class", images_per_class=2, progress=False)
    buf.post_adapt(CPU, bench.train_stream[0])
    buf.post_adapt(CPU, bench.train_stream[1])
    assert set(buf.images_per_class().values()) == {2} and len(buf.buffer) == 8
    with pytest.raises(ConfigError, match="per_class.*needs 12 images.*max_size=10"):
        buf.post_adapt(CPU, bench.train_stream[2])
    assert len(buf.buffer) == 8  # unchanged by the failed update
    buf.resize(CPU, 6)  # no longer fits: every class re-condensed to 6 // 4 = 1 image
    assert buf.ipc == 1 and set(buf.images_per_class().values()) == {1} and len(buf.buffer) == 4


def test_budget_shrinks_by_recondensing_not_truncating(bench):
    buf = ATOMBuffer(8, config=TINY, progress=False, seed=1)
    buf.post_adapt(CPU, bench.train_stream[0])
    before = {k: cd.images.clone() for k, cd in buf.condensed.items()}
    assert set(buf.images_per_class().values()) == {4}
    buf.post_adapt(CPU, bench.train_stream[1])
    counts = buf.images_per_class()
    assert len(counts) == 4 and set(counts.values()) == {2} and len(buf.buffer) == 8 <= buf.max_size
    assert sorted(map(tuple, buf.history[-1]["recondensed"])) == sorted(before)
    for key, old in before.items():
        new = buf.condensed[key].images
        assert new.shape[0] == 2
        # not a prefix, nor any subset, of the old images: every new image is new
        assert torch.cdist(new.flatten(1), old.flatten(1)).min() > 1e-4
    # resize shrinks again, keeping every class
    buf.resize(CPU, 5)
    counts = buf.images_per_class()
    assert len(counts) == 4 and sum(counts.values()) == 5 and buf.max_size == 5 and len(buf.buffer) == 5


# -- the plugins ------------------------------------------------------------------------------------------------

def test_replay_plugin_accepts_the_policy():
    plugin = ATOMReplayPlugin(mem_size=30, config=STILL, progress=False)
    assert isinstance(plugin, ReplayPlugin) and isinstance(plugin.storage_policy, ATOMBuffer)
    assert plugin.storage_policy.max_size == plugin.mem_size == 30
    assert not getattr(plugin, "supports_distributed", False)
    assert ReplayPlugin(mem_size=30, storage_policy=ATOMBuffer(30, config=STILL)).storage_policy.max_size == 30
    with pytest.raises(AssertionError):
        ReplayPlugin(mem_size=20, storage_policy=ATOMBuffer(30, config=STILL))


class BatchProbe(SupervisedPlugin):
    """Records, per experience, the minibatch sizes and the model's parameters when training starts."""

    def __init__(self):
        super().__init__()
        self.sizes, self.start_params, self.datasets = {}, {}, {}

    def before_training_epoch(self, strategy, **kwargs):
        e = strategy.experience.current_experience
        if e not in self.start_params:
            self.start_params[e] = copy.deepcopy(strategy.model.state_dict())
            self.datasets[e] = strategy.adapted_dataset

    def after_training_iteration(self, strategy, **kwargs):
        e = strategy.experience.current_experience
        self.sizes.setdefault(e, []).append(int(strategy.mb_x.shape[0]))


def test_naive_with_atom_replay_two_experiences(bench):
    net = model()
    plugin = ATOMReplayPlugin(mem_size=8, config=TINY, progress=False, batch_size_mem=4)
    probe = BatchProbe()
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.01), train_mb_size=4,
                     train_epochs=1, device="cpu", plugins=[plugin, probe], evaluator=quiet_evaluator())
    exps = [bench.train_stream[0], bench.train_stream[1]]
    for exp in exps:
        strategy.train(exp, eval_streams=[])
    buf = plugin.storage_policy
    assert len(buf.buffer) == 8 and len(buf.images_per_class()) == 4 and len(buf.history) == 2
    # the second experience's minibatches carry memory items (4 current + 4 memory)
    assert max(probe.sizes[0]) == 4 and max(probe.sizes[1]) == 8
    # condensed, not copied: every memory image differs from every real sample
    real = torch.cat([real_images(e) for e in exps]).flatten(1)
    mem = torch.stack([buf.buffer[i][0] for i in range(len(buf.buffer))]).flatten(1)
    assert torch.cdist(mem, real).min() > 1e-4
    metrics = strategy.evaluator.get_all_metrics()
    assert "CondenseTime_Exp/train_phase/train_stream/Exp001" in metrics
    assert metrics["MemorySize/train_phase/train_stream"][1][-1] == 8
    assert plugin.condense_seconds == pytest.approx(sum(h["seconds"] for h in buf.history))


def test_condensed_gdumb_resets_model_and_trains_on_memory_only(bench):
    net = model()
    initial = copy.deepcopy(net.state_dict())
    plugin = CondensedGDumbPlugin(mem_size=6, config=TINY, progress=False)
    probe = BatchProbe()
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), train_mb_size=4,
                     train_epochs=2, device="cpu", plugins=[plugin, probe], evaluator=quiet_evaluator())
    exps = [bench.train_stream[0], bench.train_stream[1]]
    for e, exp in enumerate(exps):
        strategy.train(exp, eval_streams=[])
        buf = plugin.storage_policy
        # the memory already held the new classes when training started, and it was the only training data
        assert probe.datasets[e] is buf.buffer
        assert set(exp.classes_in_this_experience) <= set(buf.images_per_class())
        assert sum(probe.sizes[e]) == 2 * len(buf.buffer)  # 2 epochs over the memory, nothing else
    for e in (0, 1):  # every experience starts from the initial weights ...
        for name, value in initial.items():
            assert torch.equal(probe.start_params[e][name], value), name
    # ... although training changed them
    assert any(not torch.equal(strategy.model.state_dict()[n], v) for n, v in initial.items())
    assert len(plugin.storage_policy.buffer) == 6


# -- bad input --------------------------------------------------------------------------------------------------

def test_memory_smaller_than_classes_seen(bench):
    buf = ATOMBuffer(3, config=STILL, progress=False)
    buf.post_adapt(CPU, bench.train_stream[0])
    with pytest.raises(ConfigError, match="memory of 3 images cannot hold the 4 classes"):
        buf.check_experience(bench.train_stream[1])  # what the plugins call before training
    with pytest.raises(ConfigError, match="raise mem_size to >= 4"):
        buf.post_adapt(CPU, bench.train_stream[1])
    assert len(buf.buffer) == 3


def test_classes_with_fewer_samples_than_their_share(bench):
    buf = ATOMBuffer(100, config=STILL, progress=False)
    with pytest.warns(UserWarning, match=f"only {N_TRAIN} real samples, fewer than its memory share of 50"):
        buf.post_adapt(CPU, bench.train_stream[0])
    assert set(buf.images_per_class().values()) == {N_TRAIN} and len(buf.buffer) == 2 * N_TRAIN
    strict = ATOMBuffer(100, config=STILL, progress=False, small_class="error")
    with pytest.raises(DataError, match="fewer than its memory share"):
        strict.post_adapt(CPU, bench.train_stream[0])


def tensor_experience(shape, classes, exp_id, n=4):
    x = torch.randn(n * len(classes), *shape)
    y = torch.tensor(classes).repeat_interleave(n)
    ds = _make_taskaware_tensor_classification_dataset(x, y, task_labels=0)
    return types.SimpleNamespace(dataset=ds, current_experience=exp_id)


def test_new_image_shape_and_missing_device():
    buf = ATOMBuffer(8, config=STILL, progress=False)
    with pytest.raises(ConfigError, match="no .device"):
        buf.post_adapt(types.SimpleNamespace(), tensor_experience((1, 28, 28), [0, 1], 0))
    buf.post_adapt(CPU, tensor_experience((1, 28, 28), [0, 1], 0))
    assert buf.normalization["source"] == "unknown"
    with pytest.raises(DataError, match=r"shape \(3, 32, 32\) but the memory holds \(1, 28, 28\)"):
        buf.post_adapt(CPU, tensor_experience((3, 32, 32), [2, 3], 1))
    with pytest.raises(DataError, match=r"shape \(3, 32, 32\)"):
        buf.check_experience(tensor_experience((3, 32, 32), [2, 3], 1))
    with_device = ATOMBuffer(8, config=STILL, progress=False, device="cpu")
    with_device.post_adapt(types.SimpleNamespace(), tensor_experience((1, 28, 28), [0, 1], 0))
    assert len(with_device.buffer) == 8


def test_returning_class_is_condensed_anew():
    buf = ATOMBuffer(6, config=STILL, progress=False)
    buf.post_adapt(CPU, tensor_experience((1, 28, 28), [0, 1], 0))
    with pytest.warns(UserWarning, match="already in memory"):
        buf.post_adapt(CPU, tensor_experience((1, 28, 28), [1, 2], 1))
    assert list(buf.images_per_class()) == [0, 1, 2]  # arrival order kept
    assert buf.images_per_class() == {0: 2, 1: 2, 2: 2} and len(buf.buffer) == 6
    assert buf.history[-1]["recondensed"] == [[0, 0]]  # only the class that did not come back


def test_bad_arguments():
    with pytest.raises(ConfigError, match=r"policy must be one of: budget, per_class \(got 'fifo'\)"):
        ATOMBuffer(10, policy="fifo")
    with pytest.raises(ConfigError, match="small_class must be one of: cap, error"):
        ATOMBuffer(10, small_class="drop")
    with pytest.raises(ConfigError, match="images_per_class applies only"):
        ATOMBuffer(10, images_per_class=2)
    with pytest.raises(ConfigError, match="max_size"):
        ATOMReplayPlugin(mem_size=0)
    with pytest.raises(ConfigError, match="unknown preset"):
        CondensedGDumbPlugin(mem_size=10, config=ATOMConfig(preset="nope"))


def test_reduced_recipes_change_sizes_only():
    """The cpu and quick budgets shrink the recipe; the rules every method shares stay those of Recipe()."""
    from atom_plugin.integrations.avalanche import RECIPES, Recipe

    assert set(RECIPES) == {"full", "cpu", "quick"} and RECIPES["full"] == Recipe()
    rules = ("model", "depth", "norm", "lr", "momentum", "weight_decay", "memory_dsa", "condense_preset",
             "condense_factor")
    for name, recipe in RECIPES.items():
        assert {k: getattr(recipe, k) for k in rules} == {k: getattr(Recipe(), k) for k in rules}, name
    assert RECIPES["quick"].condense_iterations < RECIPES["cpu"].condense_iterations < Recipe().condense_iterations


def test_normalisation_differing_from_the_core_warns(bench):
    buf = ATOMBuffer(4, config=STILL, progress=False, mean=(0.5,), std=(0.5,))
    with pytest.warns(UserWarning, match=r"the core uses \(0.2861,\)"):
        buf.post_adapt(CPU, bench.train_stream[0])
    assert buf.normalization["source"] == "argument" and buf.normalization["matches_core"] is False


def test_missing_avalanche_message(monkeypatch):
    from atom_plugin.integrations.avalanche._compat import require_avalanche

    monkeypatch.setitem(sys.modules, "avalanche", None)
    with pytest.raises(AvalancheMissingError, match=r"pip install 'atom-plugin\[avalanche\]'"):
        require_avalanche()
    assert issubclass(AvalancheMissingError, ImportError)


def test_core_and_package_do_not_import_avalanche():
    code = ("import sys, atom_plugin, atom_plugin.integrations.avalanche as a; "
            "a.fashion_mnist_root; assert 'avalanche' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- the data helper (no Avalanche needed) ------------------------------------------------------------------------

def test_fashion_mnist_root_layouts(tmp_path, monkeypatch):
    from atom_plugin.data import _common, _idx

    monkeypatch.setattr(_idx, "FASHION_MNIST_SYSTEM_DIRS", ())  # the core's search is the adapter's
    monkeypatch.setattr(_common, "DEFAULT_DATA_DIR", str(tmp_path / "core-cache"))
    monkeypatch.delenv("ATOM_DATA", raising=False)
    tv = tmp_path / "tv"
    write_fashion_mnist(tv, n_train_per_class=1, n_test_per_class=1, gz=False, layout="torchvision")
    assert fashion_mnist_root(tv) == tv
    deb = tmp_path / "debian"
    fake = write_fashion_mnist(deb, n_train_per_class=1, n_test_per_class=1, gz=True, layout="flat")
    cache = tmp_path / "cache"
    root = fashion_mnist_root(deb, cache_dir=cache)
    raw = root / "FashionMNIST" / "raw"
    assert root.parent == cache and (raw / "train-images-idx3-ubyte").read_bytes()[16:] == fake.train_x.tobytes()
    monkeypatch.setenv("ATOM_DATA", str(deb))
    assert fashion_mnist_root(None, cache_dir=cache) == root
    monkeypatch.delenv("ATOM_DATA")
    # another source (older files, as a system package's) never gets the first one's cached files
    other = tmp_path / "other"
    real = write_fashion_mnist(other, n_train_per_class=2, n_test_per_class=1, gz=True, layout="flat")
    for f in other.iterdir():
        os.utime(f, (1e9, 1e9))
    root2 = fashion_mnist_root(other, cache_dir=cache)
    assert root2 != root and root2.parent == cache
    assert (root2 / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").read_bytes()[16:] == real.train_x.tobytes()
    with pytest.raises(DatasetNotFoundError, match="not found") as info:
        fashion_mnist_root(tmp_path / "nowhere", cache_dir=cache)
    msg = str(info.value)
    assert "nowhere (data root)" in msg and "`data_root`" in msg and "download" not in msg.split(";", 1)[1]


# -- the groups, the shares and the plugins' storage_policy= -------------------------------------------------------

class CallLog(CondenseCallback):
    """Records the classes of every condensation call."""

    def __init__(self):
        self.calls = []

    def on_condense_start(self, state):
        self.calls.append(sorted(state.classes))


def test_group_lengths_are_avalanches_for_the_budget_and_fixed_for_per_class():
    budget = ATOMBuffer(7, config=STILL)
    assert isinstance(budget, BalancedExemplarsBuffer)
    for k in range(1, 8):
        assert budget.get_group_lengths(k) == ClassBalancedBuffer(7).get_group_lengths(k)
    assert budget.get_group_lengths(3) == [3, 2, 2]  # 7 // 3, one more for the first 7 % 3 groups
    per_class = ATOMBuffer(10, config=STILL, policy="per_class", images_per_class=3)
    assert per_class.get_group_lengths(3) == [3, 3, 3]  # not Avalanche's fixed rule (max_size // total groups)


def test_plan_caps_the_shares():
    from atom_plugin.integrations.avalanche.shares import plan_sizes

    order = [(0, 1), (0, 4), (0, 5), (0, 7)]
    held = {(0, 1): 1, (0, 4): 3}
    with pytest.warns(UserWarning, match="only 2 real samples"):
        sizes = plan_sizes(order, [3, 2, 2, 3], {(0, 5): 9, (0, 7): 2}, held, "cap", 1)
    # an old group never grows (real data gone); a new one gets at most its real samples
    assert sizes == {(0, 1): 1, (0, 4): 2, (0, 5): 2, (0, 7): 2}
    with pytest.raises(DataError, match="fewer than its memory share"):
        plan_sizes(order, [3, 2, 2, 3], {(0, 5): 9, (0, 7): 2}, held, "error", 1)


def test_group_resize_recondenses_that_group_only(bench):
    log = CallLog()
    buf = ATOMBuffer(8, config=TINY, progress=False, callbacks=[log])
    buf.post_adapt(CPU, bench.train_stream[0])
    (a, group_a), (b, group_b) = buf.buffer_groups.items()
    old_a, old_b = group_a.condensed.images.clone(), group_b.condensed.images.clone()
    assert isinstance(group_a, ExemplarsBuffer) and group_a.max_size == len(group_a.buffer) == 4
    log.calls.clear()
    group_a.resize(CPU, 2)
    assert log.calls == [[a[1]]] and buf.images_per_key() == {a: 2, b: 4} and len(buf.buffer) == 6
    new_a = buf.condensed[a].images
    assert torch.cdist(new_a.flatten(1), old_a.flatten(1)).min() > 1e-4  # re-condensed, not truncated
    assert torch.equal(buf.condensed[b].images, old_b)
    assert buf.history[-1]["experience"] is None and buf.history[-1]["recondensed"] == [list(a)]
    group_a.resize(CPU, 3)  # a group never grows back
    assert buf.images_per_key()[a] == 2 and buf.history[-1]["recondensed"] == []


def test_buffer_resize_recondenses_classes_of_one_size_in_one_call(bench):
    log = CallLog()
    buf = ATOMBuffer(8, config=TINY, progress=False, callbacks=[log])
    buf.post_adapt(CPU, bench.train_stream[0])
    buf.post_adapt(CPU, bench.train_stream[1])
    log.calls.clear()
    buf.resize(CPU, 5)  # shares 2, 1, 1, 1: the last three classes shrink together
    keys = list(buf.buffer_groups)
    assert log.calls == [sorted(k for _, k in keys[1:])]
    assert list(buf.images_per_key().values()) == [2, 1, 1, 1] and len(buf.buffer) == 5


def test_plugins_take_a_storage_policy(bench):
    buf = ATOMBuffer(8, config=STILL, progress=False)
    plugin = ATOMReplayPlugin(storage_policy=buf, batch_size_mem=4)
    assert plugin.storage_policy is buf and plugin.mem_size == 8
    gdumb = CondensedGDumbPlugin(storage_policy=ATOMBuffer(6, config=STILL), mem_size=6)
    assert gdumb.storage_policy.max_size == gdumb.mem_size == 6
    with pytest.raises(ConfigError, match=r"either storage_policy= or buffer arguments \(policy\), not both"):
        ATOMReplayPlugin(storage_policy=buf, policy="per_class")
    with pytest.raises(ConfigError, match="mem_size=10 differs from storage_policy.max_size=8"):
        CondensedGDumbPlugin(10, storage_policy=buf)
    with pytest.raises(ConfigError, match="storage_policy must be an ATOMBuffer"):
        ATOMReplayPlugin(storage_policy=ClassBalancedBuffer(8))
    net = model()
    strategy = Naive(model=net, optimizer=torch.optim.SGD(net.parameters(), lr=0.01), train_mb_size=4,
                     train_epochs=1, device="cpu", plugins=[plugin], evaluator=quiet_evaluator())
    strategy.train(bench.train_stream[0], eval_streams=[])
    assert len(buf.buffer) == 8 and len(buf.history) == 1


def test_unknown_method_names_the_choices():
    from atom_plugin.integrations.avalanche import METHODS, QUICK_RECIPE, build_strategy

    with pytest.raises(ConfigError, match=r"method must be one of: naive, replay, .* \(got 'nope'\)"):
        build_strategy("nope", memory=10, recipe=QUICK_RECIPE, num_classes=10, image_shape=(1, 28, 28),
                       device="cpu", seed=0)
    assert METHODS[-2:] == ("atom-replay", "atom-gdumb")
