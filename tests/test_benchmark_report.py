"""benchmarks/report.py: the minimum-bar line under the protocol table is computed, not written by hand."""
import importlib.util
from pathlib import Path

import pytest

_REPORT = Path(__file__).resolve().parent.parent / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", _REPORT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rec(method, ipc, accs, iterations=200):
    mean = sum(accs) / len(accs)
    std = (sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)) ** 0.5
    return dict(method=method, model="convnet", ipc=ipc, iterations=0 if method == "random" else iterations,
                device="cpu", num_models=len(accs), eval_epochs=300, seed=0, accuracies=accs,
                accuracy_mean=mean, accuracy_std=std)


def test_minimum_bar_met_only_when_atom_clears_the_larger_std(report):
    recs = [_rec("atom", 10, [82.0, 82.2, 82.4]), _rec("dm", 10, [81.0, 81.3, 81.6]),
            _rec("random", 10, [77.0, 77.2, 77.4]),
            _rec("atom", 1, [71.0, 71.4, 71.8]), _rec("dm", 1, [70.8, 71.2, 71.6]), _rec("random", 1, [50, 51, 52])]
    text = report._minimum_bar(recs)
    ipc10 = next(line for line in text.splitlines() if line.startswith("- IPC 10 "))
    ipc1 = next(line for line in text.splitlines() if line.startswith("- IPC 1 "))
    assert "atom − dm = +0.90" in ipc10 and "larger std 0.30" in ipc10 and "**met**" in ipc10
    assert "paired by evaluation seed: +0.90 ± 0.10" in ipc10
    assert "atom − dm = +0.20" in ipc1 and "**not met**" in ipc1  # +0.20 < dm's std 0.40 (random's is 1.00)
    assert "- IPC 50: not measured" in text


def test_minimum_bar_ignores_a_dm_run_of_another_budget(report):
    recs = [_rec("atom", 10, [82.0, 82.2, 82.4]), _rec("dm", 10, [70.0, 70.1, 70.2], iterations=8000),
            _rec("random", 10, [77.0, 77.2, 77.4])]
    assert "atom − random = +5.00, random's std 0.20, dm not measured at this budget → undecided" \
        in report._minimum_bar(recs)
    assert "dm and random missing at this budget" in report._minimum_bar(recs[:2])


def test_minimum_bar_with_one_control_missing_is_decided_only_by_a_miss(report):
    atom, dm = _rec("atom", 50, [85.2, 85.4, 85.6]), _rec("dm", 50, [85.1, 85.5, 85.5])
    line = report._minimum_bar([atom, dm]).splitlines()[2]
    assert line.startswith("- IPC 50 (200 it; 3 × 300 ep): atom − dm = +0.03, dm's std 0.23, random not measured")
    assert "**not met**" in line and "paired by evaluation seed: +0.03 ± 0.12" in line
    far = _rec("atom", 50, [87.0, 87.2, 87.4])
    assert "→ undecided" in report._minimum_bar([far, dm]).splitlines()[2]
