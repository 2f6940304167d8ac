"""``python -m atom_plugin``: the ``atom`` command line (see :mod:`atom_plugin.cli`)."""
from .cli import main

raise SystemExit(main())
