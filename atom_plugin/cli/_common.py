"""What the ``atom`` commands share: file names, checks of flags, loading data and sets, records."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
from pathlib import Path

from .._safeio import ensure_writable_dir
from ..condensed import CondensedDataset
from ..config import ATOMConfig
from ..data import VAL_SEED, load_dataset, validation_split
from ..errors import ATOMError, CondensedFileError, OutputPathError
from ..evaluate import evaluate
from ..models import check_model
from ..results import append_records, environment, read_records


CONDENSED_FILE = "condensed.safetensors"
CHECKPOINT_FILE = "checkpoint.safetensors"
GRID_FILE = "grid.png"
RESULT_FILE = "result.json"


class UsageError(ATOMError, ValueError):
    """A command-line value that makes no sense (e.g. ``--eval-epochs 0``, ``report`` of nothing)."""


def config_from_args(args: argparse.Namespace) -> ATOMConfig:
    """The :class:`ATOMConfig` the flags of ``atom condense`` describe (one value per field)."""
    return ATOMConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ATOMConfig)})


def _check_model(name: str) -> None:
    check_model(name)  # the registry's own check (ConfigError naming the known models)


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
        train, val = validation_split(train, args.val_split)
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


def _command(argv: list[str], world: int = 1) -> str:
    """The command line as a user would retype it (the same for ``atom``, ``python -m atom_plugin`` and main())."""
    launcher = f"torchrun --nproc_per_node {world} -m atom_plugin" if world > 1 else "atom"
    return f"{launcher} {shlex.join(argv)}"

