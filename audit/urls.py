"""The store URL: which backend, and how each driver reaches it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from audit.errors import InvalidAuditInput


@dataclass(frozen=True)
class StoreUrl:
    """``kind`` is ``sqlite`` (then ``path``) or ``postgresql`` (then ``dsn`` for asyncpg)."""

    kind: str
    sqlalchemy_url: str
    path: Path | None = None
    dsn: str | None = None

    def __repr__(self) -> str:  # the URL may carry a password: never print it whole
        return f"StoreUrl(kind={self.kind!r})"


def parse_url(url: str) -> StoreUrl:
    """Accept ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://user@host:port/db``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InvalidAuditInput("the audit store URL is not a database URL") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise InvalidAuditInput("the SQLite audit store needs a file path")
        path = Path(database)
        return StoreUrl(
            kind="sqlite",
            sqlalchemy_url=parsed.set(drivername="sqlite+aiosqlite").render_as_string(False),
            path=path,
        )
    if backend in {"postgresql", "postgres"}:
        sa_url = parsed.set(drivername="postgresql+asyncpg")
        dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return StoreUrl(
            kind="postgresql",
            sqlalchemy_url=sa_url.render_as_string(hide_password=False),
            dsn=dsn,
        )
    raise InvalidAuditInput("the audit store URL must be sqlite+aiosqlite or postgresql+asyncpg")
