"""The proxy toolkit shared by the NNI and Optuna adapters: the statistics against hand-computed cases, the cost
arithmetic, the stratified sampler, the constant learning rate (a legitimate early stop) and the intermediate
validations; the Optuna adapter's pruning and re-training paths (tiny nets, fake data)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from atom_plugin import CondensedDataset, train_model
from atom_plugin.errors import ConfigError
from atom_plugin.evaluate import LR_SCHEDULES
from atom_plugin.integrations.proxy import plan, stats
from atom_plugin.integrations.proxy.space import DEFAULT_ARCHITECTURE, arch_key, sample_stratified
from atom_plugin.integrations.proxy.train import train_and_validate

TINY = {"depth": 1, "width": 32, "act": "relu", "norm": "none", "pool": "avgpool"}


def _set(n_per_class=4, classes=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = torch.randn(len(y), 1, size, size, generator=g) + y.view(-1, 1, 1, 1).float()  # learnable
    return CondensedDataset(x, y, [str(i) for i in range(classes)], [0.5], [0.25], method="random")


# -- statistics (hand-computed) ---------------------------------------------------------------------------------

def test_kendall_counts_concordant_pairs():
    # 6 pairs, one discordant (the last two swapped): (5 - 1) / 6
    assert stats.kendall([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    assert stats.kendall([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert stats.kendall([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ValueError, match="equal length"):
        stats.kendall([1, 2, 3], [1, 2])


def test_top_k_overlap_and_pick_and_regret():
    # proxy's top 2: candidates 0, 1; full data's top 2: candidates 4, 1 -> one shared
    assert stats.top_k_overlap([4, 3, 2, 1, 0], [0, 3, 2, 1, 4], k=2) == 1
    assert stats.top_k_overlap([4, 3, 2, 1, 0], [4, 3, 2, 1, 0], k=5) == 5
    with pytest.raises(ValueError, match="k <= n"):
        stats.top_k_overlap([1, 2], [1, 2], k=3)
    assert stats.pick([0.5, 0.9, 0.9, 0.1]) == 1  # first of the ties
    assert stats.regret(80.0, 79.5) == pytest.approx(0.5) and stats.regret(80.0, 81.0) == 0.0


def test_above_chance_filter_drops_the_networks_at_chance():
    full = [10.0, 11.0, 50.0, 60.0, 70.0]  # two sigmoid networks at chance (10 %)
    proxy = [99.0, 98.0, 1.0, 2.0, 3.0]
    assert stats.above_chance(full, 10.0).tolist() == [2, 3, 4]
    assert stats.spearman(proxy, full) < 0  # the stuck networks dominate the rank
    assert stats.spearman_above_chance(proxy, full, 10.0) == pytest.approx(1.0)
    assert stats.spearman_above_chance(proxy, full, 10.0, margin=45.0) is None  # fewer than 3 left


def test_paired_bootstrap_resamples_the_same_architectures_for_both_proxies():
    full = np.arange(10.0)
    good, reversed_ = full + 0.5, -full
    out = stats.paired_bootstrap(good, reversed_, full, n_boot=200, seed=0)
    assert out["difference"] == pytest.approx(2.0)  # rho 1 - rho (-1)
    assert out["ci"] == pytest.approx([2.0, 2.0]) and out["p_not_above_zero"] == 0.0
    same = stats.paired_bootstrap(good, good, full, n_boot=200, seed=0)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0] and same["p_not_above_zero"] == 1.0
    rng = np.random.default_rng(1)
    noisy = full + rng.normal(0, 3, 10)
    a = stats.paired_bootstrap(good, noisy, full, n_boot=300, seed=0)
    assert a["difference"] > 0 and a["ci"][0] <= a["difference"] <= a["ci"][1]


def test_fisher_interval_matches_the_reference_table_and_reliability_by_hand():
    lo, hi = stats.fisher_ci(0.76, 30)  # reference.md Sec. 6: n = 30 -> [0.54, 0.88]
    assert (round(lo, 2), round(hi, 2)) == (0.54, 0.88)
    lo_k, hi_k = stats.fisher_ci(0.6, 30, kind="kendall")
    assert lo_k < 0.6 < hi_k and stats.fisher_ci(0.5, 3) == (None, None)
    # noise var = mean(4, 4, 0) / 2 = 4/3; total var of [0, 2, 4, 2, 0, 4] (ddof 1) = 16 / 5
    assert stats.reliability([0, 2, 4], [2, 0, 4]) == pytest.approx(1 - (4 / 3) / 3.2)
    assert stats.reliability([1, 2, 3], [1, 2, 3]) == 1.0
    assert stats.noise_ceiling(0.81, 1.0) == pytest.approx(0.9) and stats.noise_ceiling(None, 1.0) is None


# -- cost arithmetic --------------------------------------------------------------------------------------------

def test_cost_points_are_aligned_in_sample_passes():
    assert plan.sample_passes(400, 75) == 30_000 and plan.sample_passes(55_000, 0.5) == 27_500
    assert plan.cost_point(27_500) == "30k" and plan.cost_point(110_000) == "120k"
    assert plan.cost_point(220_000) == "220k"
    got = {(k, e): cp for k, e, _, cp in plan.evaluations()}
    assert got[("condensed f1", 300.0)] == got[("random 400", 75.0)] == got[("full-data early stop", 0.5)] == "30k"
    assert got[("condensed f2", 300.0)] == got[("full-data early stop", 2.0)] == "120k"
    # per architecture: 3 x 30k + 2 x 120k on the proxies, 220k on full data
    assert sum(r.passes for r in plan.CPU_RUNS) == 90_000 + 240_000 + 220_000


def test_cpu_hour_estimate_by_hand():
    runs = (plan.Run("x", 100, 10, (10,), seeds=(0, 1)),)
    one = plan.estimate([DEFAULT_ARCHITECTURE], runs, reliability_archs=1, ms_ref=5.0)
    assert one.sample_passes == 2 * 1000 and one.cpu_hours == pytest.approx(2000 * 5.0 / 3.6e6)
    two = plan.estimate([DEFAULT_ARCHITECTURE, DEFAULT_ARCHITECTURE], runs, reliability_archs=1, ms_ref=5.0,
                        extra_passes=600)
    assert two.sample_passes == 2000 + 1000 + 600
    small = dict(DEFAULT_ARCHITECTURE, width=32)
    assert plan.ms_per_sample(small) < plan.MS_PER_SAMPLE_REF == pytest.approx(plan.ms_per_sample(DEFAULT_ARCHITECTURE))
    with pytest.raises(ValueError, match="reliability_archs"):
        plan.estimate([], runs, reliability_archs=-1)


def test_stratified_sample_is_balanced_distinct_pooled_and_seeded():
    archs = sample_stratified(40, seed=0, image_size=(28, 28))
    assert len({arch_key(a) for a in archs}) == 40 and archs == sample_stratified(40, seed=0, image_size=(28, 28))
    for dim, k in (("depth", 4), ("norm", 5), ("act", 3), ("pool", 2), ("width", 3)):
        counts = [sum(a[dim] == v for a in archs) for v in {a[dim] for a in archs}]
        assert len(counts) == k and max(counts) - min(counts) <= 1, dim
    assert all(a["pool"] != "none" and a["width"] <= 128 for a in archs)
    assert sample_stratified(40, seed=1) != archs
    with pytest.raises(ConfigError, match="width=512"):
        sample_stratified(4, widths=(512,))


# -- constant learning rate and intermediate validations ----------------------------------------------------------

def _weights_after(epochs: int, stop_at: int, schedule: str) -> torch.Tensor:
    from atom_plugin.integrations.proxy.space import build_network

    data = _set()
    net = build_network(TINY, channels=1, num_classes=3, image_size=8)
    torch.manual_seed(0)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    snap = {}
    train_model(net, data, epochs=epochs, batch_size=4, dsa=False, generator=torch.Generator().manual_seed(1),
                lr_schedule=schedule, on_epoch_end=lambda e, m: snap.setdefault(e + 1, torch.cat(
                    [p.detach().flatten().clone() for p in m.parameters()])))
    return snap[stop_at]


def test_constant_lr_makes_an_intermediate_point_a_legitimate_early_stop():
    assert LR_SCHEDULES == ("step", "constant")
    # constant: epoch 2 of a 4-epoch run IS a 2-epoch run; step: the 4-epoch run decays later, so it is not
    assert torch.equal(_weights_after(4, 2, "constant"), _weights_after(2, 2, "constant"))
    assert not torch.allclose(_weights_after(4, 2, "step"), _weights_after(2, 2, "step"))
    with pytest.raises(ConfigError, match="lr_schedule='cosine'"):
        _weights_after(1, 1, "cosine")


def test_report_at_validates_inside_an_epoch_and_rejects_colliding_points():
    data = _set(n_per_class=8)  # 24 samples, batch 4: 6 steps per epoch
    seen = []
    res = train_and_validate(TINY, data, data, epochs=2, batch_size=4, dsa=False, device="cpu",
                             lr_schedule="constant", report_at=(0.5, 2), on_report=lambda e, a: seen.append(e))
    assert seen == [0.5, 2] and [e for e, _ in res.history] == [0.5, 2]
    assert res.accuracy == res.history[-1][1]
    with pytest.raises(ConfigError, match="same SGD step"):
        train_and_validate(TINY, data, data, epochs=1, batch_size=32, device="cpu", report_at=(0.5, 1))
    with pytest.raises(ConfigError, match="report_at points must lie"):
        train_and_validate(TINY, data, data, epochs=1, device="cpu", report_at=(2,))


# -- the Optuna adapter ------------------------------------------------------------------------------------------

def test_optuna_prunes_on_intermediate_accuracy_and_retrains_the_survivors():
    optuna = pytest.importorskip("optuna")
    from atom_plugin.integrations.optuna import proxy_objective, retrain_survivors, split_configuration

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = _set(n_per_class=4)
    objective = proxy_objective(data, data, search="both", epochs=3, report_every=1, device="cpu")
    # a pruner that stops every trial at its first report (accuracy is never >= 1.01)
    pruned = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                 pruner=optuna.pruners.ThresholdPruner(lower=1.01))
    pruned.optimize(objective, n_trials=2)
    assert [t.state for t in pruned.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [1] for t in pruned.trials)
    with pytest.raises(ConfigError, match="no completed trial"):
        retrain_survivors(pruned, data, data, device="cpu")

    kept = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                               pruner=optuna.pruners.NopPruner())
    kept.optimize(proxy_objective(data, data, search="hpo", epochs=2, report_every=1, device="cpu"), n_trials=2)
    assert all(sorted(t.intermediate_values) == [1, 2] for t in kept.trials)
    survivors = retrain_survivors(kept, data, data, top_k=1, epochs=1, device="cpu")
    assert len(survivors) == 1 and 0.0 <= survivors[0].full_accuracy <= 1.0
    assert survivors[0].number == max(kept.trials, key=lambda t: t.value).number
    assert split_configuration(survivors[0].config)[0] == DEFAULT_ARCHITECTURE  # hpo keeps ConvNet-3
    with pytest.raises(ConfigError, match="unknown configuration key"):
        split_configuration({"momentum": 0.5})
