"""The ImageNet-1k EfficientNet-Lite0 weights load into timm and recognise real photos."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from PIL import Image  # noqa: E402
from timm.data import ImageNetInfo  # noqa: E402

from service.modeltools import pretrained  # noqa: E402
from tests.photos import photo  # noqa: E402

# What each photo shows, as ImageNet names it (any of the names counts as right).
EXPECTED_TOP1 = {
    "opencv/baboon.jpg": {"baboon"},
    "opencv/sudoku.png": {"crossword puzzle, crossword"},
    "opencv/fruits.jpg": {"lemon", "orange"},
    "opencv/messi5.jpg": {"soccer ball"},
    "opencv/licenseplate_motion.jpg": {"minivan", "cab, hack, taxi, taxicab", "car wheel"},
    "darknet/eagle.jpg": {"bald eagle, American eagle, Haliaeetus leucocephalus", "kite"},
}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return pretrained.imagenet_efficientnet_lite0()


def top1(model: torch.nn.Module, name: str, size: int = 224) -> str:
    cfg = model.pretrained_cfg
    img = Image.open(photo(name)).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        index = int(model((x - mean) / std).argmax())
    return ImageNetInfo().index_to_description(index)


def test_every_checkpoint_key_has_its_place_in_timm() -> None:
    source = torch.load(pretrained.checkpoint_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(pretrained.ARCH, pretrained=False).state_dict()
    renamed = {pretrained.timm_key(k): v.shape for k, v in source.items()}
    assert renamed == {k: v.shape for k, v in target.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED_TOP1))
def test_imagenet_top1_on_real_photos(model: torch.nn.Module, name: str) -> None:
    assert top1(model, name) in EXPECTED_TOP1[name]


def test_random_weights_do_not_pass_the_photo_check() -> None:
    """The photo check can fail: the same network without the weights misses the photos."""
    untrained = timm.create_model(pretrained.ARCH, pretrained=False).eval()
    hits = sum(top1(untrained, name) in EXPECTED_TOP1[name] for name in EXPECTED_TOP1)
    assert hits <= 1


def test_fine_tuning_keeps_its_own_head() -> None:
    model = timm.create_model(pretrained.ARCH, pretrained=False, num_classes=10)
    head = model.classifier.weight.detach().clone()
    pretrained.load_efficientnet_lite0(model, with_head=False)
    assert torch.equal(model.classifier.weight, head)
    reference = pretrained.imagenet_state_dict()["conv_stem.weight"]
    assert torch.equal(model.conv_stem.weight.detach(), reference)
