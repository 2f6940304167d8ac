"""Networks, by name: ``build_model("convnet", channels=1, num_classes=10, image_size=28)``.

``register_model`` is the single extension point (``is_model`` / ``list_models`` say what it holds). Every
registered network exposes the matching entry point, named after timm's:

    forward_intermediates(x, indices) -> (maps, embedding)
        x: ``(B, C, H, W)`` float32; indices: 1-based block numbers (``1..num_blocks``), any order, repeats
        allowed; maps: one ``(B, C_i, H_i, W_i)`` float32 tensor per index, in the order asked for;
        embedding: ``(B, D)`` float32, the classifier's input.

It differs from timm's ``forward_intermediates`` (which returns ``(final_map, intermediates)`` for 0-based
``indices``, the final map unpooled) in the order of its outputs, in counting blocks from 1, and in giving the
flattened/pooled embedding: that is what the matching losses use. The built-in networks also have
``forward_features(x) -> (B, D)`` (the features before the classifier head, as in timm; ``embed`` is an alias)
and ``forward(x) = classifier(forward_features(x))``.

Layer choices by name (``NORMS``, ``ACTIVATIONS``, ``POOLINGS``, ``make_norm``, ``make_activation``,
``make_pool``) live in :mod:`atom_plugin.models.layers`; ``image_hw`` is the one normalisation of an image size.
"""
from ._common import image_hw
from ._init import reinit_
from ._registry import build_model, check_model, is_model, list_models, register_model
from .layers import ACTIVATIONS, NORMS, POOLINGS, make_activation, make_norm, make_pool
from .convnet import ConvNet
from . import alexnet as _alexnet, resnet as _resnet, vgg as _vgg  # noqa: F401  (register the networks)

__all__ = ["ACTIVATIONS", "ConvNet", "NORMS", "POOLINGS", "build_model", "check_model", "image_hw", "is_model",
           "list_models", "make_activation", "make_norm", "make_pool", "register_model", "reinit_"]
