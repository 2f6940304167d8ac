"""Callbacks end every run with on_condense_end or on_exception: errors and Ctrl-C reach each callback, the
progress bar closes itself, and an interrupted run leaves a checkpoint that resumes to the same result."""
import io

import pytest
import torch

from atom_plugin import ATOMConfig, CondenseCallback, ProgressBar, condense
from atom_plugin.errors import NonFiniteLossError
from atom_plugin.matcher import Matcher

TINY = ATOMConfig(ipc=1, iterations=4, width=8, batch_real=8, factor=1, networks="random")
CLASSES = [0, 1]


class Recorder(CondenseCallback):
    def __init__(self):
        self.calls = []

    def on_condense_start(self, state):
        self.calls.append(("start", state.iteration))

    def on_condense_end(self, state):
        self.calls.append(("end", state.iteration))

    def on_exception(self, state, exc):
        self.calls.append(("exception", state.iteration, exc))


def interrupt_at(monkeypatch, t_stop, exc):
    step = Matcher.step

    def stepping(self, t):
        if t == t_stop:
            raise exc
        return step(self, t)

    monkeypatch.setattr(Matcher, "step", stepping)


def test_a_finished_run_never_calls_on_exception(digits):
    rec = Recorder()
    condense(digits, TINY, device="cpu", seed=0, classes=CLASSES, callbacks=[rec])
    assert rec.calls == [("start", 0), ("end", 4)]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("boom")], ids=["ctrl-c", "error"])
def test_every_callback_sees_the_exception_then_it_propagates(digits, monkeypatch, exc):
    first, second, bar = Recorder(), Recorder(), ProgressBar(file=io.StringIO())
    interrupt_at(monkeypatch, 2, exc)
    with pytest.raises(type(exc)) as info:
        condense(digits, TINY, device="cpu", seed=0, classes=CLASSES, callbacks=[first, bar, second])
    assert info.value is exc
    for rec in (first, second):
        assert rec.calls == [("start", 0), ("exception", 2, exc)]  # iterations 0 and 1 were logged; no "end"
    assert bar.bar is not None and bar.bar.disable is True  # open bars are enabled; tqdm's close() disables


def test_a_non_finite_loss_reaches_on_exception(digits, monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(Matcher, "step", lambda self, t: torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLossError):
        condense(digits, TINY, device="cpu", seed=0, classes=CLASSES, callbacks=[rec])
    assert rec.calls[-1][0] == "exception" and isinstance(rec.calls[-1][2], NonFiniteLossError)


def test_ctrl_c_mid_run_leaves_a_checkpoint_that_resumes_to_the_same_images(digits, monkeypatch, tmp_path):
    straight = condense(digits, TINY, device="cpu", seed=0, classes=CLASSES)
    ckpt = tmp_path / "ckpt.safetensors"
    rec = Recorder()
    interrupt_at(monkeypatch, 3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        condense(digits, TINY, device="cpu", seed=0, classes=CLASSES, callbacks=[rec], checkpoint=ckpt,
                 checkpoint_every=1)
    assert rec.calls[-1][:2] == ("exception", 3) and ckpt.exists()
    monkeypatch.undo()
    resumed = condense(digits, TINY, device="cpu", seed=0, classes=CLASSES, checkpoint=ckpt, resume=True)
    assert resumed.provenance["resumed_from"] == 3
    assert torch.equal(resumed.images, straight.images)  # bit-exact on CPU
