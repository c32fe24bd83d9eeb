"""Typed client for the Recognize service, for the audit portal and other callers.

    from service.client import RecognizeClient

    with RecognizeClient("http://127.0.0.1:8000", api_key=key) as client:
        result = client.recognize("car.jpg", "WDD2052041F123456", request_id=audit_id)
        print(result.verdict, result.prediction.parent_probability)

Importable without Ray, FastAPI or onnxruntime (tests/unit/test_layout.py enforces it): only
httpx, pydantic and the service's API models. ``_client`` holds the clients, ``_errors`` the
exception tree, ``_retry`` when a call is tried again.
"""

from service.api.schemas import ErrorResponse, ModelDetails, RecognizeResponse
from service.client._client import AsyncRecognizeClient, ImageInput, RecognizeClient
from service.client._errors import (
    ERROR_CLASSES,
    ClientTimeoutError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageError,
    InvalidRequestError,
    InvalidVINError,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    RecognizeAPIError,
    RecognizeClientError,
    RecognizeConnectionError,
    RecognizeResponseError,
    ServerTimeoutError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from service.client._retry import NO_RETRIES, RetryPolicy, parse_retry_after

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
    "parse_retry_after",
]
