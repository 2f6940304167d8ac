"""Moved to :mod:`atom_plugin.integrations.proxy.space` (shared with the Optuna adapter); this name re-exports it."""
from atom_plugin.integrations.proxy.space import *  # noqa: F401,F403
