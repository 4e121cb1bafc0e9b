"""A writer process for the crash test: prints each intent id once ``begin`` returned,
then waits to be killed (SIGKILL) without ever writing an outcome."""

from __future__ import annotations

import asyncio
import base64
import sys

from audit import AuditLog
from tests.audit.conftest import make_intent


async def main(url: str, master: bytes, signing: bytes, count: int) -> None:
    log = await AuditLog.open(url, master_key=master, signing_key=signing)
    for n in range(count):
        audit_id = await log.begin(make_intent(str(8000 + n)))
        print(audit_id, flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    url, master, signing, count = sys.argv[1:5]
    asyncio.run(main(url, base64.b64decode(master), base64.b64decode(signing), int(count)))
