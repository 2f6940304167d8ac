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
