"""How much of each condensation step comes from each loss term? Gradient norms w.r.t. the synthetic pixels.

For a real-initialised synthetic set (IPC per class, first images after a seeded shuffle) and a real batch of
``--batch-real`` images per class, over ``--networks`` freshly drawn ConvNet-3 (instancenorm) networks, without
DSA: the value and the gradient norm ||dL_term/dS|| of every unweighted term of the ATOM-style loss
(``atom_plugin.loss``): spatial and channel attention at each matched block, and the embedding MMD. Multiply a
term's norm by its weight (w_s, w_c, w_e) to compare its share of a step. A diagnostic for choosing the weights,
not an accuracy result.

    python benchmarks/gradient_balance.py --data-root /usr/share/datasets/fashion-mnist --ipc 10 --power 1 4
"""
from __future__ import annotations

import argparse
import statistics

import torch
from _common import ResultsFile, add_common_args, add_out_arg, log, set_threads

from atom_plugin import build_model, load_dataset
from atom_plugin.attention import attention_maps
from atom_plugin.runner import run_script
from atom_plugin.loss import class_means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, device=False, compile=False)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--batch-real", type=int, default=64)
    ap.add_argument("--power", type=float, nargs="+", default=[1.0, 4.0])
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--networks", type=int, default=5)
    add_out_arg(ap, "gradient_balance.json")
    args = ap.parse_args()
    set_threads()
    results = ResultsFile(args.out)
    torch.manual_seed(args.seed)
    train = load_dataset("fashion-mnist", args.data_root, split="train")
    k = train.num_classes
    real, syn = [], []
    for c in range(k):
        idx = (train.labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx))]
        real.append(train.images[idx[:args.batch_real]])
        syn.append(train.images[idx[args.batch_real:args.batch_real + args.ipc]])
    real = torch.cat(real)
    syn = torch.cat(syn).requires_grad_(True)
    for power in args.power:
        per_term: dict[str, list[tuple[float, float]]] = {}
        for _ in range(args.networks):
            net = build_model("convnet", channels=train.image_shape[0], num_classes=k, image_size=train.image_shape[1:])
            net.requires_grad_(False)
            with torch.no_grad():
                real_maps, real_emb = net.forward_intermediates(real, tuple(args.layers))
            syn_maps, syn_emb = net.forward_intermediates(syn, tuple(args.layers))
            terms = {}
            for layer, fr, fs in zip(args.layers, real_maps, syn_maps):
                (rs, rc), (ss, sc) = attention_maps(fr, power), attention_maps(fs, power)
                terms[f"spatial_block{layer}"] = (class_means(rs, k) - class_means(ss, k)).pow(2).sum()
                terms[f"channel_block{layer}"] = (class_means(rc, k) - class_means(sc, k)).pow(2).sum()
            terms["embedding"] = (class_means(real_emb, k) - class_means(syn_emb, k)).pow(2).sum()
            for name, loss in terms.items():
                (grad,) = torch.autograd.grad(loss, syn, retain_graph=True)
                per_term.setdefault(name, []).append((loss.item(), grad.norm().item()))
        for name, vals in per_term.items():
            rec = results.append(dict(
                benchmark="gradient_balance", dataset="fashion-mnist", ipc=args.ipc, batch_real=args.batch_real,
                power=power, term=name, networks=args.networks, seed=args.seed,
                loss_mean=statistics.mean(v for v, _ in vals), grad_norm_mean=statistics.mean(g for _, g in vals)),
                "cpu")
            log(f"p={power:g} {name:>16}: loss {rec['loss_mean']:.3e}  |grad| {rec['grad_norm_mean']:.3e}")


if __name__ == "__main__":
    run_script(main)
