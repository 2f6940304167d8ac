"""Committed records, goldens and docs hold no machine paths: an absolute path through a repository folder (an
absolute ``--out``, ``--cache-dir``, ``/runs/``) means something on one machine only. The check matches the shape
of such paths, never this clone's own location (that would pass in any other clone)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def common(load_benchmark):
    return load_benchmark("_common")


@pytest.fixture(scope="module")
def rewriter(load_benchmark):
    return load_benchmark("portable_paths")


def test_no_committed_record_golden_or_doc_holds_a_machine_path(common, rewriter):
    files = rewriter.targets()
    assert ROOT / "benchmarks" / "results" / "fashion_mnist.json" in files and ROOT / "README.md" in files
    offenders = [f"{p.relative_to(ROOT)}:{n}: {m.group(0)}" for p in files
                 for n, line in enumerate(p.read_text().splitlines(), 1) for m in common.MACHINE_PATH.finditer(line)]
    assert not offenders, "machine paths (run python benchmarks/portable_paths.py):\n" + "\n".join(offenders[:20])


@pytest.mark.parametrize("text", [
    "python benchmarks/ablation.py --out /home/alice/src/atom-plugin/benchmarks/results/ablation_fmnist.json",
    "--cache-dir /srv/ci/build/runs/bench-fmnist",
    "--cache-dir=/work/main/runs/bench-fmnist",
    "a scratch folder `/tmp/x/runs/`",
    "--data-root /home/bob/atom-plugin/data/fashion-mnist",
])
def test_the_check_sees_paths_inside_any_clone(common, text):
    assert common.MACHINE_PATH.search(text)
    assert not common.MACHINE_PATH.search(common.portable(text, root=None))


@pytest.mark.parametrize("text", [
    "--data-root /usr/share/datasets/fashion-mnist",  # a data root: as given
    "<!-- /results:protocol -->",  # the docs' generated slots
    "--collect /path/to/the/fetched/files",
    "https://github.com/org/repo/tree/main/docs/api.md",
    "--out benchmarks/results/fashion_mnist.json --cache-dir runs/bench-fmnist",
])
def test_the_check_leaves_data_roots_relative_paths_and_urls_alone(common, text):
    assert not common.MACHINE_PATH.search(text)
    assert common.portable(text, root=None) == text


def test_the_rewrite_makes_paths_relative_and_a_second_run_changes_nothing(rewriter, tmp_path):
    rec = dict(command="python benchmarks/fashion_mnist.py --data-root /usr/share/datasets/fashion-mnist "
                       "--out /a/b/atom-plugin/benchmarks/results/fashion_mnist.json "
                       "--cache-dir /a/b/atom-plugin/runs/c")
    path = tmp_path / "r.json"
    path.write_text(json.dumps([rec], indent=1) + "\n")
    assert rewriter.rewrite(path, check=True) and "/a/b/" in path.read_text()  # --check changes nothing
    assert rewriter.rewrite(path)
    assert json.loads(path.read_text())[0]["command"] == (
        "python benchmarks/fashion_mnist.py --data-root /usr/share/datasets/fashion-mnist "
        "--out benchmarks/results/fashion_mnist.json --cache-dir runs/c")
    assert not rewriter.rewrite(path)


def test_a_recorded_command_is_relative_to_the_repository(common, monkeypatch):
    argv = [str(ROOT / "benchmarks" / "speed.py"), "--out", str(ROOT / "benchmarks" / "results" / "s.json"),
            "--data-root", "/usr/share/datasets/fashion-mnist", "--tag", "a b"]
    monkeypatch.setattr(sys, "argv", argv)
    assert common.command() == ("python benchmarks/speed.py --out benchmarks/results/s.json "
                                "--data-root /usr/share/datasets/fashion-mnist --tag 'a b'")
    assert common.stamp("cpu")["command"] == common.command()
