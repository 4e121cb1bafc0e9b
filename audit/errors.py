"""Errors the audit package raises. It never imports the service package."""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit package's errors."""


class AuditUnavailable(AuditError):
    """The store cannot take an entry now: the caller must not forward anything."""


class EntryNotFound(AuditError):
    """No entry with that id."""
