"""A writer process for the crash tests, killed (SIGKILL) mid-request.

``intents``: prints each intent id once ``begin`` returned, then waits to be killed
without ever writing an outcome. ``lazy-outcome``: writes one intent, queues its
outcome with ``finish(durable=False)``, prints both ids and kills itself before the
outcome's batch could be written. ``wal`` (SQLite): background WAL checkpoints every
5 ms (:mod:`audit.wal`), and it prints each id ``record`` returned, without end.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys

from audit import AuditLog, Outcome
from tests.audit.conftest import make_intent


async def main(url: str, master: bytes, signing: bytes, count: int, mode: str) -> None:
    if mode == "wal":
        import audit.wal

        audit.wal.INTERVAL_SECONDS = 0.005
    log = await AuditLog.open(url, master_key=master, signing_key=signing)
    if mode == "wal":
        n = 0
        while True:
            print(await log.record(make_intent(str(8000 + n % 50)), Outcome("applied")), flush=True)
            n += 1
    if mode == "lazy-outcome":
        intent_id = await log.begin(make_intent("8100"))
        outcome_id = await log.finish(intent_id, Outcome("applied"), durable=False)
        print(intent_id, outcome_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # before the event loop runs the writer again
    for n in range(count):
        audit_id = await log.begin(make_intent(str(8000 + n)))
        print(audit_id, flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    url, master, signing, count = sys.argv[1:5]
    mode = sys.argv[5] if len(sys.argv) > 5 else "intents"
    asyncio.run(main(url, base64.b64decode(master), base64.b64decode(signing), int(count), mode))
