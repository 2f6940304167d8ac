"""Layering rules that a reader relies on: benchmarks, examples and integrations use the core's public names."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRIVATE_CORE = re.compile(r"\batom_plugin\.(?!integrations\b)(?:\w+\.)*_\w+")
# Benchmarks and examples also use only the adapters' public names (the adapters' own _-modules are theirs).
PRIVATE_ANY = re.compile(r"\batom_plugin\.(?:\w+\.)*_\w+")


def test_no_private_core_module_is_imported_from_outside_the_core():
    offenders = []
    for folder in ("benchmarks", "examples", "integrations"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                rule = PRIVATE_CORE if folder == "integrations" else PRIVATE_ANY
                if line.lstrip().startswith(("import ", "from ")) and rule.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_rule_sees_a_private_import():
    assert PRIVATE_CORE.search("from atom_plugin._device import resolve_device")
    assert PRIVATE_CORE.search("from atom_plugin.data._base import ImageTensorDataset")
    assert not PRIVATE_CORE.search("from atom_plugin.matcher import build_matcher")
    assert not PRIVATE_CORE.search("from atom_plugin.integrations.avalanche._compat import x")
    assert PRIVATE_ANY.search("from atom_plugin.integrations.nni._nni import require_nni")


def test_no_public_core_name_looks_like_a_test_to_pytest():
    """``from atom_plugin import *`` in a test module must not add tests: the accuracy function is accuracy_on; the
    old name test_accuracy stays as a deprecated alias that pytest skips (``__test__ = False``)."""
    import warnings

    import torch

    import atom_plugin

    looks_like_tests = [n for n in atom_plugin.__all__ if n.startswith("test")
                        and getattr(getattr(atom_plugin, n), "__test__", True)]
    assert not looks_like_tests
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    data = atom_plugin.ImageTensorDataset(torch.randn(6, 1, 2, 2), torch.tensor([0, 1] * 3), ["a", "b"], [0.0], [1.0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert atom_plugin.test_accuracy(net, data, batch_size=4) == atom_plugin.accuracy_on(net, data)
    assert [w.category for w in caught] == [DeprecationWarning] and "accuracy_on" in str(caught[0].message)


def _demo_budget_in_readme(text: str) -> tuple[int, int, int, int]:
    m = re.search(r"\((\d+) iterations × (\d+) real images per class, compiled; (\d+) × (\d+)-epoch evaluations", text)
    assert m, "the README no longer states the demo budget in the form this test reads"
    return tuple(int(g) for g in m.groups())


def test_the_readme_states_the_makefiles_demo_budget():
    """The demo budget's one home is the top of the Makefile; the README's sentence about it must follow it."""
    make = dict(re.findall(r"^(DEMO_\w+) \?= (\S+)$", (ROOT / "Makefile").read_text(), flags=re.M))
    wanted = tuple(int(make[k]) for k in ("DEMO_ITERATIONS", "DEMO_BATCH_REAL", "DEMO_MODELS", "DEMO_EVAL_EPOCHS"))
    assert _demo_budget_in_readme((ROOT / "README.md").read_text()) == wanted
    assert _demo_budget_in_readme("(120 iterations × 32 real images per class, compiled; 2 × 80-epoch evaluations") \
        != wanted
