"""The registry: each shipped system described once, and consistently."""

from __future__ import annotations

import dataclasses

import pytest

from common.vocabulary import System
from policies.loader import load_file
from service.registry import SYSTEMS, Registry
from service.upstreams.settings import UpstreamSettings


def test_the_shipped_systems_are_the_vocabulary_s_in_port_order() -> None:
    assert list(SYSTEMS) == list(System)
    assert all(type(name) is str for name in SYSTEMS)  # plain strings: YAML, JSON, labels


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_each_descriptor_s_parts_name_its_system(name: str) -> None:
    descriptor = SYSTEMS[name]
    policy, errors = load_file(descriptor.policy)
    assert errors == [] and policy is not None and policy.system == name
    assert policy.mode == descriptor.connector.mode
    assert descriptor.emulator.name == descriptor.connector.system == name
    assert set(descriptor.emulator.credentials) == set(descriptor.credentials.names())
    if descriptor.options is None:
        assert not descriptor.emulator.options
    else:
        descriptor.options.model_validate(dict(descriptor.emulator.options))


def test_a_descriptor_that_does_not_hold_together_is_refused() -> None:
    billbee, sedona = SYSTEMS["billbee"], SYSTEMS["sedona"]
    with pytest.raises(ValueError, match="descriptor, connector and emulator differ"):
        dataclasses.replace(billbee, emulator=sedona.emulator)
    with pytest.raises(ValueError, match="reads other credentials"):
        dataclasses.replace(billbee, credentials=sedona.credentials)
    with pytest.raises(ValueError, match="registered twice"):
        Registry(billbee, billbee)
    with pytest.raises(ValueError, match="unknown upstream system 'nope'"):
        SYSTEMS.connect(UpstreamSettings(system="nope", base_url="http://127.0.0.1:1"))
