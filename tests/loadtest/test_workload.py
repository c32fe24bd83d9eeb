"""The load tests' own pieces, without a server: photos, VINs, stages, percentiles, /proc.

Nothing here imports Locust: it monkey-patches the whole process with gevent.
"""

from __future__ import annotations

import io
import itertools
import os
import random

import pytest
from PIL import Image

from loadtest._stages import Stage, stage_plan
from loadtest._stats import (
    percentile,
    process_argv,
    process_tree,
    start_time,
    tree_cpu_seconds,
    tree_memory,
)
from loadtest._workload import INVALID, KNOWN, NOT_MERCEDES, UNKNOWN, VIN_MIX, vin_mix
from loadtest.photos import DEALER_SIZE, PHONE_SIZE, dealer_jpeg, dealer_png, phone_jpeg
from service.core.errors import InvalidVIN
from service.core.imaging import Limits, prepare_image
from service.core.reasons import Reason
from service.core.vin import decode_vin

LIMITS = Limits(max_pixels=50_000_000, min_side=32)


def test_dealer_photos_are_real_jpegs_and_pngs_of_varied_size() -> None:
    rng = random.Random(1)
    photos = [dealer_jpeg(rng, i) for i in range(12)] + [dealer_png(rng, 0)]
    for photo in photos:
        img = Image.open(io.BytesIO(photo.data))
        assert img.format == ("PNG" if photo.name.endswith(".png") else "JPEG")
        assert img.size == (photo.width, photo.height)
        assert 0.75 * DEALER_SIZE[0] - 1 <= photo.width <= 1.25 * DEALER_SIZE[0] + 1
        assert 0.75 * DEALER_SIZE[1] - 1 <= photo.height <= 1.25 * DEALER_SIZE[1] + 1
        # The service decodes every one of them.
        assert prepare_image(photo.data, size=224, interpolation="bicubic", limits=LIMITS)
    assert len({(p.width, p.height) for p in photos}) > 6
    # Photo-like content: noise keeps a ~460x706 JPEG far from a flat colour's few KB.
    assert min(len(p.data) for p in photos) > 20_000


def test_phone_photo_is_full_resolution() -> None:
    photo = phone_jpeg(random.Random(0))
    img = Image.open(io.BytesIO(photo.data))
    assert img.size == PHONE_SIZE
    assert len(photo.data) > 1_000_000
    prepared = prepare_image(photo.data, size=224, interpolation="bicubic", limits=LIMITS)
    assert prepared.array.shape == (224, 224, 3)


def test_vin_kinds_are_what_the_decoder_says() -> None:
    mix = vin_mix(seed=3)
    assert set(mix.pool) == set(VIN_MIX)
    for vin in mix.pool[KNOWN]:
        assert decode_vin(vin.vin).expected_parent == vin.expected_parent is not None
    for vin in mix.pool[UNKNOWN]:
        assert decode_vin(vin.vin).reasons == [Reason.UNKNOWN_MODEL_CODE]
    for vin in mix.pool[NOT_MERCEDES]:
        assert Reason.VIN_NOT_MERCEDES in decode_vin(vin.vin).reasons
    for vin in mix.pool[INVALID]:
        with pytest.raises(InvalidVIN):
            decode_vin(vin.vin)
    assert len({v.expected_parent for v in mix.pool[KNOWN]}) >= 10
    rng = random.Random(0)
    picks = [mix.pick(rng).kind for _ in range(4000)]
    assert 0.02 < picks.count(INVALID) / len(picks) < 0.06


STAGES = (
    Stage("warm-up", duration_s=20, users_share=0.125, spawn_rate_share=0.125),
    Stage("steady", duration_s=100, users_share=0.4, spawn_rate_share=0.5),
    Stage("burst", duration_s=40, users_share=1.0, spawn_rate_share=1.0),
    Stage("recovery", duration_s=20, users_share=0.4, spawn_rate_share=1.0),
)


def test_stage_plan_scales_to_run_time_and_peak_users() -> None:
    plan = stage_plan(STAGES, run_time_s=20, peak_users=6)
    assert [w.name for w in plan] == ["warm-up", "steady", "burst", "recovery"]
    assert plan[0].start_s == 0 and plan[-1].end_s == pytest.approx(20)
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(plan))
    assert max(w.users for w in plan) == 6 == plan[2].users
    assert all(w.users >= 1 for w in plan)
    default = stage_plan(STAGES, None, None)
    assert default[-1].end_s == sum(s.duration_s for s in STAGES)


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)


def test_process_tree_measures_this_process() -> None:
    pid = os.getpid()
    assert pid in process_tree(pid)
    memory = tree_memory(pid)
    assert memory.processes >= 1 and 0 < memory.pss_mb <= memory.rss_mb
    assert tree_cpu_seconds(pid) > 0
    # A process is named by its pid and start time (a reused pid has another start time).
    assert start_time(pid) == start_time(pid) is not None
    argv = process_argv(pid)
    assert argv is not None and any("pytest" in arg for arg in argv)
