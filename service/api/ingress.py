"""The Ingress deployment: validate, decode, call the classifier, decide, respond.

The one-way path per request: bytes → imaging → classifier (batched) → verdict → response.
Preprocessing happens here, on CPU replicas that scale apart from the (GPU) classifier replicas,
and only the small uint8 model input crosses to the classifier. The HTTP plumbing (middleware,
error rendering, limits) is ``service.api._http``'s.
"""

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import numpy as np
from fastapi import File, Form, Request, Security, UploadFile
from fastapi.security import APIKeyHeader, HTTPBearer
from ray import serve
from ray.exceptions import RayError
from ray.serve.exceptions import BackPressureError, RayServeException
from ray.serve.handle import DeploymentHandle

from service._raycompat import by_the_cluster_transport
from service.api._http import (
    DOCS_PATHS,
    OPEN_PATHS,
    Admission,
    AppConfig,
    UploadLimit,
    api,
    configure_app,
    record_of,
    requests_in_progress,
)
from service.api._replicas import ReplicaWatch, serving_replicas
from service.api.schemas import (
    CalibrationDetails,
    CalibrationStatus,
    ErrorResponse,
    GateDetails,
    Health,
    Latency,
    ModelDetails,
    ModelSummary,
    Prediction,
    RecognizeResponse,
    VehicleCheck,
    VinResult,
)
from service.core.auth import KeyRing
from service.core.calibration import Calibration, DecisionRule
from service.core.errors import (
    InvalidRequest,
    InvalidVIN,
    ModelNotReady,
    Overloaded,
    RecognizeError,
    Timeout,
)
from service.core.gate import GateMetadata
from service.core.imaging import prepare_image
from service.core.modelfile import ModelMetadata
from service.core.taxonomy import VehicleClass
from service.core.verdict import decide
from service.core.vin import decode_vin, mask_vin
from service.inference.classifier import Classifier, ClassifyResult
from service.metrics import IngressMetrics
from service.settings import Settings

logger = logging.getLogger("ray.serve")

_NO_REPLICA = "no Classifier replica is running (Serve is starting one); retry shortly"

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (401, 408, 413, 415, 422, 503, 504)
}

# What /v1/model shows of the gate's metadata as it is; the threshold comes from the settings.
GATE_DETAILS_FROM_METADATA = set(GateDetails.model_fields) - {"vehicle_threshold"}

# Declared for the OpenAPI document only (either header works); the middleware enforces keys.
_BEARER = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer <key>`")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
_KEY_REQUIRED = [Security(_BEARER), Security(_API_KEY)]


def _cluster_transport(handle: DeploymentHandle) -> DeploymentHandle:
    """The handle, sending its calls the way this cluster's replicas take them.

    A handle keeps the transport of the process that built the application, fixed when that
    process imported Ray Serve: `recognize serve` imports it before setting Serve's
    environment, so the Classifier was called through Ray's object store (an image of 150 KB
    or more goes through plasma) although its replicas listen for gRPC. This replica's own
    Serve settings are those of the cluster. Measured through the proxy on 2 cores with a
    near-free model (concurrency 16): 81-92 -> 107-114 req/s, the raylet's CPU a third.
    """
    routed, by_reference = by_the_cluster_transport(handle)
    logger.info(
        "calls to the Classifier go %s",
        "through Ray's object store" if by_reference else "by gRPC",
    )
    return routed


@dataclass(frozen=True)
class _KnownModel:
    """A model the classifier reported, with its classes in the model's output order, the
    vehicle gate beside it, and the rule it is decided with (its own calibration, if any, with
    this replica's threshold overrides)."""

    metadata: ModelMetadata
    classes: list[VehicleClass]
    providers: list[str]
    gate: GateMetadata | None
    rule: DecisionRule


def _calibration_status(rule: DecisionRule) -> CalibrationStatus:
    """Which calibration a decision was made with, as every response states it."""
    return CalibrationStatus(
        calibrated=rule.calibrated,
        id=rule.calibration_id,
        temperature=rule.temperature,
        match_threshold=rule.thresholds.match,
        mismatch_threshold=rule.thresholds.mismatch,
        overrides=list(rule.overrides),
    )


def openapi_document() -> str:
    """The service's OpenAPI document as committed in ``docs/openapi.json``: pretty-printed
    with sorted keys, so a change to the API shows as a readable diff."""
    return json.dumps(api.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(self, classifier: DeploymentHandle | None, settings: dict[str, Any]) -> None:
        # A handle to the Classifier deployment, or None: this replica classifies itself
        # (classifier_in_ingress), with the same Classifier code configured by reconfigure().
        self._classifier = None if classifier is None else _cluster_transport(classifier)
        self._local: Classifier | None = None if classifier else Classifier.func_or_class()
        self._replicas = (
            None
            if classifier is None
            else ReplicaWatch(
                partial(serving_replicas, classifier.app_name, classifier.deployment_name)
            )
        )
        self._settings = Settings(**settings)
        # gather_in_ingress: concurrent requests' images go to the Classifier in one call. The
        # batch's size and wait follow the Classifier's user_config, reported by its ready().
        self._gather = (
            serve.batch(
                max_batch_size=self._settings.max_batch_size,
                batch_wait_timeout_s=self._settings.batch_wait_timeout_s,
                max_concurrent_batches=4,
            )(self._classify_gathered)
            if classifier is not None and self._settings.gather_in_ingress
            else None
        )
        self._metrics = IngressMetrics()
        if self._settings.auth_disabled:
            logger.warning("API keys are switched off (RECOGNIZE_AUTH_DISABLED): local demo only")
        elif not self._settings.api_keys:
            logger.error("no API keys configured (RECOGNIZE_API_KEYS): every request gets 401")
        self._upload = UploadLimit(self._settings.max_upload_bytes)
        docs = frozenset() if self._settings.docs_require_auth else DOCS_PATHS
        configure_app(
            AppConfig(
                upload=self._upload,
                body_timeout_s=self._settings.request_timeout_s,
                metrics=self._metrics,
                keys=None if self._settings.auth_disabled else KeyRing(self._settings.api_keys),
                open_paths=OPEN_PATHS | docs,
                admission=Admission(self._settings.max_pending_requests),
            )
        )
        self._limits = self._settings.limits()
        # Every model version the classifier reported, and the latest: during a rollout an
        # answer may come from the model before or after the switch, and each is decided with
        # its own classes and calibration, and named by its own version.
        self._models: dict[str, _KnownModel] = {}
        self._latest: _KnownModel | None = None

    def in_progress(self) -> int:
        """Requests to /recognize this replica is working on (for a draining shutdown)."""
        return requests_in_progress()

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """The in-replica classifier's user_config (classifier_in_ingress only)."""
        if self._local is not None:
            await self._local.reconfigure(user_config)
            self._latest = None  # the model may have changed

    async def _model(self) -> _KnownModel:
        """The latest model the classifier reported: asked for once it reports ready, then
        kept until an answer names another version."""
        if self._latest is None:
            try:
                if self._local is not None:
                    info = self._local.ready()
                else:
                    assert self._classifier is not None
                    assert self._replicas is not None  # both come with the Classifier's handle
                    info = await asyncio.wait_for(self._classifier.ready.remote(), timeout=2.0)
                    self._replicas.answered()
                    if self._gather is not None:
                        self._gather.set_max_batch_size(info["batching"]["max_batch_size"])
                        self._gather.set_batch_wait_timeout_s(
                            info["batching"]["batch_wait_timeout_s"]
                        )
            except (TimeoutError, ModelNotReady) as exc:
                raise ModelNotReady("model is loading or warming up; retry shortly") from exc
            except Exception as exc:
                raise ModelNotReady(f"classifier is not available: {type(exc).__name__}") from exc
            metadata = ModelMetadata.model_validate(info["metadata"])
            known = self._models.get(metadata.version)
            if known is None:
                calibration = info.get("calibration")
                known = _KnownModel(
                    metadata,
                    [VehicleClass.model_validate(c) for c in info["classes"]],
                    list(info["providers"]),
                    None if info["gate"] is None else GateMetadata.model_validate(info["gate"]),
                    self._decision_rule(
                        None if calibration is None else Calibration.model_validate(calibration)
                    ),
                )
                self._models[metadata.version] = known
            self._latest = known
        return self._latest

    async def _model_named(self, version: str) -> _KnownModel:
        """The model of that version, asked for if the classifier has not reported it yet."""
        for _ in range(3):  # another replica may still answer with the model before
            if version in self._models:
                break
            self._latest = None
            await self._model()
        try:
            known = self._models[version]
        except KeyError:
            raise ModelNotReady(f"model {version} is being rolled out; retry shortly") from None
        self._latest = known
        return known

    def _decision_rule(self, calibration: Calibration | None) -> DecisionRule:
        """The model's calibrated rule with the settings' overrides, logged once per model."""
        rule = self._settings.decision_rule(calibration)
        if calibration is None:
            logger.info("model has no calibration: deciding at %s", rule.thresholds)
        elif rule.overrides:
            logger.warning(
                "settings %s override calibration %s: deciding at %s, not at the certified %s",
                list(rule.overrides),
                calibration.id,
                rule.thresholds,
                calibration.thresholds,
            )
        else:
            logger.info("deciding with calibration %s at %s", calibration.id, rule.thresholds)
        return rule

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
        assert self._classifier is not None and self._replicas is not None
        self._replicas.start()
        if not self._replicas.serving:
            raise ModelNotReady(_NO_REPLICA)
        # A call of its own, or a share of a gathered one (which the other callers still need).
        response = self._classifier.classify.remote(array) if self._gather is None else None
        answer = asyncio.ensure_future(self._gather(array) if response is None else response)

        def abandon() -> None:
            if response is not None:
                response.cancel()
            answer.cancel()

        gone = asyncio.ensure_future(self._replicas.gone.wait())
        try:
            done, _ = await asyncio.wait(
                (answer, gone), timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:  # the client went away
            abandon()
            raise
        finally:
            gone.cancel()
        if answer not in done:
            abandon()
            if gone in done:
                # Serve would hold the call until a new replica starts: minutes after a node
                # loss on a real cluster, far past the deadline.
                raise ModelNotReady(_NO_REPLICA)
            raise Timeout(
                f"no answer within the {self._settings.request_timeout_s:g} s request deadline"
            )
        try:
            result = answer.result()
        except BackPressureError as exc:
            raise Overloaded("the classifier's queue is full; retry after Retry-After") from exc
        except ModelNotReady:
            self._latest = None  # e.g. a new model of another input size: ask again
            raise
        except RecognizeError:
            raise
        except (RayError, RayServeException) as exc:
            # A replica that died or restarts: Serve replaces it; the client may retry.
            logger.warning("classifier call failed: %s", exc)
            raise ModelNotReady(
                f"the classifier is unavailable ({type(exc).__name__}); retry shortly"
            ) from exc
        self._replicas.answered()
        return result

    async def _classify_gathered(self, arrays: list[np.ndarray]) -> list[ClassifyResult]:
        """One Classifier call for the images of concurrent requests (gather_in_ingress).
        Images prepared for models of different input sizes (during a rollout) go in one call
        per size; each caller gets its own image's result."""
        assert self._classifier is not None
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, array in enumerate(arrays):
            by_shape.setdefault(array.shape, []).append(i)
        groups = list(by_shape.values())
        answers = await asyncio.gather(
            *(
                self._classifier.classify_many.remote(np.stack([arrays[i] for i in group]))
                for group in groups
            )
        )
        results: dict[int, ClassifyResult] = {}
        for group, answered in zip(groups, answers, strict=True):
            results.update(zip(group, answered, strict=True))
        return [results[i] for i in range(len(arrays))]

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
        """The model is loaded, warmed up and served; 503 `not_ready` before, and while no
        Classifier replica runs (e.g. its GPU node was lost)."""
        if self._replicas is not None:
            self._replicas.start()
            if not self._replicas.serving:
                raise ModelNotReady(_NO_REPLICA)
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
        """The served model's metadata and its classes with their parent classes, and the
        vehicle gate's model with the ImageNet classes it sums."""
        known = await self._model()
        metadata, gate, rule = known.metadata, known.gate, known.rule
        calibration = rule.calibration
        return ModelDetails(
            name=metadata.name,
            arch=metadata.arch,
            version=metadata.version,
            input_size=metadata.input_size,
            interpolation=metadata.interpolation,
            precision=metadata.precision,
            taxonomy_version=metadata.taxonomy_version,
            providers=known.providers,
            match_threshold=rule.thresholds.match,
            mismatch_threshold=rule.thresholds.mismatch,
            calibration=CalibrationDetails(
                **_calibration_status(rule).model_dump(),
                certificate=None if calibration is None else calibration.certificate,
            ),
            parents=list(dict.fromkeys(c.parent for c in known.classes)),
            classes=known.classes,
            gate=None
            if gate is None
            else GateDetails(
                **gate.model_dump(include=GATE_DETAILS_FROM_METADATA),
                vehicle_threshold=rule.thresholds.vehicle,
            ),
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
        data = await image.read(self._upload.image_bytes + 1)
        self._upload.check_image(len(data))
        record = record_of(request)
        record.vin_masked = mask_vin(vin)
        try:
            decoded_vin = decode_vin(vin, self._settings.vin_rules_path)
        except InvalidVIN:
            self._metrics.vin_decode(None)
            raise
        self._metrics.vin_decode(decoded_vin)
        metadata = (await self._model()).metadata
        deadline = record.started + self._settings.request_timeout_s
        prepared = await asyncio.to_thread(
            prepare_image,
            data,
            size=metadata.input_size,
            interpolation=metadata.interpolation,
            limits=self._limits,
        )
        result = await self._classify(prepared.array, deadline)
        # The model that computed these logits, not the one this replica asked about last:
        # they differ for the answers around a model rollout.
        answered = await self._model_named(result.model_version)
        metadata = answered.metadata
        decision = decide(
            result.logits,
            answered.classes,
            expected_parent=decoded_vin.expected_parent,
            vin_reasons=decoded_vin.reasons,
            thresholds=answered.rule.thresholds,
            top_k=top_k or self._settings.default_top_k,
            vehicle_probability=result.vehicle_probability,
            temperature=answered.rule.temperature,
        )
        vehicle = None
        if result.vehicle_probability is not None:
            vehicle = VehicleCheck(
                probability=result.vehicle_probability,
                present=answered.rule.thresholds.vehicle_present(result.vehicle_probability),
            )
            self._metrics.vehicle_check(present=vehicle.present)
        latency = Latency(
            decode=prepared.decode_s * 1000,
            preprocess=prepared.preprocess_s * 1000,
            queue=result.queue_s * 1000,
            inference=result.inference_s * 1000,
            total=(time.perf_counter() - record.started) * 1000,
        )
        record.verdict = decision.verdict.value
        self._metrics.stages(latency)
        return RecognizeResponse(
            request_id=record.request_id,
            verdict=decision.verdict,
            reasons=decision.reasons,
            parent_match=decision.parent_match,
            prediction=Prediction(
                class_id=decision.top.class_id,
                label=decision.top.label,
                parent=decision.top.parent,
                confidence=decision.top.probability,
                parent_probability=decision.parent_probability,
                top_k=decision.top_k,
            ),
            vehicle=vehicle,
            vin=VinResult(**decoded_vin.model_dump()),
            model=ModelSummary(
                name=metadata.name,
                arch=metadata.arch,
                version=metadata.version,
                input_size=metadata.input_size,
            ),
            calibration=_calibration_status(answered.rule),
            batch_size=result.batch_size,
            latency_ms=latency,
        )
