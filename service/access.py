"""Who may do what: a principal's roles and its system scope, decided in one place.

Every route that touches a customer record, an audit entry or a data subject asks
:func:`authorize` once, with one of the role sets below (OWASP API1/API5: object- and
function-level authorisation); list routes ask :func:`scope` for the systems a query
may cover. The customer routes hand what :func:`authorize` let through to the gateway as
an :class:`~service.gateway.Admitted` request, so the gateway never checks again (and
cannot be called unchecked). ``GET /v1/systems...`` need a principal and no role; the
review page's static files need nothing. Free of HTTP.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from common.vocabulary import EVERY_SYSTEM, Role
from policies import Principal
from service.errors import Forbidden, UnknownSystem

#: GET of a customer record (masked for the caller's roles)
READ_RECORD: Final = frozenset({Role.EDITOR, Role.AUDITOR, Role.PRIVACY_OFFICER})
#: PATCH of a customer record (dry runs included)
CHANGE_RECORD: Final = frozenset({Role.EDITOR, Role.PRIVACY_OFFICER})
#: the audit review API: list, verify, one entry
REVIEW_AUDIT: Final = frozenset({Role.AUDITOR, Role.PRIVACY_OFFICER})
#: what only a privacy officer does: reveal an entry, export or erase a data subject
ACT_FOR_SUBJECT: Final = frozenset({Role.PRIVACY_OFFICER})


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
