"""Read a whole audit chain after the fact: every entry in clear, the verification, the head."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any

from audit import AuditLog
from audit.backend import HEAD_SQL
from audit.connect import connect_backend
from audit.types import VerifyReport


@dataclasses.dataclass
class Chain:
    entries: list[dict[str, Any]]
    report: VerifyReport
    head_seq: int
    checkpoint_seq: int

    def intents(self) -> dict[str, dict[str, Any]]:
        """Entries that opened a forward, by audit id."""
        return {e["audit_id"]: e for e in self.entries if e["phase"] == "intent"}

    def outcomes(self) -> dict[str, list[dict[str, Any]]]:
        """Outcome entries by the intent they close."""
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self.entries:
            if entry["phase"] == "outcome" and entry["intent_id"]:
                found[entry["intent_id"]].append(entry)
        return dict(found)

    def dangling(self) -> list[str]:
        """Intents without exactly one outcome (should be none)."""
        outcomes = self.outcomes()
        return [i for i in self.intents() if len(outcomes.get(i, ())) != 1]


async def read_chain(url: str, master_key: bytes, signing_key: bytes) -> Chain:
    log = await AuditLog.open(url, master_key=master_key, signing_key=signing_key)
    try:
        entries = [e async for e in log.iter_entries(clear=True)]
        report = await log.verify()
    finally:
        await log.close()
    backend = await connect_backend(url)
    try:
        head = (await backend.fetchall(HEAD_SQL))[0]
    finally:
        await backend.close()
    return Chain(entries, report, int(head[0]), int(head[2]))
