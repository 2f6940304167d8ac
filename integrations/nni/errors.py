"""Errors of the NNI adapter; all derive from :class:`atom_plugin.ATOMError` (one-line, actionable messages)."""
from __future__ import annotations

from atom_plugin.errors import ATOMError, DataError
from atom_plugin.integrations.proxy.errors import InvalidArchitectureError

__all__ = ["INSTALL_HINT", "InvalidArchitectureError", "NNIMissingError", "ProxyMismatchError"]

#: The command that installs the adapter's dependencies.
INSTALL_HINT = "pip install 'atom-plugin[nni]'"


class NNIMissingError(ATOMError, ImportError):
    """NNI (or the pytorch-lightning package its NAS modules import) is not installed."""


class ProxyMismatchError(DataError):
    """A proxy (or validation split) whose image shape, classes or normalisation differ from the search's data."""
