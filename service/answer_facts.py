"""What the edge records of an answer, worked out once per (route, system, status)
(issue 11): the children of the request series it counts in, and the route and system
its access line shows.

Every answer used to look its children up by their labels and work out its system label
and the line's system from the raw ``{system}`` of its path; the answers of a gateway
come in a few dozen kinds (route templates x systems x statuses), so these facts are
kept per kind, in a bounded dict (:data:`FACTS_KEPT`), emptied whenever the metrics'
routes are (re)declared (``Metrics.init_routes``). A path's ``{system}`` that is not a
configured one (a caller's typo: it may be anything) is never a key: its facts are
worked out again each time.

The children are those of ``Metrics.request_children``: with one process the tally's
wrappers of the library's children (``service.metric_tally``), with several workers the
library's children themselves, whose every update reaches the shared files at once.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Final, NamedTuple, cast

from service.logs import scalar
from service.metric_tally import Increments, Observes

#: at most this many kinds of answer have their facts kept
FACTS_KEPT: Final = 1024
#: system label values besides the systems: a route without one, an unknown one
NO_SYSTEM: Final = "none"
UNKNOWN_SYSTEM: Final = "unknown"

Children = Callable[[str, str, int], tuple[Increments, Observes]]


class AnswerFacts(NamedTuple):
    """One kind of answer: its request count's and duration's children, and the access
    line's route (as the line shows it) and system (a configured one, or None)."""

    counter: Increments
    duration: Observes
    route: str
    system: str | None


class AnswerFactsCache:
    """``cache(route, system, status, known)``: the :class:`AnswerFacts` of an answer
    to ``route`` (its template, or ``unmatched``) with the path's ``system`` (None: the
    route has none) and ``status``; ``known``: the configured systems."""

    __slots__ = ("_children", "_kept")

    def __init__(self, children: Children) -> None:
        self._children = children
        self._kept: dict[tuple[str, str | None, int], AnswerFacts] = {}

    def __call__(
        self, route: str, system: str | None, status: int, known: Container[str]
    ) -> AnswerFacts:
        facts = self._kept.get((route, system, status))
        if facts is None:
            facts = self._work_out(route, system, status, known)
        return facts

    def _work_out(
        self, route: str, system: str | None, status: int, known: Container[str]
    ) -> AnswerFacts:
        is_known = system is not None and system in known
        # a caller's typo must not become a new label
        label = (
            system if is_known and system is not None
            else NO_SYSTEM if system is None or system == NO_SYSTEM else UNKNOWN_SYSTEM
        )  # fmt: skip
        count, seconds = self._children(label, route, status)
        shown = cast(str, scalar(route))  # a str stays one: an overlong template is cut
        facts = AnswerFacts(count, seconds, shown, system if is_known else None)
        if (is_known or system is None) and len(self._kept) < FACTS_KEPT:
            self._kept[route, system, status] = facts
        return facts

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)
