"""benchmarks/_common.py, the benchmark toolkit: one results-file type (append with provenance, resume keys with
older records' missing fields filled, no duplicates), the per-candidate cache, the cached sets whose condensation
resumes after a kill, and the one provenance line."""
from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture(scope="module")
def common(load_benchmark):
    return load_benchmark("_common")


def test_results_file_appends_with_provenance_and_knows_what_is_done(common, tmp_path):
    path = tmp_path / "r.json"
    legacy = lambda r: dict(factor=1 if r.get("method") == "dm" else None)  # noqa: E731 (older dm records: factor 1)
    results = common.ResultsFile(path, ("method", "ipc", "factor"), legacy)
    path.write_text(json.dumps([dict(method="dm", ipc=10, accuracy_mean=80.0)]))  # an older record: no factor
    assert results.done(dict(method="dm", ipc=10, factor=1)) and not results.done(dict(method="dm", ipc=10, factor=2))
    rec = results.append(dict(method="dm", ipc=10, factor=2), device="cpu")
    assert {"device", "torch", "date", "command"} <= set(rec) and rec["device"] == "cpu"
    assert results.done(dict(method="dm", ipc=10, factor=2))  # known at once, without rereading the file
    assert common.ResultsFile(path, ("method", "ipc", "factor"), legacy).done(rec)  # and on disk
    assert [r.get("factor") for r in results.records(method="dm")] == [None, 2]


def test_append_new_skips_what_is_there_and_repeats_within_the_batch(common, tmp_path):
    results = common.ResultsFile(tmp_path / "r.json")  # no key: the whole record
    a, b = dict(x=1), dict(x=2)
    assert results.append_new([a, b, b]) == [a, b]
    assert results.append_new([a, dict(x=3)]) == [dict(x=3)]
    assert json.loads((tmp_path / "r.json").read_text()) == [a, b, dict(x=3)]


def test_candidate_cache_survives_a_cut_line_and_reloads(common, tmp_path):
    cache = common.CandidateCache(tmp_path / "c" / "candidates.jsonl")
    cache.put(dict(key="a|1", accuracy=50.0))
    with open(cache.path, "a") as f:
        f.write('{"key": "b|1", "accu')  # an interrupted write
    again = common.CandidateCache(cache.path)
    assert again.get("a|1") == dict(key="a|1", accuracy=50.0) and again.get("b|1") is None


def test_provenance_is_one_line_naming_the_shared_arguments_and_those_that_differ(common):
    recs = [dict(device="cpu", torch="2.4", date="2026-12-01T10:00:00+00:00",
                 command="python benchmarks/ablation.py --data-root /d --round 1 --iterations 200 --compile"),
            dict(device="cpu", torch="2.4", date="2026-12-03T10:00:00+00:00",
                 command="python benchmarks/ablation.py --data-root /d --round 4 --only dm dm-f2 --iterations 200 "
                         "--compile")]
    line = common.provenance(recs)
    assert "\n" not in line
    assert line == ("Device: cpu; torch 2.4; 2026-12-01 to 2026-12-03. Written by `python benchmarks/ablation.py "
                    "--data-root /d --iterations 200 --compile` with per-record `--only`, `--round`.")
    assert common.provenance([]) == "_no results yet_"
    kept = common.provenance([recs[0], dict(recs[1], freed_memory="kept")])
    assert kept.endswith(" 1 of 2 records ran with glibc keeping freed memory (`atom_plugin.keep_freed_memory`: "
                         "the same results; CPU seconds not comparable with the others').")


def test_mean_std(common):
    assert common.mean_std([1.0, 2.0, 3.0]) == "2.00 ± 1.00"
    assert common.mean_std([70.0]) == "70.00" and common.mean_std([]) == ""


def test_a_cached_condensation_killed_midway_continues_from_its_checkpoint(common, digits, tmp_path, monkeypatch):
    from atom_plugin import ATOMConfig, CondenseCallback, condense

    class Kill(CondenseCallback):
        def on_checkpoint(self, state, path):
            raise KeyboardInterrupt  # the first checkpoint (iteration 3) is written, then the process dies

    monkeypatch.setattr(common, "CHECKPOINT_EVERY", 3)
    cfg = ATOMConfig(preset="dm", ipc=1, iterations=6, width=16, batch_real=8, factor=1, networks="random",
                     init="herding")  # a herding start: selected once, counted once
    path = tmp_path / "set.safetensors"
    run = lambda *cbs: condense(digits, cfg, device="cpu", seed=0, classes=[0, 1], callbacks=cbs,  # noqa: E731
                                **common.resumable(path))
    with pytest.raises(KeyboardInterrupt):
        common.cached_set(path, lambda: run(Kill()))
    assert common.checkpoint_path(path).exists() and not path.exists()

    class OneSecond:  # this process's clock, fixed: what the set's seconds add to it is then exact
        seconds = 1.0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(common, "Timer", OneSecond)
    s, seconds = common.cached_set(path, run)
    before, start = s.provenance["seconds_before_resume"], s.provenance["init"]["seconds"]
    assert s.provenance["resumed_from"] == 3 and before > 0 and start > 0
    assert seconds == pytest.approx(1.0 + before + start) and s.provenance["seconds"] == round(seconds, 2)
    assert torch.equal(s.images, condense(digits, cfg, device="cpu", seed=0, classes=[0, 1]).images)  # bit-exact
    assert not common.checkpoint_path(path).exists()  # done: the checkpoint goes
    again, cached_seconds = common.cached_set(path, lambda: pytest.fail("a cached set is not made again"))
    assert torch.equal(again.images, s.images) and cached_seconds == s.provenance["seconds"]
