"""An ATOM memory inside Avalanche's ER_ACE and DER, the balanced fine-tune, the replay guard, the memory cache and
resuming at an experience boundary -- on a tiny generated SplitFMNIST-5 (``fakedata``) with the quick recipe (CPU)."""
from __future__ import annotations

import dataclasses
import types
import warnings

import pytest
import torch

pytest.importorskip("avalanche")

from avalanche.benchmarks.classic import SplitFMNIST  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from avalanche.training.plugins import ReplayPlugin, SupervisedPlugin  # noqa: E402

from atom_plugin import ATOMConfig  # noqa: E402
from atom_plugin.errors import ConfigError  # noqa: E402
from atom_plugin.integrations.avalanche import (ATOMBuffer, ATOMLogitsBuffer, BalancedFineTunePlugin,  # noqa: E402
                                                QUICK_RECIPE, build_strategy, check_replay_on, load_run,
                                                run_method, save_run, use_atom_memory)
from atom_plugin.integrations.avalanche.methods import GRID, cell_method, cell_of  # noqa: E402
from fakedata import write_fashion_mnist  # noqa: E402

RECIPE = dataclasses.replace(QUICK_RECIPE, condense_iterations=1, condense_width=8)  # the quick recipe, cheaper
FACTOR2 = ATOMConfig(preset="dm", iterations=0, batch_real=4, width=8, dsa=False, factor=2)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("avalanche_strategies")
    write_fashion_mnist(root, n_train_per_class=6, n_test_per_class=3, gz=False, seed=0, layout="torchvision")
    return SplitFMNIST(5, seed=0, dataset_root=str(root))


def build(method, memory=10, recipe=RECIPE, **kw):
    return build_strategy(method, memory=memory, recipe=recipe, num_classes=10, image_shape=(1, 28, 28),
                          device="cpu", seed=0, **kw)


def train(strategy, exps):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for exp in exps:
            strategy.train(exp, eval_streams=[])


class Spy(SupervisedPlugin):
    """Records what the strategy replays at each step."""

    def __init__(self):
        super().__init__()
        self.memory_batches: list[tuple] = []  # (memory rows, their logits or None, the memory then: x, logits)

    def before_training_exp(self, strategy, **kwargs):
        items = [strategy.storage_policy.buffer[i] for i in range(len(strategy.storage_policy.buffer))]
        if not items:
            return
        self.pool = (torch.stack([it[0] for it in items]),
                     torch.stack([it[3] for it in items]) if items and len(items[0]) == 4 else None)

    def after_forward(self, strategy, **kwargs):
        if getattr(strategy, "replay_loader", None) is None:
            return
        if hasattr(strategy, "batch_logits"):  # DER: the memory rows are the first batch_size_mem of mbatch
            n = strategy.batch_size_mem
            self.memory_batches.append((strategy.mbatch[0][:n].clone(), strategy.batch_logits.clone(), self.pool))
        else:  # ER_ACE
            self.memory_batches.append((strategy.mb_buffer_x.clone(), None, self.pool))


def rows_in(x: torch.Tensor, pool: torch.Tensor) -> bool:
    """Every row of ``x`` equals some row of ``pool``."""
    d = (x.flatten(1)[:, None] - pool.flatten(1)[None]).abs().amax(-1)
    return bool((d.min(1).values < 1e-6).all())


def test_grid_names_and_legacy_methods_map_onto_cells():
    assert len(GRID) == 17 and ("gdumb", "herding") not in GRID
    assert cell_method("replay", "herding") == "herding" and cell_method("er_ace+ft", "atom") == "er_ace+ft-atom"
    assert cell_of(dict(method="atom-gdumb")) == ("gdumb", "atom")
    assert cell_of(dict(method="x", strategy="der", memory_kind="random")) == ("der", "random")
    assert all(cell_of(dict(method=cell_method(s, k))) == (s, k) for s, k in GRID)


def test_er_ace_replays_decoded_condensed_samples(bench):
    strategy, holder = build("er_ace-atom")
    spy = Spy()
    strategy.plugins.append(spy)
    buf = strategy.storage_policy
    assert holder is strategy and isinstance(buf, ATOMBuffer)
    train(strategy, bench.train_stream[:2])
    # ER_ACE updates before training: the memory already holds experience 1's classes (4 classes, factor 2 at the
    # quick recipe's shares: 10 stored images decode to 40 samples)
    assert len(buf.buffer_groups) == 4 and buf.stored_size == 10 and len(buf.buffer) == buf.decoded_size == 40
    assert spy.memory_batches and all(x.shape == (RECIPE.batch_size_mem, 1, 28, 28) for x, *_ in spy.memory_batches)
    assert all(len(pool[0]) == 40 and rows_in(x, pool[0]) for x, _, pool in spy.memory_batches)


def test_der_replays_condensed_samples_with_the_logits_of_their_entry(bench):
    strategy, _ = build("der-atom")
    spy = Spy()
    strategy.plugins.append(spy)
    buf = strategy.storage_policy
    assert isinstance(buf, ATOMLogitsBuffer)
    train(strategy, bench.train_stream[:3])
    assert spy.memory_batches  # experience 1 and 2 replay (the memory is filled after experience 0)
    # the last update (after experience 2) condensed 2 new classes and re-condensed those whose share shrank: their
    # logits are the current model's on their decoded samples; the others keep the logits of their entry
    last = buf.history[-1]
    entered = {tuple(k) for k in last["new_classes"] + last["recondensed"]}
    assert 2 < len(entered) < len(buf.buffer_groups) == 6
    strategy.model.eval()
    for key, g in buf.buffer_groups.items():
        x = torch.stack([g.buffer[i][0] for i in range(len(g.buffer))])
        with torch.no_grad():
            assert torch.allclose(buf.logits[key], strategy.model(x), atol=1e-5) == (key in entered), key
        assert len(g.buffer[0]) == 4  # (x, y, t, logits)
    # each memory row comes with the logits stored for that very sample
    assert all(rows_in(torch.cat([x.flatten(1), lg], 1), torch.cat([pool[0].flatten(1), pool[1]], 1))
               for x, lg, pool in spy.memory_batches)


@pytest.mark.parametrize("method", ["der-herding", "er_ace-herding", "replay+ft-atom"])
def test_strategies_run_end_to_end(bench, method):
    rec = run_method(method, bench, memory=10, recipe=RECIPE, device="cpu", seed=0)
    assert len(rec["acc_curve"]) == 5 and 0 <= rec["final_avg_accuracy"] <= 100
    assert rec["strategy"], rec["memory_kind"] == cell_of(dict(method=method))
    assert rec["memory_policy"] == {"der-herding": "HerdingLogitsBuffer", "er_ace-herding": "ParametricBuffer",
                                    "replay+ft-atom": "ATOMBuffer"}[method]
    assert rec["memory_used"] == 10
    assert (rec["finetune_seconds"] > 0) == (method == "replay+ft-atom")


def test_replay_guard_warns_refuses_and_names_the_fix(bench):
    buf = ATOMBuffer(10, config=FACTOR2, progress=False)
    buf.post_adapt(types.SimpleNamespace(device=torch.device("cpu")), bench.train_stream[0])  # no batch_size_mem
    assert (buf.stored_size, buf.decoded_size) == (10, 40)
    with pytest.warns(UserWarning, match=r"batch_size_mem=50 exceeds the memory's 40 decoded samples.*<= 40"):
        buf.check_replay(types.SimpleNamespace(batch_size_mem=50))
    with pytest.warns(UserWarning, match="10 stored images: a real-sample memory .* would not replay"):
        buf.check_replay(types.SimpleNamespace(batch_size_mem=20))
    with pytest.raises(ConfigError, match="batch_size_mem=50"):
        buf.check_replay(types.SimpleNamespace(batch_size_mem=50), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        buf.check_replay(types.SimpleNamespace(batch_size_mem=10))  # fits: silent
    # the benchmark's rule: the memory minibatch never exceeds the smallest memory's sample count (M)
    with pytest.raises(ConfigError, match="batch_size_mem=64 exceeds memory 10"):
        check_replay_on("er_ace+ft-atom", 10, QUICK_RECIPE.__class__(batch_size_mem=64))
    check_replay_on("replay", 10, QUICK_RECIPE.__class__(batch_size_mem=64))  # ReplayPlugin: no drop_last


def test_use_atom_memory_checks_the_strategy_and_buffer():
    strategy, _ = build("der-random")
    with pytest.raises(ConfigError, match="DER needs a ATOMLogitsBuffer"):
        use_atom_memory(strategy, ATOMBuffer(10))
    with pytest.raises(ConfigError, match="mem_size=10 differs"):
        use_atom_memory(strategy, ATOMLogitsBuffer(20))
    naive, _ = build("naive")
    with pytest.raises(ConfigError, match="ER_ACE or DER"):
        use_atom_memory(naive, ATOMBuffer(10))


def test_finetune_follows_the_memory_update_and_refuses_the_wrong_order(bench):
    def naive(plugins):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
        return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                     train_mb_size=16, device="cpu", plugins=plugins, evaluator=None)

    ft = BalancedFineTunePlugin(epochs=3, lr=0.01, batch_size=4)
    with pytest.raises(ConfigError, match="after ReplayPlugin"):
        train(naive([ft, ReplayPlugin(mem_size=10)]), bench.train_stream[:1])
    ft = BalancedFineTunePlugin(epochs=3, lr=0.01, batch_size=4)
    strategy = naive([ReplayPlugin(mem_size=10), ft])
    before = [p.detach().clone() for p in strategy.model.parameters()]
    train(strategy, bench.train_stream[:2])
    # experience 0 already fine-tunes: the replay plugin filled the memory (10 samples) before the fine-tune ran
    assert [(h["experience"], h["samples"], h["steps"]) for h in ft.history] == [(0, 10, 9), (1, 10, 9)]
    assert any(not torch.equal(a, b) for a, b in zip(before, strategy.model.parameters()))


def test_memory_cache_reuses_an_update_exactly(bench, tmp_path):
    cfg = ATOMConfig(preset="dm", iterations=2, batch_real=4, width=8)
    cpu = types.SimpleNamespace(device=torch.device("cpu"))
    a = ATOMBuffer(6, config=cfg, progress=False, cache_dir=tmp_path)
    a.post_adapt(cpu, bench.train_stream[0])
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 and not a.history[-1].get("cached")
    b = ATOMBuffer(6, config=cfg, progress=False, cache_dir=tmp_path)
    b.post_adapt(cpu, bench.train_stream[0])
    assert b.history[-1]["cached"] and b.history[-1]["seconds"] == a.history[-1]["seconds"]
    assert all(torch.equal(a.condensed[k].stored_images, b.condensed[k].stored_images) for k in a.condensed)
    c = ATOMBuffer(6, config=cfg, progress=False, cache_dir=tmp_path, seed=1)  # another seed: another key
    c.post_adapt(cpu, bench.train_stream[0])
    assert not c.history[-1].get("cached") and len(list(tmp_path.glob("*.safetensors"))) == 2


def test_resume_after_experience_2_equals_an_uninterrupted_run(bench, tmp_path):
    def final(strategy):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = strategy.eval(bench.test_stream)
        return [v for k, v in m.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream")]

    whole, _ = build("er_ace+ft-atom")
    train(whole, bench.train_stream)
    first, _ = build("er_ace+ft-atom")
    train(first, bench.train_stream[:3])
    save_run(tmp_path / "run", first, next_experience=3)
    torch.manual_seed(12345)  # whatever happened in between
    fresh, _ = build("er_ace+ft-atom")
    start = load_run(tmp_path / "run", fresh)
    assert start == 3 and fresh.storage_policy.history == first.storage_policy.history
    train(fresh, bench.train_stream[start:])
    a, b = whole.storage_policy, fresh.storage_policy
    assert list(a.condensed) == list(b.condensed)
    assert all(torch.equal(a.condensed[k].stored_images, b.condensed[k].stored_images) for k in a.condensed)
    assert final(whole) == final(fresh)
    assert all(torch.equal(p, q) for p, q in zip(whole.model.parameters(), fresh.model.parameters()))
    with pytest.raises(ConfigError, match="holds an ATOM memory: build the strategy with its ATOMBuffer"):
        load_run(tmp_path / "run", build("er_ace+ft-random")[0])
