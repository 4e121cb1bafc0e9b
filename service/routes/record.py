"""``GET /v1/record-of-processing``: the record of processing activities (GDPR Art. 30),
generated from the policies in force (:mod:`policies.record`), naming their versions.

For auditors and privacy officers. JSON by default; ``Accept: text/markdown`` (preferred
over JSON by its ``q``) answers the same record as Markdown (RFC 7763), the text
``gdpr-gateway policy record`` prints. The record lists every system's activity: it
describes the policies, not the data of any subject, so the principal's system scope
does not narrow it.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from policies.record import build_record
from policies.record_render import to_markdown
from service.access import REVIEW_AUDIT, authorize
from service.keys import POLICIES_KEY
from service.routes.common import principal

routes = web.RouteTableDef()

JSON: Final = "application/json"
MARKDOWN: Final = "text/markdown"


def preferred(accept: str | None, offered: tuple[str, ...]) -> str:
    """The media type of ``offered`` the ``Accept`` header prefers; the first offered on
    a tie, when nothing offered is acceptable, or without the header."""
    if not accept:
        return offered[0]
    best, best_q, best_rank = offered[0], -1.0, len(offered)
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for rank, candidate in enumerate(offered):
            kind = candidate.split("/")[0]
            if media in (candidate, f"{kind}/*", "*/*") and q > 0 and (
                q > best_q or (q == best_q and rank < best_rank)
            ):
                best, best_q, best_rank = candidate, q, rank
    return best


@routes.get("/v1/record-of-processing")
async def record_of_processing(request: web.Request) -> web.Response:
    authorize(principal(request), REVIEW_AUDIT)
    record = build_record(request.app[POLICIES_KEY].engine.policies)
    if preferred(request.headers.get("Accept"), (JSON, MARKDOWN)) == MARKDOWN:
        return web.Response(text=to_markdown(record), content_type=MARKDOWN, charset="utf-8")
    return web.json_response(record)
