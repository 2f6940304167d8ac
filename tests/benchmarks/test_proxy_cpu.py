"""benchmarks/proxy_validity.py --budget cpu: its flags (a pinned setting or a bad shard exits 2), the plan it prints
without touching data, and report.py's section without records ("not yet measured") and with them."""
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


def test_report_says_not_yet_measured_without_records(load_benchmark, tmp_path):
    report = load_benchmark("report")
    report.RESULTS = tmp_path  # no records
    assert report.proxy_cpu_section().startswith("_not yet measured")
    assert report.proxy_cpu_line().endswith("not yet measured.")
