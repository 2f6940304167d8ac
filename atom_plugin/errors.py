"""Exceptions with one-line, actionable messages.

Every error this library raises on bad input derives from :class:`ATOMError`; the CLI prints
``error: <message>`` for these and exits with status 2, never a traceback. Each subclass also derives from
the built-in exception a Python user would expect (``ValueError``, ``RuntimeError``, ``FileNotFoundError``),
so ``except ValueError`` keeps working.
"""
from __future__ import annotations


class ATOMError(Exception):
    """Base class: a problem with the user's input or environment, described in one line."""


class ConfigError(ATOMError, ValueError):
    """An invalid setting: unknown preset/model/dataset name, IPC out of range, bad loss weights."""


class DataError(ATOMError, ValueError):
    """Unusable data: a class with no images, mixed image sizes or channels, NaN/Inf values."""


class DatasetNotFoundError(ATOMError, FileNotFoundError):
    """A dataset's files are not where we looked; the message lists every place searched."""


class CondensedFileError(ATOMError, RuntimeError):
    """A truncated, corrupt, foreign or wrong-version condensed-set or checkpoint file."""


class OutputPathError(ATOMError, OSError):
    """An output path that cannot be created or written."""


class DeviceError(ATOMError, RuntimeError):
    """A requested device that this machine does not have (e.g. ``cuda`` without CUDA)."""


class _NonFiniteError(ATOMError, FloatingPointError):
    """NaN or Inf in a run: carries ``iteration`` and the last good ``checkpoint`` (None when none was written)."""

    what = "a value became NaN/Inf at iteration {iteration}"  #: the message's start (formatted with the iteration)
    advice = ""  #: what to do (the message's end)

    def __init__(self, iteration: int, checkpoint: str | None = None):
        self.iteration = iteration
        self.checkpoint = checkpoint
        where = f"; the last good checkpoint is kept at {checkpoint}" if checkpoint else ""
        super().__init__(f"{self.what.format(iteration=iteration)}{where}; {self.advice}")


class NonFiniteLossError(_NonFiniteError):
    """The matching loss became NaN or Inf; carries the first bad iteration (0-based)."""

    what = "the matching loss became NaN/Inf at iteration {iteration}"
    advice = "lower the loss weights or the image learning rate, or check the data for extreme values"


class NonFiniteImagesError(_NonFiniteError):
    """The synthetic images became NaN or Inf although the loss was finite (e.g. an image learning rate so large
    that one step overflows); carries the iterations completed. Raised before any such images are returned or
    written to a checkpoint."""

    what = "the synthetic images became NaN/Inf after {iteration} iteration(s)"
    advice = "lower the image learning rate (`lr_images`) or the loss weights"


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (white space folded), or its type name when it has none.

    Args:
        exc: any exception.
    """
    return " ".join(str(exc).split()) or type(exc).__name__


def check_choice(value, name: str, choices, *, error: type[ATOMError] = None):
    """Return ``value`` if it is one of ``choices``, else raise a one-line error naming ``name`` and the choices.

    The one home of the library's "one of" checks (presets, models, norms, networks, policies, ...), in the style
    of torchvision's ``verify_str_arg``: ``check_choice("pool", "networks", ("random", "pool"))`` -> ``"pool"``.

    Args:
        value: the value given (any hashable).
        name: the parameter's name as the caller spells it (``networks``, ``norm``, ``policy``).
        choices: the allowed values, in the order the message lists them.
        error: the exception class (default :class:`ConfigError`).

    Raises:
        ConfigError (or ``error``): ``"networks must be one of: random, pool (got 'x')"``.
    """
    choices = tuple(choices)
    if value in choices:
        return value
    raise (error or ConfigError)(f"{name} must be one of: {', '.join(map(str, choices))} (got {value!r})")
