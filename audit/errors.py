"""Errors the audit package raises. It never imports the service package.

Messages name ids, fields and codes, never personal values: they may reach logs.
"""

from __future__ import annotations

from enum import StrEnum


class AuditError(Exception):
    """Base of the audit package's errors."""


class AuditUnavailable(AuditError):
    """The store cannot take an entry now: the caller must not forward anything.

    ``retry_after`` is how long a retry should wait, in seconds (the answer's
    ``Retry-After``)."""

    retry_after: float = 5.0

    def __init__(self, *args: object, retry_after: float | None = None) -> None:
        super().__init__(*args)
        if retry_after is not None:
            self.retry_after = retry_after


class LockWait(StrEnum):
    """What a write waited for when it gave up (the metric's ``wait`` label)."""

    #: the customer's lock, held by another write to the same customer
    SUBJECT = "subject"
    #: a connection of the PostgreSQL lock pool, every one held by a write in flight
    CONNECTION = "connection"


class LockTimeout(AuditUnavailable):
    """A customer's lock could not be had within the configured wait."""

    def __init__(self, wait: LockWait, seconds: float) -> None:
        super().__init__(
            f"the customer's lock could not be had within {seconds:g} s ({wait})",
            retry_after=max(1.0, seconds),
        )
        self.wait = wait


class EntryNotFound(AuditError):
    """No entry with that id."""


class OutOfScope(AuditError):
    """The entry exists but belongs to a system outside the reader's scope."""


class InvalidAuditInput(AuditError, ValueError):
    """A malformed intent, filter, cursor or reason: the caller's mistake, answer 400."""


class ValueRefused(InvalidAuditInput):
    """The store refused a value of this entry or query (text or a size it cannot hold).

    The caller's input, not an outage: in a group commit only the entry it belongs to
    fails."""


class KeyMismatch(AuditError):
    """The master key given does not match the one that wrapped the store's subject keys."""


class StoreNotInitialised(AuditError):
    """The database has no audit schema: run ``gdpr-gateway db upgrade``."""
