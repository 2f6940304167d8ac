"""Griffe extensions for the API site (mkdocs.yml names them in mkdocstrings' ``extensions``).

* :class:`InstalledIntegrations`: pyproject.toml installs the folder ``integrations/`` as the subpackage
  ``atom_plugin.integrations`` (``package-dir``). Griffe finds packages by walking folders, so it never sees that
  subpackage inside ``atom_plugin/``; this extension visits the folder's modules (statically: Avalanche and NNI are
  never imported) and attaches them to ``atom_plugin`` under their installed names.
* :class:`SphinxRoles`: the docstrings cross-reference with Sphinx roles (``:class:`ATOMBuffer```), which Markdown
  would print as they are; each becomes its name in code font, linked to its page when the name resolves from
  the docstring's scope (an optional cross-reference: one that does not resolve stays plain code).
* :class:`RuntimeDocstrings`: a docstring completed at import (``ATOMConfig``'s field list, generated from the
  fields' help texts by ``atom_plugin.config``) is shown as Python has it, not as the source spells it.
"""
from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj):`(~?)\.?([\w.]+?)(?:\(\))?`")


def _visit(name: str, path: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> griffe.Module:
    code = path.read_text(encoding="utf-8")
    loader.lines_collection[path] = code.splitlines()  # before visiting: griffe_sphinx reads "#:" comments here
    module = griffe.visit(name, path, code, parent=parent, extensions=loader.extensions,
                          docstring_parser=loader.docstring_parser, docstring_options=loader.docstring_options,
                          lines_collection=loader.lines_collection, modules_collection=loader.modules_collection)
    parent.set_member(name, module)
    return module


def _visit_package(name: str, folder: Path, parent: griffe.Module, loader: griffe.GriffeLoader) -> griffe.Module:
    package = _visit(name, folder / "__init__.py", parent, loader)
    for child in sorted(folder.iterdir()):
        if child.is_dir() and (child / "__init__.py").is_file():
            _visit_package(child.name, child, package, loader)
        elif child.suffix == ".py" and child.name != "__init__.py":
            _visit(child.stem, child, package, loader)
    loader.expand_exports(package)  # stops at a package without __all__: each package expands its own
    return package


class InstalledIntegrations(griffe.Extension):
    """Attach the folder ``integrations/`` (beside ``atom_plugin/``) to the loaded ``atom_plugin`` package."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        """Visit the folder once ``atom_plugin`` is loaded (each new package's ``__all__`` expanded).

        Args:
            pkg: the package Griffe has just loaded; only ``atom_plugin`` is extended.
            loader: the loader that loaded it (its collections, docstring parser and extensions are reused).
            **kwargs: further hook arguments, unused.
        """
        if pkg.name == "atom_plugin" and "integrations" not in pkg.members:
            _visit_package("integrations", Path(pkg.filepath).parent.parent / "integrations", pkg, loader)


def _resolve(target: str, scope: griffe.Object, collection: griffe.ModulesCollection) -> str | None:
    """The documented path of ``target`` seen from ``scope`` (absolute, then from each enclosing scope)."""
    scopes = []
    while scope is not None:
        scopes.append(scope.path)
        scope = scope.parent
    for candidate in (target, *(f"{s}.{target}" for s in scopes)):
        try:
            obj = collection.get_member(candidate)
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        return obj.target_path if obj.is_alias else obj.path
    return None


def _rewrite(obj: griffe.Object, collection: griffe.ModulesCollection) -> None:
    if obj.docstring is not None and ":`" in obj.docstring.value:
        def link(m: re.Match) -> str:
            shown = m[2].rsplit(".", 1)[-1] if m[1] else m[2]
            path = _resolve(m[2], obj, collection)
            code = f"<code>{shown}</code>"
            return f'<autoref identifier="{path}" optional>{code}</autoref>' if path else code

        obj.docstring.value = _ROLE.sub(link, obj.docstring.value)
    for member in obj.members.values():
        if not member.is_alias:
            _rewrite(member, collection)


class SphinxRoles(griffe.Extension):
    """Turn the Sphinx roles of every docstring of ``atom_plugin`` into code, linked where the name resolves."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        """Rewrite the docstrings of the loaded package (after :class:`InstalledIntegrations` in mkdocs.yml).

        Args:
            pkg: the package Griffe has just loaded.
            loader: the loader that loaded it (its modules collection resolves the names).
            **kwargs: further hook arguments, unused.
        """
        if pkg.name == "atom_plugin":
            _rewrite(pkg, loader.modules_collection)


#: Objects whose docstring is completed at import, by documented path.
RUNTIME_DOCSTRINGS = ("atom_plugin.config.ATOMConfig",)


class RuntimeDocstrings(griffe.Extension):
    """Replace the static docstrings of :data:`RUNTIME_DOCSTRINGS` with the imported objects' ``__doc__``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        """Import each object of :data:`RUNTIME_DOCSTRINGS` and copy its ``__doc__`` (before :class:`SphinxRoles`).

        Args:
            pkg: the package Griffe has just loaded; only ``atom_plugin`` is changed.
            loader: the loader that loaded it (its modules collection finds the objects).
            **kwargs: further hook arguments, unused.
        """
        if pkg.name != "atom_plugin":
            return
        for path in RUNTIME_DOCSTRINGS:
            module, name = path.rsplit(".", 1)
            obj = loader.modules_collection.get_member(path)
            obj.docstring.value = inspect.cleandoc(getattr(importlib.import_module(module), name).__doc__)
