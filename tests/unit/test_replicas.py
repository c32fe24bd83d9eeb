"""The ingress's view of the Classifier's replicas (service/api/_replicas.py), without Ray.

The multi-node behaviour it exists for (fast 503s and a truthful /readyz after a worker node
is lost) is tested on a real cluster in tests/cluster/test_worker_loss.py.
"""

from __future__ import annotations

import asyncio

import pytest
from ray.serve import schema
from ray.serve.schema import DeploymentStatus, DeploymentStatusTrigger, ReplicaState

from service.api import _replicas
from service.api._replicas import ReplicaWatch, serving_replicas


def test_no_replica_is_not_serving_and_a_new_one_is() -> None:
    async def scenario() -> None:
        watch = ReplicaWatch(lambda: 0)
        assert watch.serving  # nothing counted yet: fail open
        watch.update(1)
        assert watch.serving and not watch.gone.is_set()
        gone = watch.gone
        watch.update(0)
        assert not watch.serving and gone.is_set()
        watch.update(None)  # the controller did not answer: the last count holds
        assert not watch.serving
        watch.update(2)
        assert watch.serving and not watch.gone.is_set()

    asyncio.run(scenario())


def test_a_stale_count_fails_open(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        now = [1000.0]
        monkeypatch.setattr(_replicas.time, "monotonic", lambda: now[0])
        watch = ReplicaWatch(lambda: 0, stale_after_s=5.0)
        watch.update(0)
        assert not watch.serving and watch.gone.is_set()
        now[0] += 6.0  # no answer from the controller since: requests go to Serve again
        assert watch.serving and not watch.gone.is_set()

    asyncio.run(scenario())


def test_an_answer_outranks_a_poll_sent_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """At start-up the first poll left while the Classifier was loading and said 0 after
    /readyz had been answered by it: 95 requests got 503 in a benchmark cell before the fix."""

    async def scenario() -> None:
        now = [1000.0]
        monkeypatch.setattr(_replicas.time, "monotonic", lambda: now[0])
        watch = ReplicaWatch(lambda: 0)
        sent = now[0]  # a poll leaves ...
        now[0] += 0.3
        watch.answered()  # ... a replica answers ...
        now[0] += 0.3
        watch.update(0, polled_at=sent)  # ... and the poll's 0 arrives: older, ignored
        assert watch.serving and not watch.gone.is_set()
        watch.update(0, polled_at=now[0])  # a poll sent after the answer is believed
        assert not watch.serving and watch.gone.is_set()
        gone = watch.gone
        now[0] += 0.1
        watch.answered()  # a replica answered again: serving at once, waiters released
        assert watch.serving and not watch.gone.is_set() and gone.is_set()

    asyncio.run(scenario())


def test_the_poll_follows_the_count_and_survives_errors() -> None:
    counts: list[object] = [1, RuntimeError("controller busy"), 0, 1]

    def count() -> int:
        value = counts.pop(0) if counts else 1
        if isinstance(value, Exception):
            raise value
        return int(value)  # type: ignore[call-overload]

    async def scenario() -> list[bool]:
        watch = ReplicaWatch(count, period_s=0.01)
        watch.start()
        watch.start()  # once is enough
        seen = []
        for _ in range(100):
            await asyncio.sleep(0.005)
            seen.append(watch.serving)
            if not counts and watch.serving and False in seen:
                break
        return seen

    seen = asyncio.run(scenario())
    assert False in seen and seen[-1] is True


def _status(states: dict[ReplicaState, int]) -> schema.ServeStatus:
    deployment = schema.DeploymentStatusOverview(
        status=DeploymentStatus.HEALTHY,
        status_trigger=DeploymentStatusTrigger.CONFIG_UPDATE_COMPLETED,
        replica_states=states,
        message="",
    )
    app = schema.ApplicationStatusOverview(
        status=schema.ApplicationStatus.RUNNING,
        message="",
        last_deployed_time_s=0.0,
        deployments={"Classifier": deployment},
    )
    return schema.ServeStatus(applications={"recognize": app})


@pytest.mark.parametrize(
    ("states", "serving"),
    [
        ({ReplicaState.RUNNING: 2}, 2),
        ({ReplicaState.UPDATING: 1}, 1),  # applying a new model: back in moments
        ({ReplicaState.STARTING: 1, ReplicaState.STOPPING: 1}, 0),  # the node is gone
        ({}, 0),
    ],
)
def test_serving_replicas_counts_the_states_that_answer(
    monkeypatch: pytest.MonkeyPatch, states: dict[ReplicaState, int], serving: int
) -> None:
    from ray import serve

    monkeypatch.setattr(serve, "status", lambda: _status(states))
    assert serving_replicas("recognize", "Classifier") == serving
    assert serving_replicas("other-app", "Classifier") == 0
