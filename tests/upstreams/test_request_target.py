"""The request target of an upstream call (``transport.request_target``): what yarl's
join gives, for every path - the plain ones the connectors build without yarl."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from service.upstreams.transport import request_target

BASES = [
    URL("http://127.0.0.1:8084/"),
    URL("http://upstream.example/api/"),
    URL("https://upstream.example/a%20b/v1/"),
]
PATH_CHARS = st.sampled_from(list("aZ09._~-/%?#:@ é+;=&"))


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(
    "path",
    [
        "customers/4001/", "api/v1/customers/42", "api/customer/7", "a.", "a/.b", "~a/-b_",
        "", "a/./b", "./a", "a//b", "a/../b", "..", ".", "a?b=1", "a#f", "a%2Fb", "/abs",
        "a b", "é",
    ],
)  # fmt: skip
def test_known_paths(base: URL, path: str) -> None:
    assert request_target(base, path) == base.join(URL(path)).raw_path_qs


def _outcome(target: Callable[[], str]) -> tuple[str, object]:
    """The target, or the kind of the error: a path yarl cannot parse (``//a:a``, a host
    with a port that is not a number) must fail the same way, not give a target."""
    try:
        return ("target", target())
    except ValueError as exc:
        return ("refused", type(exc))


@pytest.mark.parametrize("path", ["//a:a", "//:a", "//a:9", "a:b"])
def test_paths_yarl_reads_as_a_host(path: str) -> None:
    base = BASES[0]
    assert _outcome(lambda: request_target(base, path)) == _outcome(
        lambda: base.join(URL(path)).raw_path_qs
    )


@given(st.sampled_from(BASES), st.lists(PATH_CHARS, max_size=16).map("".join))
def test_any_path(base: URL, path: str) -> None:
    assert _outcome(lambda: request_target(base, path)) == _outcome(
        lambda: base.join(URL(path)).raw_path_qs
    )
