"""The audit review page (``GET /ui/``): a few static files, served with strict headers.

The page is plain HTML, a few ES module scripts and one style sheet, all same-origin; its
script asks for a bearer token and calls the review API (``/v1/audit...``,
``/v1/subjects/...``, ``/v1/record-of-processing``) with it. Loading the page
needs no token: a browser sends none when it navigates. Only the known files are
served (no directory listing, no path from the request ever reaches the file system);
they are package data, read once and kept (they do not change while the process runs).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

from aiohttp import web

from common.vocabulary import Problem
from service.keys import AUTH_KEY
from service.middleware import problem_response

routes = web.RouteTableDef()

UI_PATH: Final = "/ui/"
UI_BARE_PATH: Final = "/ui"
ASSET_PATH: Final = "/ui/{asset}"

#: the page's script modules (app.js imports the others)
SCRIPTS: Final = ("app.js", "core.js", "changes.js", "entries.js", "subject.js", "trends.js",
                  "record.js")  # fmt: skip
#: the only files served: request name -> (packaged file, content type)
ASSETS: Final = {
    "index.html": ("index.html", "text/html"),
    **{name: (name, "text/javascript") for name in SCRIPTS},
    "style.css": ("style.css", "text/css"),
}

#: no inline script or style, nothing from elsewhere, never framed
CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: what ``GET /ui`` answers: a browser follows the ``Refresh`` header to ``/ui/``
_MOVED_PAGE: Final = (
    b'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
    b"<title>Audit review</title></head>\n"
    b'<body><p>The audit review page is at <a href="/ui/">/ui/</a>.</p></body></html>\n'
)


@functools.cache
def asset_bytes(name: str) -> bytes:
    """The packaged file for one of the known names (read once, then kept)."""
    packaged, _ = ASSETS[name]
    return resources.files("service").joinpath("ui").joinpath(packaged).read_bytes()


def _check_presented_token(request: web.Request) -> None:
    """No token is needed to load the page; one that is presented must be valid (401).
    The static files do not count against the caller's rate limit (the API calls do)."""
    presented = request.headers.get("Authorization")
    if presented is not None:
        request.app[AUTH_KEY].authenticate(presented)


def _serve(name: str) -> web.Response:
    _, content_type = ASSETS[name]
    return web.Response(
        body=asset_bytes(name),
        content_type=content_type,
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


@routes.get(UI_BARE_PATH)
async def ui_bare(request: web.Request) -> web.Response:
    """Send the browser on to ``/ui/`` (relative asset links need the trailing slash)."""
    _check_presented_token(request)
    return web.Response(
        body=_MOVED_PAGE,
        content_type="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Refresh": f"0; url={UI_PATH}"},
    )


@routes.get(UI_PATH)
async def ui_index(request: web.Request) -> web.Response:
    _check_presented_token(request)
    return _serve("index.html")


@routes.get(ASSET_PATH)
async def ui_asset(request: web.Request) -> web.Response:
    _check_presented_token(request)
    name = request.match_info["asset"]
    if name not in ASSETS:
        return problem_response(
            Problem.NOT_FOUND,
            404,
            "Not found",
            "the review page has no file of that name",
            headers=SECURITY_HEADERS,
        )
    return _serve(name)
