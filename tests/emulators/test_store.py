"""The store and the generated data: deterministic, complete, copy-safe."""

from __future__ import annotations

import pytest

from service.emulators import STORE_KEY, CustomerStore, create_emulator
from service.registry import SYSTEMS

DEMO_IDS = {"timelog": [3001], "billbee": [1001, 1002], "sedona": [2001], "keycom": [4001, 4002]}
EMAIL_DOMAINS = ("example.de", "example.dk", "example.fi", "example.com", "example.net",
                 "example.org")


@pytest.mark.parametrize("system", SYSTEMS)
def test_holds_the_demo_customers_and_the_generated_range(system: str) -> None:
    store = create_emulator(system)[STORE_KEY]
    ids = store.ids()
    assert ids[: len(DEMO_IDS[system])] == DEMO_IDS[system]
    assert ids[len(DEMO_IDS[system]):] == list(range(100000, 110000))
    assert store.get(99999) is None and store.get(110000) is None
    assert 100000 in store and 110000 not in store


@pytest.mark.parametrize("system", SYSTEMS)
def test_generated_records_are_deterministic_and_shaped_like_the_seed(system: str) -> None:
    spec = SYSTEMS[system].emulator
    seed_keys = [list(r) for r in spec.seed().values()]
    assert all(keys == seed_keys[0] for keys in seed_keys)
    first = spec.generate(100007)
    assert spec.generate(100007) == first
    assert list(first) == seed_keys[0]
    assert spec.generate(100008) != first
    other_store = create_emulator(system)[STORE_KEY]
    assert other_store.get(105555) == create_emulator(system)[STORE_KEY].get(105555)


@pytest.mark.parametrize("system", SYSTEMS)
def test_generated_emails_use_reserved_domains(system: str) -> None:
    spec = SYSTEMS[system].emulator
    for customer_id in range(100000, 100050):
        text = repr(spec.generate(customer_id))
        emails = [w.strip("',{}") for w in text.split() if "@" in w]
        assert emails
        assert all(e.endswith(EMAIL_DOMAINS) for e in emails)


def test_get_hands_out_copies_and_put_stores_copies() -> None:
    store = CustomerStore({1: {"a": {"b": 1}}})
    got = store.get(1)
    assert got is not None
    got["a"]["b"] = 2
    assert store.get(1) == {"a": {"b": 1}}
    record = {"a": {"b": 3}}
    store.put(1, record)
    record["a"]["b"] = 4
    assert store.get(1) == {"a": {"b": 3}}


def test_put_of_a_new_id_is_listed_and_reset_forgets_writes() -> None:
    store = CustomerStore({1: {"x": 1}}, lambda i: {"x": i})
    store.put(5, {"x": 5})
    store.put(100001, {"x": "written"})
    assert store.ids()[:2] == [1, 5]
    assert store.get(100001) == {"x": "written"}
    assert len(store) == 10002
    store.reset()
    assert store.get(5) is None
    assert store.get(100001) == {"x": 100001}
    assert len(store) == 10001


def test_without_generator_there_is_no_generated_range() -> None:
    store = CustomerStore({7: {"x": 1}})
    assert store.ids() == [7]
    assert store.get(100000) is None


def test_unknown_system_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown system"):
        create_emulator("salesforce")
