"""Device resolution shared by the API and the CLI."""
from __future__ import annotations

import torch

from .errors import ConfigError, DeviceError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "cuda:N" | torch.device`` into a usable ``torch.device``.

    ``"auto"`` (or ``None``) picks CUDA when available, else CPU.

    Raises:
        DeviceError: CUDA was requested but ``torch.cuda.is_available()`` is False, or the index is out of range.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(device)!r} was requested but this machine has no usable CUDA GPU "
                "(torch.cuda.is_available() is False); use `device='cpu'` or `device='auto'`"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(device)!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return dev


def device_name(device: torch.device) -> str:
    """Human-readable device name for result files: the GPU model (e.g. "NVIDIA H100 80GB HBM3") or "cpu"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


#: The automatic ``compile`` choice (``compile=None``) in words, for help texts; :func:`resolve_compile` is the rule.
COMPILE_AUTO = "on for CUDA devices, off elsewhere"


def resolve_compile(compile: bool | None, device: torch.device) -> bool:
    """The one rule for ``compile=None`` (auto): ``torch.compile`` on CUDA devices, eager elsewhere
    (:data:`COMPILE_AUTO`). Every ``compile`` argument of the API and every ``--compile`` flag goes through it.

    ``True``/``False`` are returned as given: an explicit ``True`` always compiles (on the CPU too) and never
    falls back to eager in silence (a compilation error propagates).

    Raises:
        ConfigError: ``compile`` is not None, True or False.
    """
    if compile is None:
        return device.type == "cuda"
    if not isinstance(compile, bool):
        raise ConfigError(f"`compile` must be None (auto: {COMPILE_AUTO}), True or False, got {compile!r}")
    return compile
