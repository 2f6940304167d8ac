"""The one-line error contract for scripts: examples and benchmarks run their ``main()`` through
:func:`run_script` (without importing the command line or ``torch.distributed``)."""
from __future__ import annotations

import sys
from typing import Callable, NoReturn

from ._malloc import keep_freed_memory
from .errors import ATOMError, one_line

__all__ = ["one_line", "run_script"]  # one_line's home is atom_plugin.errors; scripts import it from here too


def run_script(main: Callable[[], object]) -> NoReturn:
    """Run an example's or benchmark's ``main()`` under the CLI's error contract, then exit.

    Exit status 0 on success; 2 with one ``error: ...`` line on stderr for any :class:`ATOMError` (bad input,
    missing data: nothing a user should read a traceback for); 130 on Ctrl-C. Bugs keep their traceback.
    Use as ``if __name__ == "__main__": run_script(main)``. Before ``main()`` it calls
    :func:`atom_plugin.keep_freed_memory` (a script is a whole process: its CPU tensors then skip the page faults).
    """
    keep_freed_memory()
    try:
        main()
    except ATOMError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(0)
