"""Who may do what: a principal's roles and its system scope, decided in one place.

Every route that touches a customer record, an audit entry or a data subject asks
:func:`authorize` (OWASP API1/API5: object- and function-level authorisation); list
routes ask :func:`scope` for the systems a query may cover. Free of HTTP.
"""

from __future__ import annotations

from collections.abc import Collection

from policies import Principal
from service.errors import Forbidden, UnknownSystem

#: the ``systems`` entry of a principal that may touch every system
EVERY_SYSTEM = "*"


def authorize(
    who: Principal,
    roles: frozenset[str],
    system: str | None = None,
    *,
    known: Collection[str] | None = None,
) -> None:
    """``who`` holds one of ``roles`` and, when ``system`` is given, that system is
    known (``known``, when given; else 404 ``unknown_system``) and in its scope.

    Roles are checked first, so a caller without the role learns nothing about which
    systems exist. The scope refusal never names what lies behind it (an entry's
    customer, the system of an entry the caller only knows by id).
    """
    if not roles & who.roles:
        raise Forbidden("this principal's roles do not allow this operation")
    if system is None:
        return
    if known is not None and system not in known:
        raise UnknownSystem("no system of that name is configured")
    if not who.may_touch(system):
        raise Forbidden("this lies outside the principal's system scope")


def scope(who: Principal) -> frozenset[str] | None:
    """The systems a list may show ``who``: ``None`` for every system."""
    if EVERY_SYSTEM in who.systems:
        return None
    return frozenset(who.systems)
