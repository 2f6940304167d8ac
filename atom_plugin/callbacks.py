"""Callbacks of the condensation loop: symmetric, predictable hook names, in the spirit of Lightning's."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .config import ATOMConfig


@dataclass
class CondenseState:
    """What callbacks see. ``iteration`` = iterations completed; ``loss`` = mean loss of the last log window."""

    iteration: int
    iterations: int
    config: ATOMConfig
    classes: list[int]
    loss: float | None = None
    elapsed: float = 0.0  # seconds spent in the loop (this process, since start or resume)
    elapsed_before: float | None = 0.0  # loop seconds before this process resumed the run (None: not recorded)
    start_iteration: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)


class CondenseCallback:
    """Base class: override any of the five hooks. Hooks must not modify the state.

    A run calls ``on_condense_start`` once, then ``on_log`` and ``on_checkpoint`` as it goes, and ends with either
    ``on_condense_end`` (it finished) or ``on_exception`` (it raised, Ctrl-C included; the exception propagates
    after every callback has seen it), as Lightning's ``on_fit_end`` / ``on_exception``.
    """

    def on_condense_start(self, state: CondenseState) -> None:
        """Before the first iteration; ``state.iteration`` is 0, or where a resumed run continues."""

    def on_log(self, state: CondenseState) -> None:
        """Every ``log_every`` iterations (and at the last): ``state.loss`` is the mean loss since the last call."""

    def on_checkpoint(self, state: CondenseState, path: Path) -> None:
        """After the checkpoint file ``path`` was written (every ``checkpoint_every`` iterations and at the end)."""

    def on_condense_end(self, state: CondenseState) -> None:
        """After the last iteration (``state.iteration == state.iterations``), before the result is built."""

    def on_exception(self, state: CondenseState, exc: BaseException) -> None:
        """The loop raised ``exc`` (an error, ``KeyboardInterrupt``, ...) after ``on_condense_start``; ``state``
        holds the last logged iteration. Release what the callback holds (a bar, a file); do not raise."""


class ProgressBar(CondenseCallback):
    """A tqdm progress bar with the current loss and iterations/s (written to stderr)."""

    def __init__(self, desc: str = "condense", **tqdm_kwargs):
        self.desc = desc
        self.kwargs = tqdm_kwargs
        self.bar = None

    def on_condense_start(self, state):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.iterations, initial=state.iteration, desc=self.desc, unit="it", **self.kwargs)

    def on_log(self, state):
        if self.bar is not None:
            if state.loss is not None:
                self.bar.set_postfix(loss=f"{state.loss:.4g}", refresh=False)
            self.bar.update(state.iteration - self.bar.n)

    def on_condense_end(self, state):
        if self.bar is not None:
            self.bar.update(state.iteration - self.bar.n)
            self.bar.close()

    def on_exception(self, state, exc):
        if self.bar is not None:  # so an error message does not land on the bar's line
            self.bar.close()
