"""benchmarks/proxy_validity.py --budget cpu: its flags (a pinned setting or a bad shard exits 2), the plan it prints
without touching data, and report.py's section without records ("not yet measured") and with them."""
import json

import pytest


@pytest.fixture(scope="module")
def pv(load_benchmark):
    return load_benchmark("proxy_validity")


@pytest.mark.parametrize("argv,message", [
    (["--budget", "cpu", "--proxy-epochs", "5"], "--budget cpu pins"),
    (["--budget", "cpu", "--shard", "2/2"], "--shard 2/2: give I/K"),
    (["--budget", "cpu", "--plan", "--summary"], "give one of"),
    (["--shard", "0/2"], "add --budget cpu"),
])
def test_bad_flags_exit_2_naming_the_flag(pv, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        pv.parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_shard_and_defaults(pv):
    args = pv.parse_args(["--budget", "cpu", "--shard", "1/2"])
    assert (args.shard_index, args.shard_count, args.num_archs, args.lr_schedule) == (1, 2, 40, "constant")
    assert args.out.endswith("proxy_validity_cpu.json")


def test_plan_prints_the_estimate_and_the_aligned_evaluations(pv, capsys, tmp_path):
    assert pv.main(["--budget", "cpu", "--plan", "--cache-dir", str(tmp_path)]) == []
    out = capsys.readouterr().out
    assert out.startswith("40 architectures, 26.0 M sample passes, ~") and "CPU-hours" in out
    assert "('full-data early stop', 0.5, 27500, '30k')" in out and "('condensed f2', 300.0, 120000, '120k')" in out


def test_plan_scales_the_estimate_by_the_measured_speed(pv, capsys, tmp_path):
    """A run logged at twice the plan's cost model: --plan says so and doubles the study's CPU-hours."""
    import json

    from atom_plugin.integrations.proxy import plan, space

    arch = "d3-w128-relu-instancenorm-avgpool"
    model_seconds = 100 * 300 * plan.ms_per_sample(space.parse_arch_key(arch)) / 1000
    (tmp_path / "candidates-0of2.jsonl").write_text(json.dumps(dict(
        key="k", kind="random 100", arch=arch, seed=0, train_size=100, epochs=300, points=[],
        seconds=2 * model_seconds, device="cpu")) + "\n")
    assert pv.main(["--budget", "cpu", "--plan", "--runs-dir", str(tmp_path), "--cache-dir", str(tmp_path)]) == []
    out = capsys.readouterr().out
    hours = float(out.split("sample passes, ~")[1].split(" CPU-hours")[0])
    ms = 2 * plan.ms_per_sample(space.parse_arch_key(arch))
    assert f"1 runs, {ms:.2f} ms per sample pass on average, 2.00x the plan's model" in out
    scaled = float(out.split("the study is ~")[1].split(" CPU-hours")[0])
    assert abs(scaled - 2 * hours) <= 0.1


def test_report_says_not_yet_measured_without_records(load_benchmark, tmp_path):
    report = load_benchmark("report")
    report.RESULTS = tmp_path  # no records
    assert report.proxy_cpu_section().startswith("_not yet measured")
    assert report.proxy_cpu_line().endswith("not yet measured.")


def test_a_pick_logged_elsewhere_is_trained_again_and_checked(pv, digits, tmp_path):
    """--summary in a session without the saved networks: the pick is trained again with the logged seed, must
    give the logged validation accuracies (else exit), and is saved; a saved network is loaded, not retrained."""
    import argparse

    import torch
    from atom_plugin import random_subset
    from atom_plugin.integrations.proxy import plan, space

    train, val = random_subset(digits, 8, seed=0), random_subset(digits, 4, seed=1)
    args = argparse.Namespace(_val=val, lr=0.01, weight_decay=5e-4, batch_size=32, lr_schedule="constant")
    arch = dict(depth=1, width=32, act="relu", norm="none", pool="avgpool")
    run = plan.Run(pv.FULL_KIND, len(train), 2, (1, 2))
    nets = tmp_path / "nets"
    _, points, _ = pv._train_run(args, "cpu", run, train, arch, 3)
    entry = dict(arch=space.arch_key(arch), seed=3, points=points, network=f"{space.arch_key(arch)}-s3.safetensors")
    net, again = pv._full_network(args, "cpu", run, train, arch, entry, nets)
    assert again and [p.name for p in nets.iterdir()] == [f"{space.arch_key(arch)}-s3.safetensors"]
    loaded, again = pv._full_network(args, "cpu", run, train, arch, entry, nets)
    assert not again and all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    nets_other = tmp_path / "other"
    bad = dict(entry, points=[[p[0], p[1], p[2] + 1.0, p[3]] for p in points])
    with pytest.raises(SystemExit, match="trained again gives validation accuracies"):
        pv._full_network(args, "cpu", run, train, arch, bad, nets_other)
    assert not nets_other.exists()
    # a saved file that is not the logged network (e.g. an older design's, same name) is refused, not tested
    with pytest.raises(SystemExit, match="it is another network"):
        pv._full_network(args, "cpu", run, train, arch, bad, nets)


def test_quick_study_end_to_end(pv, load_benchmark, tmp_path):
    """--budget cpu --quick, every step in one process on digits: one record per (proxy, cost point), the reference a
    row of its own (never an early-stop comparison), regret the clipped signed regret, the report's section drawn
    from the records; run again, the records are replaced (not doubled) and the picks' saved networks reused."""
    out = tmp_path / "proxy_validity_cpu_quick.json"
    argv = ["--budget", "cpu", "--quick", "--dataset", "digits", "--num-archs", "4", "--val-size", "200",
            "--bootstrap", "20", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    recs = pv.main(argv)
    got = {(r["proxy"], r["cost_point"]) for r in recs}
    assert len(recs) == len(got) == 9 and ("condensed f2", "640") in got and ("random 400", "160") in got
    ref = [r for r in recs if r["reference"]]
    assert [(r["proxy"], r["cost_point"], r["spearman_all"]) for r in ref] == [(pv.FULL_KIND, "640", 1.0)]
    f2 = {r["cost_point"]: r for r in recs if r["proxy"] == "condensed f2"}
    assert "vs_early_stop" not in f2["640"] and f2["160"]["vs_early_stop"]["against"] == pv.FULL_KIND
    assert f2["640"]["vs_random"]["against"] == "random 400"
    assert all(r["regret_points"] == max(0.0, r["regret_signed"]) and len(r["candidates"]) == 4 for r in recs)
    assert all(r["above_chance_margin"] == 5.0 for r in recs)

    report = load_benchmark("report")
    report.RESULTS, report.DRAW = tmp_path, False
    section = report.proxy_cpu_section()
    assert "Quick CPU check" in section and f"{pv.FULL_KIND} (the reference)" in section
    assert "condensed f2 at 640 passes" in section  # its targets, met or missed

    again = pv.main(argv)
    assert len(json.loads(out.read_text())) == 9 and all(r["picks_retrained"] == [] for r in again)


def test_runs_are_logged_in_the_results_folder_by_default(pv):
    args = pv.parse_args(["--budget", "cpu", "--shard", "0/2"])
    assert args.runs_dir.endswith("proxy_validity_cpu_runs") and pv._cpu_cache(args).path.name == "candidates-0of2.jsonl"
    assert pv.parse_args(["--budget", "cpu", "--quick", "--cache-dir", "x"]).runs_dir == "x"
