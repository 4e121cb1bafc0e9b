"""``gdpr-gateway audit verify|export|expire|public-key|rotate-master-key``: the ops
user's view of the audit log, on the demo's store (``--state-dir``) or a deployment's
(``--config``)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from audit import AuditError, AuditLog, rotate_master_key
from audit.crypto import public_key_of
from audit.statedir import DEFAULT_STATE_DIR, AuditSettings, decode_key, demo_settings
from service.commands.db import add_store_options
from service.config import load_audit_access

CSV_COLUMNS = (
    "seq", "audit_id", "time", "actor", "roles", "system", "customer_id", "purpose",
    "request_id", "action", "phase", "outcome", "problem_code", "intent_id", "target_id",
    "reason", "changed", "before", "after", "policy_version", "upstream_status",
    "upstream_latency_ms", "prev_hash", "hash",
)  # fmt: skip


def _show_progress(args: argparse.Namespace) -> bool:
    return bool(args.progress) or sys.stderr.isatty()


@contextmanager
def _progress_bar(
    args: argparse.Namespace, desc: str, total: int = 0
) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr (when asked or on a terminal), fed by the audit library's
    progress callback ``(done, total)``: the library itself draws nothing."""
    with tqdm(total=total, unit="entries", file=sys.stderr, desc=desc,
              disable=not _show_progress(args)) as bar:  # fmt: skip

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update


def _settings(args: argparse.Namespace) -> AuditSettings:
    """The store and keys of a deployment (``--config``, read as serve reads it) or of the
    demo (``--state-dir``): plain values for the audit package."""
    if args.config is not None:
        return load_audit_access(args.config, os.environ)
    return demo_settings(args.state_dir)


def _run(args: argparse.Namespace, job: Callable[[AuditSettings], Coroutine[Any, Any, int]]) -> int:
    return asyncio.run(job(_settings(args)))


async def _open(settings: AuditSettings) -> AuditLog:
    return await AuditLog.open(
        settings.url, master_key=settings.master_key, signing_key=settings.signing_key
    )


def _verify(args: argparse.Namespace) -> int:
    async def job(settings: AuditSettings) -> int:
        log = await _open(settings)
        try:
            with _progress_bar(args, "verify") as on_progress:
                report = await log.verify(on_progress=on_progress)
        finally:
            await log.close()
        print(f"entries checked: {report.entries}")
        print(f"checkpoints checked: {report.checkpoints}")
        print(f"head: {report.head}")
        print(f"first bad entry: {report.first_bad or '-'}")
        if report.ok:
            print("chain OK")
            return 0
        print(f"chain BROKEN: {report.reason}")
        return 1

    return _run(args, job)


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def _export(args: argparse.Namespace) -> int:
    out: IO[str] = sys.stdout
    if args.output:
        try:
            out = Path(args.output).open("w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            print(f"error: cannot write {args.output} ({exc.strerror})", file=sys.stderr)
            return 2

    async def job(settings: AuditSettings) -> int:
        log = await _open(settings)
        try:
            total = (await log.head())[0]
            with _progress_bar(args, "export", total) as on_progress:
                writer = csv.writer(out) if args.format == "csv" else None
                if writer is not None:
                    writer.writerow(CSV_COLUMNS)
                count = 0

                def on_chunk(_rows: int) -> None:
                    on_progress(count, total)  # the chunk's entries are written by now

                async for entry in log.iter_entries(on_chunk=on_chunk):
                    if writer is not None:
                        writer.writerow([_cell(entry.get(c)) for c in CSV_COLUMNS])
                    else:
                        out.write(json.dumps(entry, sort_keys=True) + "\n")
                    count += 1
        finally:
            await log.close()
        print(f"exported {count} entries (personal values masked)", file=sys.stderr)
        return 0

    try:
        return _run(args, job)
    except BrokenPipeError:  # `… | head`: the reader left; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        if out is not sys.stdout:
            out.close()


def _moment(text: str) -> datetime:
    """``--at``: an ISO 8601 date or date-time (UTC unless it says otherwise)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError("expected an ISO 8601 date or date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _expire(args: argparse.Namespace) -> int:
    if args.at is not None and args.apply:
        print("error: --at previews a later date and goes with --dry-run only", file=sys.stderr)
        return 2

    async def job(settings: AuditSettings) -> int:
        log = await _open(settings)
        try:
            report = await log.expire(now=args.at, dry_run=not args.apply)
        finally:
            await log.close()
        if not report.ran:
            print("another process is running the expiry job now; nothing was done")
            return 1
        done = "would expire" if report.dry_run else "expired"
        print(f"{done}: {report.values} sealed value(s) in {report.entries} entr"
              f"{'y' if report.entries == 1 else 'ies'}, {report.keys} key(s) of "
              f"{report.subjects} subject(s)")  # fmt: skip
        if report.audit_ids:
            print(f"audit entries written: {len(report.audit_ids)} (action expire)")
        print(f"keys without retention (kept until erased): {report.without_retention}")
        print(f"oldest sealed value still readable: {report.oldest_sealed or '-'}")
        return 0

    return _run(args, job)


def _public_key(args: argparse.Namespace) -> int:
    key = public_key_of(_settings(args).signing_key)
    print(key.hex() if args.format == "hex" else base64.b64encode(key).decode())
    return 0


def _rotate(args: argparse.Namespace) -> int:
    if args.new_key_file:
        try:
            new_key = decode_key(Path(args.new_key_file).read_text(), "new master key")
        except (OSError, AuditError) as exc:
            print(f"error: cannot use the new key file ({type(exc).__name__})", file=sys.stderr)
            return 2
    elif args.config is None:
        new_key = os.urandom(32)
    else:
        print("error: --new-key-file is required with --config", file=sys.stderr)
        return 2

    settings = _settings(args)
    count = asyncio.run(rotate_master_key(settings.url, settings.master_key, new_key))
    if args.config is None:  # the demo keeps its master key in the state folder
        state = Path(args.state_dir or DEFAULT_STATE_DIR).expanduser().resolve()
        tmp = state / "master.key.new"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(new_key).decode() + "\n")
        tmp.replace(state / "master.key")
    print(f"re-wrapped {count} subject keys; restart the gateway with the new master key")
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("audit", help="verify, export and manage the audit log")
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    verify = sub.add_parser("verify", help="recompute the chain and check signed checkpoints")
    add_store_options(verify)
    verify.add_argument("--progress", action="store_true", help="progress bar on stderr")
    verify.set_defaults(handler=_verify)

    export = sub.add_parser("export", help="all entries, masked, as JSON Lines or CSV")
    add_store_options(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    export.add_argument("--progress", action="store_true", help="progress bar on stderr")
    export.set_defaults(handler=_export)

    expire = sub.add_parser(
        "expire", help="forget sealed values past their policy's retention (by key destruction)"
    )
    add_store_options(expire)
    mode = expire.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="report what would expire")
    mode.add_argument("--apply", action="store_true",
                      help="destroy the keys, an expire entry per subject")  # fmt: skip
    expire.add_argument(
        "--at", type=_moment, metavar="WHEN",
        help="with --dry-run: what would have expired by this ISO 8601 date-time",
    )
    expire.set_defaults(handler=_expire)

    public = sub.add_parser("public-key", help="the Ed25519 key that signs checkpoints")
    add_store_options(public)
    public.add_argument("--format", choices=("base64", "hex"), default="base64")
    public.set_defaults(handler=_public_key)

    rotate = sub.add_parser("rotate-master-key", help="re-wrap subject keys under a new key")
    add_store_options(rotate)
    rotate.add_argument(
        "--new-key-file", metavar="FILE", help="base64 32-byte key (demo: generated if absent)"
    )
    rotate.set_defaults(handler=_rotate)
