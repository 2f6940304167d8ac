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
import dataclasses
import re
import sys
from typing import Sequence

from .. import __version__
from .._device import COMPILE_AUTO
from .._malloc import keep_freed_memory
from ..config import ATOMConfig
from ..errors import ATOMError
from ..models.convnet import ACTIVATIONS, NORMS, POOLINGS
from ..runner import one_line, run_script
from ._common import UsageError
from .baseline import cmd_baseline
from .condense import cmd_condense
from .evaluate import cmd_evaluate
from .show import cmd_report, cmd_show

__all__ = ["UsageError", "build_parser", "main", "run_script"]  # run_script: atom_plugin.runner's, kept here too


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
    keep_freed_memory()  # a command is a whole process: its CPU tensors skip the page faults (atom_plugin._malloc)
    try:
        return args.func(args)
    except ATOMError as exc:
        print(f"error: {flag_message(one_line(exc), args.flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a command may leave a hint (how to continue) in args.interrupt_hint
        hint = getattr(args, "interrupt_hint", None)
        message = hint() if hint is not None else "\ninterrupted"
        if message:
            print(message, file=sys.stderr)
        return 130


# Core parameters whose flag has another name (the CLI's checkpoint lives in --out; a dataset's root is --data-root).
_PARAM_TO_DEST = dict(root="data_root", checkpoint="out")
_PARAM = re.compile(r"`([A-Za-z_]\w*)(?:=([^`]*))?`")


def flag_message(message: str, flags: dict[str, argparse.Action]) -> str:
    """Say a core message in the command's flags: the core names Python parameters in backticks (`ipc`,
    `resume=True`, `device='cpu'`); each becomes the flag with that destination (``--ipc``, ``--resume``,
    ``--device cpu``; a switch given its other value reads "leave out --no-download"). A parameter the command has no flag for keeps its Python spelling.

    Args:
        message: one line from :func:`atom_plugin.runner.one_line`.
        flags: the command's argparse actions by ``dest``.
    """
    def flag(m: re.Match) -> str:
        action = flags.get(_PARAM_TO_DEST.get(m.group(1), m.group(1)))
        if action is None or not action.option_strings:
            return m.group(0)
        opt = max(action.option_strings, key=len)
        value = m.group(2)
        if value is None:
            return opt
        if action.nargs == 0:  # a switch: `resume=True` -> --resume; `download=True` -> leave out --no-download
            return opt if value == str(action.const) else f"leave out {opt}"
        return f"{opt} {value.strip(chr(39) + chr(34))}"

    return _PARAM.sub(flag, message)


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
    _add_config_args(c)
    c.add_argument("--classes", type=_int_list, metavar="0,3,7", help="condense only these class indices")
    c.add_argument("--val-split", type=int, metavar="N", help="hold N training images out (stratified, seed 0); "
                   "--evaluate then uses them instead of the test set")
    _add_run_args(c)
    c.add_argument("--out", required=True, metavar="DIR", help="run directory")
    c.add_argument("--checkpoint-every", type=int, default=500, metavar="K", help="iterations between checkpoints")
    c.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    c.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help=f"condense through torch.compile (default: {COMPILE_AUTO})")
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
    e.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help=f"train through torch.compile (default: {COMPILE_AUTO})")
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
    for cmd in sub.choices.values():
        cmd.set_defaults(flags={a.dest: a for a in cmd._actions})
    return p


# The CLI's choices for the network's options (validated by the model itself on the Python side).
_CHOICES = dict(norm=NORMS, act=ACTIVATIONS, pool=POOLINGS)
_GROUP_TITLES = {"condensation": None, "matching networks": "matching networks",
                 "loss": "loss (default: the preset's values)", "network": "matching network (re-drawn each iteration)",
                 "augmentation": "augmentation and preprocessing"}


def _add_config_args(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`ATOMConfig` field, generated from the field: its default, type, help text and group
    (``batch_real`` -> ``--batch-real``; booleans: ``--zca`` for a field that is off, ``--no-dsa`` for one that
    is on). The flags' defaults are the dataclass's, so ``atom condense`` without them records ``ATOMConfig()``."""
    groups = {key: (p.add_argument_group(title) if title else p) for key, title in _GROUP_TITLES.items()}
    for f in dataclasses.fields(ATOMConfig):
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        g = groups[meta["group"]]
        if isinstance(f.default, bool):
            if f.default:
                g.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                               help=f"turn off: {meta['help']}")
            else:
                g.add_argument(flag, dest=f.name, action="store_true", help=meta["help"])
            continue
        kind = {"layers": _int_list}.get(f.name) or (type(f.default) if f.default is not None else
                                                      _NONE_DEFAULT_TYPES.get(f.name, str))
        choices = meta["choices"] or _CHOICES.get(f.name)
        shown = "" if f.default is None or "default" in meta["help"] else f" (default {f.default})"
        g.add_argument(flag, dest=f.name, type=kind, default=f.default, choices=choices,
                       metavar=None if choices else meta["metavar"], help=meta["help"] + shown)


_NONE_DEFAULT_TYPES = dict(factor=int, lr_images=float, w_spatial=float, w_channel=float, w_embed=float, power=float)


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
    g.add_argument("--eval-compile", action=argparse.BooleanOptionalAction, default=None,
                   help=f"train the networks through torch.compile (default: {COMPILE_AUTO})")


def _int_list(text: str) -> tuple[int, ...]:
    """``"1,2"`` -> ``(1, 2)``; ``""`` or ``"none"`` -> ``()`` (argparse type)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1,2, got {text!r}") from None
