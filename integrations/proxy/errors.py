"""Errors of the proxy toolkit; all derive from :class:`atom_plugin.ATOMError` (one-line, actionable messages)."""
from __future__ import annotations

from atom_plugin.errors import ConfigError


class InvalidArchitectureError(ConfigError):
    """A point of the ConvNet space that gives no valid network for the image size (or is not in the space)."""
