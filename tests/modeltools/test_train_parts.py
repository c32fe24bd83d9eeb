"""The parts of `recognize train` that need no Ray: weights, sampling, the learning rate."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from service.modeltools.train import (  # noqa: E402
    ShardSampler,
    TrainConfig,
    TrainError,
    build_model,
    learning_rate,
)


def test_a_local_checkpoint_gives_the_backbone_and_a_new_zero_head(tmp_path: Path) -> None:
    source = timm.create_model("convnext_atto", pretrained=False, num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "atto.pth")
    config = TrainConfig(data="", out="", arch="convnext_atto",
                         pretrained=str(tmp_path / "atto.pth"))
    model = build_model(config, num_classes=10)
    theirs, ours = source.state_dict(), model.state_dict()
    backbone = [k for k in ours if not k.startswith("head.fc.")]
    assert all(torch.equal(ours[k], theirs[k]) for k in backbone)
    assert ours["head.fc.weight"].shape == (10, 320) and not ours["head.fc.weight"].any()

    other = timm.create_model("convnext_femto", pretrained=False)
    torch.save(other.state_dict(), tmp_path / "femto.pth")
    wrong = TrainConfig(data="", out="", arch="convnext_atto",
                        pretrained=str(tmp_path / "femto.pth"))
    with pytest.raises(TrainError, match="does not fit convnext_atto"):
        build_model(wrong, num_classes=10)
    with pytest.raises(TrainError, match="fits --arch tf_efficientnet_lite0 only"):
        build_model(TrainConfig(data="", out="", arch="convnext_atto"), num_classes=10)


def test_shards_split_an_epoch_without_overlap_and_change_with_it() -> None:
    labels = [i % 4 for i in range(103)]
    shards = [ShardSampler(labels, rank=r, world=2, seed=0, shuffle=True) for r in range(2)]
    first = [list(s) for s in shards]
    assert len(first[0]) == len(first[1]) == 51  # equal steps for DDP
    assert not set(first[0]) & set(first[1])
    for s in shards:
        s.set_epoch(1)
    assert [list(s) for s in shards] != first
    val = [list(ShardSampler(labels, rank=r, world=2, seed=0, shuffle=False)) for r in range(2)]
    assert sorted(val[0] + val[1]) == list(range(103))  # validation sees every photo once


def test_balanced_sampling_draws_classes_evenly() -> None:
    labels = [0] * 900 + [1] * 100
    sampler = ShardSampler(labels, rank=0, world=1, seed=0, shuffle=True, balanced=True)
    drawn = Counter(labels[i] for i in sampler)
    assert 0.4 < drawn[1] / len(labels) < 0.6  # 10 % of the photos, half of the draws


def test_learning_rate_warms_up_then_decays() -> None:
    config = TrainConfig(data="", out="", lr=1e-3, warmup_epochs=1, epochs=4)
    steps = [learning_rate(config, s, 10, 1.0) for s in range(40)]
    assert steps[0] == pytest.approx(1e-4) and steps[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(steps[9:]))
    assert learning_rate(config, 40, 10, 1.0) == pytest.approx(1e-3 * config.min_lr_ratio)
    plateau = TrainConfig(data="", out="", lr=1e-3, warmup_epochs=1, schedule="plateau")
    assert learning_rate(plateau, 25, 10, 0.1) == pytest.approx(1e-4)
