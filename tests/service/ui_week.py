"""A compliance office's week on the review page, driven once in a real headless Chromium
against the real gateway (emulators, SQLite audit), for tests/service/test_ui_compliance.py.

:func:`run_week` signs in as the demo auditor, reads the record of processing, opens
every change of billbee customer 1002 on one screen, reads last week's refusals on the
trend chart; signs in as the demo privacy officer, exports and erases that subject;
reveals a value whose retention ended; probes every new place a value is shown with
markup; and returns what it saw (:class:`Week`). One browser session, one gateway: the
tests assert on the observations, so the slow part runs once per module.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from aiohttp.test_utils import TestClient, TestServer

import audit.entries
from audit import Intent
from common.vocabulary import Action, Role
from policies.loader import CATALOG
from service.keys import POLICIES_KEY
from service.settings import Settings, TokenEntry
from tests.service.browser import Browser, Page
from tests.service.conftest import AUDITOR, EDITOR, PRIVACY, Stack, make_stack

#: markup where values are shown: each must read as these characters and build nothing
MARKUP_ACTOR = '<img src=x id=injected-actor onerror="document.title=1">Mallory'
MARKUP_REASON = '<b id=injected-reason>ticket</b><script>document.title=2</script>'
MARKUP_ACTIVITY = '<img src=x id=injected-record onerror="document.title=3"> shop'
MARKUP_TOKEN = "markup-actor-token"
SUBJECT = ("billbee", "1002")
SCREENSHOTS = ("changes", "subject", "trends", "record")
LONG_AGO_DAYS = 1200


def js(value: Any) -> str:
    return json.dumps(value)


def days_ago(n: int, hour: int = 10) -> str:
    day = datetime.now(UTC).date() - timedelta(days=n)
    return f"{day.isoformat()}T{hour:02d}:15:00.000000Z"


@dataclasses.dataclass
class Week:
    """What the page showed, step by step (plain values, for the tests to assert on)."""

    seen: dict[str, Any] = dataclasses.field(default_factory=dict)
    api: dict[str, Any] = dataclasses.field(default_factory=dict)
    screenshots: dict[str, Path] = dataclasses.field(default_factory=dict)
    downloads: dict[str, Any] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)


def _with_markup_actor(settings: Settings) -> Settings:
    entry = TokenEntry(
        name=MARKUP_ACTOR,
        roles=frozenset({Role.EDITOR, Role.PRIVACY_OFFICER}),
        systems=frozenset({"*"}),
        sha256=hashlib.sha256(MARKUP_TOKEN.encode()).hexdigest(),
    )
    return dataclasses.replace(
        settings, tokens=(*settings.tokens, entry), policies_reload_seconds=0
    )


async def _client(app: Any) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _ok(response: Awaitable[Any], status: int = 200) -> Any:
    answer = await response
    assert answer.status == status, (answer.status, await answer.text())
    return await answer.json()


async def _seed(stack: Stack) -> None:
    """Changes, refusals and a reveal spread over the last week; a dangling intent."""
    client = stack.client

    async def patch(system: str, cid: str, body: dict[str, Any], status: int = 200) -> Any:
        return await _ok(client.patch(f"/v1/systems/{system}/customers/{cid}", json=body,
                                      headers=EDITOR), status)  # fmt: skip

    for n, when in ((5, days_ago(5)), (3, days_ago(3, 9)), (3, days_ago(3, 14))):
        with mock.patch.object(audit.entries, "now_iso", lambda when=when: when):
            await patch("billbee", "1001", {"Tel1": "+49 30 1111111"}, 409)  # archived
            if n == 3:
                await patch("keycom", "4002", {"name": "New Name"}, 409)  # restricted
    with mock.patch.object(audit.entries, "now_iso", lambda: days_ago(LONG_AGO_DAYS)):
        # past sedona's 1095 days: the gateway's own expiry job forgets these values
        await patch("sedona", "2001", {"CustomerName2": "Old second line"})
    with mock.patch.object(audit.entries, "now_iso", lambda: days_ago(2)):
        await patch("billbee", "1002", {"NoSuchField": 1}, 422)
        first = await patch("billbee", "1002", {"Tel1": "+49 30 2222222"})
    await patch("billbee", "1002", {"Email": "jonas.keller@example.net", "Tel2": "+49 30 333"})
    await patch("sedona", "2001", {"CustomerName2": "Second line"})
    await _ok(client.get("/v1/systems/billbee/customers/1002", headers=EDITOR))
    await _ok(client.post(f"/v1/audit/{first['audit_id']}/reveal",
                          json={"reason": "customer disputes the number"}, headers=PRIVACY))
    await stack.audit.begin(  # a process that died after its intent: dangling
        Intent(
            actor="demo-editor", roles=("editor",), system="sedona", customer_id="2001",
            purpose="customer_service", request_id="r-dangling", action=Action.UPDATE,
            changed=("CustomerName2",), before={"CustomerName2": "a"},
            after={"CustomerName2": "b"}, protected={"CustomerName2": "personal"},
            policy_version="v",
        )
    )  # fmt: skip


async def _sign_in(page: Page, token: str) -> None:
    await page.wait_for("!document.getElementById('signin').hidden")
    await page.evaluate(
        f"document.getElementById('token').value = {js(token)};"
        "document.getElementById('sign-in').click(); true"
    )
    await page.wait_for("!document.getElementById('review').hidden")


async def _sign_out(page: Page) -> None:
    await page.evaluate("document.getElementById('sign-out').click(); true")
    await page.wait_for("!document.getElementById('signin').hidden")


async def _view(page: Page, name: str) -> None:
    await page.evaluate(f"document.getElementById('tab-{name}').click(); true")
    await page.wait_for(f"!document.getElementById('view-{name}').hidden")


async def _message(page: Page, contains: str) -> str:
    text: str = await page.wait_for(
        f"document.getElementById('message').textContent.includes({js(contains)})"
        " && document.getElementById('message').textContent"
    )
    return text


def _downloaded(folder: Path, name: str) -> bool:
    return (folder / name).exists() and not list(folder.glob("*.crdownload"))


async def _download(folder: Path, name: str) -> Path:
    for _ in range(100):
        if await asyncio.to_thread(_downloaded, folder, name):
            return folder / name
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no download {name}")


async def _viewport_shot(page: Page, path: Path) -> None:
    answer = await page.send("Page.captureScreenshot", format="png")
    await asyncio.to_thread(path.write_bytes, base64.b64decode(answer["data"]))


ROWS = (
    "Array.from(document.querySelectorAll('#{body} tr')).map(r => ({{id: r.dataset.changeId,"
    " dangling: r.classList.contains('dangling'),"
    " cells: Array.from(r.cells).map(c => c.textContent)}}))"
)
INJECTED = "document.querySelectorAll('[id^=injected]').length"


async def _auditor(page: Page, stack: Stack, week: Week, shots: Path) -> None:
    """The auditor: changes, the record, the subject, the trend; export and erase refused."""
    await _sign_in(page, "demo-auditor")
    await page.wait_for("document.querySelectorAll('#changes-body tr').length >= 5")
    week.seen["changes"] = await page.evaluate(ROWS.format(body="changes-body"))
    week.screenshots["changes"] = shots / "changes.png"
    await page.screenshot(week.screenshots["changes"])

    await _view(page, "record")
    await page.wait_for("document.querySelectorAll('#record-body section.activity').length === 4")
    week.seen["record_text"] = await page.evaluate(
        "document.getElementById('view-record').innerText"
    )
    week.seen["record_versions"] = await page.evaluate(
        "Array.from(document.querySelectorAll('#record-body .version'), p => p.textContent)"
    )
    week.screenshots["record"] = shots / "record.png"
    await _viewport_shot(page, week.screenshots["record"])  # the page is long: its top
    await page.evaluate("document.getElementById('record-markdown').click(); true")
    downloads = shots / "downloads"
    markdown = await _download(downloads, "record-of-processing.md")
    week.downloads["markdown"] = await asyncio.to_thread(markdown.read_text)

    # every change of billbee 1002, from the link in its row
    await _view(page, "changes")
    await page.wait_for("document.querySelectorAll('#changes-body tr').length >= 5")
    await page.evaluate(
        "document.querySelector('#changes-body button[aria-label=\"Show subject billbee/1002\"]')"
        ".click(); true"
    )
    await page.wait_for("!document.getElementById('subject-panel').hidden"
                        " && document.querySelectorAll('#subject-body tr').length > 0")
    week.seen["subject_name"] = await page.evaluate("document.getElementById('s-name').textContent")
    week.seen["subject_rows"] = await page.evaluate(ROWS.format(body="subject-body"))
    week.screenshots["subject"] = shots / "subject.png"
    await page.screenshot(week.screenshots["subject"])
    await page.evaluate("document.getElementById('s-export').click(); true")
    week.seen["auditor_export"] = await _message(page, "forbidden")
    await page.evaluate(
        "document.getElementById('e-reason').value = 'curious';"
        "{ const c = document.getElementById('e-confirm'); c.value = 'billbee/1002';"
        "c.dispatchEvent(new Event('input')); } document.getElementById('e-erase').click(); true"
    )
    week.seen["auditor_erase"] = await _message(page, "forbidden")

    await _view(page, "trends")
    await page.wait_for("document.body.dataset.trendsReady === 'true'")
    week.seen["bars"] = await page.evaluate(
        "Array.from(document.querySelectorAll('#trend-chart rect.bar'), r => ({...r.dataset,"
        " cls: r.getAttribute('class'), height: Number(r.getAttribute('height'))}))"
    )
    week.seen["trend_rows"] = await page.evaluate(
        "Array.from(document.querySelectorAll('#trend-body tr'), r =>"
        " Array.from(r.cells, c => c.textContent))"
    )
    week.seen["legend"] = await page.evaluate("document.getElementById('trend-legend').textContent")
    week.screenshots["trends"] = shots / "trends.png"
    await page.screenshot(week.screenshots["trends"])
    await _sign_out(page)


async def _privacy_officer(page: Page, stack: Stack, week: Week, shots: Path) -> None:
    """The privacy officer exports and erases billbee 1002, then reveals an erased value."""
    await _sign_in(page, "demo-privacy")
    await _view(page, "subject")
    await page.evaluate(
        "document.getElementById('s-system').value = 'billbee';"
        "document.getElementById('s-customer').value = '1002';"
        "document.getElementById('s-show').click(); true"
    )
    await page.wait_for("document.querySelectorAll('#subject-body tr').length > 0")
    await page.evaluate("document.getElementById('s-export').click(); true")
    week.seen["export_message"] = await _message(page, "Exported billbee/1002")
    path = await _download(shots / "downloads", "billbee-1002-export.json")
    week.downloads["export"] = json.loads(await asyncio.to_thread(path.read_text))
    # the erase button stays disabled until the subject is typed
    week.seen["erase_disabled_blank"] = await page.evaluate(
        "document.getElementById('e-erase').disabled"
    )
    await page.evaluate(
        "document.getElementById('e-reason').value = 'Art. 17 request of the customer';"
        "{ const c = document.getElementById('e-confirm'); c.value = 'billbee/1001';"
        "c.dispatchEvent(new Event('input')); } true"
    )
    week.seen["erase_disabled_wrong"] = await page.evaluate(
        "document.getElementById('e-erase').disabled"
    )
    week.seen["confirm_label"] = await page.evaluate(
        "document.getElementById('e-confirm-label').textContent"
    )
    await page.evaluate(
        "{ const c = document.getElementById('e-confirm'); c.value = 'billbee/1002';"
        "c.dispatchEvent(new Event('input')); } document.getElementById('e-erase').click(); true"
    )
    week.seen["erase_message"] = await _message(page, "Erased billbee/1002")
    await page.wait_for(
        "Array.from(document.querySelectorAll('#subject-body tr')).some(r =>"
        " r.cells[3].textContent === 'erase')"
    )
    week.seen["subject_after"] = await page.evaluate(ROWS.format(body="subject-body"))
    # a value of the erased subject, revealed: erased (erasure request)
    intent = next(r for r in week.seen["subject_after"] if r["cells"][3] == "update"
                  and "Email" in r["cells"][4])  # fmt: skip
    await page.evaluate(
        f"document.querySelector('#subject-body tr[data-change-id={js(intent['id'])}]"
        " td.entries button').click(); true"
    )
    await page.wait_for(f"document.getElementById('d-id').textContent === {js(intent['id'])}")
    await page.evaluate(
        "document.getElementById('reason').value = 'check the erasure';"
        "document.getElementById('reveal').click(); true"
    )
    await page.wait_for("!document.getElementById('revealed').hidden")
    week.seen["erased_values"] = await page.evaluate(
        "Array.from(document.querySelectorAll('#r-values-body tr'), r =>"
        " Array.from(r.cells, c => c.textContent))"
    )
    await page.evaluate("document.getElementById('verify').click(); true")
    await page.wait_for("!document.getElementById('verify-result').hidden")
    week.seen["verify_after_erase"] = await page.evaluate(
        "document.getElementById('v-ok').textContent"
    )
    await _expired_value(page, week)
    await _sign_out(page)


async def _expired_value(page: Page, week: Week) -> None:
    """The change of sedona 2001 of long ago, after the expiry job: erased (retention)."""
    await _view(page, "subject")
    await page.evaluate(
        "document.getElementById('s-system').value = 'sedona';"
        "document.getElementById('s-customer').value = '2001';"
        "document.getElementById('s-show').click(); true"
    )
    await page.wait_for(
        "document.getElementById('s-name').textContent === 'sedona/2001' &&"
        " Array.from(document.querySelectorAll('#subject-body tr')).some(r =>"
        " r.cells[3].textContent === 'expire')"
    )
    rows = await page.evaluate(ROWS.format(body="subject-body"))
    week.seen["expired_subject"] = rows
    old = rows[0]  # oldest first: the change of long ago
    await page.evaluate(
        f"document.querySelector('#subject-body tr[data-change-id={js(old['id'])}]"
        " td.entries button').click(); true"
    )
    await page.wait_for(f"document.getElementById('d-id').textContent === {js(old['id'])}")
    await page.evaluate(
        "document.getElementById('reason').value = 'was it kept too long?';"
        "document.getElementById('reveal').click(); true"
    )
    await page.wait_for("!document.getElementById('revealed').hidden")
    week.seen["expired_values"] = await page.evaluate(
        "Array.from(document.querySelectorAll('#r-values-body tr'), r =>"
        " Array.from(r.cells, c => c.textContent))"
    )
    week.seen["expired_note"] = await page.evaluate(
        "document.getElementById('r-erased').textContent"
    )
    await page.evaluate("document.getElementById('verify').click(); true")
    await page.wait_for("!document.getElementById('verify-result').hidden"
                        " && document.getElementById('v-ok').textContent !== ''")
    week.seen["verify_after_expiry"] = await page.evaluate(
        "document.getElementById('v-ok').textContent"
    )


async def _markup(page: Page, stack: Stack, week: Week, settings: Settings) -> None:
    """Markup in an actor's name, a reason and a policy's text: shown as text everywhere."""
    client = stack.client
    markup = {"Authorization": f"Bearer {MARKUP_TOKEN}", "X-Purpose": "customer_service"}
    change = await _ok(client.patch("/v1/systems/sedona/customers/2001",
                                    json={"CustomerName2": "Probe"}, headers=markup))  # fmt: skip
    await _ok(client.post(f"/v1/audit/{change['audit_id']}/reveal",
                          json={"reason": MARKUP_REASON}, headers=markup))  # fmt: skip
    assert settings.policies_dir is not None
    billbee = settings.policies_dir / "billbee.yaml"
    billbee.write_text(billbee.read_text(encoding="utf-8").replace(
        "  activity: Customer master data of the online shop (orders, invoices, shipping) in"
        " Billbee", f"  activity: {js(MARKUP_ACTIVITY)}"), encoding="utf-8")  # fmt: skip
    assert await client.app[POLICIES_KEY].reload("test") is True  # type: ignore[index]

    await _sign_in(page, "demo-auditor")
    await page.wait_for(
        f"document.getElementById('changes-body').textContent.includes({js(MARKUP_ACTOR)})"
    )
    probe: dict[str, Any] = {}
    probe["changes"] = await page.evaluate("document.getElementById('changes-body').textContent")
    await page.evaluate(
        "document.querySelector('#changes-body button[aria-label=\"Show subject sedona/2001\"]')"
        ".click(); true"
    )
    await page.wait_for(
        f"document.getElementById('subject-body').textContent.includes({js(MARKUP_REASON)})"
    )
    probe["subject"] = await page.evaluate("document.getElementById('subject-body').textContent")
    await _view(page, "record")
    probe["record"] = await _reload_record(page)
    await _view(page, "trends")
    await page.wait_for("document.body.dataset.trendsReady === 'true'")
    probe["injected"] = await page.evaluate(INJECTED)
    probe["title"] = await page.evaluate("document.title")
    probe["bold"] = await page.evaluate("document.querySelectorAll('main b, main script').length")
    week.seen["markup"] = probe
    await _sign_out(page)


async def _reload_record(page: Page) -> str:
    """The record view reads the record once per sign-in: the reload made a new one."""
    await page.wait_for(
        f"document.getElementById('record-body').textContent.includes({js(MARKUP_ACTIVITY)})"
    )
    text: str = await page.evaluate("document.getElementById('record-body').textContent")
    return text


async def run_week(tmp: Path, extra: Callable[[Page, Stack, Week], Awaitable[None]] | None = None
                   ) -> Week:  # fmt: skip
    """The whole week; ``tmp`` holds the profile, downloads and screenshots."""
    policies = tmp / "policies"
    shutil.copytree(CATALOG, policies)
    shots = tmp / "shots"
    (shots / "downloads").mkdir(parents=True)
    clients: list[TestClient[Any, Any]] = []

    async def factory(app: Any) -> TestClient[Any, Any]:
        clients.append(await _client(app))
        return clients[-1]

    def tweak(settings: Settings) -> Settings:
        # the expiry job runs by itself, every 0.2 s
        return dataclasses.replace(_with_markup_actor(settings), policies_dir=policies,
                                   audit_expire_seconds=0.2)  # fmt: skip

    week = Week()
    try:
        async for stack in make_stack(factory, tmp, tweak=tweak):
            settings = stack.settings
            await _seed(stack)
            for name, route in (("subject", "/v1/audit/changes?system=billbee&customer_id=1002"
                                 "&order=oldest&limit=500"),
                                ("markdown", "/v1/record-of-processing")):  # fmt: skip
                headers = {**AUDITOR, "Accept": "text/markdown"} if name == "markdown" else AUDITOR
                async with stack.client.get(route, headers=headers) as response:
                    week.api[name] = (await response.json() if name != "markdown"
                                      else await response.text())  # fmt: skip
            async with Browser.launch(tmp) as browser:
                page = await browser.new_page()
                await page.send("Browser.setDownloadBehavior", behavior="allow",
                                downloadPath=str(shots / "downloads"))  # fmt: skip
                await page.navigate(str(stack.client.make_url("/ui/")))
                await page.wait_for("document.body?.dataset.ready")
                await _auditor(page, stack, week, shots)
                await _privacy_officer(page, stack, week, shots)
                if extra is not None:
                    await extra(page, stack, week)
                await _markup(page, stack, week, settings)
                await page.evaluate("1")  # collect the events that arrived meanwhile
                week.problems = page.problems()
            verify = await (await stack.client.get("/v1/audit/verify", headers=AUDITOR)).json()
            week.api["verify"] = verify
    finally:
        for client in clients:
            await client.close()
    return week
