"""Contract tests: each connector against its emulator over real HTTP on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from service.errors import (
    CircuitOpen,
    CustomerNotFound,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from service.registry import SYSTEMS
from service.secret import Secret
from service.upstreams import Connector
from service.upstreams.timelog import WRITE_FIELDS as TIMELOG_WRITE_FIELDS
from tests.upstreams.harness import (
    CASES,
    PUT_SYSTEMS,
    UNKNOWN_ID,
    Harness,
    write,
)

# -- success ---------------------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
async def test_fetch_then_apply_round_trip(make: Callable[..., Harness], system: str) -> None:
    h = make(system)
    case = CASES[system]
    cid = str(case.customer_id)
    connector: Connector = h.connector
    assert isinstance(connector, Connector)
    before = await connector.fetch(cid)
    # the declared read coverage is what a fetch really shows
    assert connector.read_coverage <= set(before)
    assert connector.version_tag(before) == connector.version_tag(await connector.fetch(cid))

    after = await write(h, cid, {case.field: case.new_value})

    assert after[case.field] == case.new_value
    assert h.stored(case.customer_id)[case.store_field] == case.new_value
    refetched = await connector.fetch(cid)
    assert refetched == after
    assert connector.version_tag(refetched) != connector.version_tag(before)
    # nothing else the fetch could see was lost by the whole-object write
    for key in connector.read_coverage - {case.field}:
        assert refetched[key] == before[key], key
    assert h.connector.breaker.state == "closed"
    assert {o[2] for o in h.observed} == {200}
    assert all(o[0] == system for o in h.observed)


async def test_timelog_speaks_write_names(make: Callable[..., Harness]) -> None:
    h = make("timelog")
    record = await h.connector.fetch("3001")
    assert "No" not in record and "VATNo" not in record
    stored = h.stored(3001)
    assert record["CustomerNo"] == stored["CustomerNo"]
    assert record["VatNo"] == stored["VatNo"]
    assert set(record) == {
        "CustomerID", "ID", "Name", "CustomerNo", "DefaultMileageDistance",
        "CustomerStatusID", "VatNo", "OrganizationNo",
    }
    assert h.connector.read_coverage == set(record) & TIMELOG_WRITE_FIELDS
    # the write model's names reach the upstream: the stored number follows the change
    full = {k: stored[k] for k in TIMELOG_WRITE_FIELDS}
    after = await h.connector.apply("3001", {**full, **record, "CustomerNo": "C-9"})
    assert after["CustomerNo"] == "C-9"
    assert h.stored(3001)["CustomerNo"] == "C-9"
    assert h.stored(3001)["Email"] == stored["Email"]  # supplied, so kept


async def test_keycom_version_tag_is_modified(make: Callable[..., Harness]) -> None:
    h = make("keycom")
    before = await h.connector.fetch("4001")
    assert h.connector.version_tag(before) == before["modified"]
    after = await h.connector.apply("4001", {"note": "Mittari siirretty"})
    assert h.connector.version_tag(after) == after["modified"] != before["modified"]


# -- not found, bad ids, credentials ---------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
async def test_unknown_customer(make: Callable[..., Harness], system: str) -> None:
    h = make(system)
    with pytest.raises(CustomerNotFound):
        await h.connector.fetch(UNKNOWN_ID)
    with pytest.raises(CustomerNotFound):
        await write_blind(h, UNKNOWN_ID)
    assert h.connector.breaker.state == "closed"
    assert h.connector.breaker.consecutive_failures == 0


async def write_blind(h: Harness, customer_id: str) -> dict[str, Any]:
    case = CASES[h.system]
    body: dict[str, Any] = {case.field: case.new_value}
    if h.system == "sedona":
        body.update(TypeCode="RES", TermCode="NET30")
    return await h.connector.apply(customer_id, body)


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("bad_id", ["abc", "0012", "-5", "1.5", "", "99999999999999999999"])
async def test_malformed_id_never_reaches_upstream(
    make: Callable[..., Harness], system: str, bad_id: str
) -> None:
    h = make(system)
    with pytest.raises(CustomerNotFound):
        await h.connector.fetch(bad_id)
    with pytest.raises(CustomerNotFound):
        await h.connector.apply(bad_id, {})
    assert h.total == 0


@pytest.mark.parametrize("system", SYSTEMS)
async def test_wrong_credentials(make: Callable[..., Harness], system: str) -> None:
    h = make(system)
    good = h.connector.settings.credentials
    wrong = {k: Secret("f" * 40 if system == "keycom" else "wrong-" + k) for k in good}
    bad = make(system, credentials=wrong)
    with pytest.raises(UpstreamAuthFailed) as info:
        await bad.connector.fetch(str(CASES[system].customer_id))
    assert info.value.upstream_status == 401
    for secret in [*good.values(), *wrong.values()]:
        assert secret.reveal() not in str(info.value)
    assert bad.connector.breaker.state == "closed"


# -- the upstream's own validation -----------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
async def test_validation_error_names_the_field(make: Callable[..., Harness], system: str) -> None:
    h = make(system)
    case = CASES[system]
    before = h.stored(case.customer_id)
    with pytest.raises(UpstreamRejected) as info:
        await write(h, str(case.customer_id), {case.bad_field: case.bad_value})
    error = info.value
    assert error.upstream_status == 400
    assert [p.field for p in error.errors] == [case.bad_field]
    assert all(p.code == "upstream_rejected" for p in error.errors)
    text = str(error) + " ".join(p.message for p in error.errors)
    assert str(case.bad_value) not in text
    assert h.stored(case.customer_id) == before
    assert h.connector.breaker.state == "closed"


async def test_sedona_required_field_cleared(make: Callable[..., Harness]) -> None:
    h = make("sedona")
    with pytest.raises(UpstreamRejected) as info:
        await write(h, "2001", {"TermCode": None})
    assert [p.field for p in info.value.errors] == ["TermCode"]


async def test_billbee_archived_customer_is_a_distinct_rejection(
    make: Callable[..., Harness],
) -> None:
    h = make("billbee")
    record = await h.connector.fetch("1001")
    assert record["ArchivedAt"]
    with pytest.raises(UpstreamRejected) as info:
        await h.connector.apply("1001", {**record, "Name": "Greta B."})
    assert [p.field for p in info.value.errors] == ["ArchivedAt"]
    assert "Greta" not in str(info.value)
    assert h.stored(1001)["Name"] == record["Name"]


# -- 5xx, timeouts, resets -------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
async def test_get_is_retried_after_one_503(
    make: Callable[..., Harness], set_faults: Callable[..., None], system: str
) -> None:
    h = make(system)
    set_faults(system, status=503, count=1, methods=["GET"])
    record = await h.connector.fetch(str(CASES[system].customer_id))
    assert record
    assert h.stats("GET") == 2
    assert [o[2] for o in h.observed] == [503, 200]


@pytest.mark.parametrize("system", PUT_SYSTEMS)
async def test_whole_object_put_is_retried_after_one_503(
    make: Callable[..., Harness], set_faults: Callable[..., None], system: str
) -> None:
    h = make(system)
    case = CASES[system]
    set_faults(system, status=503, count=1, methods=["PUT"])
    after = await write(h, str(case.customer_id), {case.field: case.new_value})
    assert after[case.field] == case.new_value
    assert h.stats("PUT") == 2


@pytest.mark.parametrize("fault", [{"status": 503, "count": 1}, {"reset": 1}, {"hang": 1}])
async def test_patch_is_never_retried_once_sent(
    make: Callable[..., Harness], set_faults: Callable[..., None], fault: dict[str, Any]
) -> None:
    h = make("keycom", max_retries=3, timeout_seconds=0.3)
    set_faults("keycom", methods=["PATCH"], **fault)
    with pytest.raises(UpstreamError) as info:
        await h.connector.apply("4001", {"name": "Virtanen Aino Maria"})
    assert h.stats("PATCH") == 1
    if "hang" in fault:
        assert isinstance(info.value, UpstreamTimeout)
    assert "Virtanen" not in str(info.value)


@pytest.mark.parametrize("system", SYSTEMS)
async def test_get_survives_one_connection_reset(
    make: Callable[..., Harness], set_faults: Callable[..., None], system: str
) -> None:
    h = make(system)
    set_faults(system, reset=1, methods=["GET"])
    assert await h.connector.fetch(str(CASES[system].customer_id))
    assert h.stats("GET") == 2
    assert [o[2] for o in h.observed] == [None, 200]


@pytest.mark.parametrize("system", SYSTEMS)
async def test_persistent_reset_is_an_upstream_error(
    make: Callable[..., Harness], set_faults: Callable[..., None], system: str
) -> None:
    h = make(system, max_retries=1)
    set_faults(system, reset=5)
    with pytest.raises(UpstreamError) as info:
        await h.connector.fetch(str(CASES[system].customer_id))
    assert type(info.value) is UpstreamError
    assert h.stats("GET") == 2


@pytest.mark.parametrize("system", SYSTEMS)
async def test_timeout(
    make: Callable[..., Harness], set_faults: Callable[..., None], system: str
) -> None:
    # 0.5 s, not less: on a loaded machine a shorter total can run out before the request
    # is even sent, which is rightly "unreachable" (nothing sent), not a timeout
    h = make(system, timeout_seconds=0.5, max_retries=1)
    set_faults(system, hang=5)
    with pytest.raises(UpstreamTimeout):
        await h.connector.fetch(str(CASES[system].customer_id))
    assert h.stats("GET") == 2


async def test_latency_over_the_timeout(
    make: Callable[..., Harness], set_faults: Callable[..., None]
) -> None:
    h = make("sedona", timeout_seconds=0.2, max_retries=0)
    set_faults("sedona", latency_ms=400)
    with pytest.raises(UpstreamTimeout):
        await h.connector.fetch("2001")
    fast = make("sedona", timeout_seconds=2.0)
    assert await fast.connector.fetch("2001")  # the same latency within the timeout


@pytest.mark.parametrize("system", SYSTEMS)
async def test_malformed_answer_to_a_get_is_retried(
    make: Callable[..., Harness], set_faults: Callable[..., None], system: str
) -> None:
    h = make(system)
    set_faults(system, malformed=1, methods=["GET"])
    assert await h.connector.fetch(str(CASES[system].customer_id))
    assert h.stats("GET") == 2


async def test_malformed_answer_to_a_patch_is_not_retried(
    make: Callable[..., Harness], set_faults: Callable[..., None]
) -> None:
    h = make("keycom")
    set_faults("keycom", malformed=1, methods=["PATCH"])
    with pytest.raises(UpstreamError, match="malformed"):
        await h.connector.apply("4001", {"note": "x"})
    assert h.stats("PATCH") == 1


# -- the circuit breaker ---------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
async def test_breaker_opens_after_failures_and_recovers(
    make: Callable[..., Harness], set_faults: Callable[..., None], system: str
) -> None:
    h = make(system, breaker_failure_threshold=3, max_retries=0, breaker_reset_seconds=1.0)
    states: list[str] = []
    h.connector.breaker.on_change = states.append
    cid = str(CASES[system].customer_id)
    set_faults(system, status=503, count=3)
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await h.connector.fetch(cid)
    assert h.connector.breaker.state == "open"
    with pytest.raises(CircuitOpen):
        await h.connector.fetch(cid)
    assert h.stats("GET") == 3  # the refused call never reached the upstream
    await asyncio.sleep(1.05)
    assert h.connector.breaker.state == "half_open"
    assert await h.connector.fetch(cid)
    assert h.connector.breaker.state == "closed"
    assert states == ["open", "half_open", "closed"]
