"""The state of an :class:`.buffer.ATOMBuffer` without pickle, and its on-disk cache of condensed updates.

:class:`BufferState` is a mixin of ``ATOMBuffer``: :meth:`~BufferState.state_dict` / :meth:`~BufferState.load_state_dict`
(the groups' stored images and labels as tensors for ``safetensors``, the bookkeeping as JSON; resuming a run:
:mod:`.resume`) and the ``cache_dir`` cache: condensation uses random networks, not the learner, so the memory after
an update depends only on the settings, the experience and the memory before it (:meth:`~BufferState.cache_key`),
and every strategy given the same experiences can reuse it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any

import torch

from atom_plugin import CondensedDataset, __version__ as _atom_version
from atom_plugin.errors import ConfigError

from .groups import CondensedGroup


class BufferState:
    """Mixin of :class:`.buffer.ATOMBuffer`: its state without pickle and the ``cache_dir`` cache (module docstring).
    Uses the buffer's ``buffer_groups``, settings and bookkeeping attributes, ``_record`` and ``_rebuild``."""
    def state_dict(self) -> dict[str, Any]:
        """The memory's state, without pickle: ``{"tensors": {name: Tensor}, "meta": JSON-able dict}``. Tensors: per
        group i, ``groups.i.images`` (stored images ``(n, C, H, W)`` float32) and ``groups.i.labels`` (``(n,)``
        int64); meta: the groups' keys, factors and set metadata, the bookkeeping (``max_size``, ``ipc``, classes,
        image shape, normalisation, :attr:`history`). Write the tensors with ``safetensors`` and the meta as JSON
        (:func:`.resume.save_run` does both).

        Raises:
            ConfigError: a group holds a ZCA-whitened set (not supported here).
        """
        tensors: dict[str, torch.Tensor] = {}
        groups = []
        for i, (key, g) in enumerate(self.buffer_groups.items()):
            cd = g.condensed
            if cd.zca is not None:
                raise ConfigError("state_dict does not support ZCA-whitened memories; save the groups with "
                                  "CondensedDataset.save")
            tensors[f"groups.{i}.images"], tensors[f"groups.{i}.labels"] = cd.stored_images, cd.stored_labels
            groups.append(dict(key=list(key), classes=list(cd.classes), mean=list(cd.mean), std=list(cd.std),
                               name=cd.name, dsa_strategy=cd.dsa_strategy, method=cd.method, config=cd.config,
                               provenance=cd.provenance, factor=cd.factor))
        meta = dict(format="atom-buffer", version=1, max_size=self.max_size, policy=self.policy, ipc=self.ipc,
                    seed=self.seed, groups=groups, num_classes=self.num_classes, history=self.history,
                    normalization=self.normalization, image_shape=list(self.image_shape or []) or None,
                    item_dtype=str(self.item_dtype).replace("torch.", "") if self.item_dtype is not None else None,
                    dsa_strategy=self.dsa_strategy, dataset_name=self.dataset_name)
        return dict(tensors=tensors, meta=json.loads(json.dumps(meta)))

    def load_state_dict(self, state: dict[str, Any], strategy=None) -> None:
        """Restore :meth:`state_dict`'s output into this buffer (built with the same arguments).

        Args:
            state: ``{"tensors": ..., "meta": ...}`` as :meth:`state_dict` returns it (or as read back from disk).
            strategy: the strategy, for buffers whose items depend on the model (:class:`.strategies.ATOMLogitsBuffer`
                reads its logits from ``state`` instead); unused here.

        Raises:
            ConfigError: not an ATOM buffer state, or ``max_size``/``policy`` differ from this buffer's.
        """
        tensors, meta = state["tensors"], state["meta"]
        if meta.get("format") != "atom-buffer":
            raise ConfigError("state is not an ATOMBuffer state_dict (no 'atom-buffer' format); pass "
                              "ATOMBuffer.state_dict()'s output")
        if (meta["max_size"], meta["policy"]) != (self.max_size, self.policy):
            raise ConfigError(f"state holds a memory of max_size={meta['max_size']}, policy={meta['policy']!r}; "
                              f"this buffer has {self.max_size}, {self.policy!r}: build it with the same arguments")
        self.ipc, self.num_classes, self.history = meta["ipc"], meta["num_classes"], list(meta["history"])
        self.normalization, self.dsa_strategy, self.dataset_name = (meta["normalization"], meta["dsa_strategy"],
                                                                    meta["dataset_name"])
        self.image_shape = tuple(meta["image_shape"]) if meta["image_shape"] else None
        self.item_dtype = getattr(torch, meta["item_dtype"]) if meta["item_dtype"] else None
        self._set_groups(tensors, meta["groups"])
        self._rebuild(strategy, [])

    def cache_key(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor, exp_id: int, device) -> str:
        """The cache key of an update: a SHA-256 over everything the memory after it depends on: the settings
        (config, seed, policy, sizes, small-class rule, re-condensation iterations), the experience index, the
        device type, the torch and atom-plugin versions, the experience's samples ``x``/``y``/``t`` and the
        memory before the update (its groups' stored images and factors)."""
        h = hashlib.sha256()
        settings = dict(config=dataclasses.asdict(self.config), seed=self.seed, policy=self.policy, ipc=self.ipc,
                        max_size=self.max_size, small_class=self.small_class, exp=int(exp_id),
                        recondense=self.recondense_iterations, device=torch.device(device).type,
                        torch=torch.__version__, atom_plugin=_atom_version)
        h.update(json.dumps(settings, sort_keys=True, default=str).encode())
        for tensor in (x, y, t):
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        for key, g in self.buffer_groups.items():
            h.update(f"{key}:{g.factor}".encode())
            h.update(g.condensed.stored_images.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:32]

    def _save_cached(self, key: str) -> None:
        from safetensors.torch import save_file

        state = self.state_dict()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{key}.tmp"
        save_file({k: v.detach().cpu().contiguous() for k, v in state["tensors"].items()}, str(tmp),
                  metadata={"meta": json.dumps(dict(groups=state["meta"]["groups"], entry=self.history[-1]))})
        tmp.replace(self.cache_dir / f"{key}.safetensors")

    def _load_cached(self, strategy, exp_id, key: str, read_seconds: float, device) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = self.cache_dir / f"{key}.safetensors"
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
        self._set_groups(load_file(str(path)), meta["groups"])
        entry = meta["entry"]
        self._record(strategy, exp_id, [tuple(k) for k in entry["new_classes"]],
                     [tuple(k) for k in entry["recondensed"]], time.perf_counter(), read_seconds, device,
                     seconds=float(entry["seconds"]), cached=True)

    def _set_groups(self, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
        """Replace the groups by the stored sets ``groups.i.images/labels`` described by ``groups[i]``."""
        out = {}
        for i, g in enumerate(groups):
            cd = CondensedDataset(tensors[f"groups.{i}.images"], tensors[f"groups.{i}.labels"], g["classes"],
                                  g["mean"], g["std"], name=g["name"], dsa_strategy=g["dsa_strategy"],
                                  method=g["method"], config=g["config"], provenance=g["provenance"],
                                  factor=int(g["factor"]), check_finite=False)
            key = tuple(g["key"])
            out[key] = CondensedGroup(self, key, cd)
        self.buffer_groups = out
