"""FastAPI ingress deployment: validate, decode, call the classifier, decide, respond.

The one-way path per request: bytes → imaging → classifier (batched) → verdict → response.
Preprocessing happens here, on CPU replicas that scale apart from the (GPU) classifier replicas,
and only the small uint8 model input crosses to the classifier.
"""

import asyncio
import logging
import time
import uuid
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, Request, Security, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPBearer
from ray import serve
from ray.exceptions import RayError
from ray.serve._private import constants as serve_constants
from ray.serve.exceptions import BackPressureError, RayServeException
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser
from starlette.responses import Response

from service import __version__
from service.auth import KeyRing, presented_key
from service.classifier import Classifier, ClassifyResult
from service.errors import (
    BodyTimeout,
    InvalidRequest,
    InvalidVIN,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
    RecognizeError,
    Timeout,
    Unauthorized,
)
from service.imaging import Limits, prepare_image
from service.metrics import OTHER_ENDPOINT, IngressMetrics
from service.modelfile import ModelMetadata, class_infos
from service.schemas import (
    ClassProbability,
    ErrorResponse,
    Health,
    Latency,
    ModelClassInfo,
    ModelDetails,
    ModelSummary,
    Prediction,
    RecognizeResponse,
)
from service.settings import Settings
from service.taxonomy import default_taxonomy
from service.verdict import ClassInfo, Thresholds, decide
from service.vin import decode_vin, mask_vin

logger = logging.getLogger("ray.serve")

# Multipart parts above this size would be spooled to a temporary file; keep uploads in memory
# (photos are never written to disk). The upload limit itself is enforced per request.
MultiPartParser.spool_max_size = 64 * 1024 * 1024

_MULTIPART_OVERHEAD = 64 * 1024  # boundaries, headers and the small text fields

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 408, 413, 415, 422, 503, 504)
}

# Declared for the OpenAPI document only (either header works); the middleware enforces keys.
_BEARER = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
_KEY_REQUIRED = [Security(_BEARER), Security(_API_KEY)]

api = FastAPI(
    title="Recognize",
    version=__version__,
    description="Checks a dealer audit photo against the car's VIN: classifies the photo into "
    "a vehicle class, decodes the VIN's expected parent class, and answers match, mismatch or "
    "manual review.",
)


def _respond(exc: RecognizeError) -> JSONResponse:
    response = JSONResponse(status_code=exc.status_code, content=exc.to_dict())
    if exc.status_code == 503:
        response.headers["Retry-After"] = str(getattr(exc, "retry_after_s", 1))
    return response


class _Admission:
    """Requests to /recognize this replica is working on; past the limit, refuse at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(status_code=status, content=body)


def _configure_app(
    *,
    max_body_bytes: int,
    body_timeout_s: float,
    metrics: IngressMetrics,
    keys: KeyRing | None,
    open_paths: frozenset[str],
    admission: _Admission,
) -> None:
    """Hand the replica's limits and metrics to the middleware, through the module's app.

    Serve pickles the deployment class by value, and with it a private copy of every global its
    methods name: ``api.state`` set inside a method lands on that copy, never on the app the
    middleware reads. A module-level function is pickled by reference and sees the module's.
    """
    api.state.max_body_bytes = max_body_bytes
    api.state.body_timeout_s = body_timeout_s
    api.state.metrics = metrics
    api.state.keys = keys  # None: authentication switched off (local demo only)
    api.state.admission = admission
    api.state.open_paths = open_paths


def _requests_in_progress() -> int:
    # Module-level like _configure_app: a method would read the pickled class's copy of `api`.
    admission: _Admission | None = getattr(api.state, "admission", None)
    return admission.in_flight if admission is not None else 0


def _endpoint(request: Request) -> str:
    """The API route a request addressed, or ``other``: a bounded set of metric labels."""
    matched = getattr(request.scope.get("route"), "path", None)
    if isinstance(matched, str):
        return matched
    # Not routed (refused by the middleware first, or no such route): the paths of the API's
    # OpenAPI document, from the app serving the request (Serve's copy of ``api``; cached).
    path = request.scope.get("path", "")
    return path if path in request.app.openapi()["paths"] else OTHER_ENDPOINT


@api.exception_handler(RecognizeError)
async def _recognize_error(request: Request, exc: RecognizeError) -> JSONResponse:
    request.state.error_code = exc.code
    return _respond(exc)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    request.state.error_code = "invalid_request"
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
    return _error(422, "invalid_request", message, field)


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:
        # Starlette's form parser: a malformed multipart body, or a part over its size limit.
        detail = str(exc.detail)
        cause = exc.__cause__
        refused = _body_refusal(cause)
        error: RecognizeError
        if refused is not None:  # FastAPI wraps body errors in a 400
            error = refused.error
        elif "maximum size" in detail:
            error = PayloadTooLarge(f"a form field is too large: {detail}", field=None)
        else:
            reason = f"{detail}: {cause}" if cause else detail
            error = InvalidRequest(f"the request body is not valid multipart/form-data ({reason})")
        request.state.error_code = error.code
        return _respond(error)
    codes = {404: "not_found", 405: "method_not_allowed"}
    request.state.error_code = codes.get(exc.status_code, "http_error")
    response = _error(exc.status_code, request.state.error_code, str(exc.detail))
    response.headers.update(exc.headers or {})  # e.g. Allow on a 405
    return response


MAX_REQUEST_ID_CHARS = 128


def _usable_request_id(value: str) -> bool:
    return 0 < len(value) <= MAX_REQUEST_ID_CHARS and value.isprintable()


@api.middleware("http")
async def _request_context(request: Request, call_next: Any) -> Response:
    # Serve's proxy keeps a client's X-Request-ID (or makes one), passes it on and echoes it in
    # the response; outside Serve this middleware does the same.
    supplied = request.headers.get("x-request-id")
    bad_request_id = supplied is not None and not _usable_request_id(supplied)
    request.state.request_id = uuid.uuid4().hex if bad_request_id or not supplied else supplied
    request.state.started = time.perf_counter()
    request.state.tenant = None
    max_body = getattr(api.state, "max_body_bytes", None)
    declared = request.headers.get("content-length", "")
    refusal = _authenticate(request)
    if bad_request_id:
        # It goes into every log line and the answer: no kilobytes, no control characters.
        error = InvalidRequest(
            f"header X-Request-ID must be 1-{MAX_REQUEST_ID_CHARS} printable characters "
            f"(got {len(supplied or '')})",
            field="X-Request-ID",
        )
        request.state.error_code = error.code
        response: Response = _respond(error)
    elif refusal is not None:
        request.state.error_code = refusal.code
        response = _respond(refusal)
        response.headers["WWW-Authenticate"] = 'Bearer realm="recognize"'
    elif max_body is not None and declared.isdigit() and int(declared) > max_body:
        # Refuse before reading a byte of an oversized upload.
        request.state.error_code = PayloadTooLarge.code
        response = _respond(
            PayloadTooLarge(
                f"request body of {declared} bytes exceeds the upload limit of {max_body} bytes"
            )
        )
    else:
        admission: _Admission | None = getattr(api.state, "admission", None)
        guarded = admission is not None and request.url.path == "/recognize"
        if guarded and admission.in_flight >= admission.limit:  # type: ignore[union-attr]
            request.state.error_code = Overloaded.code
            response = _respond(
                Overloaded(
                    f"the service is at capacity ({admission.limit} requests in progress on "  # type: ignore[union-attr]
                    "this replica); retry after the Retry-After seconds"
                )
            )
        else:
            if guarded:
                admission.in_flight += 1  # type: ignore[union-attr]
            try:
                response = await call_next(request)
            except _BodyRefused as exc:
                request.state.error_code = exc.error.code
                response = _respond(exc.error)
            except Exception:
                logger.exception("unhandled error in request %s", request.state.request_id)
                request.state.error_code = "internal_error"
                response = _error(
                    500, "internal_error", "internal error; the request id names it in the logs"
                )
            finally:
                if guarded:
                    admission.in_flight -= 1  # type: ignore[union-attr]
    if not supplied:
        response.headers["X-Request-ID"] = request.state.request_id
    duration_s = time.perf_counter() - request.state.started
    # One structured line per request (JSON with Serve's JSON log encoding): who, what, how
    # long. The VIN is masked (serial hidden); image bytes are never logged.
    logger.info(
        "request",
        extra={
            "tenant": request.state.tenant,
            "path": request.url.path,
            "status": response.status_code,
            "verdict": getattr(request.state, "verdict", None),
            "error_code": getattr(request.state, "error_code", None),
            "vin": getattr(request.state, "vin_masked", None),
            "latency_ms": round(duration_s * 1000, 1),
        },
    )
    metrics: IngressMetrics | None = getattr(api.state, "metrics", None)
    if metrics is not None:
        metrics.request(
            endpoint=_endpoint(request),
            status=response.status_code,
            verdict=getattr(request.state, "verdict", None),
            error_code=getattr(request.state, "error_code", None),
            duration_s=duration_s,
        )
    return response


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
    """Counts the body as it is received and stops past the limit, whatever Content-Length
    said (a chunked upload has none): the form parser never reads, or spills to disk, more.
    And the whole body must arrive within the request deadline: a client that promises bytes
    and never sends them (slow loris) gets 408 instead of holding a slot for ever."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        limit = getattr(api.state, "max_body_bytes", None)
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        timeout_s: float = getattr(api.state, "body_timeout_s", 30.0)
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
                if received > limit:
                    raise _BodyRefused(
                        PayloadTooLarge(f"request body exceeds the upload limit of {limit} bytes")
                    )
            return message

        await self.app(scope, limited_receive, send)


api.add_middleware(_BodyLimit)


def _authenticate(request: Request) -> Unauthorized | None:
    """None when the request may pass; sets ``request.state.tenant`` from the key."""
    keys: KeyRing | None = getattr(api.state, "keys", None)
    if keys is None or request.url.path in getattr(api.state, "open_paths", frozenset()):
        return None
    key = presented_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
    if key is None:
        return Unauthorized(
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        )
    tenant = keys.tenant_for(key)
    if tenant is None:
        return Unauthorized("the API key is not valid")
    request.state.tenant = tenant
    return None


def _cluster_transport(handle: DeploymentHandle) -> DeploymentHandle:
    """The handle, sending its calls the way this cluster's replicas take them.

    A handle keeps the transport of the process that built the application, fixed when that
    process imported Ray Serve: `recognize serve` imports it before setting Serve's
    environment, so the Classifier was called through Ray's object store (an image of 150 KB
    or more goes through plasma) although its replicas listen for gRPC. This replica's own
    Serve settings are those of the cluster. Measured through the proxy on 2 cores with a
    near-free model (concurrency 16): 81-92 -> 107-114 req/s, the raylet's CPU a third.
    """
    routed = handle.options(_by_reference=not serve_constants.RAY_SERVE_USE_GRPC_BY_DEFAULT)
    by_reference = routed.handle_options._by_reference
    logger.info(
        "calls to the Classifier go %s",
        "through Ray's object store" if by_reference else "by gRPC",
    )
    return routed


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(self, classifier: DeploymentHandle | None, settings: dict[str, Any]) -> None:
        # A handle to the Classifier deployment, or None: this replica classifies itself
        # (classifier_in_ingress), with the same Classifier code configured by reconfigure().
        self._classifier = None if classifier is None else _cluster_transport(classifier)
        self._local: Classifier | None = None if classifier else Classifier.func_or_class()
        self._settings = Settings(**settings)
        self._metrics = IngressMetrics()
        if self._settings.auth_disabled:
            logger.warning("API keys are switched off (RECOGNIZE_AUTH_DISABLED): local demo only")
        elif not self._settings.api_keys:
            logger.error("no API keys configured (RECOGNIZE_API_KEYS): every request gets 401")
        open_paths = {"/healthz", "/readyz"}
        if not self._settings.docs_require_auth:
            open_paths |= {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
        _configure_app(
            max_body_bytes=self._settings.max_upload_bytes + _MULTIPART_OVERHEAD,
            body_timeout_s=self._settings.request_timeout_s,
            metrics=self._metrics,
            keys=None if self._settings.auth_disabled else KeyRing(self._settings.api_keys),
            open_paths=frozenset(open_paths),
            admission=_Admission(self._settings.max_pending_requests),
        )
        self._limits = Limits(
            max_pixels=self._settings.max_image_pixels, min_side=self._settings.min_image_side
        )
        self._thresholds = Thresholds(
            match=self._settings.match_threshold, mismatch=self._settings.mismatch_threshold
        )
        self._metadata: ModelMetadata | None = None
        self._providers: list[str] = []
        self._classes: list[ClassInfo] = []

    def in_progress(self) -> int:
        """Requests to /recognize this replica is working on (for a draining shutdown)."""
        return _requests_in_progress()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """The in-replica classifier's user_config (classifier_in_ingress only)."""
        if self._local is not None:
            self._local.reconfigure(user_config)
            self._metadata = None  # the model may have changed

    async def _model(self) -> ModelMetadata:
        """The classifier's model metadata, fetched once it reports ready, then cached."""
        if self._metadata is None:
            try:
                if self._local is not None:
                    info = self._local.ready()
                else:
                    assert self._classifier is not None
                    info = await asyncio.wait_for(self._classifier.ready.remote(), timeout=2.0)
            except (TimeoutError, ModelNotReady) as exc:
                raise ModelNotReady("model is loading or warming up; retry shortly") from exc
            except Exception as exc:
                raise ModelNotReady(f"classifier is not available: {type(exc).__name__}") from exc
            metadata = ModelMetadata.model_validate(info["metadata"])
            self._classes = class_infos(metadata)
            self._providers = list(info["providers"])
            self._metadata = metadata
        return self._metadata

    async def _classify(self, array: np.ndarray, deadline: float) -> ClassifyResult:
        """The classifier's answer by the request's deadline, with its failures as 503/504."""
        remaining = max(0.0, deadline - time.perf_counter())
        if self._local is not None:
            try:
                return await asyncio.wait_for(self._local.classify(array), remaining)
            except TimeoutError as exc:
                raise Timeout(
                    f"no answer within the {self._settings.request_timeout_s:g} s request deadline"
                ) from exc
        assert self._classifier is not None
        response = self._classifier.classify.remote(array)
        try:
            return await asyncio.wait_for(response, remaining)
        except TimeoutError as exc:
            response.cancel()
            raise Timeout(
                f"no answer within the {self._settings.request_timeout_s:g} s request deadline"
            ) from exc
        except BackPressureError as exc:
            raise Overloaded("the classifier's queue is full; retry after Retry-After") from exc
        except RecognizeError:
            raise
        except (RayError, RayServeException) as exc:
            # A replica that died or restarts: Serve replaces it; the client may retry.
            logger.warning("classifier call failed: %s", exc)
            raise ModelNotReady(
                f"the classifier is unavailable ({type(exc).__name__}); retry shortly"
            ) from exc

    @api.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz(self) -> Health:
        """The process is alive (says nothing about the model)."""
        return Health(status="ok")

    @api.get(
        "/readyz",
        response_model=Health,
        responses={503: {"model": ErrorResponse}},
        tags=["operations"],
    )
    async def readyz(self) -> Health:
        """The model is loaded and warmed up; 503 `not_ready` before."""
        await self._model()
        return Health(status="ready")

    @api.get(
        "/v1/model",
        response_model=ModelDetails,
        responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
        tags=["model"],
        dependencies=_KEY_REQUIRED,
    )
    async def model_details(self) -> ModelDetails:
        """The served model's metadata and its classes with their parent classes."""
        metadata = await self._model()
        taxonomy = default_taxonomy().by_id()
        return ModelDetails(
            name=metadata.name,
            arch=metadata.arch,
            version=metadata.version,
            input_size=metadata.input_size,
            interpolation=metadata.interpolation,
            precision=metadata.precision,
            taxonomy_version=metadata.taxonomy_version,
            providers=self._providers,
            match_threshold=self._thresholds.match,
            mismatch_threshold=self._thresholds.mismatch,
            parents=list(dict.fromkeys(c.parent for c in metadata.classes)),
            classes=[
                ModelClassInfo(
                    id=c.id,
                    label=c.label,
                    parent=c.parent,
                    body=taxonomy[c.id].body,
                    years=taxonomy[c.id].years,
                    enabled=taxonomy[c.id].enabled,
                    match_threshold=taxonomy[c.id].match_threshold,
                )
                for c in metadata.classes
            ],
        )

    @api.post(
        "/recognize",
        response_model=RecognizeResponse,
        responses=_ERRORS,
        tags=["recognition"],
        dependencies=_KEY_REQUIRED,
    )
    async def recognize(
        self,
        request: Request,
        image: Annotated[UploadFile, File(description="the car photo: JPEG, PNG or WebP")],
        vin: Annotated[str, Form(description="the audited car's VIN (17 characters)")],
        top_k: Annotated[int | None, Form(ge=1, le=10, description="classes listed, 1-10")] = None,
    ) -> RecognizeResponse:
        """Classify the photo and check it against the parent class the VIN names."""
        form = await request.form()  # parsed once by Starlette; the parameters come from it
        for name in ("image", "vin", "top_k"):
            if len(form.getlist(name)) > 1:
                raise InvalidRequest(
                    f"field '{name}' was sent {len(form.getlist(name))} times; send it once",
                    field=name,
                )
        data = await image.read(self._settings.max_upload_bytes + 1)
        if len(data) > self._settings.max_upload_bytes:
            raise PayloadTooLarge(f"image upload exceeds {self._settings.max_upload_bytes} bytes")
        request.state.vin_masked = mask_vin(vin)
        try:
            decoded_vin = decode_vin(vin)
        except InvalidVIN:
            self._metrics.vin_decode(None)
            raise
        self._metrics.vin_decode(decoded_vin)
        metadata = await self._model()
        deadline = request.state.started + self._settings.request_timeout_s
        prepared = await asyncio.to_thread(
            prepare_image,
            data,
            size=metadata.input_size,
            interpolation=metadata.interpolation,
            limits=self._limits,
        )
        result = await self._classify(prepared.array, deadline)
        decision = decide(
            result.logits,
            self._classes,
            expected_parent=decoded_vin.expected_parent,
            vin_reasons=decoded_vin.reasons,
            thresholds=self._thresholds,
            top_k=top_k or self._settings.default_top_k,
        )
        total_ms = (time.perf_counter() - request.state.started) * 1000
        request.state.verdict = decision.verdict.value
        self._metrics.stages(
            {
                "decode": prepared.decode_s,
                "preprocess": prepared.preprocess_s,
                "queue": result.queue_s,
                "inference": result.inference_s,
            }
        )
        return RecognizeResponse(
            request_id=request.state.request_id,
            verdict=decision.verdict.value,
            reasons=decision.reasons,
            parent_match=decision.parent_match,
            prediction=Prediction(
                class_id=decision.top.class_id,
                label=decision.top.label,
                parent=decision.top.parent,
                confidence=decision.top.probability,
                parent_probability=min(1.0, decision.parent_probability),
                top_k=[ClassProbability(**vars(s)) for s in decision.top_k],
            ),
            vin=decoded_vin,
            model=ModelSummary(
                name=metadata.name,
                arch=metadata.arch,
                version=metadata.version,
                input_size=metadata.input_size,
            ),
            batch_size=result.batch_size,
            latency_ms=Latency(
                decode=prepared.decode_s * 1000,
                preprocess=prepared.preprocess_s * 1000,
                queue=result.queue_s * 1000,
                inference=result.inference_s * 1000,
                total=total_ms,
            ),
        )
