"""Guarded import of Avalanche: every module of this adapter that needs Avalanche imports it through here."""
from __future__ import annotations

import importlib
from types import ModuleType

from atom_plugin.errors import ATOMError

INSTALL_HINT = "pip install 'atom-plugin[avalanche]'"
SUPPORTED = "0.6.0"


class AvalancheMissingError(ATOMError, ImportError):
    """Avalanche (``avalanche-lib``) is not installed; the message gives the install command."""


def require_avalanche() -> ModuleType:
    """The ``avalanche`` module.

    Raises:
        AvalancheMissingError: avalanche-lib is not importable (message: ``pip install 'atom-plugin[avalanche]'``).
    """
    try:
        return importlib.import_module("avalanche")
    except ImportError as exc:
        raise AvalancheMissingError(
            f"the Avalanche integration needs avalanche-lib {SUPPORTED}, which is not importable ({exc}); "
            f"install it with: {INSTALL_HINT}") from exc

