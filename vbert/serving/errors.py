"""The one error path of the server: every failure is a `ServingError` with a code, which REST answers with its HTTP
status and `{"error": message}` (TF-Serving's body) and gRPC with its status code and the message.

A request the server can never accept is refused for good (400, 404, 413, 415); only overload is temporary: 503
with `Retry-After` (gRPC UNAVAILABLE) when the queue is full, 504 (DEADLINE_EXCEEDED) when queued work could not
start before its deadline. Neither is computed.
"""

from __future__ import annotations

import enum


class Code(enum.Enum):
    # name = (HTTP status, gRPC status name)
    INVALID_ARGUMENT = (400, "INVALID_ARGUMENT")
    NOT_FOUND = (404, "NOT_FOUND")
    METHOD_NOT_ALLOWED = (405, "UNIMPLEMENTED")
    REQUEST_TIMEOUT = (408, "DEADLINE_EXCEEDED")  # the client sent its body too slowly
    TOO_LARGE = (413, "INVALID_ARGUMENT")  # over a limit the server never accepts
    UNSUPPORTED_MEDIA_TYPE = (415, "INVALID_ARGUMENT")
    CLIENT_DISCONNECTED = (499, "CANCELLED")  # nginx's code: the client left before its answer
    INTERNAL = (500, "INTERNAL")
    UNIMPLEMENTED = (501, "UNIMPLEMENTED")
    UNAVAILABLE = (503, "UNAVAILABLE")  # overloaded: retry later
    DEADLINE_EXCEEDED = (504, "DEADLINE_EXCEEDED")

    @property
    def http_status(self) -> int:
        return self.value[0]

    @property
    def grpc_status(self) -> str:
        return self.value[1]


class ServingError(Exception):
    """A request that fails, and why; `retry_after` (seconds) for overload."""

    def __init__(self, code: Code, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)
