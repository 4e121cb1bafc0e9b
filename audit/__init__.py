"""The tamper-evident, write-ahead audit log with per-subject encryption."""

from audit.errors import (
    AuditError,
    AuditUnavailable,
    EntryNotFound,
    InvalidAuditInput,
    KeyMismatch,
    StoreNotInitialised,
)
from audit.log import AuditLog
from audit.migrate import upgrade
from audit.rotate import rotate_master_key
from audit.statedir import AuditSettings, open_demo_state
from audit.types import Intent, Outcome, Page, VerifyReport

__all__ = [
    "AuditError",
    "AuditLog",
    "AuditSettings",
    "AuditUnavailable",
    "EntryNotFound",
    "Intent",
    "InvalidAuditInput",
    "KeyMismatch",
    "Outcome",
    "Page",
    "StoreNotInitialised",
    "VerifyReport",
    "open_demo_state",
    "rotate_master_key",
    "upgrade",
]
