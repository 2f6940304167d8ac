"""The quality levers in the benchmarks (issue 25): the real batch and the start are part of every resume key and
cache name (older records read as the defaults), and report.py's budget curve renders what exists."""
import argparse
from pathlib import Path

import pytest

BASE = dict(method="atom", ipc=10, factor=2, networks="random", lr_images=1.0, model="convnet", iterations=200,
            batch_real=64, eval_epochs=300, num_models=3, seed=0, device="cpu")


def test_protocol_keys_and_cache_names_keep_the_levers_apart(load_benchmark, tmp_path, monkeypatch):
    mod = load_benchmark("fashion_mnist")
    older, default = BASE, dict(BASE, real_batch="uniform", init="real")
    rep, herd = dict(default, real_batch="representative"), dict(default, init="herding")
    assert mod.key_of(older) == mod.key_of(default)  # nothing measured before is re-run
    assert len({mod.key_of(r) for r in (default, rep, herd)}) == 3  # nor a lever skipped
    selection = dict(BASE, method="herding", factor=1, networks=None, lr_images=None, iterations=0)
    assert mod.key_of(selection)[7:9] == ("None", "None")
    args = argparse.Namespace(real_batch=None, init=None, factor=None, networks=None, lr_images=None, iterations=200,
                              batch_real=64, seed=0, compile=False, pool_steps=None, pool_batch=None)
    assert mod.lever_fields("atom", 10, args) == dict(real_batch="uniform", init="real")
    assert mod.lever_fields("atom", 50, args) == dict(real_batch="uniform", init="herding")  # the per-IPC start
    assert mod.lever_fields("dm", 50, args) == dict(real_batch="uniform", init="real")
    assert mod.lever_fields("herding", 50, args) == {}
    names = []
    monkeypatch.setattr(mod, "cached_set", lambda path, make, dev: (names.append(path.name), (None, 0.0))[1])
    for real_batch, init in ((None, None), ("representative", None), (None, "herding")):
        mod.make_set("atom", 10, None, argparse.Namespace(**dict(vars(args), real_batch=real_batch, init=init)),
                     "cpu", tmp_path)
    assert names[0] == "atom-ipc10-f2-random-it200-br64-s0.safetensors"  # the name older caches have
    assert names[1] == "atom-ipc10-f2-random-representative-it200-br64-s0.safetensors"
    assert names[2] == "atom-ipc10-f2-random-herding-it200-br64-s0.safetensors"


def test_ablation_keys_read_older_records_as_uniform_batches_from_real_images(load_benchmark):
    mod = load_benchmark("ablation")
    rec = dict(setting="s10c10-p4-f2", ipc=10, iterations=200, batch_real=64, eval_epochs=300, num_models=3, seed=0,
               device="cpu")
    key = lambda r: mod.ResultsFile("unused.json", mod.KEY, mod.legacy).key(r)  # noqa: E731
    assert key(rec) == key(dict(rec, real_batch="uniform", init="real"))
    assert key(rec) != key(dict(rec, real_batch="representative"))
    assert key(dict(rec, setting="herding", iterations=0))[2:4] == ("None", "None")
    assert {"s10c10-p4-f2-rep", "s10c10-p4-f1-herd", "dm"} <= set(mod.ROUNDS[9])
    assert mod.ROUNDS[9]["s10c10-p4-f2-rep"]["real_batch"] == "representative"


def _rec(method, ipc, iterations, accs, **kw):
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5
    return dict(dict(split="test", method=method, model="convnet", ipc=ipc, iterations=iterations, num_models=3,
                     eval_epochs=300, seed=0, device="cpu", accuracies=accs, accuracy_mean=mean, accuracy_std=std,
                     date="2026-12-06", command="python benchmarks/fashion_mnist.py --ipc 1", torch="2"), **kw)


def test_budget_curve_pairs_the_default_with_dm_and_says_the_trend(load_benchmark, tmp_path):
    report = load_benchmark("report")
    report.DRAW = False
    report.RESULTS = tmp_path
    assert "no budget-curve records yet" in report.budget_curve_section()
    f2 = dict(factor=2, networks="random", lr_images=0.3)
    dm = dict(factor=1, networks="random", lr_images=1.0)
    recs = [_rec("atom", 1, 200, [76.0, 77.0, 76.5], **f2), _rec("dm", 1, 200, [71.0, 71.5, 71.0], **dm),
            _rec("atom", 1, 2000, [80.0, 80.5, 80.2], **f2), _rec("dm", 1, 2000, [77.0, 77.5, 77.2], **dm),
            _rec("atom", 1, 1000, [90.0, 90.0, 90.1], **dict(f2, real_batch="representative")),  # not the default
            _rec("herding", 1, 0, [68.0, 68.5, 68.1])]
    Path(tmp_path / "fashion_mnist.json").write_text(__import__("json").dumps(recs))
    text = report.budget_curve_section()
    lines = text.splitlines()
    assert "| 1 | 200 | 76.50 ± 0.50 | 71.17 ± 0.29 | +5.33 ± 0.29 | 68.20 ± 0.26 |" in lines
    assert "| 1 | 1000 | — | — | — | 68.20 ± 0.26 |" in lines  # the representative record is no default point
    assert "- IPC 1: the gain over dm shrinks from +5.33 (200 it) to +3.00 (2000 it)" in lines
    assert "- IPC 10: fewer than two budgets measured with both methods" in lines
    assert "figures/fashion_mnist_budget.png" in text
    assert report.budget_line() == ("**More condensation** (test split, paired by evaluation seed, [budget curve]"
                                    "(benchmarks.md#budget-curve)): IPC 1: the gain over dm shrinks from +5.33 (200 "
                                    "it) to +3.00 (2000 it); IPC 10: not yet measured at two budgets.")


@pytest.mark.parametrize("flag", ["--real-batch", "--init"])
def test_protocol_flags_take_only_the_configs_choices(load_benchmark, flag, monkeypatch, capsys):
    mod = load_benchmark("fashion_mnist")
    monkeypatch.setattr("sys.argv", ["fashion_mnist.py", flag, "bogus"])
    with pytest.raises(SystemExit) as info:
        mod.main()
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def _val(setting, ipc, accs, iterations=200):
    return _rec(setting.split("-")[0], ipc, iterations, accs, setting=setting, split="validation",
                batch_real=64 if iterations else 0)


def test_lever_rows_pair_each_setting_with_its_control_and_apply_the_winning_rule(load_benchmark, tmp_path):
    report = load_benchmark("report")
    report.RESULTS = tmp_path
    assert "no lever measured yet" in report.quality_levers_section()
    recs = [_val("s10c10-p4-f1", 50, [85.0, 85.2, 85.1]), _val("herding", 50, [85.5, 85.9, 85.6], iterations=0),
            _val("s10c10-p4-f1-herd", 50, [86.4, 86.3, 86.5]),
            _val("s10c10-p4-f2-rep", 10, [83.5, 83.0, 83.9]), _val("s10c10-p4-f2", 10, [83.4, 83.1, 83.6]),
            _val("s10c10-p4-f2-rep", 1, [80.0, 80.0, 80.0], iterations=1000)]  # no control at 1000 iterations
    (tmp_path / "ablation_fmnist.json").write_text(__import__("json").dumps(recs))
    lines = report.quality_levers_section().splitlines()
    assert "| 50 | herding start | `s10c10-p4-f1-herd` − `s10c10-p4-f1` | +1.30 ± 0.17 | **yes** |" in lines
    assert ("| 50 | herding start − the herding coreset (the gain over the start) | `s10c10-p4-f1-herd` − `herding` "
            "| +0.73 ± 0.29 | **yes** |") in lines
    assert "| 50 | random real start (factor 1) − the herding coreset | `s10c10-p4-f1` − `herding` | -0.57 ± 0.12 | no |" in lines
    assert "| 10 | representative batches | `s10c10-p4-f2-rep` − `s10c10-p4-f2` | +0.10 ± 0.20 | no |" in lines
    assert not any(line.startswith("| 1 |") for line in lines)


def test_protocol_rows_name_the_levers_and_the_default_stays_the_uniform_real_started_set(load_benchmark, tmp_path):
    report = load_benchmark("report")
    report.DRAW = False
    report.RESULTS = tmp_path
    f2 = dict(factor=2, networks="random", lr_images=1.0, batch_real=64)
    recs = [_rec("atom", 10, 200, [90.0, 90.0, 90.1], **dict(f2, real_batch="representative", init="herding")),
            _rec("atom", 10, 200, [83.0, 83.2, 83.1], **f2),
            _rec("dm", 10, 200, [80.5, 80.6, 80.4], factor=1, networks="random", lr_images=1.0, batch_real=64)]
    (tmp_path / "fashion_mnist.json").write_text(__import__("json").dumps(recs))
    text = report.protocol_table()
    assert "| random, representative batches, herding start |" in text
    assert "default − dm = +2.60 ± 0.10" in text  # the target reads the uniform, real-started set
    assert report._headline_cell(recs, "atom", 10, (200, 3, 300, "cpu"))["accuracy_mean"] == pytest.approx(83.1)


def test_ablation_caches_each_condensed_setting_apart(load_benchmark, tmp_path):
    mod = load_benchmark("ablation")
    from atom_plugin import ATOMConfig

    cfg = ATOMConfig(preset="atom", ipc=50, iterations=200, factor=1, init="herding")
    path = mod.cache_path(tmp_path, "s10c10-p4-f1-herd", cfg, 0, 5000)
    assert path.name.startswith("s10c10-p4-f1-herd-ipc50-it200-") and path.suffix == ".safetensors"
    assert path == mod.cache_path(tmp_path, "s10c10-p4-f1-herd", cfg, 0, 5000)  # stable: a rerun finds it
    others = [mod.cache_path(tmp_path, "s10c10-p4-f1-herd", cfg.replace(init="real"), 0, 5000),
              mod.cache_path(tmp_path, "s10c10-p4-f1-herd", cfg.replace(lr_images=0.3), 0, 5000),
              mod.cache_path(tmp_path, "s10c10-p4-f1-herd", cfg, 1, 5000),
              mod.cache_path(tmp_path, "s10c10-p4-f1-herd", cfg, 0, 50),
              mod.cache_path(tmp_path, "s10c10-p4-f1-herd", cfg, 0, 5000, "cuda")]
    assert len({path, *others}) == 6  # no set is served to a run with other settings, or timed on another device
