"""benchmarks/gpu_check.py, the prepared GPU command: every stage runs end to end on CPU (``--smoke-cpu``) and
writes its records; a stage over its time box is killed with its process group, recorded as ``timeout``, and the
run goes on; ``--collect`` merges what a GPU call brought back without duplicates and refuses smoke runs."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
ENV = ("device", "torch", "date", "command")


@pytest.fixture(scope="module")
def gpu_check(load_benchmark):
    return load_benchmark("gpu_check")


def _records(path: Path) -> list[dict]:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_smoke_cpu_runs_every_stage_and_writes_its_records(gpu_check, tiny_fmnist_root, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(BENCH / "gpu_check.py"), "--smoke-cpu", "--data-root", str(tiny_fmnist_root),
           "--out", str(out), "--work", str(tmp_path / "work")]
    env = dict(os.environ, HOME=str(tmp_path), MPLBACKEND="Agg")
    env.pop("OUT", None)
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = _records(out / "gpu_check.json")
    head, stages = status[0], {r["stage"]: r for r in status[1:]}
    assert head["benchmark"] == "gpu-check-environment" and head["smoke"] is True and head["device"] == "cpu"
    assert head["stages"] == list(gpu_check.STAGES) == list(stages)
    for name, rec in stages.items():
        assert rec["benchmark"] == "gpu-check-stage" and rec["status"] == "ok", rec
        assert rec["returncodes"] == [0] * len(rec["commands"]), rec
        assert rec["commands"] and rec["seconds"] <= rec["box_seconds"] and all(k in rec for k in ENV), rec
    n_tests = sum(len(re.findall(r"^def test_", (ROOT / "tests" / f).read_text(), re.M))
                  for f in gpu_check.CUDA_TEST_FILES)
    tests = stages["cuda-tests"]["tests"]
    assert len(tests) == n_tests and set(tests.values()) <= {"SKIPPED", "PASSED"}, tests

    speed = _records(out / "speed.json")
    assert stages["speed"]["new_records"] == {"speed.json": len(speed)} and len(speed) == 4
    timed = [r for r in speed if r["benchmark"] == "speed"]
    assert [r["mode"] for r in timed] == ["fast", "reference"]
    for r in timed:
        assert r["ms_per_iter"] > 0 and r["iters_per_s"] > 0 and r["peak_mem_mb"] is None and r["compile"] is False
        assert r["timing"] == "perf_counter per block" and all(k in r for k in ENV)
    for r in (r for r in speed if r["benchmark"] == "speed-profile"):
        assert r["profiled_steps"] == 1 and r["host_op_ms_per_step"] > 0 and r["kernels_per_step"] is None

    protocol = _records(out / "fashion_mnist.json")
    assert [(r["method"], r["ipc"]) for r in protocol] == [("atom", 1), ("dm", 1), ("random", 1), ("random", 2)]
    assert stages["ipc10"]["new_records"] == {"fashion_mnist.json": 3}
    assert stages["ipc1-50"]["new_records"] == {"fashion_mnist.json": 1}
    for r in protocol:
        assert 0 <= r["accuracy_mean"] <= 100 and r["split"] == "test" and all(k in r for k in ENV)

    proxy = _records(out / "proxy_validity.json")
    assert sorted(r["proxy"] for r in proxy) == ["atom", "full", "random"]
    assert all(r["num_architectures"] == 2 and r["val_size"] == 50 for r in proxy)
    ablation = _records(out / "ablation_fmnist.json")
    assert [(r["setting"], r["split"], r["val_size"]) for r in ablation] == [("random", "validation", 50)]

    log = (out / "gpu_check.log").read_text()
    assert all(f"=== [{name}] " in log for name in stages)
    assert len(list(out.iterdir())) <= 6  # what a device call brings back
    with pytest.raises(gpu_check.ConfigError, match="smoke"):
        gpu_check.collect(out, tmp_path / "results")


_SLEEPER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(child.pid))
print("partial output " + "before the box ran out", flush=True)  # built at run time: not in the header
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in state  # a zombie is dead, waiting to be reaped


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to see the grandchild")
def test_a_stage_over_its_box_is_killed_recorded_as_timeout_and_the_run_goes_on(gpu_check, tiny_fmnist_root,
                                                                                  tmp_path, monkeypatch):
    pid_file = tmp_path / "grandchild.pid"
    stages = {
        "slow": gpu_check.Stage("slow", 300, (), lambda c: [[sys.executable, "-c", _SLEEPER, str(pid_file)]]),
        "next": gpu_check.Stage("next", None, (), lambda c: [[sys.executable, "-c", "print('next stage ran')"]]),
    }
    monkeypatch.setattr(gpu_check, "STAGES", stages)
    out = tmp_path / "out"
    args = argparse.Namespace(smoke_cpu=True, device="cpu", data_root=str(tiny_fmnist_root), out=str(out),
                              work=str(tmp_path / "work"), box=["slow=1"], stages=["slow", "next"], budget=420)
    t0 = time.monotonic()
    assert gpu_check.check(args) == 1
    assert time.monotonic() - t0 < 60
    slow, nxt = _records(out / "gpu_check.json")[1:]
    assert (slow["stage"], slow["status"], slow["returncodes"], slow["box_seconds"]) == ("slow", "timeout", [None], 1)
    assert "partial output before the box ran out" in slow["output_tail"]
    assert (nxt["stage"], nxt["status"], nxt["returncodes"]) == ("next", "ok", [0]) and "output_tail" not in nxt
    assert "next stage ran" in (out / "gpu_check.log").read_text()
    deadline = time.monotonic() + 10
    grandchild = int(pid_file.read_text())
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild), "the stage's process group was not killed"


def test_a_failing_command_marks_its_stage_error_and_the_next_command_still_runs(gpu_check, tiny_fmnist_root,
                                                                                   tmp_path, monkeypatch):
    bad = gpu_check.Stage("bad", None, (), lambda c: [[sys.executable, "-c", "import sys; sys.exit('it ' + 'broke')"],
                                                      [sys.executable, "-c", "print('still ' + 'measured')"]])
    monkeypatch.setattr(gpu_check, "STAGES", {"bad": bad})
    args = argparse.Namespace(smoke_cpu=True, device="cpu", data_root=str(tiny_fmnist_root), out=str(tmp_path),
                              work=str(tmp_path / "work"), box=[], stages=["bad"], budget=420)
    assert gpu_check.check(args) == 1
    rec = _records(tmp_path / "gpu_check.json")[1]
    assert rec["status"] == "error" and rec["returncodes"] == [1, 0] and len(rec["commands"]) == 2
    assert "it broke" in rec["output_tail"] and "still measured" in rec["output_tail"]


def test_missing_data_is_one_error_naming_the_flag_and_the_copy_command(gpu_check, tmp_path):
    args = argparse.Namespace(smoke_cpu=True, device="cpu", data_root=str(tmp_path / "nothing"), out=str(tmp_path),
                              work=str(tmp_path), box=[], stages=None, budget=420)
    with pytest.raises(gpu_check.DataError, match=r"`--data-root`.*cp /usr/share/datasets/fashion-mnist"):
        gpu_check.check(args)


def test_collect_appends_new_records_once_with_portable_commands(gpu_check, tmp_path):
    env = dict(device="NVIDIA H200", torch="2.11.0+cu130", date="2026-12-01T00:00:00+00:00", command="python x")
    got = tmp_path / "files" / "out"
    got.mkdir(parents=True)
    (got / "gpu_check.json").write_text(json.dumps([dict(benchmark="gpu-check-stage", stage="speed", status="ok",
                                                          smoke=False, **env)]))
    old, new = dict(benchmark="speed", ipc=10, ms_per_iter=3.0, **env), dict(benchmark="speed", ipc=50, **env)
    machine = dict(new, ipc=1, command="python benchmarks/speed.py --out /tmp/x/repo/benchmarks/results/speed.json")
    (got / "speed.json").write_text(json.dumps([old, new, new, machine]))
    results = tmp_path / "results"
    results.mkdir()
    (results / "speed.json").write_text(json.dumps([old]))
    assert gpu_check.collect(tmp_path / "files", results) == {"gpu_check.json": 1, "speed.json": 2}
    portable = dict(machine, command="python benchmarks/speed.py --out benchmarks/results/speed.json")
    assert _records(results / "speed.json") == [old, new, portable]
    assert gpu_check.collect(tmp_path / "files", results) == {"gpu_check.json": 0, "speed.json": 0}
    (got / "speed.json").write_text(json.dumps([dict(benchmark="speed", device="cpu")]))
    with pytest.raises(gpu_check.ConfigError, match="lacks torch, date, command"):
        gpu_check.collect(tmp_path / "files", results)
    with pytest.raises(gpu_check.ConfigError, match="holds none"):
        gpu_check.collect(tmp_path / "empty", results)
