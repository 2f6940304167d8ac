"""benchmarks/avalanche_replay.py's records as report.py renders them: each memory variant gets its own table and
resume key; the real-sample methods are each variant's counterparts, paired by seed."""
import pytest


@pytest.fixture(scope="module")
def report(load_benchmark):
    return load_benchmark("report")


def test_benchmark_tables_and_resume_keys_separate_the_memory_variants(report, load_benchmark):
    mod, key = load_benchmark("avalanche_replay"), load_benchmark("_common").resume_key

    def rec(acc, **variant):
        return dict(benchmark=mod.BENCHMARK, method="atom-gdumb", memory=100, seed=0, budget="cpu", device="cpu",
                    final_avg_accuracy=acc, avg_forgetting=1.0, condense_seconds=2.0, **variant)

    legacy, new = rec(70.0), rec(75.0, memory_factor="table", memory_dsa=True)
    keys = {key(r, mod.KEY, mod.LEGACY_VARIANT) for r in (legacy, new)}
    at = mod.KEY.index("memory_factor")
    assert mod.KEY[at + 1] == "memory_dsa"
    assert len(keys) == 2 and ("1", "False") in {k[at:at + 2] for k in keys}  # a legacy record: factor 1, no DSA
    text = report.avalanche_markdown([legacy, new])
    assert "memory DSA off" in text and "factor per the per-IPC table; memory DSA on" in text
    assert "| 100 | atom-gdumb | 1 | 70.00 |" in text and "| 100 | atom-gdumb | 1 | 75.00 |" in text
    assert text.count(report.MEMORY_NOTE) == 2 and "memory (stored images)" in text


def test_benchmark_pairs_each_memory_variant_with_the_real_sample_methods_by_seed(report):

    def rec(method, seed, acc, **variant):
        return dict(benchmark=report.AVALANCHE, method=method, memory=100, seed=seed, budget="cpu", device="cpu",
                    final_avg_accuracy=acc, avg_forgetting=1.0, condense_seconds=2.0, **variant)

    gdumb = [rec("gdumb", 0, 70.0), rec("gdumb", 1, 72.0), rec("gdumb", 2, 74.0)]  # legacy: no variant fields
    ours = [rec("atom-gdumb", 0, 76.0, memory_factor="2"), rec("atom-gdumb", 1, 77.0, memory_factor="2")]
    text = report.avalanche_markdown(gdumb + ours)
    # one table (the factor-2 one): gdumb has no factor, so it is that table's counterpart; seed 2 is unpaired
    assert text.count(report.MEMORY_NOTE) == 1 and "| 100 | gdumb | 3 | 72.00 ± 2.00 |" in text
    assert "atom-gdumb − gdumb = +5.50 ± 0.71 points over 2 seed(s), paired by seed" in text
    assert "CPU recipe target +5: met" in text and "full recipe target +5: met" in text
    # a real-sample method run with memory DSA is not the counterpart of a table without it
    assert "| 100 | gdumb |" not in report.avalanche_markdown([rec("gdumb", 0, 70.0, memory_dsa=True)] + ours)


def test_benchmark_reports_memory_dsa_on_minus_off_paired_by_seed(report):

    def rec(method, seed, acc, **variant):
        return dict(benchmark=report.AVALANCHE, method=method, memory=100, seed=seed, budget="cpu", device="cpu",
                    final_avg_accuracy=acc, avg_forgetting=1.0, condense_seconds=2.0, **variant)

    off = [rec("gdumb", 0, 70.0), rec("gdumb", 1, 72.0), rec("atom-gdumb", 0, 75.0, memory_factor="table"),
           rec("atom-gdumb", 1, 76.0, memory_factor="table"), rec("atom-gdumb", 0, 60.0, memory_factor="1")]
    on = [rec("gdumb", 0, 71.0, memory_dsa=True), rec("gdumb", 1, 75.0, memory_dsa=True),
          rec("atom-gdumb", 0, 78.0, memory_factor="table", memory_dsa=True)]
    text = report.avalanche_markdown(off + on)
    assert "memory DSA on − off" in text and text.count("memory DSA on − off") == 1  # only the DSA-on table
    assert "- memory 100: gdumb +2.00 ± 1.41 points over 2 seed(s), paired by seed" in text
    # the atom method's off run is the one with the table's factor (table: 75.0), not factor 1's (60.0)
    assert "- memory 100: atom-gdumb +3.00 points over 1 seed(s), paired by seed" in text
