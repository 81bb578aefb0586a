"""Networks: the PA-MSC model of Zhan et al. 2024, its ablations and kernel variants, and the peer networks of its
comparison, behind a name registry."""

from __future__ import annotations

from pamer.models import pamnet as _pamnet  # noqa: F401  (registers the variants)
from pamer.models import peers as _peers  # noqa: F401  (registers the peer networks)
from pamer.models._registry import (
    ModelConfigError,
    create_model,
    describe_model,
    list_models,
    model_input_size,
    model_method,
    register_model,
)
from pamer.models.layers import MultiScaleConv, ProgressiveAttention
from pamer.models.method import Method, cross_entropy_loss
from pamer.models.pamnet import PAMNet
from pamer.models.resnet import BasicBlock, load_torchvision_resnet18
from pamer.models.stats import count_flops, count_parameters

__all__ = [
    "BasicBlock",
    "Method",
    "ModelConfigError",
    "MultiScaleConv",
    "PAMNet",
    "ProgressiveAttention",
    "count_flops",
    "count_parameters",
    "create_model",
    "cross_entropy_loss",
    "describe_model",
    "list_models",
    "load_torchvision_resnet18",
    "model_input_size",
    "model_method",
    "register_model",
]
