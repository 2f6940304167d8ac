"""The ``atom`` command line: condense, evaluate, baseline, show, report.

    atom condense --dataset fashion-mnist --ipc 10 --evaluate --out runs/fmnist-ipc10
    atom evaluate runs/fmnist-ipc10 --model resnet18
    atom baseline --dataset fashion-mnist --method random --ipc 10 --evaluate --out runs/random-ipc10
    atom show runs/fmnist-ipc10 --out grid.png
    atom report runs/

Every long job shows a progress bar (stderr), appends flat JSON records to ``<out>/result.json`` (see
:mod:`atom_plugin.results`) and ends with a short summary on stdout. Bad input (any :class:`ATOMError`, or an
argparse usage error) prints one ``error: ...`` line on stderr and exits with status 2; Ctrl-C exits with 130
(a condensation tells how to continue it). Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import torch

from . import __version__
from ._device import resolve_device
from ._safeio import ensure_writable_dir
from .baselines import herding_subset, random_subset
from .condense import CondenseCallback, ProgressBar, condense
from .condensed import CondensedDataset
from .config import NETWORKS, ATOMConfig
from .data import load_dataset, stratified_split
from .distributed import condense_class_parallel, init_from_env, launched_by_torchrun
from .errors import ATOMError, CondensedFileError, ConfigError, DataError, OutputPathError
from .evaluate import evaluate
from .models import list_models
from .models.convnet import ACTIVATIONS, NORMS, POOLINGS
from .results import append_records, environment, markdown_table, read_records

CONDENSED_FILE = "condensed.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
GRID_FILE = "grid.png"
RESULT_FILE = "result.json"
VAL_SEED = 0  # --val-split always uses stratified_split(seed=0), so `atom evaluate` can rebuild it


class UsageError(ATOMError, ValueError):
    """A command-line value that makes no sense (e.g. ``--eval-epochs 0``, ``report`` of nothing)."""


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``atom`` command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 for bad input (one ``error:`` line on stderr, no traceback), 130 when interrupted.
        Unexpected exceptions (bugs) propagate with their traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: return the status instead of exiting
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.argv = argv
    try:
        return args.func(args)
    except ATOMError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def run_script(main: Callable[[], object]) -> NoReturn:
    """Run an example's or benchmark's ``main()`` under the CLI's error contract, then exit.

    Exit status 0 on success; 2 with one ``error: ...`` line on stderr for any :class:`ATOMError` (bad input,
    missing data: nothing a user should read a traceback for); 130 on Ctrl-C. Bugs keep their traceback.
    Use as ``if __name__ == "__main__": run_script(main)``.
    """
    try:
        main()
    except ATOMError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(0)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``error: ... (see 'atom condense --help')``), status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``atom`` with all subcommands (each sets ``func``)."""
    p = _Parser(prog="atom", description="Dataset condensation with the ATOM-style attention-mixer loss "
                "(DM and DataDAM are presets).", epilog="Run 'atom COMMAND --help' for the options of a command.")
    p.add_argument("--version", action="version", version=f"atom {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # -- condense ------------------------------------------------------------------------------------------
    c = sub.add_parser("condense", help="condense a dataset into a few synthetic images per class",
                       description="Condense a dataset; writes OUT/condensed.safetensors, OUT/checkpoint.safetensors, "
                       "OUT/grid.png and appends records to OUT/result.json. Loss options left out keep the preset's.")
    _add_data_args(c)
    c.add_argument("--ipc", type=int, default=10, metavar="N", help="synthetic images per class (default 10)")
    c.add_argument("--iterations", type=int, default=8000, metavar="N", help="SGD steps on the images (default 8000)")
    c.add_argument("--preset", default="atom", metavar="NAME", help="atom (default), datadam or dm")
    c.add_argument("--batch-real", type=int, default=64, metavar="N",
                   help="real images per class per iteration (default 64)")
    c.add_argument("--init", choices=("real", "noise"), default="real", help="start from real images or noise")
    c.add_argument("--factor", type=int, metavar="F", help="multi-formation factor: each stored image holds FxF "
                   "tiles, decoded to F^2 training samples (default: the preset's; atom: 2 up to IPC 10, else 1)")
    c.add_argument("--networks", choices=NETWORKS, default=None,
                   help="matching networks: a fresh random one per iteration, or a pool of partly trained ones "
                   "(default: the preset's: random; the pool did not help on the validation split)")
    c.add_argument("--pool-size", type=int, default=ATOMConfig.pool_size, metavar="N",
                   help=f"networks in the pool (default {ATOMConfig.pool_size})")
    c.add_argument("--ce-weight", type=float, default=ATOMConfig.ce_weight, metavar="X",
                   help=f"class-aware cross-entropy weight with the pool (default {ATOMConfig.ce_weight})")
    loss = c.add_argument_group("loss (default: the preset's values)")
    loss.add_argument("--w-spatial", type=float, metavar="X", help="weight of the spatial-attention term")
    loss.add_argument("--w-channel", type=float, metavar="X", help="weight of the channel-attention term")
    loss.add_argument("--w-embed", type=float, metavar="X", help="weight of the embedding term")
    loss.add_argument("--power", type=float, metavar="P", help="exponent p of the attention maps")
    loss.add_argument("--layers", type=_int_list, metavar="1,2", help="matched blocks, 1-based ('' for none)")
    net = c.add_argument_group("network (randomly re-drawn each iteration)")
    net.add_argument("--model", default="convnet", metavar="NAME", help="registry name (default convnet)")
    net.add_argument("--width", type=int, default=128, metavar="N", help="channels per block (default 128)")
    net.add_argument("--depth", type=int, default=3, metavar="N", help="blocks (default 3)")
    net.add_argument("--norm", choices=NORMS, default=None, help="default: the preset's, else instancenorm")
    net.add_argument("--act", choices=ACTIVATIONS, default="relu")
    net.add_argument("--pool", choices=POOLINGS, default="avgpool")
    aug = c.add_argument_group("augmentation and preprocessing")
    aug.add_argument("--no-dsa", dest="dsa", action="store_false", help="turn Siamese augmentation off")
    aug.add_argument("--dsa-strategy", metavar="S", help="e.g. color_crop_cutout_flip_scale_rotate "
                     "(default: the dataset's)")
    aug.add_argument("--zca", action="store_true", help="ZCA-whiten the data first (CIFAR recipe)")
    c.add_argument("--classes", type=_int_list, metavar="0,3,7", help="condense only these class indices")
    c.add_argument("--val-split", type=int, metavar="N", help="hold N training images out (stratified, seed 0); "
                   "--evaluate then uses them instead of the test set")
    _add_run_args(c)
    c.add_argument("--out", required=True, metavar="DIR", help="run directory")
    c.add_argument("--checkpoint-every", type=int, default=500, metavar="K", help="iterations between checkpoints")
    c.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    c.add_argument("--compile", action="store_true", help="condense through torch.compile (faster long runs)")
    _add_eval_args(c)
    c.set_defaults(func=cmd_condense)

    # -- evaluate ------------------------------------------------------------------------------------------
    e = sub.add_parser("evaluate", help="train fresh networks on a condensed set and test them",
                       description="Train NUM_MODELS networks on the condensed set only and test each once; appends "
                       "an accuracy record to --out (default: result.json beside the condensed file).")
    e.add_argument("path", metavar="PATH", help="a condensed .safetensors file or a run directory")
    e.add_argument("--data-root", metavar="DIR", help="where the dataset's files are (default: the directory the "
                   "set was made from, then $ATOM_DATA and the default places)")
    e.add_argument("--no-download", dest="download", action="store_false", help="never download the dataset")
    e.add_argument("--split", choices=("test", "validation"), default="test",
                   help="test set, or the images held out by --val-split when condensing")
    e.add_argument("--model", default="convnet", metavar="NAME", help="evaluation network (default convnet)")
    e.add_argument("--num-models", type=int, default=5, metavar="N", help="networks trained (default 5)")
    e.add_argument("--epochs", type=int, default=1000, metavar="E", help="training epochs per network (default 1000)")
    e.add_argument("--batch-size", type=int, default=256, metavar="N", help="training batch (default 256)")
    _add_run_args(e)
    e.add_argument("--compile", action="store_true", help="train through torch.compile")
    e.add_argument("--out", metavar="FILE", help="result file to append to")
    e.set_defaults(func=cmd_evaluate)

    # -- baseline ------------------------------------------------------------------------------------------
    b = sub.add_parser("baseline", help="select a real subset of the same size (random or herding)",
                       description="Select IPC real images per class; writes OUT/condensed.safetensors, OUT/grid.png "
                       "and appends records to OUT/result.json.")
    _add_data_args(b)
    b.add_argument("--method", choices=("random", "herding"), required=True)
    b.add_argument("--ipc", type=int, required=True, metavar="N", help="images per class")
    b.add_argument("--factor", type=int, default=1, metavar="F",
                   help="random only: tile F^2 downsampled real images into each stored image (tiled random)")
    b.add_argument("--herding-epochs", type=int, default=1, metavar="E",
                   help="epochs of the herding feature network (0 = random)")
    b.add_argument("--classes", type=_int_list, metavar="0,3,7", help="only these class indices")
    b.add_argument("--val-split", type=int, metavar="N", help="hold N training images out (as condense)")
    _add_run_args(b)
    b.add_argument("--out", required=True, metavar="DIR", help="output directory")
    _add_eval_args(b)
    b.set_defaults(func=cmd_baseline)

    # -- show ----------------------------------------------------------------------------------------------
    s = sub.add_parser("show", help="write a PNG grid of a condensed set (one row per class)")
    s.add_argument("path", metavar="PATH", help="a condensed .safetensors file or a run directory")
    s.add_argument("--out", metavar="PNG", help="default: grid.png beside the condensed file")
    s.add_argument("--max-per-class", type=int, metavar="N", help="at most N images per row")
    s.add_argument("--scale", type=int, default=2, metavar="K", help="pixel enlargement (default 2)")
    s.add_argument("--decoded", action="store_true",
                   help="show the decoded training samples of a multi-formation set instead of the stored images")
    s.set_defaults(func=cmd_show)

    # -- report --------------------------------------------------------------------------------------------
    r = sub.add_parser("report", help="print a table of the accuracy records in result files",
                       description="Read every result.json under the given directories (and the given JSON files) "
                       "and print their accuracy records.")
    r.add_argument("paths", nargs="+", metavar="DIR_OR_FILE")
    r.add_argument("--markdown", action="store_true", help="print a Markdown table")
    r.set_defaults(func=cmd_report)
    return p


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, metavar="NAME", help="fashion-mnist, mnist, cifar10, cifar100, svhn, "
                   "tinyimagenet, digits, or an ImageFolder directory")
    p.add_argument("--data-root", metavar="DIR", help="searched first for the dataset's files")
    p.add_argument("--image-size", type=int, metavar="N", help="resize images to N x N")
    p.add_argument("--no-download", dest="download", action="store_false", help="never download the dataset")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", metavar="DEV", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="run seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("evaluation (with --evaluate)")
    g.add_argument("--evaluate", action="store_true", help="train fresh networks on the result and test them")
    g.add_argument("--eval-epochs", type=int, default=1000, metavar="E", help="epochs per network (default 1000)")
    g.add_argument("--eval-models", type=int, default=5, metavar="N", help="networks trained (default 5)")
    g.add_argument("--eval-model", default="convnet", metavar="MODEL", help="network (default convnet)")
    g.add_argument("--eval-compile", action="store_true", help="train the networks through torch.compile")


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,2"`` -> ``(1, 2)``; ``""`` or ``"none"`` -> ``()`` (argparse type)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2, got {text!r}") from None


# ---------------------------------------------------------------------------------------------------------------
# condense
# ---------------------------------------------------------------------------------------------------------------
def cmd_condense(args: argparse.Namespace) -> int:
    """``atom condense``: validate everything cheap, load the data, condense (resumable), save, evaluate.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the classes are split across the processes
    (:mod:`atom_plugin.distributed`); rank 0 alone writes the files, evaluates and prints.
    """
    cfg = ATOMConfig(
        preset=args.preset, ipc=args.ipc, iterations=args.iterations, batch_real=args.batch_real, init=args.init,
        factor=args.factor, networks=args.networks, pool_size=args.pool_size, ce_weight=args.ce_weight,
        w_spatial=args.w_spatial, w_channel=args.w_channel, w_embed=args.w_embed, power=args.power,
        layers=args.layers, model=args.model, width=args.width, depth=args.depth, norm=args.norm, act=args.act,
        pool=args.pool, dsa=args.dsa, dsa_strategy=args.dsa_strategy, zca=args.zca)
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
    t0 = time.perf_counter()
    try:
        if parallel:
            try:
                condensed = condense_class_parallel(train, cfg, **kwargs)
            finally:  # rank 0 goes on alone (saving, evaluating): nothing may wait for it
                torch.distributed.destroy_process_group()
        else:
            condensed = condense(train, cfg, **kwargs)
    except KeyboardInterrupt:
        _close(bar)
        if rank == 0:
            print(tracker.interrupted_message(_resume_command(args.argv, world)), file=sys.stderr)
        return 130
    except BaseException:
        _close(bar)  # so an error message does not land on the bar's line
        raise
    if rank != 0:
        return 0
    wall = time.perf_counter() - t0
    condensed.provenance.update(_split_provenance(args, train))
    path = condensed.save(out / CONDENSED_FILE)
    condensed.to_png_grid(out / GRID_FILE)
    prov = condensed.provenance
    record = dict(record="condense", dataset=condensed.name, method=condensed.method, ipc=cfg.ipc,
                  iterations=cfg.iterations, resumed_from=prov.get("resumed_from"), seconds=round(wall, 2),
                  loop_seconds=prov.get("seconds"), final_loss=prov.get("final_loss"), classes=prov.get("classes"),
                  seed=args.seed, val_split=args.val_split, train_size=len(train), compiled=bool(args.compile),
                  world_size=world, config=condensed.config, condensed=str(path))
    _append(out / RESULT_FILE, [_with_env(record, dev, args.argv)])
    print(f"condensed {condensed.name}: {_shape_text(condensed)} in {wall:.0f} s -> {path}")
    if args.evaluate:
        try:
            result = _evaluate(condensed, eval_set, args.eval_model, args.eval_models, args.eval_epochs, 256, dev,
                               args.seed, args.eval_compile, args.quiet)
        except KeyboardInterrupt:
            again = ["evaluate", str(out), "--split", split, "--model", args.eval_model, "--num-models",
                     str(args.eval_models), "--epochs", str(args.eval_epochs), "--device", args.device,
                     "--seed", str(args.seed)]
            print(f"\ninterrupted during evaluation; {path} is saved; evaluate it with: atom {shlex.join(again)}",
                  file=sys.stderr)
            return 130
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


def _close(bar: ProgressBar | None) -> None:
    if bar is not None and bar.bar is not None:
        bar.bar.close()


def _resume_command(argv: list[str], world: int = 1) -> str:
    args = list(argv)
    if "--resume" not in args:
        args.append("--resume")
    return _command(args, world)


def _command(argv: list[str], world: int = 1) -> str:
    """The command line as a user would retype it (the same for ``atom``, ``python -m atom_plugin`` and main())."""
    launcher = f"torchrun --nproc_per_node {world} -m atom_plugin" if world > 1 else "atom"
    return f"{launcher} {shlex.join(argv)}"


# ---------------------------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """``atom evaluate``: evaluate a saved condensed set on the test split or its validation split."""
    _check_model(args.model)
    _check_counts(num_models=args.num_models, epochs=args.epochs, batch_size=args.batch_size)
    dev = resolve_device(args.device)
    condensed, path = _load_condensed(args.path)
    out = Path(args.out) if args.out else path.parent / RESULT_FILE
    _check_result_file(out)
    prov = condensed.provenance
    root = args.data_root
    if root is None and prov.get("data_root") and Path(prov["data_root"]).is_dir():
        root = prov["data_root"]  # where the set was made from, unless told otherwise
    dataset = prov.get("dataset") or condensed.name
    size = tuple(condensed.image_shape[1:])
    if args.split == "test":
        eval_set = _load(dataset, root, "test", size, args.download)
    else:
        eval_set = _rebuild_validation(condensed, path, dataset, root, size, args.download)
    result = _evaluate(condensed, eval_set, args.model, args.num_models, args.epochs, args.batch_size, dev,
                       args.seed, args.compile, args.quiet)
    _append(out, [_accuracy_record(result, condensed, args.split, path, args.seed, dev, args.argv)])
    print(f"{dataset} {condensed.method} ({_shape_text(condensed)}) {_accuracy_line(result, args.split)}")
    print(f"record appended to {out}")
    return 0


def _rebuild_validation(condensed, path: Path, dataset: str, root, size, download: bool):
    """The held-out images of a ``--val-split`` run: the same stratified split of the same training data."""
    prov = condensed.provenance
    n_val = prov.get("val_split")
    if not n_val:
        raise UsageError(f"{str(path)!r} was made from the whole training set (no --val-split), so it has no "
                         "validation split; use --split test")
    train_all = _load(dataset, root, "train", size, download)
    train, val = stratified_split(train_all, int(n_val), seed=int(prov.get("val_seed", VAL_SEED)))
    # With ZCA the stored fingerprint is of the whitened images; otherwise it identifies the training part.
    expected = prov.get("source_fingerprint")
    if condensed.zca is None and expected and train.fingerprint() != expected:
        raise DataError(f"the {dataset} training data found now differs from the data {str(path)!r} was made "
                        "from, so its validation split cannot be rebuilt; pass the same --data-root")
    return val


# ---------------------------------------------------------------------------------------------------------------
# baseline
# ---------------------------------------------------------------------------------------------------------------
def cmd_baseline(args: argparse.Namespace) -> int:
    """``atom baseline``: a random or herding subset of real images, saved like a condensed set."""
    if args.ipc < 1:
        raise ConfigError(f"ipc must be a whole number >= 1, got {args.ipc}")
    if args.herding_epochs < 0:
        raise UsageError(f"--herding-epochs must be >= 0, got {args.herding_epochs}")
    if args.factor != 1 and args.method != "random":
        raise UsageError(f"--factor {args.factor} goes with --method random only (tiled random baseline)")
    _check_eval_args(args)
    dev = resolve_device(args.device)
    out = _writable_out_dir(args.out)
    train, eval_set, split = _load_splits(args, need_eval=args.evaluate)
    t0 = time.perf_counter()
    if args.method == "random":
        subset = random_subset(train, args.ipc, seed=args.seed, classes=args.classes, factor=args.factor)
    else:
        subset = herding_subset(train, args.ipc, seed=args.seed, classes=args.classes,
                                feature_epochs=args.herding_epochs, device=dev)
    wall = time.perf_counter() - t0
    subset.provenance.update(_split_provenance(args, train), iterations=0)
    path = subset.save(out / CONDENSED_FILE)
    subset.to_png_grid(out / GRID_FILE)
    record = dict(record="baseline", dataset=subset.name, method=subset.method, ipc=args.ipc, factor=subset.factor,
                  iterations=0,
                  seconds=round(wall, 2), classes=subset.present_classes(), seed=args.seed, val_split=args.val_split,
                  train_size=len(train), herding_epochs=args.herding_epochs if args.method == "herding" else None,
                  condensed=str(path))
    records = [_with_env(record, dev, args.argv)]
    print(f"selected {subset.name}: {_shape_text(subset)} ({args.method} real images) -> {path}")
    if args.evaluate:
        result = _evaluate(subset, eval_set, args.eval_model, args.eval_models, args.eval_epochs, 256, dev,
                           args.seed, args.eval_compile, args.quiet)
        records.append(_accuracy_record(result, subset, split, path, args.seed, dev, args.argv))
        print(_accuracy_line(result, split))
    _append(out / RESULT_FILE, records)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# show, report
# ---------------------------------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    """``atom show``: a PNG grid, one row per class."""
    if args.max_per_class is not None and args.max_per_class < 1:
        raise UsageError(f"--max-per-class must be >= 1, got {args.max_per_class}")
    if args.scale < 1:
        raise UsageError(f"--scale must be >= 1, got {args.scale}")
    condensed, path = _load_condensed(args.path)
    png = Path(args.out) if args.out else path.parent / GRID_FILE
    condensed.to_png_grid(png, max_per_class=args.max_per_class, scale=args.scale, decoded=args.decoded)
    print(f"wrote {png}: {_shape_text(condensed)} ({condensed.name}, {condensed.method})")
    return 0


REPORT_COLUMNS = [("dataset", "dataset"), ("split", "split"), ("method", "method"), ("ipc", "ipc"),
                  ("model", "model"), ("accuracy %", "acc"), ("models x epochs", "budget"),
                  ("iterations", "iterations"), ("device", "device"), ("date", "day")]


def cmd_report(args: argparse.Namespace) -> int:
    """``atom report``: a table of the accuracy records found in result files."""
    files: list[Path] = []
    for raw in args.paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(p.rglob(RESULT_FILE))
            if not found:
                raise UsageError(f"no {RESULT_FILE} under {str(p)!r}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(f"{str(p)!r} does not exist")
    rows = []
    for f in dict.fromkeys(files):  # a file named twice is read once
        for r in read_records(f):
            if isinstance(r, dict) and r.get("accuracy_mean") is not None:
                rows.append(dict(r, acc=f"{r['accuracy_mean']:.2f} ± {r.get('accuracy_std', 0):.2f}",
                                 budget=f"{r.get('num_models', '?')} x {r.get('eval_epochs', '?')}",
                                 split=r.get("split", ""), day=str(r.get("date", ""))[:16].replace("T", " ")))
    if not rows:
        raise UsageError(f"no accuracy records in {', '.join(map(str, files))}; run with --evaluate or "
                         "'atom evaluate' first")
    print(markdown_table(rows, REPORT_COLUMNS) if args.markdown else _text_table(rows, REPORT_COLUMNS))
    return 0


def _text_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    cells = [[h for h, _ in columns]] + [[str(r.get(k, "")) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _check_model(name: str) -> None:
    if str(name).lower() not in list_models():
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")


def _check_counts(**values: int) -> None:
    for name, v in values.items():
        if v < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {v}")


def _check_eval_args(args: argparse.Namespace) -> None:
    if args.evaluate:
        _check_model(args.eval_model)
        _check_counts(eval_epochs=args.eval_epochs, eval_models=args.eval_models)
    if args.val_split is not None and args.val_split < 1:
        raise UsageError(f"--val-split must be >= 1 (a number of images), got {args.val_split}")


def _writable_out_dir(raw: str) -> Path:
    """Check, before any real work, that the run directory can be created and written (nothing is created
    yet, so bad input leaves no empty directories behind) and that an existing result file is readable."""
    out = Path(raw).expanduser()
    if out.exists():
        if not out.is_dir():
            raise OutputPathError(f"--out {str(out)!r} is a file, not a directory; choose a directory")
        ensure_writable_dir(out)
        _check_result_file(out / RESULT_FILE)
        return out
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"cannot create --out {str(out)!r}: {str(parent)!r} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot create --out {str(out)!r}: {str(parent)!r} is not writable")
    return out


def _check_result_file(path: Path) -> None:
    """A result file we will append to must be readable now, not after hours of work."""
    ensure_writable_dir(path.parent if str(path.parent) else ".")
    if path.is_dir():
        raise OutputPathError(f"{str(path)!r} is a directory; the result file must be a file")
    read_records(path)


def _load(name: str, root, split: str, size, download: bool):
    return load_dataset(name, root, split=split, image_size=size, download=download)


def _load_splits(args: argparse.Namespace, *, need_eval: bool):
    """``(train, eval set or None, split name)``: with --val-split the held-out part is the eval set."""
    train = _load(args.dataset, args.data_root, "train", args.image_size, args.download)
    if args.val_split:
        train, val = stratified_split(train, args.val_split, seed=VAL_SEED)
        return train, val, "validation"
    # Load the test split now, so a missing test file fails before the long job rather than after it.
    test = _load(args.dataset, args.data_root, "test", args.image_size, args.download) if need_eval else None
    return train, test, "test"


def _split_provenance(args: argparse.Namespace, train) -> dict:
    """What `atom evaluate` needs to find the data again and rebuild a validation split."""
    root = str(Path(args.data_root).expanduser().resolve()) if args.data_root else None
    return dict(val_split=args.val_split, val_seed=VAL_SEED if args.val_split else None,
                image_size=list(train.image_shape[1:]), data_root=root)


def _load_condensed(raw: str) -> tuple[CondensedDataset, Path]:
    """Load a condensed file, or the one in a run directory; returns ``(set, file path)``.

    Raises:
        CondensedFileError: nothing there, several candidates, or a truncated/corrupt/foreign file.
    """
    p = Path(raw).expanduser()
    if p.is_dir():
        hits = [p / CONDENSED_FILE] if (p / CONDENSED_FILE).is_file() else \
            sorted(h for h in p.glob("*.safetensors") if not h.name.startswith("checkpoint"))
        if len(hits) != 1:
            raise CondensedFileError(f"{str(p)!r} is a directory with {len(hits)} condensed files; name the file")
        p = hits[0]
    elif not p.exists() and p.with_name(p.name + ".safetensors").is_file():
        p = p.with_name(p.name + ".safetensors")
    return CondensedDataset.load(p), p


def _evaluate(train_set, eval_set, model, num_models, epochs, batch_size, dev, seed, compile, quiet):
    return evaluate(train_set, eval_set, model=model, num_models=num_models, epochs=epochs, batch_size=batch_size,
                    device=dev, seed=seed, progress=not quiet, compile=compile)


def _accuracy_record(result, condensed, split: str, path: Path, seed: int, dev, argv) -> dict:
    """A flat accuracy record (see benchmarks/README.md) for a condensed or selected set."""
    prov = condensed.provenance
    networks = (condensed.config or {}).get("networks")
    rec = dict(record="accuracy", dataset=prov.get("dataset") or condensed.name, method=condensed.method,
               ipc=condensed.ipc, factor=condensed.factor, networks=networks, split=split)
    rec.update(result.to_record())
    rec.update(iterations=int(prov.get("iterations") or 0), eval_seed=seed, val_split=prov.get("val_split"),
               condensed=str(path))
    return _with_env(rec, dev, argv)


def _with_env(record: dict, dev, argv) -> dict:
    env = environment(dev)
    env["command"] = _command(argv, int(os.environ.get("WORLD_SIZE", "1")))
    return dict(record, **env)


def _append(path: Path, records: list[dict]) -> None:
    append_records(path, records)


def _accuracy_line(result, split: str) -> str:
    epochs = f"{result.epochs} epoch{'s' if result.epochs != 1 else ''}"
    return (f"accuracy ({split}, {result.num_models} x {result.model}, {epochs}): "
            f"{result.mean:.2f} ± {result.std:.2f} %")


def _shape_text(s) -> str:
    per = s.ipc
    n = len(s.present_classes())
    tiles = f" (factor {s.factor}: {s.decoded_per_class} decoded per class)" if s.factor > 1 and per is not None else ""
    return f"{n} classes x {per} IPC{tiles}" if per is not None else f"{n} classes, {len(s)} images"
