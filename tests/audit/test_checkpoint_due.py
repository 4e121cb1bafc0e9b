"""When a checkpoint is due (audit/checkpoint.py): every ``every`` entries or after
``seconds``; the last checkpoint's time is parsed once per distinct value, not per batch
(issue 11), with the same answers."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from audit import checkpoint
from audit.checkpoint import Checkpoints
from audit.entries import iso, parse_iso


def test_due_by_count_and_by_age_parsing_each_time_once(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []

    def counting(text: str):
        parsed.append(text)
        return parse_iso(text)

    monkeypatch.setattr(checkpoint, "parse_iso", counting)
    points = Checkpoints(os.urandom(32), every=10, seconds=60.0)
    recent = iso(datetime.now(UTC))
    old = iso(datetime.now(UTC) - timedelta(seconds=120))
    assert not points.due(5, 5, recent)  # nothing since the last one
    assert not points.due(6, 5, recent)
    assert not points.due(7, 5, recent)
    assert points.due(15, 5, recent)  # every 10 entries
    assert points.due(6, 5, old)  # 60 s since the last one
    assert points.due(7, 5, old)
    assert not points.due(6, 5, recent)  # the other value again
    assert parsed == [recent, old, recent]  # once per change of value, not per call
    assert not points.due(6, 5, None)  # none yet: counted from when the log opened
    assert time.time() - points._opened_at < 60
