"""Errors of the NNI adapter; all derive from :class:`atom_plugin.ATOMError` (one-line, actionable messages)."""
from __future__ import annotations

from atom_plugin.errors import ATOMError, ConfigError, DataError

#: The command that installs the adapter's dependencies.
INSTALL_HINT = "pip install 'atom-plugin[nni]'"


class NNIMissingError(ATOMError, ImportError):
    """NNI (or the pytorch-lightning package its NAS modules import) is not installed."""


class InvalidArchitectureError(ConfigError):
    """A point of the ConvNet space that gives no valid network for the image size (or is not in the space)."""


class ProxyMismatchError(DataError):
    """A proxy (or validation split) whose image shape, classes or normalisation differ from the search's data."""
