"""The evaluation protocol: train fresh networks on a (condensed) set only, test once on real test data.

Protocol (DC/DSA/DM family: Zhao et al. ICLR 2021, Zhao & Bilen ICML 2021 and WACV 2023): SGD lr 0.01,
momentum 0.9, weight decay 5e-4, batch 256, E epochs (default 1000), lr x0.1 at E/2, DSA on every batch
(one op per batch, parameters per image; the op is drawn on the host, so only that op is computed); then ONE
test pass. Mean and (population) standard deviation over
N networks (default 5), in %. The final network is tested; no checkpoint is ever picked by test accuracy.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _rng
from ._device import device_name, resolve_compile, resolve_device
from .data._base import ImageTensorDataset, as_image_dataset
from .dsa import augment_batch, parse_strategy
from .errors import ConfigError, DataError
from .models import build_model, reinit_

_TRAIN_STREAM = 10  # random streams of evaluation (model init, shuffling, DSA), distinct from condensation's


@dataclass
class EvalResult:
    """Test accuracies (%) of ``num_models`` independently trained networks, and how they were obtained."""

    accuracies: list[float]
    model: str
    epochs: int
    num_models: int
    seconds: float
    device: str
    settings: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        """Mean test accuracy, %."""
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Population standard deviation of the test accuracies, % (np.std, as the DC code)."""
        return float(np.std(self.accuracies))

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f} % ({self.num_models} x {self.model}, {self.epochs} epochs)"

    def to_record(self, **extra) -> dict:
        """A flat result record (see benchmarks/README.md): accuracy_mean/std in %, model, epochs, device, ..."""
        rec = dict(model=self.model, accuracy_mean=round(self.mean, 3), accuracy_std=round(self.std, 3),
                   accuracies=[round(a, 3) for a in self.accuracies], num_models=self.num_models,
                   eval_epochs=self.epochs, eval_seconds=round(self.seconds, 2), device=self.device,
                   eval_compiled=self.settings.get("compiled"))
        rec.update(extra)
        return rec


def match_test_space(train: ImageTensorDataset, test: ImageTensorDataset) -> ImageTensorDataset:
    """Bring ``test`` into ``train``'s space: same shape and normalisation, ZCA applied when ``train`` has it.

    Raises:
        DataError: different image shapes, class lists or normalisation statistics.
    """
    if train.image_shape != test.image_shape:
        raise DataError(f"train images are {train.image_shape} but test images are {test.image_shape}; "
                        "load both at the same `image_size`")
    if train.classes != test.classes:
        raise DataError("train and test sets have different class lists; they must come from the same dataset")
    if not (np.allclose(train.mean, test.mean, atol=1e-3) and np.allclose(train.std, test.std, atol=1e-3)):
        raise DataError(f"train normalisation {train.mean}/{train.std} differs from test {test.mean}/{test.std}")
    if train.zca is not None and test.zca is None:
        return ImageTensorDataset._like(test, train.zca.transform(test.images), test.labels, zca=train.zca)
    return test


def train_model(
    net: nn.Module,
    train: ImageTensorDataset,
    *,
    epochs: int = 1000,
    batch_size: int = 256,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    dsa: bool = True,
    dsa_strategy: str | None = None,
    generator: torch.Generator | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    compile: bool | None = None,
) -> nn.Module:
    """Train ``net`` (already on its device) on ``train`` with the protocol above; returns it in eval mode.

    Args:
        net: the network to train, on the device it trains on.
        train: images ``(N, C, H, W)`` float32 (moved to the net's device once), labels ``(N,)`` int64.
        epochs: passes over ``train``; the learning rate drops ×0.1 at half of them.
        batch_size: images per SGD step.
        lr: SGD learning rate.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        dsa: apply DSA to every batch.
        dsa_strategy: the DSA ops (default: ``train.dsa_strategy``).
        generator: a CPU ``torch.Generator`` (default: unseeded). On the CPU it draws everything (each epoch's
            permutation, each batch's DSA op and parameters). On a GPU it draws each batch's DSA op (so only that
            op is computed, with no device read) and seeds a device generator for the permutations and the DSA
            parameters (nothing waits for the host).
        on_epoch_end: called as ``fn(epoch (0-based), net)`` after each epoch (e.g. to report to NNI).
        compile: train through ``torch.compile(net)`` (one-time compilation; faster for long trainings).
            None (default) = automatic, True/False = always/never: the rule (and that a failed compilation
            raises) is :func:`atom_plugin._device.resolve_compile`.

    Raises:
        ConfigError: ``compile`` not None/True/False.
    """
    device = next(net.parameters()).device
    x_all, y_all = train.images.to(device), train.labels.to(device)
    n = x_all.shape[0]
    ops = parse_strategy(dsa_strategy or train.dsa_strategy) if dsa else ()
    g = generator or torch.Generator()
    g_dev = g if device.type == "cpu" else torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,), generator=g)))
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    forward = torch.compile(net, fullgraph=True) if resolve_compile(compile, device) else net  # no silent eager parts
    for epoch in range(epochs):
        net.train()  # every epoch: an on_epoch_end callback may have switched to eval mode to validate
        if epoch == epochs // 2 and epochs > 1:
            for group in opt.param_groups:
                group["lr"] = lr * 0.1
        perm = torch.randperm(n, generator=g_dev, device=device)  # on the device: no host-to-device copy
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            x, y = x_all.index_select(0, idx), y_all.index_select(0, idx)
            if ops:
                x = augment_batch(x, ops, g_dev, op_generator=g)  # the op on the host: only it is computed
            loss = F.cross_entropy(forward(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch, net)
    net.eval()
    return net


@torch.no_grad()
def accuracy_on(net: nn.Module, data: ImageTensorDataset, *, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``net`` on ``data`` (images ``(N, C, H, W)`` float32, labels ``(N,)`` int64), in % (a
    float in [0, 100]), in batches of ``batch_size`` on the net's device; the net is put in eval mode."""
    device = next(net.parameters()).device
    net.eval()
    correct = 0
    for start in range(0, len(data), batch_size):
        x = data.images[start:start + batch_size].to(device)
        y = data.labels[start:start + batch_size].to(device)
        correct += int((net(x).argmax(1) == y).sum())
    return 100.0 * correct / max(len(data), 1)


def test_accuracy(net: nn.Module, data: ImageTensorDataset, *, batch_size: int = 1024) -> float:
    """Deprecated name of :func:`accuracy_on` (pytest would collect a ``test_*`` function imported into a test)."""
    warnings.warn("atom_plugin.test_accuracy is deprecated; use atom_plugin.accuracy_on", DeprecationWarning,
                  stacklevel=2)
    return accuracy_on(net, data, batch_size=batch_size)


test_accuracy.__test__ = False  # not a test, wherever it is imported


def evaluate(
    train_set,
    test_set,
    *,
    model: str = "convnet",
    model_kwargs: dict | None = None,
    num_models: int = 5,
    epochs: int = 1000,
    batch_size: int = 256,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    dsa: bool = True,
    dsa_strategy: str | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = False,
    restrict_to_train_classes: bool = True,
    compile: bool | None = None,
) -> EvalResult:
    """Train ``num_models`` fresh ``model`` networks on ``train_set`` only and test each once on ``test_set``.

    Args:
        train_set: a :class:`~atom_plugin.CondensedDataset`, a real subset, or any ImageTensorDataset.
        test_set: the real test split of the same dataset (ZCA is applied to it when the train set has one).
        model: a registry name (``convnet``, ``alexnet``, ``vgg11``, ``resnet18``, ...).
        model_kwargs: the network's options (see :func:`atom_plugin.build_model`).
        num_models: N networks, each with its own seed (seed, model index).
        epochs: training epochs of each network.
        batch_size: see :func:`train_model`.
        lr: see :func:`train_model`.
        momentum: see :func:`train_model`.
        weight_decay: see :func:`train_model`.
        dsa: see :func:`train_model`.
        dsa_strategy: see :func:`train_model`.
        device: ``"auto" | "cpu" | "cuda" | "cuda:N"``.
        seed: derives every network's initialisation, shuffling and augmentation.
        progress: show a progress bar over the networks (stderr).
        restrict_to_train_classes: test only on the classes present in ``train_set`` (continual-learning use).
        compile: train through ``torch.compile``: None (default) = automatic, True/False = always/never (the
            rule: :func:`atom_plugin._device.resolve_compile`). ``settings["compiled"]`` records the choice made.

    Returns:
        :class:`EvalResult` with per-model accuracies in %, mean/std, seconds.

    Raises:
        ConfigError: unknown model, num_models/epochs < 1 or a bad ``compile``; DataError: incompatible
            train/test sets.
    """
    train = as_image_dataset(train_set)
    test = match_test_space(train, as_image_dataset(test_set))
    if num_models < 1 or epochs < 1:
        raise ConfigError(f"num_models and epochs must be >= 1, got {num_models} and {epochs}")
    if len(train) == 0:
        raise DataError("the training set is empty")
    if restrict_to_train_classes:
        present = train.present_classes()
        if len(present) < train.num_classes:
            test = test.subset_classes(present)
    dev = resolve_device(device)
    compiled = resolve_compile(compile, dev)
    c, h, w = train.image_shape
    accs, t0 = [], time.perf_counter()
    models = range(num_models)
    if progress:
        from tqdm.auto import tqdm

        models = tqdm(models, desc=f"evaluate {model}", unit="model")
    for i in models:
        net = build_model(model, channels=c, num_classes=train.num_classes, image_size=(h, w), **(model_kwargs or {}))
        net = net.to(dev)
        reinit_(net, _rng.generator(seed, i, _TRAIN_STREAM, dev))
        g = _rng.generator(seed, i, _TRAIN_STREAM + 1, "cpu")
        train_model(net, train, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                    weight_decay=weight_decay, dsa=dsa, dsa_strategy=dsa_strategy, generator=g, compile=compiled)
        accs.append(accuracy_on(net, test))
    settings = dict(batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay, dsa=dsa,
                    dsa_strategy=(dsa_strategy or train.dsa_strategy) if dsa else None, seed=seed,
                    model_kwargs=model_kwargs or {}, train_size=len(train), test_size=len(test), compiled=compiled)
    return EvalResult(accs, model, epochs, num_models, time.perf_counter() - t0, device_name(dev), settings)

