"""NNI trial helpers: one hyper-parameter (or architecture) trial trained on a condensed proxy.

Inside an NNI experiment a trial is a process started by NNI's training service in the trial code directory::

    python trial.py            # trial.py: from atom_plugin.integrations.nni.trial import main; main([...])
    python -m atom_plugin.integrations.nni.trial --proxy proxy.safetensors --val val.safetensors --epochs 300

It asks NNI for its parameters (:func:`get_parameters`), trains a ConvNet on the proxy with the core protocol,
reports the validation accuracy (a fraction in [0, 1]) every ``report_every`` epochs with
``nni.report_intermediate_result`` and once at the end with ``nni.report_final_result``.

The same script runs standalone, as a plain program you can debug: outside an experiment
``nni.get_next_parameter()`` returns ``{}`` (NNI warns "Running trial code without runtime"; we silence that
warning) and the defaults are used; NNI then just logs the reported values.

Parameters a trial understands: ``lr``, ``weight_decay``, ``batch_size`` (:data:`DEFAULT_HPARAMS`) and the
ConvNet dimensions ``depth``, ``width``, ``act``, ``norm``, ``pool`` (default: ConvNet-3, the protocol's network).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import random
import sys
import warnings
from typing import Sequence

from atom_plugin.errors import ATOMError, ConfigError

from ._nni import require_nni
from .data import DatasetRef, prepare
from atom_plugin.integrations.proxy.space import DEFAULT_ARCHITECTURE, DIMENSIONS, arch_key, parse_arch_key
from atom_plugin.integrations.proxy.train import (BATCH_SIZES, DEFAULT_HPARAMS, HPO_RANGES, batch_size_choices,
                                                  train_and_validate)

_logger = logging.getLogger(__name__)


def hpo_search_space(proxy_size: int, *, lr: tuple[float, float] = HPO_RANGES["lr"],
                     weight_decay: tuple[float, float] = HPO_RANGES["weight_decay"]) -> dict:
    """NNI search space (the ``search_space`` of an HPO experiment) for the training hyper-parameters:
    ``lr`` and ``weight_decay`` log-uniform, ``batch_size`` a choice among powers of two no larger than the proxy
    (plus the proxy size itself when it is below 256, i.e. full-batch training).

    Raises:
        ConfigError: proxy_size < 1 or an empty/negative range.
    """
    sizes = batch_size_choices(proxy_size)
    for name, (lo, hi) in (("lr", lr), ("weight_decay", weight_decay)):
        if not 0 < lo < hi:
            raise ConfigError(f"{name} range must satisfy 0 < low < high, got {(lo, hi)}")
    return {
        "lr": {"_type": "loguniform", "_value": [float(lr[0]), float(lr[1])]},
        "weight_decay": {"_type": "loguniform", "_value": [float(weight_decay[0]), float(weight_decay[1])]},
        "batch_size": {"_type": "choice", "_value": sizes},
    }


def sample_configurations(search_space: dict, n: int, seed: int = 0) -> list[dict]:
    """``n`` seeded random draws from an NNI-format search space (``choice``, ``uniform``, ``loguniform``,
    ``randint``, ``quniform``); used to run trials in-process when NNI's manager is not available.

    Raises:
        ConfigError: an unsupported ``_type``.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(int(n)):
        cfg = {}
        for name, spec in search_space.items():
            kind, value = spec["_type"], spec["_value"]
            if kind == "choice":
                cfg[name] = rng.choice(list(value))
            elif kind == "uniform":
                cfg[name] = rng.uniform(value[0], value[1])
            elif kind == "loguniform":
                cfg[name] = math.exp(rng.uniform(math.log(value[0]), math.log(value[1])))
            elif kind == "randint":
                cfg[name] = rng.randrange(int(value[0]), int(value[1]))
            elif kind == "quniform":
                cfg[name] = round(rng.uniform(value[0], value[1]) / value[2]) * value[2]
            else:
                raise ConfigError(f"search-space type {kind!r} of {name!r} is not supported by the in-process sampler")
        out.append(cfg)
    return out


def get_parameters(defaults: dict | None = None) -> dict:
    """The trial's parameters: ``defaults`` (default :data:`DEFAULT_HPARAMS`) updated with what NNI sends.

    Outside an experiment NNI returns ``{}`` (its "Running trial code without runtime" warning is silenced), so
    the defaults are returned and the trial runs as a plain script. Call it once per trial, before reporting.

    Raises:
        NNIMissingError: NNI is not installed.
    """
    nni = require_nni()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*Running trial code without runtime", category=RuntimeWarning)
        received = nni.get_next_parameter()
    params = dict(DEFAULT_HPARAMS if defaults is None else defaults)
    params.update(received or {})
    return params


def _split_params(params: dict, arch: dict | None) -> tuple[dict, dict]:
    known = set(DEFAULT_HPARAMS) | set(DIMENSIONS)
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"unknown trial parameter(s) {unknown}; a trial understands {sorted(known)}")
    hp = {k: params[k] for k in DEFAULT_HPARAMS if k in params}
    hp = dict(DEFAULT_HPARAMS, **hp)
    hp["batch_size"] = int(hp["batch_size"])
    a = dict(arch or DEFAULT_ARCHITECTURE)
    a.update({k: params[k] for k in DIMENSIONS if k in params})
    return hp, a


def run_trial(proxy: DatasetRef, val: DatasetRef, *, params: dict | None = None, arch: dict | None = None,
              epochs: int = 300, report_every: int = 10, seed: int = 0, device: str = "auto", base_dir=None,
              allow_absolute: bool = False, report: bool = True) -> float:
    """One trial: train a ConvNet on ``proxy``, validate on ``val``, report to NNI; returns the final
    validation accuracy (a fraction in [0, 1]).

    Args:
        proxy: a dataset reference (a relative ``.safetensors`` path, ``"base64:..."``, bytes or a dataset; see
            :mod:`atom_plugin.integrations.nni.data`).
        val: the held-out REAL validation split as a dataset reference, never the test set.
        params: the trial's parameters; None = ask NNI (:func:`get_parameters`).
        arch: the ConvNet architecture (default ConvNet-3); ``params`` may override its dimensions.
        epochs: training epochs on the proxy.
        report_every: intermediate validation every k epochs (0 = none).
        seed: seeds the weights, shuffling and DSA.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.
        base_dir: the directory relative paths are resolved against (default: the working directory, the
            trial code directory in an NNI trial).
        allow_absolute: accept absolute paths (local debugging only: not portable to NNI's training services).
        report: send ``nni.report_intermediate_result`` / ``nni.report_final_result`` (exactly one final).

    Raises:
        ProxyMismatchError: proxy and validation split from different datasets/shapes.
        ConfigError / InvalidArchitectureError: bad parameters. NNIMissingError: NNI needed but missing.
    """
    nni = require_nni() if (report or params is None) else None
    if params is None:
        params = get_parameters()
    hp, a = _split_params(params, arch)
    p, v = prepare(proxy, val, base_dir=base_dir, allow_absolute=allow_absolute)
    if hp["batch_size"] > len(p):
        _logger.warning("batch_size %d exceeds the proxy size %d: each epoch is one full batch", hp["batch_size"], len(p))
    on_report = (lambda epoch, acc: nni.report_intermediate_result(acc)) if report else None
    result = train_and_validate(a, p, v, epochs=epochs, seed=seed, device=device, report_every=report_every,
                                on_report=on_report, **hp)
    if report:
        nni.report_final_result(result.accuracy)
    _logger.info("trial %s %s: validation accuracy %.4f in %.1f s", arch_key(a), hp, result.accuracy, result.seconds)
    return result.accuracy


def trial_script(argv: Sequence[str]) -> str:
    """The text of a self-contained ``trial.py`` for a trial code directory (runs :func:`main` with ``argv``)."""
    return ('"""NNI trial: train a ConvNet on the condensed proxy stored next to this file (atom-plugin).\n\n'
            'Run it as NNI does (from this directory): python trial.py   -- standalone it uses the defaults.\n"""\n'
            "import sys\n\nfrom atom_plugin.integrations.nni.trial import main\n\n"
            f"main({list(argv)!r} + sys.argv[1:])\n")


def main(argv: Sequence[str] | None = None) -> float:
    """Command line of one trial (``python -m atom_plugin.integrations.nni.trial --help``). Prints one JSON line
    with the parameters and the final validation accuracy; exits with status 2 and a one-line error on bad
    input."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", default="proxy.safetensors", help="proxy file, relative to the trial directory")
    ap.add_argument("--val", default="val.safetensors", help="validation-split file, relative to the trial directory")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--report-every", type=int, default=10)
    ap.add_argument("--arch", default=None, help="architecture key, e.g. d3-w128-relu-instancenorm-avgpool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--allow-absolute", action="store_true", help="accept absolute paths (local debugging only)")
    args = ap.parse_args(argv)
    own = logging.getLogger("atom_plugin")  # our messages only; NNI's logger prints its own
    if not own.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        own.addHandler(handler)
        own.setLevel(logging.INFO)
    try:
        params = get_parameters()
        arch = parse_arch_key(args.arch) if args.arch else None
        acc = run_trial(args.proxy, args.val, params=params, arch=arch, epochs=args.epochs,
                        report_every=args.report_every, seed=args.seed, device=args.device,
                        allow_absolute=args.allow_absolute)
    except ATOMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps({"params": params, "val_accuracy": acc}))
    return acc


if __name__ == "__main__":
    main()
