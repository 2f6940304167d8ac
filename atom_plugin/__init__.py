"""atom-plugin: condense a labelled image dataset into a few synthetic images per class with the ATOM-style
attention-mixer feature-matching loss (reconstructed from ATOM, Khaki et al., CVPRW 2024, and DataDAM,
Sajedi et al., ICCV 2023; DM, Zhao & Bilen, WACV 2023, is the ``dm`` preset).

Where things live:
    loss.py / attention.py   the matching loss and the attention maps (the method)
    dsa.py                   differentiable Siamese augmentation
    matcher.py               one condensation iteration (and build_matcher, to time or inspect one)
    condense.py              the condensation run: checks, checkpoints (checkpoint.py), resume, callbacks.py
    multiformation.py        factorised images (decode / encode); _netpool.py: the matching-network pool
    cli/, runner.py          the ``atom`` command line; run_script for examples and benchmarks
    _malloc.py               keep_freed_memory: glibc keeps freed memory (CPU tensors without page faults)
    evaluate.py              the evaluation protocol
    baselines.py             random-subset and herding baselines
    config.py                ATOMConfig and presets
    models/, data/           network and dataset registries
"""
#: The package version.
__version__ = "0.1.0"

from ._device import device_name, resolve_device
from ._malloc import keep_freed_memory
from .baselines import herding_subset, random_subset
from .callbacks import CondenseCallback, CondenseState, ProgressBar
from .condense import condense, recondense
from .condensed import CondensedDataset, merge_condensed
from .config import PRESETS, ATOMConfig, register_preset
from .data import ImageTensorDataset, load_dataset, stratified_split, validation_split
from .errors import ATOMError
from .evaluate import EvalResult, accuracy_on, evaluate, test_accuracy, train_model
from .models import build_model, is_model, list_models, register_model

__all__ = [
    "ATOMConfig", "ATOMError", "CondenseCallback", "CondenseState", "CondensedDataset", "EvalResult", "accuracy_on",
    "ImageTensorDataset", "PRESETS", "ProgressBar", "build_model", "condense", "device_name", "evaluate",
    "herding_subset", "is_model", "keep_freed_memory", "resolve_device",
    "list_models", "load_dataset", "merge_condensed", "random_subset", "recondense", "register_model",
    "register_preset", "stratified_split", "test_accuracy", "train_model", "validation_split",
    "__version__",
]
