"""Errors the audit package raises. It never imports the service package.

Messages name ids, fields and codes, never personal values: they may reach logs.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit package's errors."""


class AuditUnavailable(AuditError):
    """The store cannot take an entry now: the caller must not forward anything."""


class EntryNotFound(AuditError):
    """No entry with that id."""


class OutOfScope(AuditError):
    """The entry exists but belongs to a system outside the reader's scope."""


class InvalidAuditInput(AuditError, ValueError):
    """A malformed intent, filter, cursor or reason: the caller's mistake, answer 400."""


class KeyMismatch(AuditError):
    """The master key given does not match the one that wrapped the store's subject keys."""


class StoreNotInitialised(AuditError):
    """The database has no audit schema: run ``gdpr-gateway db upgrade``."""
