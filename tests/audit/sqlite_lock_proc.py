"""A process on one SQLite audit store for the tests of :mod:`audit.sqlite_locks`, driven
line by line on stdin; it answers each line with one line on stdout:

* ``hold KEY WAIT`` - hold customer KEY (a lock key), waiting WAIT seconds at most:
  ``held`` or ``timeout``; ``release KEY`` - leave it: ``released``;
* ``mode`` - ``alone``, ``shared`` or ``out`` (this process's mode on the file);
* ``block SECONDS`` - the event loop busy that long (its timer cannot run): ``unblocked``;
* ``count KEY N FILE`` - N times: hold KEY (wait 10 s), read the number in FILE, let the
  loop run, write it plus one, release: ``counted``;
* ``exit`` - close the store.

The event loop runs throughout (it reads stdin on a thread).
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from audit.errors import LockTimeout
from audit.store_sqlite import SqliteBackend

MODES = {0: "out", 1: "shared", 2: "alone"}


async def main(path: Path) -> None:
    backend = await SqliteBackend.connect(path)
    held: dict[int, AbstractAsyncContextManager[None]] = {}
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while True:
        words = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not words or words[0] == "exit":
            break
        if words[0] == "hold":
            key, wait = int(words[1]), float(words[2])
            lock = backend.subject_lock(key, wait)
            try:
                await lock.__aenter__()
            except LockTimeout:
                answer = "timeout"
            else:
                held[key], answer = lock, "held"
        elif words[0] == "release":
            await held.pop(int(words[1])).__aexit__(None, None, None)
            answer = "released"
        elif words[0] == "mode":
            subjects = backend._subjects
            answer = MODES[subjects.mode if subjects is not None else 0]
        elif words[0] == "count":
            await count(backend, int(words[1]), int(words[2]), Path(words[3]))
            answer = "counted"
        elif words[0] == "block":
            time.sleep(float(words[1]))  # noqa: ASYNC251 - the loop blocked on purpose
            answer = "unblocked"
        else:
            answer = "unknown"
        print(answer, flush=True)
    await backend.close()


async def count(backend: SqliteBackend, key: int, times: int, file: Path) -> None:
    for _ in range(times):
        async with backend.subject_lock(key, 10.0):
            number = int(file.read_text() or "0")  # noqa: ASYNC240 - a tiny file, on purpose
            await asyncio.sleep(0.001)  # another holder would read the same number now
            file.write_text(str(number + 1))  # noqa: ASYNC240


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
