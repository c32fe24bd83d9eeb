"""What the client raises: one exception class per error code of the service.

    RecognizeClientError                 root of everything the client raises
    ├── RecognizeAPIError                the service answered with an error status
    │   ├── InvalidRequestError          422 invalid_request
    │   ├── InvalidVINError              422 invalid_vin
    │   ├── InvalidImageError            422 invalid_image (and the image errors below)
    │   │   ├── ImageTooSmallError       422 image_too_small
    │   │   ├── UnsupportedMediaTypeError 415 unsupported_media_type
    │   │   ├── PayloadTooLargeError     413 payload_too_large
    │   │   └── ImageTooLargeError       413 image_too_large
    │   ├── UnauthorizedError            401 unauthorized
    │   ├── ServiceUnavailableError      503 (NotReadyError, OverloadedError)
    │   └── ServerTimeoutError           504 timeout, 408 request_timeout
    ├── RecognizeConnectionError         no answer at all (ClientTimeoutError: read timeout)
    └── RecognizeResponseError           a success whose body is not the expected schema

The codes are the server's own (``service.core.errors``), so client and server cannot drift.
"""

from __future__ import annotations

from typing import Any

from service.core import errors as server

REQUEST_ID_HEADER = "X-Request-ID"

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
    server.InvalidRequest.code: InvalidRequestError,
    server.InvalidVIN.code: InvalidVINError,
    server.InvalidImage.code: InvalidImageError,
    server.ImageTooSmall.code: ImageTooSmallError,
    server.UnsupportedMedia.code: UnsupportedMediaTypeError,
    server.PayloadTooLarge.code: PayloadTooLargeError,
    server.ImageTooLarge.code: ImageTooLargeError,
    server.Unauthorized.code: UnauthorizedError,
    server.ModelNotReady.code: NotReadyError,
    server.Overloaded.code: OverloadedError,
    server.Timeout.code: ServerTimeoutError,
    server.BodyTimeout.code: ServerTimeoutError,
}
"""The service's error codes and the exception each one raises (others: ``RecognizeAPIError``)."""

# Codes for error bodies that are not the service's JSON (a proxy answered), by status: the
# service's own code for that status where it has one, so a caller sees one vocabulary.
CODES_BY_STATUS = {
    **{cls.status_code: cls.code for cls in server.FALLBACK_BY_STATUS},
    400: "bad_request",
    502: "bad_gateway",
    503: "unavailable",
}
CLASSES_BY_STATUS: dict[int, type[RecognizeAPIError]] = {
    401: UnauthorizedError,
    408: ServerTimeoutError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    503: ServiceUnavailableError,
    504: ServerTimeoutError,
}

