"""Who is asking: the authenticated caller, as the policy engine sees it."""

from __future__ import annotations

from dataclasses import dataclass

from common.vocabulary import EVERY_SYSTEM, Role


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller: a name (never a personal value in logs: an account name), roles, systems."""

    name: str
    roles: frozenset[Role]
    systems: frozenset[str]

    def may_touch(self, system: str) -> bool:
        return system in self.systems or EVERY_SYSTEM in self.systems
