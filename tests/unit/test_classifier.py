"""Classifier: session building and its refusals, and dynamic batching, without Ray or HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from service.core.errors import ModelContractError, ModelNotReady
from service.core.modelfile import METADATA_KEY
from service.inference.classifier import Classifier, ClassifierConfig, build_session
from service.modeltools.export import export_model

SIZE = 64


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ConvNeXt (atto) over the full taxonomy at 64 px: small enough to be quick."""
    out = tmp_path_factory.mktemp("model") / "convnext_atto_64.onnx"
    export_model(out, arch="convnext_atto", seed=0, input_size=SIZE)
    return out


def config(path: Path, **overrides: object) -> ClassifierConfig:
    # The vehicle gate is off here: these tests are about the classifier's own sessions; the
    # gate beside it has its own (tests/unit/test_gate_classifier.py).
    return ClassifierConfig.model_validate(
        {"model_path": str(path), "intra_op_threads": 1, "gate_enabled": False, **overrides}
    )


def reconfigure(classifier: Classifier, user_config: dict) -> None:  # type: ignore[type-arg]
    """Apply a user_config as Serve does (awaiting the replica's reconfigure()), then wait for
    a new model to serve."""

    async def apply() -> None:
        await classifier.reconfigure(user_config)
        await classifier.switched()

    asyncio.run(apply())


def rewrite_metadata(src: Path, dst: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    model = onnx.load(str(src))
    entries = {p.key: p.value for p in model.metadata_props}
    del model.metadata_props[:]
    for key, value in edit(entries).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(dst))
    return dst


def test_session_and_metadata(tiny_model: Path) -> None:
    session, metadata = build_session(config(tiny_model))
    assert metadata.input_size == SIZE
    assert len(metadata.classes) == 64
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelContractError, match="does not exist"):
        build_session(config(tmp_path / "nope.onnx"))


def test_model_without_metadata_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    bare = rewrite_metadata(tiny_model, tmp_path / "bare.onnx", lambda e: {})
    with pytest.raises(ModelContractError, match="no 'recognize' metadata"):
        build_session(config(bare))


def test_model_with_foreign_classes_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    def rename_first_class(entries: dict[str, str]) -> dict[str, str]:
        meta = json.loads(entries[METADATA_KEY])
        meta["classes"][0]["id"] = "w123_sedan_1976_1985"
        return {METADATA_KEY: json.dumps(meta)}

    foreign = rewrite_metadata(tiny_model, tmp_path / "foreign.onnx", rename_first_class)
    with pytest.raises(ModelContractError, match="w123_sedan_1976_1985"):
        build_session(config(foreign))


def test_cuda_requested_but_unavailable_fails_loudly(tiny_model: Path) -> None:
    # This machine's onnxruntime is the CPU build: asking for CUDA must not silently run on CPU.
    with pytest.raises(ModelContractError, match="refusing to fall back"):
        build_session(config(tiny_model, providers=["CUDAExecutionProvider"]))


def test_not_ready_until_configured_then_runs_any_batch_size(tiny_model: Path) -> None:
    classifier = Classifier.func_or_class()
    with pytest.raises(ModelNotReady):
        classifier.ready()
    reconfigure(classifier, config(tiny_model, max_batch_size=3).model_dump())
    assert classifier.ready()["metadata"]["input_size"] == SIZE
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, size=(3, SIZE, SIZE, 3), dtype=np.uint8)
    together, _ = classifier._run(batch)
    alone = np.concatenate([classifier._run(batch[i : i + 1])[0] for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)
    assert together.shape == (3, 64)


def test_batch_settings_change_live_without_a_new_session(tiny_model: Path) -> None:
    classifier = Classifier.func_or_class()
    reconfigure(classifier, config(tiny_model, max_batch_size=2).model_dump())
    session = classifier._model.session
    reconfigure(classifier, config(tiny_model, max_batch_size=3).model_dump())
    assert classifier._model.session is session  # batching changes need no new session
    reconfigure(classifier, config(tiny_model, max_batch_size=3, intra_op_threads=2).model_dump())
    assert classifier._model.session is not session


def test_batch_buckets_pad_up_and_must_reach_the_largest_batch(tiny_model: Path) -> None:
    cfg = config(tiny_model, max_batch_size=8, batch_buckets=[1, 2, 4, 8])
    assert [cfg.padded_size(n) for n in range(1, 9)] == [1, 2, 4, 4, 8, 8, 8, 8]
    assert cfg.shapes_to_warm() == (1, 2, 4, 8)
    assert config(tiny_model, max_batch_size=3).shapes_to_warm() == (1, 2, 3)
    assert config(tiny_model, max_batch_size=3).padded_size(3) == 3
    with pytest.raises(ValueError, match="must reach max_batch_size"):
        config(tiny_model, max_batch_size=16, batch_buckets=[1, 8])


def test_each_batch_bucket_runs_on_a_session_that_sees_only_its_shape(tiny_model: Path) -> None:
    # The CUDA EP re-plans cuDNN convolutions at every input-shape change of a session (seconds
    # each on a GPU): a session per bucket keeps every session on one shape. The CPU EP here has
    # no such cost, so this checks the routing; the cost itself is in loadtest/RESULTS.md.
    classifier = Classifier.func_or_class()
    cfg = config(tiny_model, max_batch_size=4, batch_buckets=[1, 2, 4])
    seen: dict[int, set[int]] = {}

    def spy(session, key):  # type: ignore[no-untyped-def]
        real = session.run

        def run(outputs, feeds, *args):  # type: ignore[no-untyped-def]
            seen.setdefault(key, set()).add(next(iter(feeds.values())).shape[0])
            return real(outputs, feeds, *args)

        session.run = run

    reconfigure(classifier, cfg.model_dump())
    sessions = dict(classifier._model.sessions)
    assert sorted(sessions) == [1, 2, 4]
    assert len({id(s) for s in sessions.values()}) == 3
    for size, session in sessions.items():
        spy(session, size)
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, size=(4, SIZE, SIZE, 3), dtype=np.uint8)
    outputs = {n: classifier._run(batch[:n])[0] for n in (4, 1, 2, 1, 4)}
    assert seen == {1: {1}, 2: {2}, 4: {4}}
    np.testing.assert_allclose(outputs[4][:2], outputs[2], rtol=1e-4, atol=1e-4)
    # Same buckets: same sessions; other buckets: new ones.
    reconfigure(
        classifier, config(tiny_model, max_batch_size=2, batch_buckets=[1, 2, 4]).model_dump()
    )
    assert classifier._model.sessions == sessions
    reconfigure(classifier, config(tiny_model, max_batch_size=4, batch_buckets=[2, 4]).model_dump())
    assert sorted(classifier._model.sessions) == [2, 4]
    assert classifier._model.sessions[4] is not sessions[4]


def test_corrupt_model_file_is_a_clear_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07" + b"not a protobuf at all" * 100)
    with pytest.raises(ModelContractError, match=r"could not load .*corrupt\.onnx"):
        build_session(config(corrupt))


def _spy_on_runs(classifier: Classifier) -> tuple[list[tuple[int, int, bool]], list[int]]:
    """Record (thread, batch size, overlapping) of every session run, and the most at once."""
    import threading
    import time

    runs: list[tuple[int, int, bool]] = []
    peak = [0]
    active = [0]
    lock = threading.Lock()
    real_run = classifier._run

    def run(batch: np.ndarray, overlapping: bool = False, model: object = None) -> np.ndarray:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            runs.append((threading.get_ident(), len(batch), overlapping))
        try:
            time.sleep(0.05)  # long enough for a second batch to start if it may
            return real_run(batch, overlapping, model)  # type: ignore[arg-type]
        finally:
            with lock:
                active[0] -= 1

    classifier._run = run  # type: ignore[method-assign]
    return runs, peak


@pytest.mark.parametrize("concurrent", [1, 2])
def test_warm_up_runs_every_shape_on_every_serving_thread(
    tiny_model: Path, concurrent: int
) -> None:
    classifier = Classifier.func_or_class()
    runs, _ = _spy_on_runs(classifier)
    cfg = config(tiny_model, max_batch_size=3, concurrent_batches=concurrent)
    reconfigure(classifier, cfg.model_dump())
    threads = {thread for thread, _, _ in runs}
    assert len(threads) == concurrent
    for thread in threads:
        assert sorted(size for t, size, _ in runs if t == thread) == [1, 2, 3]


def _classify_at_once(
    classifier: Classifier, images: np.ndarray, monkeypatch: pytest.MonkeyPatch, then: int = 0
) -> list:  # type: ignore[type-arg]
    """Every image through classify() at once, as concurrent requests would; then (on the same
    event loop, which the batch queue is bound to) ``then`` more, one after another."""
    import asyncio
    from types import SimpleNamespace

    from ray import serve

    # Serve's batch queue reads the replica's max_ongoing_requests only to log a warning; out of
    # a replica there is none to read, so give it one. The batching itself is Serve's own.
    replica = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=16))
    monkeypatch.setattr(serve, "get_replica_context", lambda: replica)

    async def classify_all() -> list:  # type: ignore[type-arg]
        results = await asyncio.gather(*(classifier.classify(image) for image in images))
        return results + [await classifier.classify(images[i]) for i in range(then)]

    return asyncio.run(classify_all())


@pytest.mark.parametrize("concurrent", [1, 2])
def test_batches_run_concurrently_up_to_the_setting(
    tiny_model: Path, concurrent: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = Classifier.func_or_class()
    reconfigure(
        classifier,
        config(
            tiny_model, max_batch_size=2, batch_wait_timeout_s=0.0, concurrent_batches=concurrent
        ).model_dump(),
    )
    _, peak = _spy_on_runs(classifier)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(8, SIZE, SIZE, 3), dtype=np.uint8)
    results = _classify_at_once(classifier, images, monkeypatch)
    assert peak[0] == concurrent
    alone = classifier._model.session.run(None, {"image": images})[0]  # type: ignore[union-attr]
    for result, expected in zip(results, alone, strict=True):
        np.testing.assert_allclose(result.logits, expected, rtol=1e-4, atol=1e-4)
        assert 1 <= result.batch_size <= 2


def test_overlap_session_only_where_cpu_cores_can_be_split(tiny_model: Path) -> None:
    cpu = config(tiny_model, intra_op_threads=4, concurrent_batches=2)
    assert cpu.overlap_threads() == 2
    assert config(tiny_model, intra_op_threads=2, concurrent_batches=3).overlap_threads() == 1
    assert config(tiny_model, intra_op_threads=4, concurrent_batches=1).overlap_threads() is None
    assert config(tiny_model, intra_op_threads=1, concurrent_batches=2).overlap_threads() is None
    gpu = config(
        tiny_model,
        intra_op_threads=4,
        concurrent_batches=2,
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert gpu.overlap_threads() is None


def test_a_lone_batch_gets_every_core_and_overlapping_ones_share_them(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier = Classifier.func_or_class()
    cfg = config(
        tiny_model,
        intra_op_threads=2,
        max_batch_size=2,
        batch_wait_timeout_s=0.0,
        concurrent_batches=2,
    )
    reconfigure(classifier, cfg.model_dump())
    assert classifier._model.session.get_session_options().intra_op_num_threads == 2  # type: ignore[union-attr]
    overlap = classifier._model.overlap_session
    assert overlap is not None and overlap.get_session_options().intra_op_num_threads == 1
    assert not overlap.get_session_options().enable_cpu_mem_arena
    assert classifier._model.session.get_session_options().enable_cpu_mem_arena  # type: ignore[union-attr]
    runs, peak = _spy_on_runs(classifier)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(8, SIZE, SIZE, 3), dtype=np.uint8)
    results = _classify_at_once(classifier, images, monkeypatch, then=2)
    assert peak[0] == 2
    concurrent, later = runs[:-2], runs[-2:]
    assert concurrent[0][2] is False  # nothing else ran when the first batch started
    assert any(overlapping for _, _, overlapping in concurrent)
    # One at a time again: each batch gets every core.
    assert [(size, overlapping) for _, size, overlapping in later] == [(1, False), (1, False)]
    alone = classifier._model.session.run(None, {"image": images})[0]  # type: ignore[union-attr]
    for result, expected in zip(results, [*alone, *alone[:2]], strict=True):
        np.testing.assert_allclose(result.logits, expected, rtol=1e-4, atol=1e-4)


def _batching_classifier(
    model: Path, max_batch_size: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[Classifier, ClassifierConfig]:
    """A configured Classifier whose batch queue runs outside a replica (see _classify_at_once)."""
    from types import SimpleNamespace

    from ray import serve

    replica = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=16))
    monkeypatch.setattr(serve, "get_replica_context", lambda: replica)
    classifier = Classifier.func_or_class()
    cfg = config(model, max_batch_size=max_batch_size, batch_wait_timeout_s=0.0)
    reconfigure(classifier, cfg.model_dump())
    return classifier, cfg


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another model of the same architecture, other weights and version: a rollout."""
    out = tmp_path_factory.mktemp("model2") / "convnext_atto_64_v2.onnx"
    export_model(out, arch="convnext_atto", seed=1, input_size=SIZE, version="v2")
    return out


def test_a_new_model_loads_beside_the_old_one_and_every_answer_names_its_model(
    tiny_model: Path, second_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rollout under load: while the new model loads and warms up the old one keeps answering
    (ready, no error), then every batch runs on the new one, and each result carries the version
    of the model that computed its logits (the ingress names it in the response)."""
    classifier, first = _batching_classifier(tiny_model, 2, monkeypatch)
    old_version = classifier.ready()["metadata"]["version"]
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    expected = {
        old_version: build_session(first)[0].run(None, {"image": image[None]})[0][0],
        "v2": build_session(config(second_model))[0].run(None, {"image": image[None]})[0][0],
    }
    # Hold the new model's warm-up until requests have been answered meanwhile.
    loading, release = threading.Event(), threading.Event()
    real_warm_up = classifier._warm_up

    def slow_warm_up(model):  # type: ignore[no-untyped-def]
        if model.metadata.version == "v2":
            loading.set()
            assert release.wait(30)
        real_warm_up(model)

    classifier._warm_up = slow_warm_up  # type: ignore[method-assign]

    async def rollout_under_load() -> tuple[list[str], list[str]]:
        during: list[str] = []
        switch = asyncio.create_task(
            classifier.reconfigure(config(second_model, max_batch_size=2).model_dump())
        )
        while not loading.is_set():
            await asyncio.sleep(0.01)
        for _ in range(4):  # the new model is loading: the old one answers, at once
            assert classifier.ready()["metadata"]["version"] == old_version
            result = await asyncio.wait_for(classifier.classify(image), 10)
            np.testing.assert_allclose(result.logits, expected[result.model_version], atol=1e-4)
            during.append(result.model_version)
        await switch  # Serve routes to the replica again: it answers with the old model
        result = await asyncio.wait_for(classifier.classify(image), 10)
        during.append(result.model_version)
        release.set()
        await classifier.switched()
        after = [(await classifier.classify(image)) for _ in range(3)]
        for result in after:
            np.testing.assert_allclose(result.logits, expected[result.model_version], atol=1e-4)
        return during, [r.model_version for r in after]

    during, after = asyncio.run(rollout_under_load())
    assert during == [old_version] * 5
    assert after == ["v2"] * 3
    assert classifier.ready()["metadata"]["version"] == "v2"


def test_a_new_model_that_fails_to_load_leaves_the_old_one_serving(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    classifier = Classifier.func_or_class()
    reconfigure(classifier, config(tiny_model).model_dump())
    serving = classifier._model
    reconfigure(classifier, config(tmp_path / "missing.onnx").model_dump())
    assert classifier._model is serving
    assert "could not load" in caplog.text and "does not exist" in caplog.text
    assert classifier.ready()["metadata"]["input_size"] == SIZE


def test_an_image_for_another_input_size_is_not_ready_not_a_crash(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ingress that prepared the image for the model before a rollout to another input size
    gets ModelNotReady (503, retry), never an onnxruntime error (500)."""
    classifier = Classifier.func_or_class()
    reconfigure(classifier, config(tiny_model, max_batch_size=2).model_dump())
    wrong = np.zeros((SIZE * 2, SIZE * 2, 3), dtype=np.uint8)
    with pytest.raises(ModelNotReady, match=f"{SIZE}x{SIZE}"):
        _classify_at_once(classifier, wrong[None], monkeypatch)


def test_a_batch_running_at_the_swap_finishes_on_its_model_and_names_it(
    tiny_model: Path, second_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier, first = _batching_classifier(tiny_model, 1, monkeypatch)
    old_version = classifier.ready()["metadata"]["version"]
    image = np.full((SIZE, SIZE, 3), 7, dtype=np.uint8)
    old_logits = build_session(first)[0].run(None, {"image": image[None]})[0][0]
    running, finish = threading.Event(), threading.Event()
    real_run = classifier._run

    def held_run(batch, overlapping=False, model=None):  # type: ignore[no-untyped-def]
        if model is not None and model.metadata.version == old_version and batch.any():
            running.set()  # the request's batch (warm-up batches are zeros)
            assert finish.wait(30)
        return real_run(batch, overlapping, model)

    classifier._run = held_run  # type: ignore[method-assign]

    async def swap_while_running():  # type: ignore[no-untyped-def]
        request = asyncio.create_task(classifier.classify(image))
        while not running.is_set():
            await asyncio.sleep(0.01)
        await classifier.reconfigure(config(second_model, max_batch_size=1).model_dump())
        await classifier.switched()
        assert classifier.ready()["metadata"]["version"] == "v2"
        finish.set()
        return await request

    result = asyncio.run(swap_while_running())
    assert result.model_version == old_version
    np.testing.assert_allclose(result.logits, old_logits, atol=1e-4)


def test_a_user_config_arriving_while_a_model_loads_wins(
    tiny_model: Path, second_model: Path
) -> None:
    """Roll out v2, then roll back before v2 has loaded: v1 keeps serving, v2 never does."""
    classifier = Classifier.func_or_class()
    first = config(tiny_model, max_batch_size=2)
    reconfigure(classifier, first.model_dump())
    serving = classifier._model
    loading, release = threading.Event(), threading.Event()
    real_load = classifier._load

    def held_load(cfg):  # type: ignore[no-untyped-def]
        loading.set()
        assert release.wait(30)
        return real_load(cfg)

    classifier._load = held_load  # type: ignore[method-assign]

    async def roll_out_and_back() -> None:
        await classifier.reconfigure(config(second_model, max_batch_size=2).model_dump())
        while not loading.is_set():
            await asyncio.sleep(0.01)
        await classifier.reconfigure(config(tiny_model, max_batch_size=3).model_dump())
        release.set()
        await classifier.switched()

    asyncio.run(roll_out_and_back())
    assert classifier._model.session is serving.session  # type: ignore[union-attr]
    assert classifier._model.config.max_batch_size == 3  # type: ignore[union-attr]
    assert classifier.ready()["metadata"]["version"] != "v2"


def test_classify_many_runs_a_gathered_stack_as_one_batch(tiny_model: Path) -> None:
    """gather_in_ingress: the ingress sends concurrent requests' images in one call; they run
    as one batch of exactly those images, each result its own image's, and ready() says how
    many one call may carry."""
    classifier = Classifier.func_or_class()
    reconfigure(classifier, config(tiny_model, max_batch_size=4).model_dump())
    assert classifier.ready()["batching"]["max_batch_size"] == 4
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 256, size=(3, SIZE, SIZE, 3), dtype=np.uint8)
    results = asyncio.run(classifier.classify_many(stack))
    assert [r.batch_size for r in results] == [3, 3, 3]
    alone = [classifier._run(stack[i : i + 1])[0][0] for i in range(3)]
    for result, expected in zip(results, alone, strict=True):
        np.testing.assert_allclose(result.logits, expected, rtol=1e-4, atol=1e-4)
    # More than max_batch_size (an ingress still gathering for a larger one that a new
    # user_config lowered): run in batches of at most max_batch_size, not refused.
    more = rng.integers(0, 256, size=(5, SIZE, SIZE, 3), dtype=np.uint8)
    split = asyncio.run(classifier.classify_many(more))
    assert [r.batch_size for r in split] == [4, 4, 4, 4, 1]
    np.testing.assert_allclose(
        split[4].logits, classifier._run(more[4:])[0][0], rtol=1e-4, atol=1e-4
    )
    with pytest.raises(ModelNotReady, match=f"{SIZE}x{SIZE}"):
        asyncio.run(classifier.classify_many(np.zeros((1, SIZE * 2, SIZE * 2, 3), np.uint8)))
