"""The domain's exception tree. Each carries a problem code and HTTP status.

Domain modules raise these and never import aiohttp; one middleware
(``service.middleware``) turns them into ``application/problem+json``. Messages name
fields and codes, never values: they may reach logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from common.vocabulary import FieldCode, Problem


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One entry of a problem's ``errors[]``: a field path, a field code, a message."""

    field: str
    code: FieldCode | Problem
    message: str


class GatewayError(Exception):
    """Base of every error the gateway answers with a problem document."""

    code: Problem = Problem.INTERNAL_ERROR
    status: int = 500
    title: str = "Internal error"
    #: the answer closes the connection (the request's bytes cannot be trusted to end)
    close_connection: ClassVar[bool] = False
    #: the audit entry that records this refusal or failure, when one was written
    audit_id: str | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldProblem] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = tuple(errors)
        self.retry_after = retry_after


class BadRequest(GatewayError):
    code, status, title = Problem.MALFORMED_JSON, 400, "Malformed JSON"


class MalformedRequest(GatewayError):
    """The HTTP request itself could not be read (a broken chunked or compressed body)."""

    code, status, title = Problem.BAD_REQUEST, 400, "Bad request"
    close_connection = True


class RequestTimeout(GatewayError):
    """The body did not arrive within the configured time."""

    code, status, title = Problem.REQUEST_TIMEOUT, 408, "Request timeout"
    close_connection = True


class NotAnObject(GatewayError):
    code, status, title = Problem.NOT_AN_OBJECT, 400, "Body is not a JSON object"


class Unauthenticated(GatewayError):
    code, status, title = Problem.UNAUTHENTICATED, 401, "Unauthenticated"


class Forbidden(GatewayError):
    code, status, title = Problem.FORBIDDEN, 403, "Forbidden"


class UnknownSystem(GatewayError):
    code, status, title = Problem.UNKNOWN_SYSTEM, 404, "Unknown system"


class CustomerNotFound(GatewayError):
    code, status, title = Problem.CUSTOMER_NOT_FOUND, 404, "Customer not found"


class AuditEntryNotFound(GatewayError):
    code, status, title = Problem.AUDIT_ENTRY_NOT_FOUND, 404, "Audit entry not found"


class PayloadTooLarge(GatewayError):
    code, status, title = Problem.PAYLOAD_TOO_LARGE, 413, "Payload too large"


class UnsupportedMediaType(GatewayError):
    code, status, title = Problem.UNSUPPORTED_MEDIA_TYPE, 415, "Unsupported media type"


class ValidationFailed(GatewayError):
    code, status, title = Problem.VALIDATION_FAILED, 422, "Validation failed"


class PolicyDenied(GatewayError):
    """A decision of the policy engine: the code is the engine's problem code."""

    _STATUS: ClassVar[dict[Problem, int]] = {
        Problem.FORBIDDEN: 403,
        Problem.PURPOSE_REQUIRED: 403,
        Problem.PURPOSE_NOT_ALLOWED: 403,
        Problem.FIELD_NOT_EDITABLE: 403,
        Problem.CUSTOMER_ARCHIVED: 409,
        Problem.RECORD_RESTRICTED: 409,
        Problem.WOULD_CLEAR_UNKNOWN_FIELDS: 409,
    }

    def __init__(
        self, code: Problem, detail: str, *, errors: Sequence[FieldProblem] = ()
    ) -> None:
        super().__init__(detail, errors=errors)
        self.code = code
        self.status = self._STATUS.get(code, 403)
        self.title = code.replace("_", " ").capitalize()


class EditConflict(GatewayError):
    code, status, title = Problem.EDIT_CONFLICT, 409, "Edit conflict"


class IdempotencyKeyInvalid(GatewayError):
    """The ``Idempotency-Key`` header is not 1-255 printable ASCII characters."""

    code, status, title = Problem.IDEMPOTENCY_KEY_INVALID, 400, "Invalid idempotency key"


class IdempotencyInProgress(GatewayError):
    """A request with the same key is still running (past the bounded wait)."""

    code, status, title = Problem.IDEMPOTENCY_IN_PROGRESS, 409, "Idempotency key in use"


class IdempotencyKeyReused(GatewayError):
    """The same key was sent with another request (method, path or body)."""

    code, status, title = Problem.IDEMPOTENCY_KEY_REUSED, 422, "Idempotency key reused"


class PreconditionFailed(GatewayError):
    code, status, title = Problem.PRECONDITION_FAILED, 412, "Precondition failed"


class RateLimited(GatewayError):
    code, status, title = Problem.RATE_LIMITED, 429, "Rate limited"


class UpstreamError(GatewayError):
    """The upstream answered with an error it should not have, or could not be reached."""

    code, status, title = Problem.UPSTREAM_ERROR, 502, "Upstream error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        upstream_status: int | None = None,
        errors: Sequence[FieldProblem] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail, errors=errors, retry_after=retry_after)
        self.upstream_status = upstream_status


class UpstreamAuthFailed(UpstreamError):
    """The upstream refused the gateway's own credentials (a deployment fault)."""


class UpstreamRejected(UpstreamError):
    """The upstream refused the body (its own validation); ``errors`` names fields."""


class UpstreamRateLimited(UpstreamError):
    """The upstream kept answering 429 after the bounded backoff."""

    code, status, title = Problem.RATE_LIMITED, 429, "Upstream rate limit"


class CircuitOpen(UpstreamError):
    """The circuit breaker for this upstream is open: the call was not attempted."""


class UpstreamUnreachable(UpstreamError):
    """No connection could be made (refused, DNS, connect timeout): the request never
    left the gateway, so nothing changed upstream."""


class UpstreamOutcomeUnknown(UpstreamError):
    """A write was sent (or may have been) and no usable answer came back: a reset or a
    timeout after the request was handed to the connection, an answer cut short, a
    2xx that cannot be read, a proxy's 502/504. Whether it took effect is unknown."""

    code, status, title = Problem.UPSTREAM_TIMEOUT, 504, "Upstream timeout"


class UpstreamTimeout(UpstreamOutcomeUnknown):
    """The upstream did not answer in time: whether a write took effect is unknown."""
