"""Verification of the whole log: recompute the chain up to the head, then check every
signed checkpoint against it (the checkpoints catch a truncated tail or a rewritten
chain whose hashes were recomputed). On PostgreSQL each row's query columns are checked
against its hashed body as well: the writer sends them (migration 0006), so nothing but
this check stops a row from being hidden from the queries by an altered column.

The chain is checked in segments (:mod:`audit.verify_segment`), joined here in order; on
PostgreSQL a long chain's segments are checked by helper processes as well as by this
process. Progress goes to a callback, ``on_progress(entries checked, entries in all)``,
after each segment joined; the CLI turns it into a progress bar, the library draws
nothing. A helper that ends early leaves its segments to this process, and a warning
says why: what it ended on, its exit status, and the account of its failure it wrote on
stderr (exception types and codes, never a message that could quote a row).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from audit import crypto
from audit.backend import HEAD_SQL, Backend
from audit.chain import ChainState
from audit.types import VerifyReport
from audit.verify_segment import (
    BOOTSTRAP,
    FAILED,
    READ,
    READ_WITH_COLUMNS,
    Segment,
    check_segment,
    decode,
    link,
    request,
)
from common.cpus import usable_cpus

log = logging.getLogger(__name__)

#: (entries checked so far, entries in all)
Progress = Callable[[int, int], object]

_SEGMENT: Final = 5_000  # rows per read; checking one blocks the loop ~20 ms
#: a PostgreSQL chain this long is checked by helper processes too (each costs ~0.13 s
#: of CPU to start: the interpreter, asyncpg and msgspec)
HELPERS_FROM: Final = 50_000
_ASKED: Final = 2  # segments a helper holds: it reads the next while it checks one
_PACKAGES: Final = str(Path(__file__).resolve().parent.parent)  # where ``audit`` lies


def helper_count() -> int:
    """Helper processes a long PostgreSQL verification starts: one per core besides the
    one this process may use (its affinity bounded by a cgroup CPU quota), at most
    three; none on a single core."""
    return max(0, min(3, usable_cpus() - 1))


async def verify_chain(
    backend: Backend, public_key: bytes, on_progress: Progress | None = None
) -> VerifyReport:
    """The whole chain's verdict (masked: ``first_bad`` is an entry id, never a value)."""
    # checkpoints first, then the head: appends meanwhile cannot make a checkpoint
    # look as if it lay beyond the end of the chain
    checkpoints = await backend.fetchall(
        "SELECT seq, hash, time, public_key, signature FROM audit_checkpoint ORDER BY seq"
    )
    head = (await backend.fetchall(HEAD_SQL))[0]
    head_seq, head_hash = int(head[0]), head[1]
    marks = {int(cp[0]): cp[1] for cp in checkpoints}
    seen: dict[int, str] = {}
    state = await _recompute(backend, head_seq, marks, seen, on_progress)
    if not state.ok:
        return _report(state)
    if state.seq != head_seq or state.head != head_hash:
        return _report(
            state,
            reason=(
                f"the chain ends at seq {state.seq} but the head row says seq {head_seq}:"
                " entries were removed or the head was altered"
            ),
        )
    return await _check_checkpoints(backend, public_key, state, checkpoints, seen)


class _Segments:
    """The segments of one verification (:mod:`audit.verify_segment`), handed out in
    order to this process and the helpers; what each found, as a future by index (None:
    its helper failed, this process checks it)."""

    def __init__(self, backend: Backend, head_seq: int, marks: Mapping[int, str]) -> None:
        self.backend, self.head_seq, self.marks = backend, head_seq, marks
        self.columns = backend.kind == "postgresql"  # SQLite's are generated from the body
        self.count = -(-head_seq // _SEGMENT)
        self.stopped = False
        self.broken = False  # the verification ended before every segment was checked
        self._next = 0
        self._found: dict[int, asyncio.Future[Segment | None]] = {}

    def take(self) -> int | None:
        if self.stopped or self._next >= self.count:
            return None
        self._next += 1
        return self._next - 1

    def found(self, index: int) -> asyncio.Future[Segment | None]:
        if index not in self._found:
            self._found[index] = asyncio.get_running_loop().create_future()
        return self._found[index]

    async def read(self, index: int) -> Sequence[Sequence[Any]]:
        """The rows of segment ``index``; rows appended after the head was read are left
        out. ``seq > lo ORDER BY seq LIMIT n`` is read along the primary key by any
        planner; with an upper bound as well, PostgreSQL, on a table it had not analysed
        yet, sorted every row up to it for each read (45 ms instead of 6 for 10,000)."""
        rows = await self.backend.fetch_rows(
            READ_WITH_COLUMNS if self.columns else READ, [index * _SEGMENT, _SEGMENT]
        )
        if rows and int(rows[-1][0]) > self.head_seq:
            rows = [row for row in rows if int(row[0]) <= self.head_seq]
        return rows

    def check(self, index: int, rows: Sequence[Sequence[Any]]) -> Segment:
        return check_segment(rows, index * _SEGMENT, self.marks, columns=self.columns)

    async def here(self) -> None:
        """This process's share: the next segment is read while this one is checked."""
        index = self.take()
        reading = asyncio.ensure_future(self.read(index)) if index is not None else None
        try:
            while index is not None and reading is not None:
                try:
                    rows = await reading
                    following = self.take()
                    if following is not None:
                        reading = asyncio.ensure_future(self.read(following))
                    else:
                        reading = None
                    self.found(index).set_result(self.check(index, rows))
                except Exception as exc:  # the store failed: the verification does
                    self.found(index).set_exception(exc)
                    return
                index = following
        finally:
            if reading is not None:  # let the read in flight finish; its rows are not needed
                with contextlib.suppress(Exception):
                    await reading

    def settle(self) -> None:
        """Mark every failure nobody awaited as seen (it was reported, or lay after a break)."""
        for future in self._found.values():
            if future.done() and not future.cancelled():
                future.exception()


class _Helper:
    """A helper process (:func:`audit.verify_segment.helper_main`) checking segments
    asked of it, ``_ASKED`` at a time. Whatever goes wrong with it (it cannot start,
    connect or answer), the segments it held are checked by this process instead."""

    def __init__(self, segments: _Segments, dsn: str) -> None:
        self._segments, self._dsn = segments, dsn
        self._proc: asyncio.subprocess.Process | None = None
        self._ready = False
        self._stopped = False  # stop() ended it: not a failure
        self._failure = ""  # why it ended early, told once it has exited (stop())
        self._stderr: asyncio.Future[bytes] | None = None

    async def run(self) -> None:
        segments, asked = self._segments, deque[int]()
        ended = "did not start"  # why it ended, if it ends before its work is done
        try:
            self._proc = proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", BOOTSTRAP, _PACKAGES,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=1 << 24,
            )  # fmt: skip
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr
            self._stderr = asyncio.ensure_future(_tail(proc.stderr))
            proc.stdin.write(orjson.dumps({"dsn": self._dsn}) + b"\n")
            if await proc.stdout.readline() != b'{"ready":true}\n':
                return
            self._ready, ended = True, "ended"
            while True:
                while len(asked) < _ASKED and (index := segments.take()) is not None:
                    proc.stdin.write(request(
                        index * _SEGMENT, _SEGMENT, segments.head_seq, segments.marks
                    ))  # fmt: skip
                    asked.append(index)
                if not asked:
                    ended = ""  # its work is done
                    return
                await proc.stdin.drain()
                line = await proc.stdout.readline()
                if not line:
                    return  # it ended
                segment = decode(line)  # before its index leaves ``asked``: if it fails
                if segment.lo != asked[0] * _SEGMENT:
                    ended = "answered another segment"
                    return  # not the answer to what was asked first
                segments.found(asked.popleft()).set_result(segment)
        except (OSError, ValueError, TypeError, KeyError) as exc:  # cannot start, nonsense
            ended = type(exc).__name__
            return
        except asyncio.CancelledError:  # the verification itself was cancelled
            ended = ""
            raise
        finally:
            if ended and not self._stopped and not segments.broken:
                self._failure = ended  # told by stop(), with what the helper said
            for index in asked:
                if not segments.found(index).done():
                    segments.found(index).set_result(None)

    async def stop(self) -> None:
        """End the helper: once it has answered all it was asked (it closes its connection
        itself); at once after a break, or when it was not ready yet."""
        self._stopped = True
        proc, said = self._proc, b""
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            if (self._segments.broken or not self._ready) and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
        if self._stderr is not None:
            with contextlib.suppress(Exception):
                said = await self._stderr
        if self._failure:
            # what it ended on, its exit status and its own account (audit.verify_segment
            # ``describe``: types and codes only - a row or the DSN is never quoted)
            told = [self._failure]
            if proc is not None and proc.returncode is not None:
                told.append(f"exit status {proc.returncode}")
            if account := _account(said):
                told.append(f"it said: {account}")
            log.warning("audit verify helper ended early (%s): its segments are checked here",
                        "; ".join(told))  # fmt: skip


#: the most of a helper's stderr kept (its end)
_STDERR_KEPT: Final = 4096
#: the exception's type at the start of a traceback's last line
_EXCEPTION_TYPE: Final = re.compile(r"[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b")


async def _tail(stream: asyncio.StreamReader) -> bytes:
    """The end of what a helper writes on stderr, read as it comes (a full pipe would
    block it)."""
    kept = b""
    while chunk := await stream.read(1 << 16):
        kept = (kept + chunk)[-_STDERR_KEPT:]
    return kept


def _account(said: bytes) -> str:
    """What of a helper's stderr the operator is told: its own account of its failure
    (:data:`FAILED`), else the exception type of a traceback's last line (a helper that
    failed before it ran: a missing module, say) - never the rest of a message."""
    lines = [line.strip() for line in said.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if line.startswith(FAILED):
            return line[len(FAILED):][:200]
    found = _EXCEPTION_TYPE.match(lines[-1]) if lines else None
    return found.group(0)[:200] if found else ""


def _helpers(segments: _Segments) -> list[_Helper]:
    dsn = getattr(segments.backend, "dsn", None)
    if not segments.columns or not isinstance(dsn, str) or segments.head_seq < HELPERS_FROM:
        return []
    return [_Helper(segments, dsn) for _ in range(helper_count())]


async def _recompute(
    backend: Backend,
    head_seq: int,
    marks: Mapping[int, str],
    seen: dict[int, str],
    on_progress: Progress | None,
) -> ChainState:
    """Hash every entry up to ``head_seq`` in order; ``seen`` gets the recomputed hash
    at each seq of ``marks``. The segments are checked here and, for a long chain on
    PostgreSQL, by helper processes meanwhile; they are joined in order here."""
    state = ChainState()
    segments = _Segments(backend, head_seq, marks)
    helpers = _helpers(segments)
    working = [asyncio.ensure_future(segments.here())]
    working += [asyncio.ensure_future(helper.run()) for helper in helpers]
    try:
        for index in range(segments.count):
            segment = await segments.found(index)
            if segment is None:  # its helper failed
                segment = segments.check(index, await segments.read(index))
            if not link(state, segment, seen):
                break
            if on_progress is not None:
                on_progress(state.seq, head_seq)
    finally:
        segments.broken = segments.take() is not None or state.reason is not None
        segments.stopped = True
        await asyncio.gather(*(helper.stop() for helper in helpers), return_exceptions=True)
        await asyncio.gather(*working, return_exceptions=True)
        segments.settle()
    return state


async def _check_checkpoints(
    backend: Backend,
    public_key: bytes,
    state: ChainState,
    checkpoints: list[tuple[Any, ...]],
    seen: dict[int, str],
) -> VerifyReport:
    public_hex = public_key.hex()
    for cp_seq, cp_hash, cp_time, cp_key, cp_sig in checkpoints:
        cp_seq = int(cp_seq)
        if cp_key != public_hex:
            return _report(state, reason=f"checkpoint at seq {cp_seq} is signed by an unknown key")
        try:
            signature = bytes.fromhex(cp_sig)
        except ValueError:
            signature = b""
        if not crypto.verify_checkpoint(public_key, signature, cp_seq, cp_hash, cp_time):
            return _report(state, reason=f"checkpoint at seq {cp_seq}: bad signature")
        if cp_seq > state.seq:
            return _report(
                state,
                reason=(
                    f"a signed checkpoint covers seq {cp_seq} but the chain ends at seq"
                    f" {state.seq}: the tail was truncated"
                ),
            )
        if seen.get(cp_seq) != cp_hash:
            bad = await backend.fetchall("SELECT audit_id FROM audit_entry WHERE seq = ?", [cp_seq])
            return _report(
                state,
                first_bad=bad[0][0] if bad else None,
                reason=f"the chain at seq {cp_seq} differs from its signed checkpoint",
            )
    return _report(state, checkpoints=len(checkpoints))


def _report(
    state: ChainState,
    *,
    first_bad: str | None = None,
    reason: str | None = None,
    checkpoints: int = 0,
) -> VerifyReport:
    reason = reason or state.reason
    return VerifyReport(
        ok=reason is None,
        entries=state.entries,
        head=state.head,
        first_bad=first_bad or state.first_bad,
        reason=reason,
        checkpoints=checkpoints,
    )
