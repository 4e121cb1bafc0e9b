from __future__ import annotations

import pytest

from policies import PolicyEngine, PolicySet, Principal, load_policy_set

PSEUDONYM_KEY = b"test-pseudonym-key-0123456789abcdef"
HASH_SALT = b"test-hash-salt"


def principal(*roles: str) -> Principal:
    return Principal("tester", frozenset(roles), frozenset({"*"}))


@pytest.fixture(scope="session")
def policy_set() -> PolicySet:
    return load_policy_set()


@pytest.fixture(scope="session")
def engine(policy_set: PolicySet) -> PolicyEngine:
    return PolicyEngine(policy_set, pseudonym_key=PSEUDONYM_KEY, hash_salt=HASH_SALT)
