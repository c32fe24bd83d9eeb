"""Whether the Classifier deployment has a replica to answer, as Serve's controller sees it.

Serve's router holds a call to a deployment that has no running replica until one starts: when
the GPU worker node with the only Classifier replica died, every request waited out its whole
deadline and ended in 504, and /readyz kept saying ready (tests/cluster/test_worker_loss.py).
The ingress asks Serve every second instead (``serve.status()``, a public API), answers 503
``not_ready`` with Retry-After at once while no replica serves, and stops waiting for a replica
that went away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

logger = logging.getLogger("ray.serve")

# Replica states that answer now or in moments. UPDATING: applying a new user_config (a model
# rollout, service/inference/classifier.py reconfigure); RECOVERING: a restarted Serve
# controller finding its replicas again. STARTING is not among them: after a node loss the
# replacement stays STARTING until a node with a free GPU joins (minutes on a real cluster).
SERVING_STATES = frozenset({"RUNNING", "UPDATING", "RECOVERING", "PENDING_MIGRATION"})


def serving_replicas(app_name: str, deployment_name: str) -> int:
    """Replicas of the deployment in a serving state (a blocking call to the Serve controller)."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    deployment = None if app is None else app.deployments.get(deployment_name)
    if deployment is None:
        return 0
    return sum(n for state, n in deployment.replica_states.items() if state in SERVING_STATES)


class ReplicaWatch:
    """The serving replica count, refreshed in the background on the event loop it starts on.

    It fails open: until a first answer, or when the controller has not answered for
    ``stale_after_s``, the deployment counts as serving and requests go to Serve as before.

    A Classifier answer is newer evidence than a poll that began before it: at start-up the
    first poll, sent while the Classifier was still loading, said 0 and /recognize answered
    503 ``not_ready`` for the next second (95 answers in a benchmark cell) although /readyz had
    just been answered by that replica. ``answered()`` records such an answer, and a count of 0
    from a poll that began before it is ignored.
    """

    def __init__(
        self,
        count: Callable[[], int],
        *,
        period_s: float = 1.0,
        stale_after_s: float = 5.0,
    ) -> None:
        self._count_replicas = count
        self._period_s = period_s
        self._stale_after_s = stale_after_s
        self._count: int | None = None
        self._counted_at = 0.0
        self._answered_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()

    def start(self) -> None:
        """Start polling, once; call it on the replica's event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    @property
    def serving(self) -> bool:
        """False only while Serve said, within ``stale_after_s``, that no replica serves."""
        fresh = time.monotonic() - self._counted_at <= self._stale_after_s
        return not (fresh and self._count == 0)

    @property
    def gone(self) -> asyncio.Event:
        """Set as soon as no replica serves; a call waiting for one can stop waiting then."""
        if self._gone.is_set() and self.serving:  # the last count went stale
            self._gone = asyncio.Event()
        return self._gone

    def answered(self) -> None:
        """A Classifier replica has just answered: one serves now, whatever a poll in flight
        says."""
        now = time.monotonic()
        self._answered_at = now
        if self._count == 0:
            logger.warning("serving Classifier replicas: 0 -> answered")
            self._count, self._counted_at = None, now
            self.update(None)

    def update(self, count: int | None, *, polled_at: float | None = None) -> None:
        """Record a count (None: the controller did not answer) from a poll sent at
        ``polled_at`` (monotonic; None: now)."""
        if count == 0 and polled_at is not None and polled_at < self._answered_at:
            count = None  # older than the latest answer
        if count is not None:
            if (count == 0) != (self._count == 0):
                logger.warning("serving Classifier replicas: %s -> %d", self._count, count)
            self._count = count
            self._counted_at = time.monotonic()
        if not self.serving:
            self._gone.set()
        elif self._gone.is_set():
            self._gone = asyncio.Event()

    async def _poll(self) -> None:
        while True:
            polled_at = time.monotonic()
            try:
                count: int | None = await asyncio.to_thread(self._count_replicas)
            except Exception as exc:  # noqa: BLE001 - a busy or restarting controller
                logger.warning("could not read the Classifier's replica states: %s", exc)
                count = None
            self.update(count, polled_at=polled_at)
            await asyncio.sleep(self._period_s)
