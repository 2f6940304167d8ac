"""The NNI integration: the ConvNet space (plain and NNI), proxy transport and mismatch errors, Spearman, the
trial helpers, the proxy evaluator (reports once, through an injected trial channel) and an in-process search.

Parts that need NNI call ``pytest.importorskip("nni")``; the plain space, data and Spearman parts do not.
"""
from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest
import torch

from atom_plugin import CondensedDataset, build_model, load_dataset, random_subset, stratified_split
from atom_plugin.errors import ConfigError
from atom_plugin.integrations.nni import (DIMENSIONS, SPACE_SIZE, InvalidArchitectureError, NNIMissingError,
                                          ProxyMismatchError, all_architectures, bootstrap_ci, build_network,
                                          check_architecture, check_compatible, check_network_shape, encode_dataset,
                                          hpo_search_space, resolve_dataset, sample_architectures,
                                          sample_configurations, save_split, spearman, spearman_top)
from atom_plugin.integrations.proxy.space import coverage, max_pooled_depth, parse_arch_key, arch_key


# -- data ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fm(tiny_fmnist_root):
    """(train 150, val 50, proxy 20 = 2 per class) from the tiny Fashion-MNIST."""
    full = load_dataset("fashion-mnist", tiny_fmnist_root, download=False)
    train, val = stratified_split(full, 50, seed=0)
    return train, val, random_subset(train, 2, seed=0)


def _rgb_set(n_per_class=2, classes=10, size=32):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(classes * n_per_class, 3, size, size, generator=g)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return CondensedDataset(x, y, [str(i) for i in range(classes)], [0.5] * 3, [0.25] * 3, method="random")


# -- plain space (no NNI) ----------------------------------------------------------------------------------------

def test_space_has_720_valid_points_at_28_and_32():
    assert SPACE_SIZE == 720 == len(all_architectures())
    assert len(all_architectures((28, 28))) == 720 and len(all_architectures(32)) == 720
    assert {arch_key(a) for a in all_architectures()} == {arch_key(a) for a in all_architectures()}  # stable
    assert len({arch_key(a) for a in all_architectures()}) == 720


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_sampled_architectures_build_and_run(channels, size):
    archs = sample_architectures(4, seed=1) + [{"depth": 4, "width": 32, "act": "sigmoid", "norm": "layernorm",
                                                 "pool": "avgpool"}]
    for arch in archs:
        net = build_network(arch, channels=channels, num_classes=10, image_size=size)
        ref = build_model("convnet", channels=channels, num_classes=10, image_size=(size, size), **arch)
        assert str(net) == str(ref)  # the core factory's network, nothing re-implemented
        out = net(torch.randn(2, channels, size, size))
        assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_space_choices_are_the_core_layer_choices_and_sizes_the_core_normalisation():
    from atom_plugin.models import ACTIVATIONS, NORMS, POOLINGS, image_hw
    from atom_plugin.integrations.nni import data
    from atom_plugin.integrations.proxy import space

    # DC's order (the order of the enumeration and of seeded samples), the core's values
    assert DIMENSIONS["act"] == ("sigmoid", "relu", "leakyrelu") and set(DIMENSIONS["act"]) == set(ACTIVATIONS)
    assert DIMENSIONS["norm"] == ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm")
    assert set(DIMENSIONS["norm"]) == set(NORMS) and set(DIMENSIONS["pool"]) == set(POOLINGS)
    assert space.image_hw is image_hw and data.image_hw is image_hw
    assert max_pooled_depth(8) == max_pooled_depth((8, 8)) == 3
    with pytest.raises(ConfigError, match="image_size must be a positive int"):
        max_pooled_depth((0, 8))
    with pytest.raises(ConfigError, match=r"must be one of: relu, sigmoid, leakyrelu \(got 'gelu'\)"):
        space._core_choices(("relu", "gelu"), "act", ACTIVATIONS)


def test_sampler_reaches_every_value_and_is_seeded():
    everything = sample_architectures(SPACE_SIZE, seed=3)
    assert coverage(everything) == {k: set(v) for k, v in DIMENSIONS.items()}
    assert len({arch_key(a) for a in everything}) == SPACE_SIZE  # without replacement
    a, b = sample_architectures(100, seed=0), sample_architectures(100, seed=0)
    assert a == b and a != sample_architectures(100, seed=1)
    assert sample_architectures(10, seed=0) == a[:10]  # a larger sample extends a smaller one
    assert parse_arch_key(arch_key(a[0])) == a[0]
    with pytest.raises(ConfigError, match="1..720"):
        sample_architectures(721)


def test_invalid_points_name_the_choice_and_image_size():
    assert max_pooled_depth(28) == 4 and max_pooled_depth(8) == 3 and max_pooled_depth(1) == 0
    bad = {"depth": 4, "width": 64, "act": "relu", "norm": "none", "pool": "maxpool"}
    with pytest.raises(InvalidArchitectureError, match=r"depth=4 with pool='maxpool' does not fit 8x8"):
        check_architecture(bad, 8)
    with pytest.raises(InvalidArchitectureError, match="8x8"):
        build_network(bad, channels=1, num_classes=10, image_size=8)
    check_architecture(dict(bad, pool="none"), 8)  # no pooling: fine
    small = sample_architectures(50, seed=0, image_size=8)
    assert all(a["pool"] == "none" or a["depth"] <= 3 for a in small)
    with pytest.raises(InvalidArchitectureError, match=r"width=48 is not in the ConvNet space"):
        check_architecture(dict(bad, width=48), 28)
    with pytest.raises(InvalidArchitectureError, match="missing dimension"):
        check_architecture({"depth": 3}, 28)


# -- Spearman (no NNI) --------------------------------------------------------------------------------------------

def test_spearman_on_known_rankings():
    x = [1, 2, 3, 4, 5]
    assert spearman(x, [2, 1, 4, 3, 5]) == pytest.approx(0.8)  # 1 - 6 * 4 / (5 * 24)
    assert spearman(x, [10, 20, 30, 40, 50]) == pytest.approx(1.0)
    assert spearman(x, x[::-1]) == pytest.approx(-1.0)
    assert spearman(x, [3, 3, 3, 3, 3]) is None and spearman([1, 2], [1, 2]) is None
    # ties get average ranks: x = (1, 1, 2) -> ranks (1.5, 1.5, 3); y ranks (1, 2, 3) -> rho = 0.866...
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(3 ** 0.5 / 2)
    # top 20 % by full-data score: the 2 best of 10 are too few; of 20 -> 4 best (indices 16..19)
    full = np.arange(20.0)
    proxy = full.copy()
    proxy[16:] = [19, 18, 17, 16]  # the top four reversed
    assert spearman_top(proxy, full, 0.2) == pytest.approx(-1.0)
    assert spearman(proxy, full) > 0.9
    assert spearman_top(np.arange(10.0), np.arange(10.0), 0.2) is None
    lo, hi = bootstrap_ci(proxy, full, n_boot=200, seed=0)
    assert -1.0 <= lo <= spearman(proxy, full) <= hi <= 1.0


# -- proxies that travel with a trial; mismatches (no NNI) -----------------------------------------------------

def test_proxy_travels_as_relative_path_or_base64(fm, tmp_path, monkeypatch):
    train, val, proxy = fm
    monkeypatch.chdir(tmp_path)
    proxy.save("proxy.safetensors")
    save_split(val, "val.safetensors", split="validation")
    p = resolve_dataset("proxy.safetensors")
    assert torch.equal(p.images, proxy.images) and p.classes == proxy.classes
    v = resolve_dataset("val.safetensors", what="validation split")
    assert torch.equal(v.labels, val.labels)
    enc = encode_dataset(proxy)
    assert enc.startswith("base64:") and torch.equal(resolve_dataset(enc).images, proxy.images)
    with pytest.raises(ConfigError, match="absolute"):
        resolve_dataset(str(tmp_path / "proxy.safetensors"))


def test_mismatched_proxy_errors_name_the_mismatch(fm):
    train, val, proxy = fm
    rgb = _rgb_set()
    with pytest.raises(ProxyMismatchError, match=r"\(3, 32, 32\).*\(1, 28, 28\)"):
        check_compatible(rgb, val)
    other = proxy.subset_classes([0, 1])
    other = CondensedDataset(other.images, other.labels, ["a"] * 10, other.mean, other.std)
    with pytest.raises(ProxyMismatchError, match="class 0 is 'a'"):
        check_compatible(other, val)
    three = CondensedDataset(proxy.images[:6], torch.tensor([0, 1, 2] * 2), ["x", "y", "z"], proxy.mean, proxy.std)
    with pytest.raises(ProxyMismatchError, match="3 classes vs 10"):
        check_compatible(three, val)
    with pytest.raises(ProxyMismatchError, match="1x28x28.*3x32x32"):
        check_network_shape(proxy, channels=3, num_classes=10, image_size=32)
    with pytest.raises(ProxyMismatchError, match="100 outputs"):
        check_network_shape(proxy, channels=1, num_classes=100, image_size=28)


def test_hpo_space_keeps_batches_within_the_proxy():
    space = hpo_search_space(20)
    assert space["batch_size"]["_value"] == [8, 16, 20]
    assert max(hpo_search_space(500)["batch_size"]["_value"]) == 256
    cfgs = sample_configurations(space, 5, seed=0)
    assert cfgs == sample_configurations(space, 5, seed=0) and len(cfgs) == 5
    assert all(1e-3 <= c["lr"] <= 0.1 and c["batch_size"] <= 20 for c in cfgs)


def test_missing_nni_gives_the_install_command(monkeypatch):
    from atom_plugin.integrations.nni import _nni

    monkeypatch.setitem(sys.modules, "nni", None)  # makes `import nni` fail
    with pytest.raises(NNIMissingError, match=r"pip install 'atom-plugin\[nni\]'"):
        _nni.require_nni()


# -- with NNI --------------------------------------------------------------------------------------------------------

@pytest.fixture
def nas():
    pytest.importorskip("nni")
    pytest.importorskip("pytorch_lightning")
    return importlib.import_module("atom_plugin.integrations.nni.nas")


@pytest.fixture
def channel(monkeypatch):
    """A recording NNI trial command channel, installed as the default and removed after the test."""
    nni = pytest.importorskip("nni")
    from nni.runtime import trial_command_channel as tcc

    nni_trial = importlib.import_module("nni.trial")

    class Recorder(tcc.TrialCommandChannel):
        def __init__(self):
            self.params: dict = {}
            self.metrics: list = []

        def receive_parameter(self):
            return {"parameter_id": 0, "parameters": self.params}

        def send_metric(self, type, parameter_id, trial_job_id, sequence, value):  # noqa: A002 (NNI's name)
            self.metrics.append((type, value))

        def finals(self):
            return [v for t, v in self.metrics if t == "FINAL"]

    rec = Recorder()
    for name in ("_params", "_intermediate_seq"):
        monkeypatch.setattr(nni_trial, name, getattr(nni_trial, name))
    monkeypatch.setattr(tcc, "_channel", tcc._channel)
    tcc.set_default_trial_command_channel(rec)
    nni.get_next_parameter()  # as NNI's engines do before a trial (needed when NNI_PLATFORM is set)
    yield rec


def test_model_space_reaches_every_value_and_builds_the_core_convnet(nas):
    space = nas.ConvNetSpace(1, 10, (28, 28))
    simple = space.simplify()
    assert {k: list(simple[k].values) for k in DIMENSIONS} == {k: list(v) for k, v in DIMENSIONS.items()}
    assert type(space.act).__name__ == "LayerChoice"
    base = {"depth": 2, "width": 32, "act": "relu", "norm": "none", "pool": "avgpool"}
    for dim, values in DIMENSIONS.items():
        for value in values:
            arch = dict(base, **{dim: value})
            net = space.freeze(arch)
            ref = build_model("convnet", channels=1, num_classes=10, image_size=(28, 28), **arch)
            assert type(net) is type(ref) and str(net) == str(ref)
            assert [(k, v.shape) for k, v in net.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    rs = np.random.RandomState(0)
    seen = coverage([{k: m[k] for k in DIMENSIONS} for m in _draws(space, 150, rs)])
    assert seen == {k: set(v) for k, v in DIMENSIONS.items()}
    out = space.freeze(base)(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10)
    rgb = nas.ConvNetSpace(3, 10, 32).freeze(dict(base, depth=4))
    assert rgb(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _draws(space, n, rs):
    from nni.mutable import ConstraintViolation

    out = []
    while len(out) < n:
        memo: dict = {}
        try:
            space.random(memo=memo, random_state=rs)
        except ConstraintViolation:  # NNI strategies retry the same way
            continue
        out.append(memo)
    return out


def test_model_space_never_proposes_invalid_points_for_small_images(nas):
    space = nas.ConvNetSpace(1, 10, 8)
    draws = _draws(space, 60, np.random.RandomState(1))
    assert all(d["pool"] == "none" or d["depth"] <= 3 for d in draws)
    with pytest.raises(InvalidArchitectureError, match="does not fit 8x8"):
        space.freeze({"depth": 4, "width": 32, "act": "relu", "norm": "none", "pool": "maxpool"})


def test_evaluator_returns_a_fraction_and_reports_final_once(nas, fm, channel):
    train, val, proxy = fm
    space = nas.ConvNetSpace.for_dataset(train)
    ev = nas.proxy_evaluator(proxy, val, space=space, epochs=2, report_every=1, device="cpu")
    acc = ev.evaluate(space.freeze({"depth": 2, "width": 32, "act": "relu", "norm": "instancenorm", "pool": "avgpool"}))
    assert isinstance(acc, float) and 0.0 <= acc <= 1.0
    assert channel.finals() == [acc]
    assert [t for t, _ in channel.metrics] == ["PERIODICAL", "PERIODICAL", "FINAL"]


def test_evaluator_skips_an_invalid_point_with_zero(nas, fm, channel):
    train, val, proxy = fm
    ev = nas.proxy_evaluator(proxy, val, epochs=1, device="cpu")

    class Invalid:  # a frozen model whose network cannot be built (e.g. a hand-made sample)
        sample = {"depth": 4, "pool": "maxpool"}

        def executable_model(self):
            raise InvalidArchitectureError("depth=4 with pool='maxpool' does not fit 8x8 images")

    assert ev._execute(Invalid()) == 0.0
    assert channel.finals() == [0.0]


def test_evaluator_rejects_a_mismatched_proxy(nas, fm):
    train, val, proxy = fm
    with pytest.raises(ProxyMismatchError, match="images are"):
        nas.proxy_evaluator(_rgb_set(), val)
    with pytest.raises(ProxyMismatchError, match="search space is built for 3x32x32"):
        nas.proxy_evaluator(proxy, val, space=nas.ConvNetSpace(3, 10, 32))


def test_sequential_search_of_three_architectures(nas, fm, tmp_path, monkeypatch):
    from nni.tools.nnictl.config_utils import Experiments

    monkeypatch.setattr(Experiments.__init__, "__defaults__", (str(tmp_path / "home"),))  # NNI's experiment list
    train, val, proxy = fm
    space = nas.ConvNetSpace.for_dataset(train)
    ev = nas.proxy_evaluator(proxy, val, space=space, epochs=1, device="cpu")
    result = nas.run_search(space, ev, strategy="random", max_trials=3, seed=0, working_dir=tmp_path / "exp")
    assert len(result.trials) == 3
    assert len({arch_key(a) for a, _ in result.trials}) == 3
    assert all(0.0 <= acc <= 1.0 for _, acc in result.trials)
    best, acc = result.best
    check_architecture(best, 28)


def test_trial_runs_standalone_with_defaults_and_reports(fm, channel, tmp_path, monkeypatch):
    from nni.runtime.trial_command_channel import set_default_trial_command_channel
    from nni.runtime.trial_command_channel.standalone import StandaloneTrialCommandChannel

    from atom_plugin.integrations.nni import get_parameters, run_trial

    train, val, proxy = fm
    set_default_trial_command_channel(StandaloneTrialCommandChannel())  # what a plain `python trial.py` gets
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NNI's "without runtime" warning is handled quietly
        assert get_parameters() == {"lr": 0.01, "weight_decay": 5e-4, "batch_size": 256}

    set_default_trial_command_channel(channel)
    channel.params = {"lr": 0.05, "batch_size": 8, "depth": 1}
    monkeypatch.chdir(tmp_path)
    proxy.save("proxy.safetensors")
    save_split(val, "val.safetensors")
    acc = run_trial("proxy.safetensors", "val.safetensors", epochs=4, report_every=2, device="cpu")
    assert 0.0 <= acc <= 1.0
    assert [t for t, _ in channel.metrics] == ["PERIODICAL", "PERIODICAL", "FINAL"] and channel.finals() == [acc]
    channel.params = {"momentum": 0.5}
    with pytest.raises(ConfigError, match="unknown trial parameter"):
        run_trial("proxy.safetensors", "val.safetensors", epochs=1, device="cpu")


def test_a_frozen_trial_is_self_contained(nas, fm, channel):
    """What NNI's training-service engine ships to another machine: the frozen sample plus the evaluator, as JSON
    (nni.dump), with the proxy and the split embedded as base64 -- no local path, no in-memory object."""
    import nni
    from nni.nas.space import SimplifiedModelSpace

    train, val, proxy = fm
    space = nas.ConvNetSpace.for_dataset(train)
    ev = nas.proxy_evaluator(encode_dataset(proxy), encode_dataset(val), space=space, epochs=1, device="cpu")
    frozen = SimplifiedModelSpace.from_model(space, ev).freeze(
        {"depth": 1, "width": 32, "act": "relu", "norm": "none", "pool": "maxpool"})
    text = nni.dump(frozen)
    assert '"proxy": "base64:' in text and '"val": "base64:' in text
    shipped = nni.load(text)
    acc = shipped.execute()
    assert 0.0 <= acc <= 1.0 and channel.finals() == [acc]
