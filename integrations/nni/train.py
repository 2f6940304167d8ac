"""Moved to :mod:`atom_plugin.integrations.proxy.train` (shared with the Optuna adapter); this name re-exports it."""
from atom_plugin.integrations.proxy.train import *  # noqa: F401,F403
