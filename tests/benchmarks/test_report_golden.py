"""Golden report tables: the Markdown bodies that benchmarks/report.py puts between the docs' markers, made from a
frozen copy of benchmarks/results/*.json in tests/golden/results/ (so a new benchmark record changes the docs, not
this test; figures are linked, not drawn), compared byte for byte with tests/golden/report_NAME.md.

A deliberate change (a new column) regenerates them, and the diff of tests/golden/ is reviewed with the change:

    UPDATE_GOLDEN=1 python -m pytest -q tests/benchmarks/test_report_golden.py
"""
from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def frozen_report(load_benchmark):
    mod = load_benchmark("report")
    mod.DRAW = False  # the links only: no figure written over the committed ones
    mod.RESULTS = GOLDEN / "results"  # frozen inputs
    return mod


def test_report_tables_are_unchanged(frozen_report):
    from test_golden import check_golden

    for name, fn in frozen_report.SECTIONS.items():
        check_golden(GOLDEN / f"report_{name}.md", fn() + "\n")
