"""Typed HTTP client for Recognize: ``POST /recognize``, ``GET /v1/model``, ``GET /readyz``.

    from service.client import RecognizeClient

    with RecognizeClient("http://127.0.0.1:8000", api_key=key) as client:
        result = client.recognize("car.jpg", "WDD2052041F123456", request_id=audit_id)
        print(result.verdict, result.prediction.parent, result.prediction.confidence)

``AsyncRecognizeClient`` has the same methods as coroutines. Results are the service's own
response models (``service.api.schemas.RecognizeResponse`` and ``ModelDetails``, re-exported by
``service.client``).

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

The OpenAPI document ``docs/openapi.json`` is exported by the CLI, which needs the server
(``recognize openapi --write docs/openapi.json``); a test keeps it in sync.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Generic, Self, TypeAlias, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from service import __version__
from service.api.schemas import ErrorDetail, ErrorResponse, ModelDetails, RecognizeResponse
from service.client._errors import (
    CLASSES_BY_STATUS,
    CODES_BY_STATUS,
    ERROR_CLASSES,
    REQUEST_ID_HEADER,
    RecognizeAPIError,
    RecognizeResponseError,
)
from service.client._retry import Attempts, RetryPolicy, parse_retry_after

ImageInput: TypeAlias = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]
"""Image bytes, a path to an image file, or a binary file object open for reading."""

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, pool=10.0)
USER_AGENT = f"recognize-client/{__version__} httpx/{httpx.__version__}"

T = TypeVar("T", bound=BaseModel)


@dataclass
class Call(Generic[T]):
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



def api_error(response: httpx.Response, request_id: str, attempts: int) -> RecognizeAPIError:
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    detail: ErrorDetail | None
    try:
        detail = ErrorResponse.model_validate_json(response.content).error
    except ValidationError:
        detail = None
    if detail is not None:
        cls = ERROR_CLASSES.get(detail.code) or CLASSES_BY_STATUS.get(status, RecognizeAPIError)
        code, message, field_name = detail.code, detail.message, detail.field
    else:
        # Not the service's JSON: a proxy (Ray's, an ingress controller) answered.
        cls = CLASSES_BY_STATUS.get(status, RecognizeAPIError)
        code = CODES_BY_STATUS.get(status, "http_error")
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



def _parse(call: Call[T], response: httpx.Response, attempts: int) -> T:
    if not response.is_success:
        raise api_error(response, call.request_id, attempts)
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

    def attempts(self, call: Call[Any]) -> Attempts:
        return Attempts(call, self.retries, self.rand)

    @staticmethod
    def recognize_call(
        data: bytes,
        name: str | None,
        vin: str,
        top_k: int | None,
        request_id: str | None,
        filename: str | None,
    ) -> Call[RecognizeResponse]:
        form = {"vin": vin}
        if top_k is not None:
            form["top_k"] = str(int(top_k))
        upload = (filename or name or "image", data, _content_type(data))
        return Call(
            "POST",
            "/recognize",
            request_id or _new_request_id(),
            RecognizeResponse,
            files={"image": upload},
            data=form,
        )

    @staticmethod
    def model_call(request_id: str | None) -> Call[ModelDetails]:
        return Call("GET", "/v1/model", request_id or _new_request_id(), ModelDetails)

    @staticmethod
    def ready_call(request_id: str | None) -> Call[BaseModel]:
        # A probe: one attempt, its answer is the answer.
        return Call("GET", "/readyz", request_id or _new_request_id(), BaseModel, retry=False)

    @staticmethod
    def is_ready(call: Call[Any], response: httpx.Response) -> bool:
        if response.status_code == 200:
            return True
        if response.status_code == 503:
            return False
        raise api_error(response, call.request_id, 1)

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

    def _send(self, call: Call[T]) -> T:
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

    async def _send(self, call: Call[T]) -> T:
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


