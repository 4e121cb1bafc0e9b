"""SQLite: a customer's lock holds across processes (the workers of ``serve --workers``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from audit.errors import LockTimeout
from audit.locks import lock_key
from audit.store_sqlite import SqliteBackend

HOLDER = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from audit.store_sqlite import SqliteBackend

    async def main() -> None:
        backend = await SqliteBackend.connect(Path(sys.argv[1]))
        async with backend.subject_lock(int(sys.argv[2]), 5.0):
            print("held", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await backend.close()

    asyncio.run(main())
""")


def test_a_customer_locked_by_another_process_waits_then_times_out(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    key, other = lock_key("keycom", "100001"), lock_key("keycom", "100002")
    holder = subprocess.Popen(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", HOLDER, str(path), str(key)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None

    async def contend() -> None:
        backend = await SqliteBackend.connect(path)
        try:
            with pytest.raises(LockTimeout):
                async with backend.subject_lock(key, 0.2):
                    pass
            async with backend.subject_lock(other, 0.2):  # another customer: free
                pass
            holder.stdin.write("\n")  # type: ignore[union-attr]
            holder.stdin.flush()  # type: ignore[union-attr]
            async with backend.subject_lock(key, 5.0):  # released by the other process
                pass
        finally:
            await backend.close()

    try:
        assert holder.stdout.readline().strip() == "held"
        asyncio.run(contend())
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate(timeout=10)  # closes the pipes
