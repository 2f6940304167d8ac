"""The API reference site (mkdocs.yml) and the docstring check (pyproject's [tool.ruff]), both from the ``[docs]``
extra that ``make test`` installs.

* every public module has its page in docs/api/, and every page of docs/ is in mkdocs.yml's nav;
* ``mkdocs build --strict`` passes: no broken link, no docstring naming a parameter its signature lacks;
* the site documents every name the packages export (the integrations export lazily, so their pages list them);
* ruff's docstring rules pass on the public API: docstrings everywhere, and an Args section names every parameter.
"""
import importlib
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
SOURCES = {"atom_plugin": ROOT / "atom_plugin", "atom_plugin.integrations": ROOT / "integrations"}
# The packages whose __all__ re-exports names documented elsewhere: their pages render or link each one.
PACKAGES = ("atom_plugin", "atom_plugin.models", "atom_plugin.data", "atom_plugin.cli",
            "atom_plugin.integrations.avalanche", "atom_plugin.integrations.nni", "atom_plugin.integrations.optuna",
            "atom_plugin.integrations.proxy")


def public_modules() -> list[str]:
    """Installed names of the modules with no ``_``-prefixed part (``integrations/`` is ``atom_plugin.integrations``)."""
    names = []
    for prefix, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            if not any(p.startswith("_") for p in parts):
                names.append(".".join([prefix, *parts]))
    return names


def nav_pages(nav) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    items = nav.values() if isinstance(nav, dict) else nav
    return set().union(*(nav_pages(item) for item in items))


def test_every_public_module_has_its_page_and_every_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml", reason="the [docs] extra (make test installs it) brings PyYAML")
    modules = public_modules()
    assert {"atom_plugin", "atom_plugin.loss", "atom_plugin.integrations.avalanche.buffer"} <= set(modules)
    assert {p.stem for p in API.glob("*.md")} == set(modules), "one docs/api/<module>.md per public module"
    for m in modules:
        assert (API / f"{m}.md").read_text().startswith(f"::: {m}\n"), f"docs/api/{m}.md must render {m}"
    nav = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav - pages == set(), "nav entries without a page"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocstrings_handlers.python", reason="the [docs] extra (make test installs it)")
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return out


def inventory(site: Path) -> dict[str, str]:
    """``{object path: page URL}`` from the site's objects.inv (Sphinx inventory v2: 4 header lines, zlib body)."""
    body = zlib.decompress((site / "objects.inv").read_bytes().split(b"\n", 4)[4]).decode()
    return {line.split(" ")[0]: line.split(" ")[3] for line in body.splitlines()}


def test_the_site_builds_strictly_and_documents_every_exported_name(site):
    objects = inventory(site)
    assert objects["atom_plugin.loss.matching_loss"].startswith("api/atom_plugin.loss/")
    assert objects["atom_plugin.integrations.avalanche.buffer.ATOMBuffer"].startswith(
        "api/atom_plugin.integrations.avalanche.buffer/")
    for package in PACKAGES:
        page = (API / f"{package}.md").read_text()
        on_page = [path.rpartition(".") for path, url in objects.items() if url.startswith(f"api/{package}/")]
        rendered = {name for parent, _, name in on_page  # the package's own, or those of a private module under it
                    if parent == package or parent.startswith(f"{package}._") and parent.count(".") == package.count(".") + 1}
        listed = {name for name in importlib.import_module(package).__all__ if f"[`{name}`][" in page}
        missing = set(importlib.import_module(package).__all__) - rendered - listed
        assert not missing, f"docs/api/{package}.md neither renders nor links: {sorted(missing)}"


def test_the_site_lists_every_public_name_of_every_public_module(site):
    """mkdocstrings leaves out a name without a docstring: each public class, function and constant needs one (a
    ``#:`` comment for a constant). Public as Griffe sees it: in ``__all__`` where a module has one, else not
    ``_``-prefixed and not imported."""
    import griffe

    extensions = griffe.load_extensions(f"{ROOT / 'docs' / 'griffe_extensions.py'}:InstalledIntegrations",
                                        "griffe_sphinx")
    package = griffe.GriffeLoader(extensions=extensions, search_paths=[str(ROOT)]).load("atom_plugin")
    objects = inventory(site)

    def names(module):
        for member in module.members.values():
            if member.is_alias or member.name.startswith("_") and member.is_module:
                continue
            if member.is_module:
                yield from names(member)
            elif member.is_public:
                yield member.path

    found = list(names(package))
    assert {"atom_plugin.loss.matching_loss", "atom_plugin.integrations.proxy.space.DIMENSIONS"} <= set(found)
    assert [n for n in found if n not in objects] == [], "public names the site leaves out (no docstring?)"


def test_a_rendered_docstring_links_its_sphinx_roles(site):
    html = (site / "api" / "atom_plugin.integrations.avalanche.buffer" / "index.html").read_text()
    assert ":class:`" not in html and ":func:`" not in html
    assert 'href="../atom_plugin.integrations.avalanche.groups/#atom_plugin.integrations.avalanche.groups.' \
           'CondensedGroup"' in html


def test_atom_config_page_shows_the_field_list_written_at_import(site):
    """ATOMConfig's field list is generated at import (config._field_list): the page shows it, one item per field."""
    import dataclasses

    from atom_plugin import ATOMConfig

    html = (site / "api" / "atom_plugin.config" / "index.html").read_text()
    assert "Fields (generated from each field's help text)" in html
    assert all(f"<li><code>{f.name} = " in html for f in dataclasses.fields(ATOMConfig))


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    pytest.importorskip("ruff", reason="the [docs] extra (make test installs it)")
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_public_docstrings_document_every_parameter():
    run = ruff()
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]


def test_the_docstring_check_sees_an_undocumented_parameter():
    bad = 'def f(a, b):\n    """Do it.\n\n    Args:\n        a: one.\n    """\n'
    run = ruff("--stdin-filename", "atom_plugin/example.py", "-", stdin=bad)
    assert run.returncode == 1 and "D417" in run.stdout and "`b`" in run.stdout
    good = '"""A module."""\n\n\n' + bad.replace("a: one.\n", "a: one.\n        b: two.\n")
    assert ruff("--stdin-filename", "atom_plugin/example.py", "-", stdin=good).returncode == 0
