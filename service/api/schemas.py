"""Request and response models of the HTTP API (they also make the OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from service.core.calibration import Certificate
from service.core.gate import ImageNetClass
from service.core.reasons import Reason
from service.core.taxonomy import VehicleClass
from service.core.verdict import ScoredClass, Verdict
from service.core.vin import VinDecode


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_vin"])
    message: str = Field(examples=["VIN must be 17 characters (got 16: 'WDD2050461F12345')"])
    field: str | None = Field(None, examples=["vin"])


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Prediction(BaseModel):
    class_id: str
    label: str
    parent: str
    confidence: float = Field(ge=0.0, le=1.0, description="softmax probability of the top class")
    parent_probability: float = Field(
        ge=0.0,
        le=1.0,
        description="summed probability of the VIN's parent class (of the predicted parent when "
        "the VIN names none the model knows)",
    )
    top_k: list[ScoredClass]


class VehicleCheck(BaseModel):
    """What the vehicle gate saw in the photo (service/core/gate.py)."""

    probability: float = Field(
        ge=0.0,
        le=1.0,
        description="summed probability of ImageNet's car, van, truck, bus and car-part classes "
        "(the gate model's vehicle_classes, GET /v1/model)",
    )
    present: bool = Field(
        description="probability >= the vehicle threshold; false sends the photo to "
        "manual_review with reason no_vehicle, whatever the classifier says"
    )


class ModelSummary(BaseModel):
    name: str
    arch: str
    version: str
    input_size: int


class CalibrationStatus(BaseModel):
    """Which decision rule decided: the model file's calibration (`recognize calibrate`) or not."""

    calibrated: bool = Field(
        description="true: the verdict used the model file's certified temperature and "
        "thresholds; false: the model has no calibration, or a setting overrides a threshold"
    )
    id: str | None = Field(
        description="the model file's calibration id (`recognize model-info`); null when the "
        "model has none",
        examples=["cal-3f2a9c41d0b7"],
    )
    temperature: float = Field(gt=0.0, description="logits are divided by it before softmax")
    match_threshold: float
    mismatch_threshold: float
    overrides: list[str] = Field(
        description="settings that replace the model's thresholds (RECOGNIZE_MATCH_THRESHOLD, "
        "RECOGNIZE_MISMATCH_THRESHOLD)",
        examples=[["match_threshold"]],
    )


class CalibrationDetails(CalibrationStatus):
    certificate: Certificate | None = Field(
        description="the false-match and false-mismatch bounds the calibration split gave; null "
        "for an uncalibrated model"
    )


class Latency(BaseModel):
    decode: float = Field(description="image decode, orientation and colour conversion, ms")
    preprocess: float = Field(description="resize to the model input, ms")
    queue: float = Field(description="waiting for the inference batch to start, ms")
    inference: float = Field(description="the batch's onnxruntime call, ms")
    total: float = Field(description="request received to response built, ms")


class VinResult(VinDecode):
    """The decoder's result as the API shows it."""

    valid: bool = Field(True, description="always true: invalid VINs are errors, not decodes")


class RecognizeResponse(BaseModel):
    request_id: str
    verdict: Verdict
    reasons: list[Reason]
    parent_match: bool | None = Field(
        description="the most probable parent (class probabilities summed per parent, as the "
        "verdict weighs them) is the VIN's parent; it can differ from prediction.parent, the "
        "top single class's parent. Null when the VIN gives none"
    )
    prediction: Prediction
    vehicle: VehicleCheck | None = Field(
        None,
        description="the vehicle gate's check of the photo; null when the gate is switched off "
        "(RECOGNIZE_GATE_ENABLED=false)",
    )
    vin: VinResult
    model: ModelSummary
    calibration: CalibrationStatus
    batch_size: int = Field(ge=1, description="requests that shared this request's inference batch")
    latency_ms: Latency


class GateDetails(BaseModel):
    """The vehicle gate model and the ImageNet classes whose probabilities it sums."""

    name: str
    arch: str
    version: str
    input_size: int
    precision: str
    vehicle_threshold: float = Field(
        description="a photo whose vehicle probability is below this goes to manual review"
    )
    vehicle_classes_version: str
    vehicle_classes: list[ImageNetClass]


class ModelDetails(BaseModel):
    name: str
    arch: str
    version: str
    input_size: int
    interpolation: str
    precision: str
    taxonomy_version: str
    providers: list[str]
    match_threshold: float
    mismatch_threshold: float
    calibration: CalibrationDetails
    parents: list[str]
    classes: list[VehicleClass]
    gate: GateDetails | None = Field(
        None, description="the vehicle gate; null when it is switched off"
    )


class Health(BaseModel):
    status: Literal["ok", "ready"]
