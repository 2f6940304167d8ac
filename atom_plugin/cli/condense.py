"""``atom condense`` (one process or class-parallel under torchrun)."""
from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

import torch

from .._device import resolve_device
from ..callbacks import CondenseCallback, ProgressBar
from ..condense import condense
from ..distributed import condense_class_parallel, init_from_env, launched_by_torchrun
from ..errors import OutputPathError
from ._common import (CHECKPOINT_FILE, CONDENSED_FILE, GRID_FILE, RESULT_FILE, UsageError, _accuracy_line,
                      _accuracy_record, _append, _check_eval_args, _check_model, _command, _evaluate, _load_splits,
                      _shape_text, _split_provenance, _with_env, _writable_out_dir, config_from_args)


def cmd_condense(args: argparse.Namespace) -> int:
    """``atom condense``: validate everything cheap, load the data, condense (resumable), save, evaluate.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the classes are split across the processes
    (:mod:`atom_plugin.distributed`); rank 0 alone writes the files, evaluates and prints.
    """
    cfg = config_from_args(args)
    # Fail before touching data: names, ranges, device, output location, an old checkpoint.
    _check_model(cfg.model)
    cfg.resolved()  # preset, ipc, loss fields, layers vs depth, DSA strategy
    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    _check_eval_args(args)
    dev = resolve_device(args.device)
    out = _writable_out_dir(args.out)
    parallel = launched_by_torchrun()
    if parallel:
        dev = init_from_env(args.device)
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world = 0, 1
    ckpt = out / CHECKPOINT_FILE
    old = [p for p in [ckpt, *sorted(out.glob("checkpoint.rank*.safetensors"))] if p.exists()]
    if old and not args.resume:
        raise OutputPathError(f"a checkpoint already exists at {str(old[0])!r}; pass --resume to continue it, "
                              "or choose another --out to start over")
    if parallel:  # every rank has looked before any rank writes a checkpoint
        torch.distributed.barrier()

    train, eval_set, split = _load_splits(args, need_eval=args.evaluate)
    bar = None if args.quiet or rank != 0 else ProgressBar(desc=f"condense {train.name}")
    tracker = _Tracker(ckpt.with_name("checkpoint.rank0.safetensors") if parallel else ckpt)
    callbacks = [c for c in (bar, tracker) if c is not None]
    kwargs = dict(device=dev, seed=args.seed, classes=args.classes, callbacks=callbacks, checkpoint=ckpt,
                  checkpoint_every=args.checkpoint_every, resume=args.resume, compile=args.compile)
    # Ctrl-C: the bar closes itself (ProgressBar.on_exception); main() prints this hint and exits with 130.
    args.interrupt_hint = lambda: tracker.interrupted_message(_resume_command(args.argv, world)) if rank == 0 else ""
    t0 = time.perf_counter()
    if parallel:
        try:
            condensed = condense_class_parallel(train, cfg, **kwargs)
        finally:  # rank 0 goes on alone (saving, evaluating): nothing may wait for it
            torch.distributed.destroy_process_group()
    else:
        condensed = condense(train, cfg, **kwargs)
    args.interrupt_hint = None
    if rank != 0:
        return 0
    wall = time.perf_counter() - t0
    condensed.provenance.update(_split_provenance(args, train))
    path = condensed.save(out / CONDENSED_FILE)
    condensed.to_png_grid(out / GRID_FILE)
    prov = condensed.provenance
    record = dict(record="condense", dataset=condensed.name, method=condensed.method, ipc=cfg.ipc,
                  iterations=cfg.iterations, resumed_from=prov.get("resumed_from"), seconds=round(wall, 2),
                  loop_seconds=prov.get("seconds"), loop_seconds_before_resume=prov.get("seconds_before_resume"),
                  final_loss=prov.get("final_loss"), classes=prov.get("classes"),
                  seed=args.seed, val_split=args.val_split, train_size=len(train), compiled=prov.get("compiled"),
                  world_size=world, config=condensed.config, condensed=str(path))
    _append(out / RESULT_FILE, [_with_env(record, dev, args.argv)])
    print(f"condensed {condensed.name}: {_shape_text(condensed)} in {wall:.0f} s -> {path}")
    if args.evaluate:
        again = ["evaluate", str(out), "--split", split, "--model", args.eval_model, "--num-models",
                 str(args.eval_models), "--epochs", str(args.eval_epochs), "--device", args.device,
                 "--seed", str(args.seed)]
        args.interrupt_hint = lambda: f"\ninterrupted during evaluation; {path} is saved; evaluate it with: " \
                                      f"atom {shlex.join(again)}"
        result = _evaluate(condensed, eval_set, args.eval_model, args.eval_models, args.eval_epochs, 256, dev,
                           args.seed, args.eval_compile, args.quiet)
        _append(out / RESULT_FILE, [_accuracy_record(result, condensed, split, path, args.seed, dev, args.argv)])
        print(_accuracy_line(result, split))
    return 0


class _Tracker(CondenseCallback):
    """Remembers the last completed and the last checkpointed iteration (for the Ctrl-C message)."""

    def __init__(self, ckpt: Path):
        self.ckpt = ckpt
        self.iteration = 0
        self.saved: int | None = None

    def on_condense_start(self, state):
        self.iteration = state.iteration
        self.saved = state.start_iteration if state.start_iteration else None

    def on_log(self, state):
        self.iteration = state.iteration

    def on_checkpoint(self, state, path):
        self.saved = state.iteration

    def on_condense_end(self, state):
        self.iteration = state.iteration

    def interrupted_message(self, resume_cmd: str) -> str:
        if self.saved is not None:
            where = f"checkpoint at iteration {self.saved} in {self.ckpt}"
        else:
            where = "no checkpoint written yet; --resume starts from the beginning"
        return f"interrupted at iteration {self.iteration} ({where}); continue with: {resume_cmd}"


def _resume_command(argv: list[str], world: int = 1) -> str:
    args = list(argv)
    if "--resume" not in args:
        args.append("--resume")
    return _command(args, world)

