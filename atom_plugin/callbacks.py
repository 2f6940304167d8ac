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
    start_iteration: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)


class CondenseCallback:
    """Base class: override any of the four hooks. Hooks must not modify the state."""

    def on_condense_start(self, state: CondenseState) -> None: ...

    def on_log(self, state: CondenseState) -> None: ...

    def on_checkpoint(self, state: CondenseState, path: Path) -> None: ...

    def on_condense_end(self, state: CondenseState) -> None: ...


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
