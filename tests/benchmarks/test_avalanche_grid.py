"""benchmarks/avalanche_replay.py's strategies x memories grid on a tiny generated Fashion-MNIST (quick recipe, CPU):
records, resume, the plan, the refusal of a run without replay, the fine-tune choice on a validation split."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("avalanche")

from fakedata import write_fashion_mnist  # noqa: E402


@pytest.fixture(scope="module")
def fm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid_fmnist")
    write_fashion_mnist(root, n_train_per_class=6, n_test_per_class=3, gz=False, seed=0, layout="torchvision")
    return root


@pytest.fixture()
def grid(load_benchmark, tmp_path, monkeypatch):
    import dataclasses

    from atom_plugin.integrations.avalanche import comparison

    quick = dataclasses.replace(comparison.QUICK_RECIPE, condense_iterations=1, condense_width=8)  # cheaper still
    monkeypatch.setitem(comparison.RECIPES, "quick", quick)
    mod = load_benchmark("avalanche_replay")
    mod.RESULTS = tmp_path  # the choice files of --choose-finetune
    mod.FINETUNE_CHOICE = tmp_path / "avalanche_finetune_choice_cpu.json"
    return mod


def test_grid_cells_record_their_strategy_and_memory_and_resume(grid, fm_root, tmp_path, capsys):
    out = tmp_path / "grid.json"
    argv = ["--quick", "--data-root", str(fm_root), "--memories", "10", "--seeds", "0", "--strategies", "er_ace+ft",
            "der", "--memory-kinds", "atom", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    grid.main(argv + ["--plan"])
    assert "2 runs left" in capsys.readouterr().out and not out.exists()
    grid.main(argv)
    recs = json.loads(out.read_text())
    assert [(r["method"], r["strategy"], r["memory_kind"], r["memory_policy"]) for r in recs] == [
        ("er_ace+ft-atom", "er_ace+ft", "atom", "ATOMBuffer"), ("der-atom", "der", "atom", "ATOMLogitsBuffer")]
    assert recs[0]["finetune_epochs"] == 2 and recs[1]["finetune_epochs"] is None
    assert all(r["batch_size_mem"] == 8 and r["memory_decoded"] == 40 for r in recs)
    # the second strategy reused the first one's condensed memories (same seed, memory, experiences)
    assert recs[0]["cached_updates"] == 0 and recs[1]["cached_updates"] == 5
    assert recs[1]["condense_seconds"] == recs[0]["condense_seconds"]
    # ... and spent no condensation time of its own: its training seconds are not net of the original time
    assert recs[0]["condense_seconds_spent"] == recs[0]["condense_seconds"] and recs[1]["condense_seconds_spent"] == 0
    assert recs[1]["train_seconds_without_condensation"] == recs[1]["train_seconds"]
    grid.main(argv + ["--plan"])
    assert "0 runs left" in capsys.readouterr().out


def test_old_records_map_onto_cells_and_keep_their_resume_keys(grid):
    from _common import resume_key

    old = dict(benchmark=grid.BENCHMARK, method="herding", memory=100, seed=0, budget="cpu", device="cpu")
    key = resume_key(old, grid.KEY, grid.legacy)
    assert key[-6:] == ("replay", "herding", "None", "None", "None", "None")  # a real memory: no condensation pin
    atom = dict(old, method="atom-replay", memory_factor="table", memory_dsa=False)
    new = dict(atom, strategy="replay", memory_kind="atom", batch_size_mem=None, finetune_epochs=None,
               finetune_lr=None, condense_pin=grid.condense_pin(grid.GRID_CONDENSE, grid.GRID_PER_IPC))
    assert resume_key(atom, grid.KEY, grid.legacy) == resume_key(new, grid.KEY, grid.legacy)


def test_a_run_without_replay_is_refused_before_any_work(grid, fm_root, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        grid.main(["--quick", "--data-root", str(fm_root), "--memories", "4", "--strategies", "er_ace",
                   "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2 and "--memories 4" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        grid.main(["--quick", "--data-root", str(fm_root), "--strategies", "der", "--memory-dsa",
                   "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2 and "--memory-dsa" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the memory-quality variant exists for the pinned CPU grid only
        grid.main(["--quick", "--data-root", str(fm_root), "--strategies", "er_ace+ft", "--memory-iterations", "50",
                   "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2 and "--memory-iterations 50" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        grid.main(["--budget", "cpu", "--data-root", str(fm_root), "--strategies", "er_ace+ft", "--memory-width", "0",
                   "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2 and "--memory-width 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the fine-tune is chosen on the pinned memories only
        grid.main(["--budget", "cpu", "--data-root", str(fm_root), "--choose-finetune", "--memory-iterations", "400",
                   "--out", str(tmp_path / "x.json")])
    assert exc.value.code == 2 and "--memory-iterations: --choose-finetune" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_memory_iterations_is_a_recorded_variant_with_its_own_resume_key(grid, tmp_path, capsys):
    out = tmp_path / "cpu.json"
    argv = ["--budget", "cpu", "--memories", "100", "--seeds", "0", "--strategies", "er_ace+ft", "--memory-kinds",
            "atom", "--out", str(out), "--plan"]
    grid.main(argv)
    pinned = capsys.readouterr().out
    grid.main(argv + ["--memory-iterations", "1000"])
    longer = capsys.readouterr().out
    assert "1 runs left" in pinned and "1 runs left" in longer
    grid.main(argv + ["--memory-iterations", "1000", "--memory-width", "64", "--memory-batch-real", "32"])
    wider = capsys.readouterr().out
    minutes = [float(text.split("~")[1].split("min")[0]) for text in (pinned, longer, wider)]
    assert minutes[1] > minutes[0] + 4 * grid.EST_SECONDS["atom"][0] / 60 * 0.99  # condensation: 5x the iterations
    assert minutes[2] > minutes[1] + 15 * grid.EST_SECONDS["atom"][0] / 60 * 0.99  # and 4x that for twice the width
    assert grid.condense_cost_ratio((("iterations", 1000), ("batch_real", 64))) == 10
    assert grid.condense_label((("iterations", 1000), ("width", 64))) == "iterations 1000, width 64"
    assert grid.condense_label(()) == "pinned"
    default = grid.condense_pin(dict(grid.GRID_CONDENSE, factor=None), grid.GRID_PER_IPC)
    assert grid.condense_pin(dict(grid.GRID_CONDENSE, factor=None, iterations=200), grid.GRID_PER_IPC) == default
    assert grid.condense_pin(dict(grid.GRID_CONDENSE, factor=None, iterations=1000), grid.GRID_PER_IPC) != default
    rec = dict(benchmark=grid.BENCHMARK, method="er_ace+ft-atom", budget="cpu")
    assert grid.memory_condense(rec) == ()  # a record from before the variant: the pinned settings
    assert grid.memory_condense(dict(rec, condense_config=dict(grid.GRID_CONDENSE, iterations=1000))) == (
        ("iterations", 1000),)
    assert grid.memory_condense(dict(rec, method="er_ace+ft-herding")) is None
    assert grid.memory_condense(dict(rec, budget="full")) is None
    both = dict(grid.GRID_CONDENSE, iterations=1000, width=64, batch_real=32)  # batch_real as pinned: no change
    assert grid.memory_condense(dict(rec, condense_config=both)) == (("iterations", 1000), ("width", 64))


def test_choose_finetune_uses_a_validation_split_of_the_training_experiences(grid, fm_root, tmp_path):
    grid.FINETUNE_CANDIDATES = dict(epochs=(1,), lr=(0.01, 0.05))
    bench = grid.validation_benchmark(fm_root)
    assert [len(e.dataset) for e in bench.train_stream] == [11] * 5  # 12 training samples each, 1 held out
    assert [len(e.dataset) for e in bench.test_stream] == [1] * 5
    grid.main(["--quick", "--data-root", str(fm_root), "--memories", "10", "--choose-finetune", "--memory-kinds",
               "atom"])
    done = json.loads((tmp_path / "avalanche_finetune_choice_quick.json").read_text())
    assert [(c["lr"], c["memory_kind"]) for c in done["candidates"]] == [(0.01, "atom"), (0.05, "atom")]
    assert (done["choice"]["epochs"], done["choice"]["lr"]) in {(1, 0.01), (1, 0.05)}
    assert "never the test stream" in done["rule"]
