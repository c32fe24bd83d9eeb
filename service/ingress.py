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

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser
from starlette.responses import Response

from service import __version__
from service.errors import ModelNotReady, PayloadTooLarge, RecognizeError
from service.imaging import Limits, prepare_image
from service.modelfile import ModelMetadata
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
from service.vin import decode_vin

logger = logging.getLogger("ray.serve")

# Multipart parts above this size would be spooled to a temporary file; keep uploads in memory
# (photos are never written to disk). The upload limit itself is enforced per request.
MultiPartParser.spool_max_size = 64 * 1024 * 1024

_MULTIPART_OVERHEAD = 64 * 1024  # boundaries, headers and the small text fields

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (413, 415, 422, 503)
}

api = FastAPI(
    title="Recognize",
    version=__version__,
    description="Checks a dealer audit photo against the car's VIN: classifies the photo into "
    "a vehicle class, decodes the VIN's expected parent class, and answers match, mismatch or "
    "manual review.",
)


def _respond(exc: RecognizeError) -> JSONResponse:
    return JSONResponse(status_code=exc.status_code, content=exc.to_dict())


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(status_code=status, content=body)


@api.exception_handler(RecognizeError)
async def _recognize_error(_: Request, exc: RecognizeError) -> JSONResponse:
    return _respond(exc)


@api.exception_handler(RequestValidationError)
async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
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
async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
    return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


@api.middleware("http")
async def _request_context(request: Request, call_next: Any) -> Response:
    # Serve's proxy keeps a client's X-Request-ID (or makes one), passes it on and echoes it in
    # the response; outside Serve this middleware does the same.
    supplied = request.headers.get("x-request-id")
    request.state.request_id = supplied or uuid.uuid4().hex
    request.state.started = time.perf_counter()
    max_body = getattr(api.state, "max_body_bytes", None)
    declared = request.headers.get("content-length", "")
    if max_body is not None and declared.isdigit() and int(declared) > max_body:
        # Refuse before reading a byte of an oversized upload.
        response: Response = _respond(
            PayloadTooLarge(
                f"request body of {declared} bytes exceeds the upload limit of {max_body} bytes"
            )
        )
    else:
        try:
            response = await call_next(request)
        except Exception:
            logger.exception("unhandled error in request %s", request.state.request_id)
            response = _error(
                500, "internal_error", "internal error; the request id names it in the logs"
            )
    if not supplied:
        response.headers["X-Request-ID"] = request.state.request_id
    return response


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(self, classifier: DeploymentHandle, settings: dict[str, Any]) -> None:
        self._classifier = classifier
        self._settings = Settings(**settings)
        api.state.max_body_bytes = self._settings.max_upload_bytes + _MULTIPART_OVERHEAD
        self._limits = Limits(
            max_pixels=self._settings.max_image_pixels, min_side=self._settings.min_image_side
        )
        self._thresholds = Thresholds(
            match=self._settings.match_threshold, mismatch=self._settings.mismatch_threshold
        )
        self._metadata: ModelMetadata | None = None
        self._providers: list[str] = []
        self._classes: list[ClassInfo] = []

    async def _model(self) -> ModelMetadata:
        """The classifier's model metadata, fetched once it reports ready, then cached."""
        if self._metadata is None:
            try:
                info = await asyncio.wait_for(self._classifier.ready.remote(), timeout=2.0)
            except (TimeoutError, ModelNotReady) as exc:
                raise ModelNotReady("model is loading or warming up; retry shortly") from exc
            except Exception as exc:
                raise ModelNotReady(f"classifier is not available: {type(exc).__name__}") from exc
            metadata = ModelMetadata.model_validate(info["metadata"])
            taxonomy = default_taxonomy().by_id()
            self._classes = [
                ClassInfo(
                    c.id, c.label, c.parent, taxonomy[c.id].enabled, taxonomy[c.id].match_threshold
                )
                for c in metadata.classes
            ]
            self._providers = list(info["providers"])
            self._metadata = metadata
        return self._metadata

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
        responses={503: {"model": ErrorResponse}},
        tags=["model"],
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
        "/recognize", response_model=RecognizeResponse, responses=_ERRORS, tags=["recognition"]
    )
    async def recognize(
        self,
        request: Request,
        image: Annotated[UploadFile, File(description="the car photo: JPEG, PNG or WebP")],
        vin: Annotated[str, Form(description="the audited car's VIN (17 characters)")],
        top_k: Annotated[int | None, Form(ge=1, le=10, description="classes listed, 1-10")] = None,
    ) -> RecognizeResponse:
        """Classify the photo and check it against the parent class the VIN names."""
        data = await image.read(self._settings.max_upload_bytes + 1)
        if len(data) > self._settings.max_upload_bytes:
            raise PayloadTooLarge(f"image upload exceeds {self._settings.max_upload_bytes} bytes")
        decoded_vin = decode_vin(vin)
        metadata = await self._model()
        prepared = await asyncio.to_thread(
            prepare_image,
            data,
            size=metadata.input_size,
            interpolation=metadata.interpolation,
            limits=self._limits,
        )
        result = await self._classifier.classify.remote(prepared.array)
        decision = decide(
            result.logits,
            self._classes,
            expected_parent=decoded_vin.expected_parent,
            vin_reasons=decoded_vin.reasons,
            thresholds=self._thresholds,
            top_k=top_k or self._settings.default_top_k,
        )
        total_ms = (time.perf_counter() - request.state.started) * 1000
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
