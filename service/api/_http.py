"""The HTTP plumbing of the ingress: the FastAPI app, its middleware and its error handlers.

Every request gets one ``RequestRecord`` (``request.state.record``): its id, start time,
tenant, verdict and error code, filled in as the request goes and read once at the end for the
log line and the metrics. Every error leaves through ``error_response``, the one renderer of
``{"error": {"code", "message", "field"}}``.

Ingress replicas hand their limits, keys and metrics to this module's app through
``configure_app``: Serve pickles the deployment class by value, with a private copy of every
global its methods name, so ``api.state`` set inside a method would land on that copy.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser
from starlette.responses import Response

from service import __version__
from service.core.auth import KeyRing, presented_key
from service.core.errors import (
    FALLBACK_BY_STATUS,
    BodyTimeout,
    InternalError,
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    RecognizeError,
    Unauthorized,
)
from service.metrics import OTHER_ENDPOINT, IngressMetrics

logger = logging.getLogger("ray.serve")

# Multipart parts above this size would be spooled to a temporary file; keep uploads in memory
# (photos are never written to disk). The upload limit itself is enforced per request.
MultiPartParser.spool_max_size = 64 * 1024 * 1024

# Boundaries, part headers and the small text fields around the image.
MULTIPART_OVERHEAD = 64 * 1024
MAX_REQUEST_ID_CHARS = 128
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})

api = FastAPI(
    title="Recognize",
    version=__version__,
    description="Checks a dealer audit photo against the car's VIN: classifies the photo into "
    "a vehicle class, decodes the VIN's expected parent class, and answers match, mismatch or "
    "manual review.",
)


@dataclass
class RequestRecord:
    """What one request's log line and metrics report, filled in as the request goes."""

    request_id: str
    started: float
    tenant: str | None = None
    verdict: str | None = None
    error_code: str | None = None
    vin_masked: str | None = None


def record_of(request: Request) -> RequestRecord:
    record: RequestRecord = request.state.record
    return record


@dataclass(frozen=True)
class UploadLimit:
    """The one upload-size rule: an image of at most ``image_bytes`` (inclusive), in a body of
    at most that plus the form's framing. Checked on the declared Content-Length, on the bytes
    as they arrive (a chunked upload declares none) and on the image part, with one message."""

    image_bytes: int

    @property
    def body_bytes(self) -> int:
        return self.image_bytes + MULTIPART_OVERHEAD

    def refusal(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the image upload exceeds the limit of {self.image_bytes} bytes "
            "(RECOGNIZE_MAX_UPLOAD_BYTES)"
        )

    def check_body(self, size: int) -> None:
        if size > self.body_bytes:
            raise self.refusal()

    def check_image(self, size: int) -> None:
        if size > self.image_bytes:
            raise self.refusal()


class Admission:
    """Requests to /recognize this replica is working on; past the limit, refuse at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0


@dataclass(frozen=True)
class AppConfig:
    """What the middleware needs from the replica that serves the app."""

    upload: UploadLimit
    body_timeout_s: float
    metrics: IngressMetrics
    keys: KeyRing | None  # None: authentication switched off (local demo only)
    open_paths: frozenset[str]
    admission: Admission


def configure_app(config: AppConfig) -> None:
    """Hand the replica's limits, keys and metrics to the middleware (see the module doc)."""
    api.state.config = config


def _config() -> AppConfig | None:
    return getattr(api.state, "config", None)


def requests_in_progress() -> int:
    # Module-level like configure_app: a method would read the pickled class's copy of `api`.
    config = _config()
    return config.admission.in_flight if config is not None else 0


def error_response(error: RecognizeError, record: RequestRecord | None = None) -> JSONResponse:
    """The one renderer of error bodies; notes the code on the request's record."""
    if record is not None:
        record.error_code = error.code
    response = JSONResponse(status_code=error.status_code, content=error.to_dict())
    if error.status_code == 503:
        response.headers["Retry-After"] = str(getattr(error, "retry_after_s", 1))
    if isinstance(error, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="recognize"'
    return response


def _record(request: Request) -> RequestRecord | None:
    return getattr(request.state, "record", None)


@api.exception_handler(RecognizeError)
async def _recognize_error(request: Request, exc: RecognizeError) -> JSONResponse:
    return error_response(exc, _record(request))


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    location = [
        str(part) for part in first.get("loc", ()) if part not in ("body", "query", "header")
    ]
    field = location[-1] if location else None
    message = first.get("msg", "invalid request")
    if first.get("type") == "missing":
        message = f"field '{field}' is required"
    elif field:
        message = f"field '{field}': {message}"
    return error_response(InvalidRequest(message, field=field), _record(request))


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    error: RecognizeError
    if exc.status_code == 400:
        # Starlette's form parser: a malformed multipart body, or a part over its size limit.
        detail = str(exc.detail)
        cause = exc.__cause__
        refused = _body_refusal(cause)
        if refused is not None:  # FastAPI wraps body errors in a 400
            error = refused.error
        elif "maximum size" in detail:
            # A text field over the parser's 1 MiB per field: a size limit, not the image's.
            error = PayloadTooLarge(f"a form field is too large: {detail}", field=None)
        else:
            reason = f"{detail}: {cause}" if cause else detail
            error = InvalidRequest(f"the request body is not valid multipart/form-data ({reason})")
        return error_response(error, _record(request))
    kind = next((c for c in FALLBACK_BY_STATUS if c.status_code == exc.status_code), None)
    if kind is None:
        kind = InvalidRequest if exc.status_code < 500 else InternalError
    error = kind(str(exc.detail))
    error.status_code = exc.status_code  # a status outside the tree keeps its own number
    response = error_response(error, _record(request))
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405
    return response


def _endpoint(request: Request) -> str:
    """The API route a request addressed, or ``other``: a bounded set of metric labels."""
    matched = getattr(request.scope.get("route"), "path", None)
    if isinstance(matched, str):
        return matched
    # Not routed (refused by the middleware first, or no such route): the paths of the API's
    # OpenAPI document, from the app serving the request (Serve's copy of ``api``; cached).
    path = request.scope.get("path", "")
    return path if path in request.app.openapi()["paths"] else OTHER_ENDPOINT


def _usable_request_id(value: str) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID_CHARS and value.isprintable()


def _authenticate(request: Request, config: AppConfig, record: RequestRecord) -> None:
    """Raises ``Unauthorized`` unless the request may pass; notes the key's tenant."""
    if config.keys is None or request.url.path in config.open_paths:
        return
    key = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if key is None:
        raise Unauthorized(
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    tenant = config.keys.tenant_for(key)
    if tenant is None:
        raise Unauthorized("the API key is not valid")
    record.tenant = tenant


def _admit(request: Request, config: AppConfig, record: RequestRecord) -> None:
    """The checks a request passes before the app sees it; each raises its error."""
    supplied = request.headers.get("x-request-id")
    if supplied is not None and not _usable_request_id(supplied):
        # It goes into every log line and the answer: no kilobytes, no control characters.
        raise InvalidRequest(
            f"header X-Request-ID must be 1-{MAX_REQUEST_ID_CHARS} printable characters "
            f"(got {len(supplied)})",
            field="X-Request-ID",
        )
    _authenticate(request, config, record)
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        config.upload.check_body(int(declared))  # refuse before reading a byte of it


@api.middleware("http")
async def _request_context(request: Request, call_next: Any) -> Response:
    # Serve's proxy keeps a client's X-Request-ID (or makes one), passes it on and echoes it in
    # the response; outside Serve this middleware does the same.
    supplied = request.headers.get("x-request-id")
    request_id = supplied if supplied and _usable_request_id(supplied) else uuid.uuid4().hex
    record = RequestRecord(request_id, time.perf_counter())
    request.state.record = record
    config = _config()
    try:
        if config is not None:
            _admit(request, config, record)
        response = await _guarded(request, call_next, config, record)
    except RecognizeError as exc:
        response = error_response(exc, record)
    if not supplied:
        response.headers["X-Request-ID"] = record.request_id
    duration_s = time.perf_counter() - record.started
    # One structured line per request (JSON with Serve's JSON log encoding): who, what, how
    # long. The VIN is masked (serial hidden); image bytes are never logged.
    logger.info(
        "request",
        extra={
            "tenant": record.tenant,
            "path": request.url.path,
            "status": response.status_code,
            "verdict": record.verdict,
            "error_code": record.error_code,
            "vin": record.vin_masked,
            "latency_ms": round(duration_s * 1000, 1),
        },
    )
    if config is not None:
        config.metrics.request(
            endpoint=_endpoint(request),
            status=response.status_code,
            verdict=record.verdict,
            error_code=record.error_code,
            duration_s=duration_s,
        )
    return response


async def _guarded(
    request: Request, call_next: Any, config: AppConfig | None, record: RequestRecord
) -> Response:
    """The app's answer, within this replica's admission limit for /recognize."""
    admission = config.admission if config is not None else None
    guarded = admission is not None and request.url.path == "/recognize"
    if guarded and admission.in_flight >= admission.limit:  # type: ignore[union-attr]
        raise Overloaded(
            f"the service is at capacity ({admission.limit} requests in progress on "  # type: ignore[union-attr]
            "this replica); retry after the Retry-After seconds"
        )
    if guarded:
        admission.in_flight += 1  # type: ignore[union-attr]
    try:
        response: Response = await call_next(request)
        return response
    except _BodyRefused as exc:
        return error_response(exc.error, record)
    except Exception:
        logger.exception("unhandled error in request %s", record.request_id)
        return error_response(
            InternalError("internal error; the request id names it in the logs"), record
        )
    finally:
        if guarded:
            admission.in_flight -= 1  # type: ignore[union-attr]


class _BodyRefused(Exception):
    """Raised from inside the body stream; the client gets ``error``."""

    def __init__(self, error: RecognizeError) -> None:
        super().__init__(str(error))
        self.error = error


def _body_refusal(exc: BaseException | None) -> _BodyRefused | None:
    """The body refusal inside `exc`, also when anyio wrapped it in an exception group."""
    if isinstance(exc, _BodyRefused):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _body_refusal(inner)) is not None:
                return found
    return None


class _BodyLimit:
    """Counts the body as it is received and stops past the upload limit, whatever
    Content-Length said (a chunked upload has none): the form parser never reads, or spills to
    disk, more. And the whole body must arrive within the request deadline: a client that
    promises bytes and never sends them (slow loris) gets 408 instead of holding a slot."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        config = _config()
        if scope["type"] != "http" or config is None:
            await self.app(scope, receive, send)
            return
        timeout_s = config.body_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        received = 0
        body_done = False

        async def limited_receive() -> Any:
            nonlocal received, body_done
            if body_done:  # after the body only a disconnect can come: no deadline for it
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                raise _BodyRefused(
                    BodyTimeout(f"the request body did not arrive within {timeout_s:g} s")
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                try:
                    config.upload.check_body(received)
                except PayloadTooLarge as exc:
                    raise _BodyRefused(exc) from None
            return message

        await self.app(scope, limited_receive, send)


api.add_middleware(_BodyLimit)
