"""Lazy, guarded imports of NNI: the rest of the adapter imports NNI only through these functions."""
from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

from .errors import INSTALL_HINT, NNIMissingError

# NNI 3.0 walks torch.nn at import and warns about classes added after its release (e.g. Buffer); harmless.
_NOISE = r".*is found to be not a nn\.Module, which is unexpected.*"


def _import(name: str) -> ModuleType:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOISE, category=RuntimeWarning)
        return importlib.import_module(name)


def require_nni() -> ModuleType:
    """The ``nni`` module. Raises NNIMissingError (with the install command) when NNI is not installed."""
    try:
        return _import("nni")
    except ImportError as exc:
        raise NNIMissingError(f"this needs NNI 3.0, which is not installed ({exc}); install it with: "
                              f"{INSTALL_HINT}") from exc


def require_nas() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``(nni, nni.nas.nn.pytorch, nni.nas.evaluator)``. NNI's NAS modules also import ``pytorch_lightning``
    (unless ``NNI_FRAMEWORK=none``). Raises NNIMissingError naming the missing package."""
    nni = require_nni()
    try:
        nas_nn = _import("nni.nas.nn.pytorch")
        nas_eval = _import("nni.nas.evaluator")
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        hint = (" (NNI's NAS modules import the 'pytorch_lightning' package, not 'lightning')"
                if "lightning" in str(missing) and os.environ.get("NNI_FRAMEWORK") != "none" else "")
        raise NNIMissingError(f"NNI's NAS modules cannot be imported: {missing} is missing{hint}; install with: "
                              f"{INSTALL_HINT}") from exc
    return nni, nas_nn, nas_eval
