"""Condense Fashion-MNIST with the Python API and compare it with a random subset of the same size.

    python examples/condense_fashion_mnist.py --quick            # tiny budget: well under a minute on a CPU
    python examples/condense_fashion_mnist.py --out runs/api     # DataDAM's budget: IPC 10, 8000 iterations,
                                                                 # 5 x 1000-epoch evaluations (use a GPU)

The same run from the command line: ``atom condense --dataset fashion-mnist --ipc 10 --evaluate --out DIR``.
"""
import argparse
from pathlib import Path

from atom_plugin import (ATOMConfig, CondensedDataset, ProgressBar, condense, evaluate, load_dataset,
                         random_subset)
from atom_plugin.runner import run_script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="folder with the Fashion-MNIST idx files (default: the usual places, "
                        "else a torchvision download)")
    parser.add_argument("--out", default="runs/example-fashion-mnist", help="output folder")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="tiny budget, to check that everything runs")
    args = parser.parse_args()
    out = Path(args.out)

    # 1. Data: normalised tensors; the test split is touched only by evaluate().
    train = load_dataset("fashion-mnist", args.data_root, split="train")
    test = load_dataset("fashion-mnist", args.data_root, split="test")

    # 2. Condense with the ATOM preset (spatial + channel attention + embedding matching).
    if args.quick:
        config = ATOMConfig(preset="atom", ipc=2, iterations=5, batch_real=16, width=16)
        eval_budget = dict(epochs=2, num_models=1)
    else:
        config = ATOMConfig(preset="atom", ipc=10, iterations=8000)
        eval_budget = dict(epochs=1000, num_models=5)
    # resume=True: a second run with the same --out continues (or reuses) the checkpoint instead of failing.
    condensed = condense(train, config, device=args.device, seed=0, callbacks=[ProgressBar()],
                         checkpoint=out / "checkpoint.safetensors", checkpoint_every=500, resume=True)

    # 3. Save, and load it back as any later user would (one .safetensors file, no pickle).
    path = condensed.save(out / "condensed.safetensors")
    condensed = CondensedDataset.load(path)
    condensed.to_png_grid(out / "grid.png")

    # 4. Evaluate: fresh ConvNets trained on the condensed set only, next to a random real subset of equal size.
    ours = evaluate(condensed, test, device=args.device, progress=True, **eval_budget)
    random = evaluate(random_subset(train, config.ipc, seed=0), test, device=args.device, progress=True,
                      **eval_budget)
    print(f"condensed ({config.ipc} images/class): {ours}")
    print(f"random    ({config.ipc} images/class): {random}")
    print(f"files: {path}, {out / 'grid.png'}")


if __name__ == "__main__":
    run_script(main)
