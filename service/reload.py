"""Policies that change under a running gateway: load and check a new set, then swap.

The set in force is one :class:`PolicyEngine`, held by a :class:`PolicyReloader`. A
reload (a change of the policy directory seen by the watcher, or SIGHUP) loads every
file, checks the whole set (schema, compilation, masking keys, every system of the set
in force still present) and only then replaces the engine, in one assignment. A set
that fails any check is refused: the engine in force stays, and the metrics
(``gdpr_gateway_policy_reload_total{result="failure"}``,
``gdpr_gateway_policy_last_reload_successful`` = 0) and a log line (file:line of each
error, never its text) say so. A request reads the engine once when it starts
(:class:`service.gateway.Gateway`), so it finishes, and is audited, under the version
it started with.

Watching is by polling, on purpose. Kubernetes updates a mounted ConfigMap by writing a
new ``..2026_…`` directory and renaming a ``..data`` symlink onto it; the files seen in
the mount are symlinks through ``..data``. A poll of the resolved ``..data`` target and
of each file's inode, size and mtime every ``policies_reload_seconds`` sees that swap
(and an editor's in-place write) on any filesystem, needs no dependency, and costs a few
``stat`` calls; inotify-based libraries add a compiled dependency and must be taught
that the interesting event is a rename of a symlink two levels away, for a latency
gain that kubelet's own sync period (about a minute) makes moot. Files are read from
the resolved ``..data`` directory, so one load never mixes two generations; a load
during which the directory changed again is discarded and retried on the next poll.
Without ``policies_dir`` (each system's policy file of the registry, the shipped catalog)
there is nothing to watch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from policies import MaskingConfigError, PolicyEngine, PolicyLoadError, load_policy_set
from policies.loader import policy_files
from service.background import running
from service.keys import METRICS_KEY, POLICIES_KEY, SETTINGS_KEY
from service.logs import log_event
from service.metrics import Metrics

log = logging.getLogger("gdpr_gateway.reload")

#: the symlink a Kubernetes ConfigMap (or Secret) volume swaps atomically
DATA_LINK = "..data"
#: how many error locations a refused reload names in its log line
MAX_LOGGED_ERRORS = 10
_POSITION = re.compile(r"^(\S+?:\d+)")

Fingerprint = tuple[str, tuple[tuple[str, int, int, int], ...]]


class ReloadRefused(Exception):
    """A policy set that cannot be put in force; ``where`` lists ``file:line`` only."""

    def __init__(self, kind: str, where: list[str]) -> None:
        super().__init__(f"policy set refused ({kind}, {len(where)} error(s))")
        self.kind = kind
        self.where = where


@dataclass(frozen=True, slots=True)
class EngineKeys:
    """The keys every policy set is built with (they do not change on a reload)."""

    pseudonym_key: bytes
    hash_salt: bytes


def source_dir(directory: Path) -> Path:
    """Where the files of one generation are: the target of ``..data`` if there is one."""
    data = directory / DATA_LINK
    return data.resolve(strict=True) if data.exists() else directory


def fingerprint(directory: Path) -> Fingerprint | None:
    """What identifies the directory's current content without reading it (None: gone)."""
    try:
        source = source_dir(directory)
        entries = []
        for path in policy_files([source]):
            st = path.stat()  # follows symlinks: the file, not the link
            entries.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns))
    except OSError:
        return None
    return str(source), tuple(entries)


def load_engine(
    directory: Path | None,
    keys: EngineKeys,
    required: frozenset[str] = frozenset(),
    *,
    default_files: Sequence[Path] | None = None,
) -> PolicyEngine:
    """Load, compile and check a whole set; ReloadRefused (or PolicyLoadError) if bad.
    Without ``directory``: ``default_files`` (the registry's policy file of each system;
    None: the shipped catalog)."""
    try:
        files = default_files if directory is None else policy_files([source_dir(directory)])
        policy_set = load_policy_set(files)
    except OSError as exc:
        raise ReloadRefused(type(exc).__name__, [str(directory)]) from None
    missing = sorted(required - set(policy_set.systems))
    if missing:  # a reload may change a system's policy, never drop one in use
        raise ReloadRefused("system_missing", [f"system {name}" for name in missing])
    try:
        return PolicyEngine(policy_set, pseudonym_key=keys.pseudonym_key, hash_salt=keys.hash_salt)
    except MaskingConfigError as exc:
        raise ReloadRefused("masking", [str(exc)]) from None  # names a strategy, no value


class PolicyReloader:
    """Holds the engine in force and replaces it with a checked new one, or refuses."""

    def __init__(
        self, directory: Path | None, keys: EngineKeys, metrics: Metrics, engine: PolicyEngine
    ) -> None:
        self.directory = directory
        self._keys = keys
        self._metrics = metrics
        self._engine = engine
        self._seen = fingerprint(directory) if directory is not None else None
        self._lock = asyncio.Lock()
        metrics.policy_versions(engine.policies.versions())
        metrics.policy_last_reload_successful.set(1)

    @classmethod
    async def start(
        cls,
        directory: Path | None,
        keys: EngineKeys,
        metrics: Metrics,
        *,
        default_files: Sequence[Path] | None = None,
    ) -> PolicyReloader:
        """The first load: a bad set stops the start (PolicyLoadError, ReloadRefused)."""
        engine = await asyncio.to_thread(
            functools.partial(load_engine, directory, keys, default_files=default_files)
        )
        return cls(directory, keys, metrics, engine)

    @property
    def engine(self) -> PolicyEngine:
        """The engine in force now. A request reads it once and keeps it."""
        return self._engine

    async def reload(self, trigger: str) -> bool:
        """Load the directory again; swap if the whole set is good. True if swapped."""
        if self.directory is None:
            log_event(log, "policy_reload_skipped", trigger=trigger, reason="shipped_catalog")
            return False
        async with self._lock:
            for _attempt in range(3):
                before = fingerprint(self.directory)
                try:
                    engine = await asyncio.to_thread(
                        load_engine, self.directory, self._keys,
                        frozenset(self._engine.policies.systems),
                    )
                except Exception as exc:  # every failure refuses the set; none stops us
                    if fingerprint(self.directory) != before:
                        continue  # the files changed while being read: read them again
                    self._refused(trigger, _why(exc), before)
                    return False
                if fingerprint(self.directory) != before:
                    continue
                self._swap(trigger, engine, before)
                return True
            log_event(log, "policy_reload_deferred", level=logging.WARNING, trigger=trigger,
                      reason="files_kept_changing")
            return False

    async def watch(self, interval: float) -> None:
        """Poll the directory every ``interval`` seconds and reload when it changed."""
        assert self.directory is not None
        while True:
            await asyncio.sleep(interval)
            try:
                current = await asyncio.to_thread(fingerprint, self.directory)
                if current is not None and current != self._seen:
                    await self.reload("watch")
            except Exception:  # a bug here must not end watching; the set in force stays
                log.exception("policy_watch_failed")

    def _swap(self, trigger: str, engine: PolicyEngine, seen: Fingerprint | None) -> None:
        old = self._engine.policies.versions()
        new = engine.policies.versions()
        self._engine = engine  # one assignment: a request sees the old set or the new one
        self._seen = seen
        self._metrics.policy_reload(succeeded=True)
        self._metrics.policy_versions(new)
        changed = sorted(s for s in new if old.get(s) != new[s])
        log_event(log, "policy_reload", result="success", trigger=trigger,
                  systems=changed, versions=[f"{s}@{new[s][:12]}" for s in changed])

    def _refused(self, trigger: str, why: ReloadRefused, seen: Fingerprint | None) -> None:
        self._seen = seen  # the same files are not tried again until they change
        self._metrics.policy_reload(succeeded=False)
        log_event(log, "policy_reload", level=logging.ERROR, result="failure",
                  trigger=trigger, kind=why.kind, errors=len(why.where),
                  where=why.where[:MAX_LOGGED_ERRORS], in_force="unchanged")


def _why(exc: Exception) -> ReloadRefused:
    if isinstance(exc, ReloadRefused):
        return exc
    if isinstance(exc, PolicyLoadError):  # "file.yaml:12 key: message": the position only
        return ReloadRefused("invalid", [_position(e) for e in exc.errors])
    return ReloadRefused(type(exc).__name__, [])


def _position(error: str) -> str:
    match = _POSITION.match(error)
    return match.group(1) if match else "set"


async def policies_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the first load, then the watcher while the app runs."""
    settings = app[SETTINGS_KEY]
    keys = EngineKeys(settings.pseudonym_key_bytes(), settings.hash_salt_bytes())
    reloader = await PolicyReloader.start(
        settings.policies_dir, keys, app[METRICS_KEY],
        default_files=settings.systems.policy_files(),
    )
    app[POLICIES_KEY] = reloader
    log_event(log, "policies_loaded", systems=list(reloader.engine.policies.systems),
              watching=settings.policies_dir is not None and settings.policies_reload_seconds > 0)
    watching = settings.policies_dir is not None and settings.policies_reload_seconds > 0
    job = reloader.watch(settings.policies_reload_seconds) if watching else None
    async with running(job, "policy-watcher"):
        yield
