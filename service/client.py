"""Typed HTTP client for Recognize: ``POST /recognize``, ``GET /v1/model``, ``GET /readyz``.

    from service.client import RecognizeClient

    with RecognizeClient("http://127.0.0.1:8000", api_key=key) as client:
        result = client.recognize("car.jpg", "WDD2052041F123456", request_id=audit_id)
        print(result.verdict, result.prediction.parent, result.prediction.confidence)

``AsyncRecognizeClient`` has the same methods as coroutines. Results are the service's own
response models (``service.schemas.RecognizeResponse`` and ``ModelDetails``, re-exported here);
importing this module imports neither Ray nor FastAPI, only httpx and pydantic.

Retries. Every logical call sends one ``X-Request-ID`` (the caller's, e.g. the portal's audit
id, or a fresh one) and keeps it on every attempt, so the service's logs tie the attempts
together. A call is retried, with exponential backoff and jitter, only when no work was done:

* 503 (``overloaded``, ``not_ready``, or Ray's proxy shedding load): ``Retry-After`` is honoured
  as the least wait, capped at ``RetryPolicy.backoff_cap_s``;
* connection failures: refused or reset connections, a connect or pool timeout, a server that
  closed a kept-alive connection without answering.

``POST /recognize`` is safe to retry: recognition has no side effects (the service stores
nothing, and answers the same photo and VIN the same way), so a repeated request can never
count twice. Never retried: 4xx (the request itself is wrong, or the key is; sending it again
cannot help), other 5xx, a read timeout, and 504 ``timeout``: the service's own deadline
passed while the request was admitted and worked on, so the service is already slow, a retry
adds the same load again, and the caller's own time budget is mostly spent. A caller that
wants it anyway adds 504 to ``RetryPolicy.statuses``.

Errors are typed (``RecognizeClientError`` at the root): ``RecognizeAPIError`` and one
subclass per service error code (see ``ERROR_CLASSES``) carry ``code``, ``message``, ``field``,
``status_code`` and ``request_id``; a non-JSON error body (a proxy's plain-text 404 or 503)
still raises one, with a code derived from the status. ``RecognizeConnectionError`` means no
answer at all after the retries.

The OpenAPI document ``docs/openapi.json`` is exported from the app (this one needs Ray, only
for the import) and a unit test keeps it in sync. Regenerate it with

    .venv/bin/python -m service.client --write-openapi docs/openapi.json
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Generic, Self, TypeAlias, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from service import __version__
from service.schemas import ErrorDetail, ErrorResponse, ModelDetails, RecognizeResponse

__all__ = [
    "ERROR_CLASSES",
    "NO_RETRIES",
    "AsyncRecognizeClient",
    "ClientTimeoutError",
    "ErrorResponse",
    "ImageInput",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageError",
    "InvalidRequestError",
    "InvalidVINError",
    "ModelDetails",
    "NotReadyError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RecognizeAPIError",
    "RecognizeClient",
    "RecognizeClientError",
    "RecognizeConnectionError",
    "RecognizeResponse",
    "RecognizeResponseError",
    "RetryPolicy",
    "ServerTimeoutError",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UnsupportedMediaTypeError",
    "openapi_document",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

ImageInput: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]
"""Image bytes, a path to an image file, or a binary file object open for reading."""

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, pool=10.0)
REQUEST_ID_HEADER = "X-Request-ID"
USER_AGENT = f"recognize-client/{__version__} httpx/{httpx.__version__}"

# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class RecognizeClientError(Exception):
    """Root of everything this client raises."""

    def __init__(self, message: str, *, request_id: str | None = None, attempts: int = 1):
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable (task queues, process pools) although the subclasses take other arguments.
        return (_restore_error, (type(self), self.args, self.__dict__.copy()))


def _restore_error(
    cls: type[RecognizeClientError], args: tuple[Any, ...], state: dict[str, Any]
) -> RecognizeClientError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class RecognizeAPIError(RecognizeClientError):
    """The service answered with an error status; ``code`` is its stable error code."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None,
        status_code: int,
        request_id: str | None,
        *,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message, request_id=request_id, attempts=attempts)
        self.code = code
        self.field = field
        self.status_code = status_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f", field {self.field!r}" if self.field else ""
        return (
            f"{self.status_code} {self.code}: {self.message}{where} "
            f"(request id {self.request_id}, attempts {self.attempts})"
        )


class InvalidRequestError(RecognizeAPIError):
    """422 ``invalid_request``: a missing field, ``top_k`` out of bounds."""


class InvalidVINError(RecognizeAPIError):
    """422 ``invalid_vin``: not 17 VIN characters, or a wrong North-American check digit."""


class InvalidImageError(RecognizeAPIError):
    """422 ``invalid_image``: not an image, corrupt or truncated (base of the image errors)."""


class ImageTooSmallError(InvalidImageError):
    """422 ``image_too_small``: a side below the service's minimum."""


class UnsupportedMediaTypeError(InvalidImageError):
    """415 ``unsupported_media_type``: an image, but not JPEG, PNG or WebP."""


class PayloadTooLargeError(InvalidImageError):
    """413 ``payload_too_large``: the upload exceeds the byte limit."""


class ImageTooLargeError(InvalidImageError):
    """413 ``image_too_large``: more pixels than the limit (decompression bombs)."""


class UnauthorizedError(RecognizeAPIError):
    """401 ``unauthorized``: no API key, or a wrong one."""


class ServiceUnavailableError(RecognizeAPIError):
    """503 of any kind, still failing after the retries (base of the two below)."""


class NotReadyError(ServiceUnavailableError):
    """503 ``not_ready``: the model is loading or warming up."""


class OverloadedError(ServiceUnavailableError):
    """503 ``overloaded``: the service sheds load; ``retry_after`` is its hint in seconds."""


class ServerTimeoutError(RecognizeAPIError):
    """504 ``timeout``, or 408 ``request_timeout`` (the upload did not arrive in time)."""


class RecognizeConnectionError(RecognizeClientError):
    """No HTTP answer at all: connection failures, after the retries are spent."""


class ClientTimeoutError(RecognizeConnectionError):
    """No answer within the client's read (or write) timeout; not retried."""


class RecognizeResponseError(RecognizeClientError):
    """A success status whose body does not match the response schema (wrong URL, version)."""

    def __init__(self, message: str, *, status_code: int, request_id: str | None, attempts: int):
        super().__init__(message, request_id=request_id, attempts=attempts)
        self.status_code = status_code


ERROR_CLASSES: dict[str, type[RecognizeAPIError]] = {
    "invalid_request": InvalidRequestError,
    "invalid_vin": InvalidVINError,
    "invalid_image": InvalidImageError,
    "image_too_small": ImageTooSmallError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "payload_too_large": PayloadTooLargeError,
    "image_too_large": ImageTooLargeError,
    "unauthorized": UnauthorizedError,
    "not_ready": NotReadyError,
    "overloaded": OverloadedError,
    "timeout": ServerTimeoutError,
    "request_timeout": ServerTimeoutError,
}
"""The service's error codes and the exception each one raises (others: ``RecognizeAPIError``)."""

# Codes for error bodies that are not the service's JSON (a proxy answered), by status.
_CODES_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}
_CLASSES_BY_STATUS: dict[int, type[RecognizeAPIError]] = {
    401: UnauthorizedError,
    408: ServerTimeoutError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    503: ServiceUnavailableError,
    504: ServerTimeoutError,
}

# ---------------------------------------------------------------------------------------------
# Retry policy
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# The shared core: request building, retry decisions, response parsing
# ---------------------------------------------------------------------------------------------

T = TypeVar("T", bound=BaseModel)


@dataclass
class _Call(Generic[T]):
    """One logical call: what to send on every attempt, and what a success parses into."""

    method: str
    path: str
    request_id: str
    result: type[T]
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    retry: bool = True

    def send_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"headers": {REQUEST_ID_HEADER: self.request_id}}
        if self.files is not None:
            kwargs["files"] = self.files
        if self.data is not None:
            kwargs["data"] = self.data
        return kwargs


@dataclass
class _Attempts:
    """The retry state of one call: decides after each attempt whether and when to retry."""

    call: _Call[Any]
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
            raise _connection_error(exc, self.call, self.count) from exc
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


def _connection_error(
    exc: httpx.TransportError, call: _Call[Any], attempts: int
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


def _api_error(response: httpx.Response, request_id: str, attempts: int) -> RecognizeAPIError:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    detail: ErrorDetail | None
    try:
        detail = ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        detail = None
    if detail is not None:
        cls = ERROR_CLASSES.get(detail.code) or _CLASSES_BY_STATUS.get(status, RecognizeAPIError)
        code, message, field_name = detail.code, detail.message, detail.field
    else:
        # Not the service's JSON: a proxy (Ray's, an ingress controller) answered.
        cls = _CLASSES_BY_STATUS.get(status, RecognizeAPIError)
        code = _CODES_BY_STATUS.get(status, "http_error")
        text = " ".join(response.text.split())[:300]
        message = f"HTTP {status} {response.reason_phrase}: {text or '(empty body)'}"
        field_name = None
    return cls(
        code,
        message,
        field_name,
        status,
        response.headers.get(REQUEST_ID_HEADER) or request_id,
        retry_after=retry_after,
        attempts=attempts,
    )


def _parse(call: _Call[T], response: httpx.Response, attempts: int) -> T:
    if not response.is_success:
        raise _api_error(response, call.request_id, attempts)
    try:
        return call.result.model_validate_json(response.content)
    except ValidationError as exc:
        raise RecognizeResponseError(
            f"{call.method} {call.path}: {response.status_code} with a body that is not a "
            f"{call.result.__name__}: {exc.error_count()} schema error(s), first: "
            f"{exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}",
            status_code=response.status_code,
            request_id=response.headers.get(REQUEST_ID_HEADER) or call.request_id,
            attempts=attempts,
        ) from exc


_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def _content_type(data: bytes) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"  # the service judges the content, not this header


def _read_image(image: ImageInput) -> tuple[bytes, str | None]:
    """The image's bytes and, when it has one, its file name."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image), None
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        return path.read_bytes(), path.name
    if hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, bytes):
            raise TypeError("a file object for image= must be open in binary mode ('rb')")
        name = getattr(image, "name", None)
        return data, Path(name).name if isinstance(name, str) and name else None
    raise TypeError(f"image must be bytes, a path or a binary file, not {type(image).__name__}")


def _needs_io(image: ImageInput) -> bool:
    return not isinstance(image, bytes | bytearray | memoryview)


class _ClientCore:
    """All that the sync and async clients share: settings, request building, parsing."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: httpx.Timeout | float | tuple[float, float] | None,
        retries: RetryPolicy | int | None,
        headers: Mapping[str, str] | None,
        rand: Callable[[], float] | None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if retries is None:
            retries = RetryPolicy()
        elif isinstance(retries, int):
            retries = RetryPolicy(max_attempts=retries)
        self.retries: RetryPolicy = retries
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        elif isinstance(timeout, tuple):
            connect, read = timeout
            timeout = httpx.Timeout(read, connect=connect)
        elif not isinstance(timeout, httpx.Timeout):
            timeout = httpx.Timeout(timeout)
        self.timeout: httpx.Timeout = timeout
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.headers.update(headers or {})
        self.rand = rand or random.random

    def http_kwargs(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "timeout": self.timeout, "headers": self.headers}

    def attempts(self, call: _Call[Any]) -> _Attempts:
        return _Attempts(call, self.retries, self.rand)

    @staticmethod
    def recognize_call(
        data: bytes,
        name: str | None,
        vin: str,
        top_k: int | None,
        request_id: str | None,
        filename: str | None,
    ) -> _Call[RecognizeResponse]:
        form = {"vin": vin}
        if top_k is not None:
            form["top_k"] = str(int(top_k))
        upload = (filename or name or "image", data, _content_type(data))
        return _Call(
            "POST",
            "/recognize",
            request_id or _new_request_id(),
            RecognizeResponse,
            files={"image": upload},
            data=form,
        )

    @staticmethod
    def model_call(request_id: str | None) -> _Call[ModelDetails]:
        return _Call("GET", "/v1/model", request_id or _new_request_id(), ModelDetails)

    @staticmethod
    def ready_call(request_id: str | None) -> _Call[BaseModel]:
        # A probe: one attempt, its answer is the answer.
        return _Call("GET", "/readyz", request_id or _new_request_id(), BaseModel, retry=False)

    @staticmethod
    def is_ready(call: _Call[Any], response: httpx.Response) -> bool:
        if response.status_code == 200:
            return True
        if response.status_code == 503:
            return False
        raise _api_error(response, call.request_id, 1)

    def __repr__(self) -> str:
        auth = "with API key" if "Authorization" in self.headers else "no API key"
        return f"({self.base_url!r}, {auth}, {self.retries})"


def _new_request_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------


class RecognizeClient:
    """Synchronous client for the Recognize service (thread-safe; reuse one per process).

    base_url: the service, e.g. ``http://127.0.0.1:8000`` (a path prefix is kept).
    api_key: sent as ``Authorization: Bearer <key>``; None sends none.
    timeout: an ``httpx.Timeout``, seconds for every phase, or ``(connect, read)``;
        default 5 s to connect, 30 s for the rest.
    retries: a ``RetryPolicy``, or a number of attempts with the default backoff; 1: none.
    headers: extra headers on every request.
    transport: an httpx transport (tests, proxies, custom TLS).
    sleep: how to wait between attempts (tests inject one that does not wait).
    rand: the jitter's random source, floats in [0, 1).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | float | tuple[float, float] | None = None,
        retries: RetryPolicy | int | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._core = _ClientCore(base_url, api_key, timeout, retries, headers, rand)
        self._http = httpx.Client(transport=transport, **self._core.http_kwargs())
        self._sleep = sleep

    def recognize(
        self,
        image: ImageInput,
        vin: str,
        *,
        top_k: int | None = None,
        request_id: str | None = None,
        filename: str | None = None,
    ) -> RecognizeResponse:
        """Check a photo against the car's VIN: ``POST /recognize``.

        ``request_id`` (the caller's audit id) is sent as ``X-Request-ID`` on every attempt and
        comes back as ``result.request_id``; without one a fresh id is made for this call.
        Raises a ``RecognizeAPIError`` subclass for the service's errors.
        """
        data, name = _read_image(image)
        call = self._core.recognize_call(data, name, vin, top_k, request_id, filename)
        return self._send(call)

    def model(self, *, request_id: str | None = None) -> ModelDetails:
        """The served model's metadata and classes: ``GET /v1/model``."""
        return self._send(self._core.model_call(request_id))

    def ready(self, *, request_id: str | None = None) -> bool:
        """One ``GET /readyz``: True when ready, False on 503 or when the service is unreachable."""
        call = self._core.ready_call(request_id)
        try:
            response = self._http.request(call.method, call.path, **call.send_kwargs())
        except httpx.TransportError:
            return False
        return self._core.is_ready(call, response)

    def _send(self, call: _Call[T]) -> T:
        attempts = self._core.attempts(call)
        while True:
            try:
                response = self._http.request(call.method, call.path, **call.send_kwargs())
            except httpx.TransportError as exc:
                delay = attempts.failed(exc)
            else:
                delay = attempts.answered(response)
                if delay is None:
                    return _parse(call, response, attempts.count)
            self._sleep(delay)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RecognizeClient{self._core!r}"


class AsyncRecognizeClient:
    """Asynchronous client for the Recognize service; the arguments of ``RecognizeClient``.

    Share one per event loop: its calls may run concurrently (bound them with a semaphore).
    ``sleep`` is awaited between attempts (default ``asyncio.sleep``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout | float | tuple[float, float] | None = None,
        retries: RetryPolicy | int | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._core = _ClientCore(base_url, api_key, timeout, retries, headers, rand)
        self._http = httpx.AsyncClient(transport=transport, **self._core.http_kwargs())
        self._sleep = sleep

    async def recognize(
        self,
        image: ImageInput,
        vin: str,
        *,
        top_k: int | None = None,
        request_id: str | None = None,
        filename: str | None = None,
    ) -> RecognizeResponse:
        """Check a photo against the car's VIN: ``POST /recognize`` (see ``RecognizeClient``).

        A path or file is read in a worker thread, off the event loop.
        """
        if _needs_io(image):
            data, name = await asyncio.to_thread(_read_image, image)
        else:
            data, name = _read_image(image)
        call = self._core.recognize_call(data, name, vin, top_k, request_id, filename)
        return await self._send(call)

    async def model(self, *, request_id: str | None = None) -> ModelDetails:
        """The served model's metadata and classes: ``GET /v1/model``."""
        return await self._send(self._core.model_call(request_id))

    async def ready(self, *, request_id: str | None = None) -> bool:
        """One ``GET /readyz``: True when ready, False on 503 or when the service is unreachable."""
        call = self._core.ready_call(request_id)
        try:
            response = await self._http.request(call.method, call.path, **call.send_kwargs())
        except httpx.TransportError:
            return False
        return self._core.is_ready(call, response)

    async def _send(self, call: _Call[T]) -> T:
        attempts = self._core.attempts(call)
        while True:
            try:
                response = await self._http.request(call.method, call.path, **call.send_kwargs())
            except httpx.TransportError as exc:
                delay = attempts.failed(exc)
            else:
                delay = attempts.answered(response)
                if delay is None:
                    return _parse(call, response, attempts.count)
            await self._sleep(delay)

    async def close(self) -> None:
        await self._http.aclose()

    aclose = close

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncRecognizeClient{self._core!r}"


# ---------------------------------------------------------------------------------------------
# The OpenAPI document
# ---------------------------------------------------------------------------------------------


def openapi_document() -> str:
    """The service's OpenAPI document as committed in ``docs/openapi.json``.

    Imports the FastAPI app (and with it Ray, only as an import); pretty-printed with sorted
    keys so a change to the API shows as a readable diff.
    """
    import json

    from service.ingress import api

    return json.dumps(api.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.client", description="Export or check docs/openapi.json."
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write-openapi", metavar="PATH", type=Path, help="write the document")
    group.add_argument("--check-openapi", metavar="PATH", type=Path, help="exit 1 if stale")
    args = parser.parse_args(argv)
    document = openapi_document()
    if args.write_openapi:
        args.write_openapi.parent.mkdir(parents=True, exist_ok=True)
        args.write_openapi.write_text(document, encoding="utf-8")
        return 0
    path: Path = args.check_openapi
    if not path.is_file() or path.read_text(encoding="utf-8") != document:
        print(f"{path} is out of date: python -m service.client --write-openapi {path}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
