"""Real-image baselines of the same IPC: a random subset and a herding coreset.

Herding (Welling, ICML 2009; the coreset baseline of the DC papers, selection as in iCaRL, Rebuffi et al.,
CVPR 2017): per class, greedily add the image whose L2-normalised embedding brings the running mean of the
selection closest to the class mean. The embedding is that of ConvNet-3 (the condensation network) trained
for ``feature_epochs`` epochs on the training set (plain SGD, no DSA); ``feature_epochs=0`` uses a randomly
initialised ConvNet instead. Which network was used is recorded in the result's provenance.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from . import _rng
from ._device import device_name, resolve_device
from .condensed import CondensedDataset
from .config import ATOMConfig
from .data._base import ImageTensorDataset, as_image_dataset
from .errors import ConfigError, DataError
from .models import build_model, reinit_


def _check(data: ImageTensorDataset, ipc: int, classes: Sequence[int] | None) -> list[int]:
    if ipc < 1:
        raise ConfigError(f"ipc must be >= 1, got {ipc}")
    counts = data.class_counts()
    classes = sorted(set(classes)) if classes is not None else data.present_classes()
    empty = [data.classes[k] for k in classes if int(counts[k]) == 0]
    if empty:
        raise DataError(f"{data.name}: class(es) {empty} have no images")
    small = [data.classes[k] for k in classes if int(counts[k]) < ipc]
    if small:
        raise ConfigError(f"ipc {ipc} is larger than the number of images of class(es) {small}; lower `ipc`")
    return classes


def _as_condensed(data: ImageTensorDataset, idx: torch.Tensor, method: str, provenance: dict) -> CondensedDataset:
    return CondensedDataset.from_dataset(data.select(idx), method=method, provenance=dict(
        provenance, dataset=data.name, source_fingerprint=data.fingerprint()))


def random_subset(train_set, ipc: int, *, seed: int = 0, classes: Sequence[int] | None = None,
                  factor: int = 1) -> CondensedDataset:
    """``ipc`` real images per class drawn uniformly without replacement (seeded), as a CondensedDataset.

    With ``factor`` f > 1 the *tiled random* baseline (the multi-formation parametrisation without
    condensation, reference.md Sec. 5): ``ipc * f²`` real images per class, each downsampled into one tile of
    ``ipc`` stored images (:func:`atom_plugin.multiformation.encode`); method ``"tiled-random"``.

    Returns ``(K*ipc, C, H, W)`` float32 stored images, class-major. Raises ConfigError/DataError on bad
    IPC/classes, or a factor that does not divide the image size.
    """
    from .multiformation import check_factor, encode

    data = as_image_dataset(train_set)
    factor = check_factor(factor, data.image_shape[1:])
    classes = _check(data, ipc * factor * factor, classes)
    g = _rng.generator(seed, 0, _rng.INIT, "cpu")
    picks = []
    for k in classes:
        members = torch.nonzero(data.labels == k).flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:ipc * factor * factor]])
    idx = torch.cat(picks)
    prov = dict(seed=seed, ipc=ipc, classes=classes, factor=factor)
    if factor == 1:
        return _as_condensed(data, idx, "random", prov)
    tiled = _as_condensed(data, idx, "tiled-random", prov)
    return tiled._like(encode(tiled.images, factor), data.labels[idx][::factor * factor].clone(), factor=factor)


def herding_select(features: torch.Tensor, k: int) -> torch.Tensor:
    """Greedy herding on ``features`` ``(n, D)`` float: indices ``(k,)`` int64 of the selected rows, in order."""
    f = F.normalize(features.double(), dim=1)
    mu = f.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(f), dtype=torch.bool, device=f.device)
    for step in range(1, k + 1):
        dist = ((mu[None] - (running[None] + f) / step) ** 2).sum(1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running += f[i]
    return torch.tensor(chosen, dtype=torch.long)


def herding_subset(train_set, ipc: int, *, seed: int = 0, classes: Sequence[int] | None = None,
                   feature_epochs: int = 1, feature_config: ATOMConfig | None = None,
                   device: str | torch.device = "auto", batch_size: int = 256) -> CondensedDataset:
    """A herding coreset of ``ipc`` real images per class (see the module doc for the feature network).

    Args:
        train_set: an :class:`~atom_plugin.data.ImageTensorDataset` or a map-style dataset of
            ``(image (C, H, W) float tensor, label)`` items.
        ipc: images kept per class (>= 1, at most the class's size).
        seed: seeds the feature network's initialisation and training.
        classes: class indices to select from (default: every class present).
        feature_epochs: epochs of plain SGD (lr 0.01, momentum 0.9, wd 5e-4) of the ConvNet whose
            embeddings are herded; 0 = a randomly initialised ConvNet.
        feature_config: the network options (ATOMConfig's model/width/depth/norm/act/pool); default ConvNet-3.
        device: where the feature network runs (``"auto" | "cpu" | "cuda" | "cuda:N"``).
        batch_size: the feature network's training minibatch (default 256).
    """
    from .evaluate import train_model

    data = as_image_dataset(train_set)
    classes = _check(data, ipc, classes)
    cfg = feature_config or ATOMConfig()
    dev = resolve_device(device)
    c, h, w = data.image_shape
    net = build_model(cfg.model, channels=c, num_classes=data.num_classes, image_size=(h, w), **cfg.model_kwargs()).to(dev)
    reinit_(net, _rng.generator(seed, 0, _rng.NETWORK, dev))
    if feature_epochs > 0:
        train_model(net, data, epochs=feature_epochs, batch_size=batch_size, dsa=False,
                    generator=_rng.generator(seed, 1, _rng.NETWORK, "cpu"))
    net.eval()
    picks = []
    with torch.no_grad():
        for k in classes:
            members = torch.nonzero(data.labels == k).flatten()
            feats = torch.cat([net.embed(data.images[members[i:i + 1024]].to(dev)).cpu()
                               for i in range(0, len(members), 1024)])
            picks.append(members[herding_select(feats, ipc)])
    prov = dict(seed=seed, ipc=ipc, classes=classes, feature_network=f"{cfg.model} (width {cfg.width}, depth "
                f"{cfg.depth}, {cfg.model_kwargs().get('norm', '-')}) trained {feature_epochs} epoch(s) on the training set",
                device=device_name(dev))
    return _as_condensed(data, torch.cat(picks), "herding", prov)
