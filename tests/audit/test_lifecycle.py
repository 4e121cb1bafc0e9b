"""The log is composed and started explicitly: a writer starts no task until asked, the
log opens and closes as an async context manager, progress goes to a callback, and a
failure the log swallows leaves a log line naming its type, never its message."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from audit import AuditLog, AuditUnavailable, Outcome, upgrade
from audit.batch import Pending
from audit.bodies import intent_body
from audit.chain import GENESIS
from audit.checkpoint import Checkpoints
from audit.connect import connect_backend
from audit.ids import uuid7
from audit.writer import ChainWriter
from tests.audit.conftest import make_intent

SECRET = "anna@example.org"


async def _sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    await upgrade(url)
    return url


def _pending() -> Pending:
    intent = make_intent()
    body = intent_body(uuid7(), intent, "outcome", Outcome("applied"), None)
    return Pending(body, (intent.system, intent.customer_id))


async def test_a_writer_starts_no_task_until_started(tmp_path: Path) -> None:
    backend = await connect_backend(await _sqlite(tmp_path))
    try:
        before = asyncio.all_tasks()
        writer = ChainWriter(
            backend, master_key=os.urandom(32), on_batch=None, head=(0, GENESIS, 0, None),
            checkpoints=Checkpoints(os.urandom(32), every=1000, seconds=60.0),
        )  # fmt: skip
        assert asyncio.all_tasks() == before
        assert not writer.alive
        with pytest.raises(AuditUnavailable):
            await writer.append(_pending())
        await writer.close()  # closing a writer never started is harmless
        async with writer:
            assert writer.alive
            assert {t.get_name() for t in asyncio.all_tasks() - before} == {"audit-writer"}
            assert isinstance(await writer.append(_pending()), str)
        assert not writer.alive
        assert asyncio.all_tasks() == before
    finally:
        await backend.close()


async def test_the_log_is_an_async_context_manager(
    store_url: str, keys: dict[str, bytes]
) -> None:
    async with await AuditLog.open(store_url, **keys) as log:
        await log.record(make_intent(), Outcome("applied"))
        assert await log.ping()
    assert not await log.ping()
    with pytest.raises(AuditUnavailable):
        await log.record(make_intent(), Outcome("applied"))


async def test_verify_reports_progress_through_a_callback(
    tmp_path: Path, keys: dict[str, bytes]
) -> None:
    seen: list[tuple[int, int]] = []
    async with await AuditLog.open(await _sqlite(tmp_path), **keys) as log:
        for i in range(5):
            await log.record(make_intent(str(i)), Outcome("applied"))
        report = await log.verify(on_progress=lambda done, total: seen.append((done, total)))
    assert report.ok
    assert seen and seen[-1] == (5, 5)
    assert all(total == 5 for _, total in seen)


async def test_a_failing_batch_hook_is_logged_by_type_and_the_append_goes_on(
    tmp_path: Path, keys: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    def hook(size: int, seconds: float) -> None:
        raise RuntimeError(f"hook broke on {SECRET}")

    caplog.set_level(logging.WARNING, logger="audit")
    async with await AuditLog.open(await _sqlite(tmp_path), on_batch=hook, **keys) as log:
        assert isinstance(await log.record(make_intent(), Outcome("applied")), str)
        assert (await log.verify()).entries == 1
    lines = [r.getMessage() for r in caplog.records]
    assert "audit on_batch hook failed (RuntimeError)" in lines
    assert not any(SECRET in line for line in lines)


async def test_a_writer_stopped_by_a_defect_answers_every_waiting_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A defect in the writer task (injected: the committer's readiness check raises,
    its message quoting a personal value) must not leave callers waiting forever: each
    waiting entry is answered AuditUnavailable (the gateway then refuses to forward),
    new entries are refused, close() returns, and the log line names the type only."""
    backend = await connect_backend(await _sqlite(tmp_path))

    def defect(*_args: object) -> bool:
        raise RuntimeError(SECRET)

    try:
        writer = ChainWriter(
            backend, master_key=os.urandom(32), on_batch=None, head=(0, GENESIS, 0, None),
            checkpoints=Checkpoints(os.urandom(32), every=1000, seconds=60.0),
        )  # fmt: skip
        monkeypatch.setattr("audit.commit.Committer.ready", defect)
        writer.start()
        async with asyncio.timeout(10):  # before the fix: they waited forever
            results = await asyncio.gather(
                *(writer.append(_pending()) for _ in range(20)), return_exceptions=True
            )
        assert [type(r) for r in results] == [AuditUnavailable] * 20
        assert not writer.alive
        with pytest.raises(AuditUnavailable):
            await writer.append(_pending())
        await writer.close()
        assert "audit writer stopped (RuntimeError)" in caplog.text
        assert SECRET not in caplog.text
    finally:
        await backend.close()
