"""Request counters of one emulator (API routes only, never ``/_emulator``)."""

from __future__ import annotations

from collections import Counter

_ALWAYS = ("GET", "PUT", "PATCH", "POST", "DELETE")


class Stats:
    """How many requests reached the emulator's API routes, by method."""

    def __init__(self) -> None:
        self._requests: Counter[str] = Counter()

    def count(self, method: str) -> None:
        self._requests[method.upper()] += 1

    def requests(self, method: str) -> int:
        return self._requests[method.upper()]

    @property
    def total(self) -> int:
        return sum(self._requests.values())

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{"requests": {"GET": n, "PUT": n, "PATCH": n, ...}}``."""
        out = dict.fromkeys(_ALWAYS, 0)
        out.update(self._requests)
        return {"requests": out}

    def reset(self) -> None:
        self._requests.clear()
