"""The audit review page at /ui/: its files and headers over plain HTTP, then the page
itself in a real headless Chromium against the real gateway (emulators, SQLite audit)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from service.routes.ui import ASSETS, SCRIPTS, asset_bytes
from tests.service import browser as browser_module
from tests.service.browser import MISSING_MESSAGE, Browser, Page, chromium_present
from tests.service.conftest import AUDITOR, EDITOR
from tests.service.test_openapi import assert_conforms, load_spec

pytestmark = pytest.mark.timeout(30)  # every wait inside is bounded well below this

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# markup in a value: the page must show it as text, never build elements from it
MARKUP_NAME = '<img src=x id=injected onerror="document.title=1"><b>Ada Test</b>'


def assert_security_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name
    csp = {
        part.split()[0]: part.split()[1:]
        for part in (p.strip() for p in headers["Content-Security-Policy"].split(";"))
        if part
    }
    assert csp["default-src"] in (["'self'"], ["'none'"])
    assert csp["script-src"] == ["'self'"]
    assert csp["style-src"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in src for sources in csp.values() for src in sources)


# -- plain HTTP ------------------------------------------------------------------------------


async def test_the_page_is_served_with_strict_headers(stack: Any) -> None:
    response = await stack.client.get("/ui/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.charset == "utf-8"
    assert_security_headers(response.headers)
    assert "X-Request-Id" in response.headers
    html = await response.text()
    assert '<script type="module" src="app.js"' in html and 'href="style.css"' in html
    # no inline script or style: every <script> has a src, no style attribute or element
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []
    assert "<style" not in html and "style=" not in html
    assert re.findall(r"<[^>]*\son[a-z]+=", html) == []


@pytest.mark.parametrize(
    ("name", "content_type"),
    [*((name, "text/javascript") for name in SCRIPTS), ("style.css", "text/css"),
     ("index.html", "text/html")],
)
async def test_each_asset_is_served_with_its_type(
    stack: Any, name: str, content_type: str
) -> None:
    response = await stack.client.get(f"/ui/{name}")
    assert response.status == 200
    assert response.content_type == content_type
    assert_security_headers(response.headers)
    assert await response.read() == asset_bytes(name)
    assert len(asset_bytes(name)) > 500


@pytest.mark.parametrize("name", SCRIPTS)
async def test_no_script_ever_writes_markup(name: str) -> None:
    script = asset_bytes(name).decode("utf-8")
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
             "new Function", "setAttribute(\"style", ".style.", "javascript:", "srcdoc")
    for sink in sinks:
        assert sink not in script, sink
    assert "localStorage" not in script and "document.cookie" not in script


def test_the_token_is_kept_in_session_storage_only() -> None:
    scripts = "".join(asset_bytes(name).decode("utf-8") for name in SCRIPTS)
    assert "sessionStorage" in scripts and "localStorage" not in scripts
    assert scripts.count("sessionStorage.setItem") == 1  # at sign-in, nowhere else


def test_every_module_the_page_imports_is_served() -> None:
    imported = {
        found
        for name in SCRIPTS
        for found in re.findall(r'from "\./([a-z]+\.js)"', asset_bytes(name).decode("utf-8"))
    }
    assert imported and imported <= set(SCRIPTS)
    assert set(SCRIPTS) - imported == {"app.js"}  # the entry point, loaded by index.html


@pytest.mark.parametrize(
    "path",
    [
        "/ui/secret.txt",
        "/ui/..%2Fapp.py",
        "/ui/%2E%2E%2Fopenapi.yaml",
        "/ui/../openapi.yaml/x",
        "/ui/ui.py",
        "/ui/app.js/",
        "/ui/sub/app.js",
    ],
)
async def test_unknown_paths_under_ui_are_problem_404s(stack: Any, path: str) -> None:
    response = await stack.client.get(path)
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    body = await response.json(content_type=None)
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert set(ASSETS) == {"index.html", "style.css", *SCRIPTS}


async def test_an_unknown_asset_name_keeps_the_security_headers(stack: Any) -> None:
    response = await stack.client.get("/ui/nothing.js")
    assert response.status == 404
    assert_security_headers(response.headers)


async def test_bare_ui_sends_the_browser_to_ui_slash(stack: Any) -> None:
    response = await stack.client.get("/ui", allow_redirects=False)
    assert response.status == 200
    assert response.headers["Refresh"] == "0; url=/ui/"
    assert_security_headers(response.headers)
    assert 'href="/ui/"' in await response.text()


async def test_a_presented_token_must_be_valid(stack: Any) -> None:
    loaded = await stack.client.get("/ui/", headers={"Authorization": "Bearer demo-auditor"})
    assert loaded.status == 200
    refused = await stack.client.get("/ui/", headers={"Authorization": "Bearer nope"})
    assert refused.status == 401
    assert (await refused.json(content_type=None))["code"] == "unauthenticated"


async def test_the_directory_is_not_listed_and_post_is_refused(stack: Any) -> None:
    response = await stack.client.post("/ui/")
    assert response.status == 405
    assert response.content_type == "application/problem+json"


async def test_the_ui_answers_as_openapi_yaml_documents(stack: Any) -> None:
    spec = load_spec()
    cases = [
        ("/ui", "/ui", {}, None),
        ("/ui/", "/ui/", {}, None),
        ("/ui/{asset}", "/ui/app.js", {}, None),
        ("/ui/{asset}", "/ui/style.css", {}, None),
        ("/ui/{asset}", "/ui/nothing.js", {}, "not_found"),
        ("/ui/", "/ui/", {"Authorization": "Bearer nope"}, "unauthenticated"),
    ]
    for template, path, headers, code in cases:
        async with stack.client.get(path, headers=headers, allow_redirects=False) as response:
            assert await assert_conforms(spec, template, response) == code, path


# -- a real browser --------------------------------------------------------------------------


def js(value: Any) -> str:
    """A Python value as a JavaScript literal."""
    return json.dumps(value)


async def show_view(page: Page, name: str) -> None:
    """Click the tab of a view and wait until it shows."""
    await page.evaluate(f"document.getElementById('tab-{name}').click(); true")
    await page.wait_for(f"!document.getElementById('view-{name}').hidden")


async def sign_in(page: Page, token: str) -> None:
    await page.wait_for("!document.getElementById('signin').hidden")
    await page.evaluate(
        f"document.getElementById('token').value = {js(token)};"
        "document.getElementById('sign-in').click(); true"
    )


def rows_expression() -> str:
    return (
        "Array.from(document.querySelectorAll('#entries-body tr')).map(r =>"
        " Array.from(r.cells).map(c => c.textContent))"
    )


async def open_entry(page: Page, audit_id: str) -> None:
    await page.evaluate(
        f"document.querySelector('#entries-body tr[data-audit-id={js(audit_id)}] button')"
        ".click(); true"
    )
    await page.wait_for(
        f"!document.getElementById('detail').hidden &&"
        f" document.getElementById('d-id').textContent === {js(audit_id)}"
    )


async def value_cells(page: Page, body_id: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = await page.evaluate(
        f"Object.fromEntries(Array.from(document.querySelectorAll('#{body_id} tr')).map(r =>"
        " [r.cells[0].textContent, [r.cells[1].textContent, r.cells[2].textContent]]))"
    )
    return result


async def test_review_in_a_real_browser(stack: Any, tmp_path: Path) -> None:
    require_chromium()
    for n in range(5):  # enough entries for two pages of ten
        earlier = await stack.client.patch(
            "/v1/systems/sedona/customers/2001",
            headers=EDITOR,
            json={"CustomerName2": f"Page Test {n}"},
        )
        assert earlier.status == 200
    patch = await stack.client.patch(
        "/v1/systems/billbee/customers/1002", headers=EDITOR, json={"Name": MARKUP_NAME}
    )
    assert patch.status == 200
    update_id = (await patch.json())["audit_id"]
    base = str(stack.client.make_url("/ui"))

    async with Browser.launch(tmp_path) as browser:
        page = await browser.new_page()
        await page.navigate(base)  # /ui forwards to /ui/
        await page.wait_for("location.pathname === '/ui/' && document.body?.dataset.ready")

        # an unknown token is refused with a readable message, and the form stays
        await sign_in(page, "no-such-token")
        message = await page.wait_for("document.getElementById('message').textContent")
        assert "Unauthenticated" in message and "unauthenticated" in message
        assert await page.evaluate("!document.getElementById('signin').hidden") is True
        assert await page.evaluate("sessionStorage.length") == 0

        # a token whose roles may not review the log: refused with the 403 problem
        await sign_in(page, "demo-editor")
        message = await page.wait_for(
            "document.getElementById('message').textContent.includes('forbidden')"
            " && document.getElementById('message').textContent"
        )
        assert "Forbidden" in message
        assert await page.evaluate("document.getElementById('review').hidden") is True
        assert await page.evaluate("sessionStorage.length") == 0

        # a privacy officer: the update's entries, newest first
        await sign_in(page, "demo-privacy")
        await page.wait_for("!document.getElementById('review').hidden")
        await show_view(page, "entries")
        await page.wait_for("document.querySelectorAll('#entries-body tr').length >= 2")
        assert await page.evaluate("sessionStorage.getItem('gdpr-gateway.review-token')") == (
            "demo-privacy"
        )
        assert await page.evaluate("document.cookie") == ""
        assert "demo-privacy" not in await page.evaluate("location.href")
        rows = await page.evaluate(rows_expression())
        updates = [r for r in rows if r[2] == "update" and r[6] == "1002" and r[7] == "Name"]
        assert [r[3] for r in updates] == ["outcome", "intent"]  # newest first
        assert updates[0][4].startswith("applied")
        assert updates[0][7] == "Name"

        # one entry, masked, with its hashes
        await open_entry(page, update_id)
        values = await value_cells(page, "d-values-body")
        assert values["Name"][1] == "***"
        meta = await page.evaluate("document.getElementById('d-meta').textContent")
        assert "Previous hash" in meta and "Hash" in meta
        hashes = await page.evaluate(
            "Array.from(document.querySelectorAll('#d-meta dd.hash')).map(d => d.textContent)"
        )
        entry = await (await stack.client.get(f"/v1/audit/{update_id}", headers=AUDITOR)).json()
        assert hashes == [entry["prev_hash"], entry["hash"]]

        # reveal with a reason: the clear value, as text, and the reveal's own entry id
        await page.evaluate(
            "document.getElementById('reason').value = 'complaint ticket 42';"
            "document.getElementById('reveal').click(); true"
        )
        await page.wait_for("!document.getElementById('revealed').hidden")
        revealed = await value_cells(page, "r-values-body")
        assert revealed["Name"][1] == MARKUP_NAME
        assert await page.evaluate("document.getElementById('injected') === null") is True
        assert await page.evaluate("document.querySelectorAll('#revealed b').length") == 0
        reveal_id = await page.evaluate("document.getElementById('r-id').textContent")
        reveal_entry = await (
            await stack.client.get(f"/v1/audit/{reveal_id}", headers=AUDITOR)
        ).json()
        assert reveal_entry["action"] == "reveal"
        assert reveal_entry["target_id"] == update_id

        # verify the chain
        await page.evaluate("document.getElementById('verify').click(); true")
        await page.wait_for("!document.getElementById('verify-result').hidden")
        assert await page.evaluate("document.getElementById('v-ok').textContent") == "ok"
        entries = int(await page.evaluate("document.getElementById('v-entries').textContent"))
        assert entries >= 3
        assert await page.evaluate("document.getElementById('v-first-bad').textContent") == (
            "none"
        )
        shot = await page.screenshot(tmp_path / "review.png")
        assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000

        # sign out: the token is gone from the tab
        await page.evaluate("document.getElementById('sign-out').click(); true")
        await page.wait_for("!document.getElementById('signin').hidden")
        assert await page.evaluate("sessionStorage.length") == 0

        # an auditor: the entry is readable, the reveal is refused with a readable message
        await sign_in(page, "demo-auditor")
        await page.wait_for("!document.getElementById('review').hidden")
        await show_view(page, "entries")
        await page.wait_for(
            f"document.querySelector('#entries-body tr[data-audit-id={js(update_id)}]') !== null"
        )
        # the outcome entry links to the intent it closes, which holds the values
        outcome_id = await page.evaluate(
            "Array.from(document.querySelectorAll('#entries-body tr')).find(r =>"
            " r.cells[3].textContent === 'outcome' && r.cells[7].textContent === 'Name')"
            ".dataset.auditId"
        )
        await open_entry(page, outcome_id)
        assert await page.evaluate("document.getElementById('reveal-form').hidden") is True
        await page.evaluate(
            "document.querySelector('#d-meta button[aria-label^=\"Open entry\"]').click(); true"
        )
        await page.wait_for(f"document.getElementById('d-id').textContent === {js(update_id)}")
        assert await page.evaluate("document.getElementById('reveal-form').hidden") is False
        await page.evaluate(
            "document.getElementById('reason').value = 'curious';"
            "document.getElementById('reveal').click(); true"
        )
        message = await page.wait_for(
            "document.getElementById('message').classList.contains('error') &&"
            " document.getElementById('message').textContent"
        )
        assert "Forbidden" in message and "(forbidden)" in message
        assert await page.evaluate("document.getElementById('revealed').hidden") is True
        assert await page.evaluate("!document.getElementById('review').hidden") is True

        # paging through next_cursor, and back to the first page
        ids = "Array.from(document.querySelectorAll('#entries-body tr'), r => r.dataset.auditId)"
        await page.evaluate(
            "document.getElementById('f-limit').value = '10';"
            "document.getElementById('apply').click(); true"
        )
        await page.wait_for(
            "document.querySelectorAll('#entries-body tr').length === 10"
            " && !document.getElementById('next-page').hidden"
        )
        first = await page.evaluate(ids)
        await page.evaluate("document.getElementById('next-page').click(); true")
        await page.wait_for("!document.getElementById('first-page').hidden")
        second = await page.evaluate(ids)
        assert len(second) >= 3 and not set(first) & set(second)
        assert await page.evaluate("document.getElementById('next-page').hidden") is True
        await page.evaluate("document.getElementById('first-page').click(); true")
        await page.wait_for("document.getElementById('first-page').hidden")
        assert await page.evaluate(ids) == first

        # a bad filter: the 422 problem names the field
        await page.evaluate(
            "document.getElementById('f-since').value = 'yesterday';"
            "document.getElementById('apply').click(); true"
        )
        message = await page.wait_for(
            "document.getElementById('message').textContent.includes('validation_failed')"
            " && document.getElementById('message').textContent"
        )
        assert "since" in message

        # a 401 in the middle of a session (a revoked token) sends back to sign-in
        await page.evaluate(
            "sessionStorage.setItem('gdpr-gateway.review-token', 'revoked');"
            "document.getElementById('verify').click(); true"
        )
        await page.wait_for("!document.getElementById('signin').hidden")
        message = await page.wait_for("document.getElementById('message').textContent")
        assert "Unauthenticated" in message
        assert await page.evaluate("sessionStorage.length") == 0
        assert await page.evaluate("document.getElementById('review').hidden") is True

        await page.evaluate("1")  # collect the events that arrived meanwhile
        # refused loads (a CSP violation among them) or script errors; the expected
        # 401/403/422 answers (and the browser's own favicon.ico guess) are logged as
        # network errors and ignored
        expected = ("status of 401", "status of 403", "status of 422", "/favicon.ico]")
        problems = [p for p in page.problems() if not any(e in p for e in expected)]
        assert problems == []


async def group_gone(pgid: int, *, seconds: float) -> bool:
    """Whether process group ``pgid`` has no member left, waiting up to ``seconds``."""
    for _ in range(int(seconds / 0.1)):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.1)
    return False


def require_chromium() -> None:
    if not chromium_present():
        pytest.fail(MISSING_MESSAGE)


async def test_a_missing_chromium_fails_naming_make_browser(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", str(tmp_path / "no-chromium"))
    assert chromium_present() is False
    with pytest.raises(FileNotFoundError, match="make browser"):
        async with Browser.launch(tmp_path):
            pass
    assert "make browser" in MISSING_MESSAGE


async def test_the_browser_and_its_children_are_ended(tmp_path: Path) -> None:
    require_chromium()
    async with Browser.launch(tmp_path) as browser:
        page = await browser.new_page()
        assert await page.evaluate("6 * 7") == 42
        pid = browser.pid
        os.killpg(pid, 0)  # the group exists while the browser runs
    # nothing of it is left: no renderer, no zombie (a child the browser did not reap
    # itself is reaped by PID 1, which may take a moment)
    assert await group_gone(pid, seconds=10.0) is True
    assert not (tmp_path / "chromium-profile").exists()
