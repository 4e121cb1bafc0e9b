"""The browser helper's ``wait_for``: a navigation that overtakes an evaluation is "not
yet", any other browser error still fails (no browser needed: evaluate is scripted)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.browser import CDPError, Page


class ScriptedPage(Page):
    """A page whose evaluations answer from a list (values, or errors to raise)."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(None, seconds=1.0)  # type: ignore[arg-type] - no socket is used
        self.answers = answers

    async def evaluate(self, expression: str) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_an_evaluation_overtaken_by_a_navigation_is_polled_again() -> None:
    page = ScriptedPage([
        CDPError("Runtime.evaluate: Inspected target navigated or closed"),
        CDPError("Runtime.evaluate: Execution context was destroyed."),
        False,
        "ready",
    ])  # fmt: skip
    assert await page.wait_for("document.body.dataset.ready", seconds=5) == "ready"
    assert page.answers == []


async def test_any_other_browser_error_still_fails_the_wait() -> None:
    page = ScriptedPage([CDPError("script failed: ReferenceError: x is not defined"), True])
    with pytest.raises(CDPError, match="ReferenceError"):
        await page.wait_for("x", seconds=5)
