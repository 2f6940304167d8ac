"""Networks, by name: ``build_model("convnet", channels=1, num_classes=10, image_size=28)``.

``register_model`` is the single extension point; every registered network exposes
``forward_features(x, layers) -> (maps, embedding)`` so it can be matched and evaluated.
"""
from ._init import reinit_
from ._registry import build_model, list_models, register_model
from .convnet import ConvNet
from . import alexnet as _alexnet, resnet as _resnet, vgg as _vgg  # noqa: F401  (register the networks)

__all__ = ["ConvNet", "build_model", "list_models", "register_model", "reinit_"]
