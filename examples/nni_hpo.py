"""Hyper-parameter search with NNI 3.0 (TPE) where every trial trains a ConvNet on a condensed proxy.

What it does:
  1. loads Fashion-MNIST, holds out a stratified REAL validation split (5,000 images; seed 0) and condenses the
     proxy from the rest (or loads one with --proxy);
  2. writes a self-contained trial code directory, OUT/hpo_trial/: ``proxy.safetensors``, ``val.safetensors`` and
     ``trial.py`` (debug it as a plain script: ``cd OUT/hpo_trial && python trial.py``);
  3. runs an NNI ``Experiment('local')``: TPE tunes learning rate, weight decay and batch size (batch sizes no
     larger than the proxy); each trial trains ConvNet-3 on the proxy and reports its validation accuracy;
  4. trains ConvNet-3 with the best configuration on the full training split and tests it ONCE on the test set.

WARNING -- network exposure: step 3 starts NNI's manager (a Node.js process) with its web portal on --port.
NNI 3.0 has no bind option: the portal listens on ALL network interfaces, so anyone who can reach this machine
on that port can see and control the experiment while it runs. Use a firewalled machine or a high, unused port;
the experiment is stopped (and the manager exits) at the end of the script, also on errors and Ctrl-C.
``--in-process`` runs the trials in this process instead (no manager, no portal); with ``--quick``, a manager
that cannot start (e.g. in a sandbox) falls back to that, and the output says so.

  python examples/nni_hpo.py --data-root ~/data --out runs/hpo --port 38080          # 20 trials, GPU-sized
  python examples/nni_hpo.py --quick --data-root ROOT --out DIR                        # seconds, on CPU

Needs ``pip install 'atom-plugin[nni]'``. NNI also writes under ~/nni-experiments (its experiment list).
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path

from atom_plugin import evaluate
from atom_plugin.data import VAL_SEED
from atom_plugin.runner import run_script

from _proxy_setup import add_data_and_proxy_args, get_proxy, load_splits


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/nni_hpo", help="output folder (trial code dir, NNI logs, nni_hpo.json)")
    ap.add_argument("--quick", action="store_true", help="tiny CPU run: ipc 2, 3 condensation iterations, "
                    "width-16 condensation net, 3 trials of 2 epochs")
    ap.add_argument("--port", type=int, default=None, help="port of NNI's manager / web portal, which listens on "
                    "ALL interfaces (default: a free high port)")
    ap.add_argument("--in-process", action="store_true", help="do not start NNI's manager: run seeded random "
                    "configurations from the same search space in this process")
    ap.add_argument("--trials", type=int, default=None, help="number of trials (default 20; quick 3)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs per trial (default 300; quick 2)")
    add_data_and_proxy_args(ap)
    args = ap.parse_args(argv)
    if args.port is None:
        args.port = free_port()
    for name, normal, quick in (("trials", 20, 3), ("ipc", 10, 2), ("iterations", 2000, 3), ("epochs", 300, 2),
                                ("full_epochs", 50, 2)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    return args


def free_port() -> int:
    """A currently unused TCP port chosen by the OS (an ephemeral, i.e. high, port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_with_manager(args, code_dir: Path, search_space: dict, out: Path) -> list[tuple[dict, float]]:
    """Run the TPE experiment through NNI's manager; returns [(parameters, final metric)]. Always stops it."""
    import torch
    from nni.experiment import Experiment

    exp = Experiment("local")
    c = exp.config
    c.experiment_name = "atom-proxy-hpo"
    c.trial_command = f'"{sys.executable}" trial.py'  # remote machines: "python3 trial.py" (see docs/nni.md)
    c.trial_code_directory = str(code_dir)
    c.search_space = search_space
    c.tuner.name = "TPE"
    c.tuner.class_args = {"optimize_mode": "maximize", "seed": args.seed}
    c.max_trial_number = args.trials
    c.trial_concurrency = 1
    c.experiment_working_directory = str((out / "nni-experiments").resolve())
    if args.device != "cpu" and torch.cuda.is_available():
        c.trial_gpu_number = 1
        c.training_service.use_active_gpu = True
    print(f"NNI manager: starting on port {args.port} -- its web portal listens on ALL interfaces until the end")
    try:
        ok = exp.run(args.port)
        data = exp.export_data()
    finally:
        exp.stop()
    if not ok:
        raise RuntimeError("the NNI experiment did not finish successfully (see the logs under --out)")
    results = []
    for r in data:
        value = r.value["default"] if isinstance(r.value, dict) else r.value
        results.append((dict(r.parameter), float(value)))
    if not results:
        raise RuntimeError("the NNI experiment reported no trial result (see the trial logs under --out)")
    return results


def run_in_process(args, proxy, val, search_space: dict) -> list[tuple[dict, float]]:
    """The same trials in this process: seeded random configurations (no TPE model, no manager)."""
    from atom_plugin.integrations.nni import run_trial, sample_configurations

    results = []
    for params in sample_configurations(search_space, args.trials, seed=args.seed):
        acc = run_trial(proxy, val, params=params, epochs=args.epochs, report_every=0, seed=args.seed,
                        device=args.device, report=False)
        print(f"  trial {params}: validation accuracy {100 * acc:.2f} %")
        results.append((params, acc))
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    from atom_plugin.integrations.nni import hpo_search_space, require_nni, save_split
    from atom_plugin.integrations.nni.trial import trial_script

    require_nni()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    train, val, test, val_size = load_splits(args)
    proxy = get_proxy(args, train, val)

    # The trial code directory travels to wherever NNI runs a trial: data files by relative path, no local paths.
    code_dir = out / "hpo_trial"
    code_dir.mkdir(parents=True, exist_ok=True)
    proxy.save(code_dir / "proxy.safetensors")
    save_split(val, code_dir / "val.safetensors", split="validation", val_size=val_size, seed=VAL_SEED)
    trial_argv = ["--proxy", "proxy.safetensors", "--val", "val.safetensors", "--epochs", str(args.epochs),
                  "--report-every", str(max(1, args.epochs // 10)), "--seed", str(args.seed), "--device", args.device]
    (code_dir / "trial.py").write_text(trial_script(trial_argv))
    search_space = hpo_search_space(len(proxy))
    print(f"search space: {json.dumps(search_space)}")

    mode = "nni-manager"
    if args.in_process:
        mode = "in-process"
        results = run_in_process(args, proxy, val, search_space)
    else:
        try:
            results = run_with_manager(args, code_dir, search_space, out)
        except Exception as exc:  # noqa: BLE001 -- any manager failure; re-raised unless --quick
            if not args.quick:
                raise
            mode = "in-process (fallback)"
            print(f"NNI manager could not run here ({type(exc).__name__}: {exc}); --quick falls back to running "
                  f"{args.trials} seeded random configurations of the same search space in this process")
            results = run_in_process(args, proxy, val, search_space)

    best_params, best_val = max(results, key=lambda r: r[1])
    hp = {"lr": float(best_params["lr"]), "weight_decay": float(best_params["weight_decay"]),
          "batch_size": int(best_params["batch_size"])}
    print(f"{len(results)} trials ({mode}); best configuration: {hp} "
          f"(proxy-trained validation accuracy {100 * best_val:.2f} %)")
    final = evaluate(train, test, model="convnet", num_models=1, epochs=args.full_epochs, device=args.device,
                     seed=args.seed, **hp)
    print(f"ConvNet-3 with the best configuration trained on the full training split ({len(train)} images, "
          f"{args.full_epochs} epochs): test accuracy {final.mean:.2f} %")
    summary = dict(mode=mode, best_configuration=hp, best_proxy_val_accuracy=best_val,
                   full_data_test_accuracy=final.mean, full_epochs=args.full_epochs, proxy_epochs=args.epochs,
                   proxy_size=len(proxy), trials=[dict(params=p, val_accuracy=v) for p, v in results],
                   total_seconds=round(time.perf_counter() - t_start, 2))
    (out / "nni_hpo.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


if __name__ == "__main__":
    run_script(main)
