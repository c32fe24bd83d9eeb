"""Errors of the Recognize service, and how each one reaches a client.

    RecognizeError                      base; carries an HTTP status and a stable ``code``
    ├── InvalidRequest      422  invalid_request         missing field, bad top_k, ...
    ├── InvalidVIN          422  invalid_vin             not 17 VIN characters, bad check digit
    ├── InvalidImage        422  invalid_image           not an image, corrupt, truncated
    ├── ImageTooSmall       422  image_too_small         a side below the minimum
    ├── UnsupportedMedia    415  unsupported_media_type  a real image, but not JPEG/PNG/WebP
    ├── PayloadTooLarge     413  payload_too_large       more bytes than the upload limit
    ├── ImageTooLarge       413  image_too_large         more pixels than the limit (bombs)
    ├── Unauthorized        401  unauthorized            no API key, or not a configured one
    ├── ModelNotReady       503  not_ready               model not loaded / warmed up yet
    ├── Overloaded          503  overloaded              queues full; retry after Retry-After
    ├── Timeout             504  timeout                 the request's deadline passed
    ├── BodyTimeout         408  request_timeout         the upload did not arrive in time
    ├── NotFound            404  not_found               no such route
    ├── MethodNotAllowed    405  method_not_allowed      the route exists, the method does not
    ├── InternalError       500  internal_error          a bug: the request id names it in the logs
    └── ModelContractError  (start-up only)              the ONNX file breaks the metadata contract

Every client-facing error renders as ``{"error": {"code", "message", "field"}}``; the message
names the bad value and the rule it broke.
"""

from __future__ import annotations

from typing import Any


class RecognizeError(Exception):
    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class InvalidRequest(RecognizeError):
    status_code = 422
    code = "invalid_request"


class InvalidVIN(RecognizeError):
    status_code = 422
    code = "invalid_vin"

    def __init__(self, message: str, *, field: str | None = "vin") -> None:
        super().__init__(message, field=field)


class InvalidImage(RecognizeError):
    status_code = 422
    code = "invalid_image"

    def __init__(self, message: str, *, field: str | None = "image") -> None:
        super().__init__(message, field=field)


class ImageTooSmall(InvalidImage):
    code = "image_too_small"


class UnsupportedMedia(InvalidImage):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(InvalidImage):
    status_code = 413
    code = "payload_too_large"


class ImageTooLarge(InvalidImage):
    status_code = 413
    code = "image_too_large"


class Unauthorized(RecognizeError):
    status_code = 401
    code = "unauthorized"


class Overloaded(RecognizeError):
    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Timeout(RecognizeError):
    status_code = 504
    code = "timeout"


class BodyTimeout(RecognizeError):
    status_code = 408
    code = "request_timeout"


class ModelNotReady(RecognizeError):
    status_code = 503
    code = "not_ready"


class NotFound(RecognizeError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(RecognizeError):
    status_code = 405
    code = "method_not_allowed"


class InternalError(RecognizeError):
    status_code = 500
    code = "internal_error"


# The code each status stands for when the body names none (an HTTP error raised outside the
# tree, or a proxy's plain-text answer seen by the client).
FALLBACK_BY_STATUS: tuple[type[RecognizeError], ...] = (
    InvalidRequest,
    Unauthorized,
    NotFound,
    MethodNotAllowed,
    BodyTimeout,
    PayloadTooLarge,
    UnsupportedMedia,
    InternalError,
    Timeout,
)


class ModelContractError(RecognizeError):
    """The model file cannot be served: missing or inconsistent metadata."""

    code = "model_contract"
