"""Moved to :mod:`atom_plugin.integrations.proxy.stats` (shared with the Optuna adapter); this name re-exports it."""
from atom_plugin.integrations.proxy.stats import *  # noqa: F401,F403
