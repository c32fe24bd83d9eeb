"""When a call is tried again: the retry policy, ``Retry-After``, and one call's attempts."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from service.client._errors import ClientTimeoutError, RecognizeConnectionError

if TYPE_CHECKING:
    from service.client._client import Call

logger = logging.getLogger("service.client")

# Failures where the request cannot have been worked on (or the connection died without an
# answer): safe and useful to retry. Read and write timeouts are not among them.
_RETRIED_TRANSPORT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a call again.

    The wait before retry ``n`` (1, 2, ...) is ``backoff_base_s * 2 ** (n - 1)``, capped at
    ``backoff_cap_s``, then reduced by a random share of up to ``jitter`` (0: none, 1: "full
    jitter"); a ``Retry-After`` from the service raises it to at least that many seconds, and
    the result never exceeds ``backoff_cap_s``. ``deadline_s`` bounds a whole logical call:
    no retry starts whose wait would end past it.
    """

    max_attempts: int = 4
    backoff_base_s: float = 0.25
    backoff_cap_s: float = 10.0
    jitter: float = 0.5
    statuses: frozenset[int] = frozenset({503})
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (got {self.max_attempts})")
        if self.backoff_base_s < 0 or self.backoff_cap_s < 0:
            raise ValueError("backoff_base_s and backoff_cap_s must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter must be within 0-1 (got {self.jitter})")
        object.__setattr__(self, "statuses", frozenset(self.statuses))

    def delay(self, retry: int, retry_after: float | None, rand: float) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); ``rand`` in [0, 1)."""
        backoff = min(self.backoff_cap_s, self.backoff_base_s * 2.0 ** (retry - 1))
        backoff *= 1.0 - self.jitter * rand
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(backoff, self.backoff_cap_s)


NO_RETRIES = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class Attempts:
    """The retry state of one call: decides after each attempt whether and when to retry."""

    call: Call[Any]
    policy: RetryPolicy
    rand: Callable[[], float]
    started: float = field(default_factory=time.monotonic)
    count: int = 0

    def _next_delay(self, retry_after: float | None) -> float | None:
        if not self.call.retry or self.count >= self.policy.max_attempts:
            return None
        delay = self.policy.delay(self.count, retry_after, self.rand())
        deadline = self.policy.deadline_s
        if deadline is not None and time.monotonic() - self.started + delay > deadline:
            return None
        return delay

    def answered(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying this response, or None: it is the answer."""
        self.count += 1
        if response.status_code not in self.policy.statuses:
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        delay = self._next_delay(retry_after)
        if delay is not None:
            logger.info(
                "%s %s: %d (request id %s, attempt %d), retrying in %.2fs",
                self.call.method,
                self.call.path,
                response.status_code,
                self.call.request_id,
                self.count,
                delay,
            )
        return delay

    def failed(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before retrying after a transport failure; raises when final."""
        self.count += 1
        delay = None
        if isinstance(exc, _RETRIED_TRANSPORT_ERRORS):
            delay = self._next_delay(None)
        if delay is None:
            raise connection_error(exc, self.call, self.count) from exc
        logger.info(
            "%s %s: %s (request id %s, attempt %d), retrying in %.2fs",
            self.call.method,
            self.call.path,
            type(exc).__name__,
            self.call.request_id,
            self.count,
            delay,
        )
        return delay


def connection_error(
    exc: httpx.TransportError, call: Call[Any], attempts: int
) -> RecognizeConnectionError:
    url = f"{call.method} {call.path}"
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return ClientTimeoutError(
            f"{url}: no answer within the client's timeout ({type(exc).__name__}); "
            "not retried, the service may still be working on it",
            request_id=call.request_id,
            attempts=attempts,
        )
    return RecognizeConnectionError(
        f"{url}: {type(exc).__name__}: {exc or 'connection failed'} "
        f"(after {attempts} attempt{'s' if attempts != 1 else ''})",
        request_id=call.request_id,
        attempts=attempts,
    )

