"""The audit retention of a change's paths, cached per policy (issue 11, branch
``i11-pol``): the same days as worked out afresh, at most RETENTION_CACHE_SIZE sets of
paths kept, and a reload of the policies starts with an empty cache."""

from __future__ import annotations

import itertools
import random
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry

from policies import PolicySet, load_policy_set
from policies.compiled import RETENTION_CACHE_SIZE
from policies.loader import CATALOG
from service.metrics import Metrics
from service.reload import EngineKeys, PolicyReloader, load_engine
from tests.policies.conftest import HASH_SALT, PSEUDONYM_KEY

KEYS = EngineKeys(PSEUDONYM_KEY, HASH_SALT)


def _path_sets(policy_set: PolicySet, system: str, count: int) -> list[tuple[str, ...]]:
    """Sets of paths as a change's sealed ones: fields, nested ones, list indexes, names
    the policy does not know, none at all."""
    policy = policy_set[system]
    paths = [spec.path.replace("[]", f"[{n}]") for n, spec in enumerate(policy.walk())]
    paths += ["NotInPolicy", "a.b", ""]
    rng = random.Random(system)
    out: list[tuple[str, ...]] = [()]
    for _ in range(count):
        out.append(tuple(rng.sample(paths, k=rng.randint(1, 4))))
    return out


def test_retention_cache() -> None:
    """Cached or not, the same days (None too), for paths given as a tuple, a list or a
    generator; asked again, the days come from the cache."""
    policy_set = load_policy_set()
    for system in policy_set.systems:
        policy = policy_set[system]
        for paths in _path_sets(policy_set, system, 300):
            expected = policy.retention_days_uncached(paths)
            assert policy.retention_days(paths) == expected
            assert policy.retention_days(list(paths)) == expected
            assert policy.retention_days(p for p in paths) == expected
            if policy.processing is not None:
                assert policy.retention_cache[paths] == expected
        if policy.processing is not None:
            assert policy.retention_cache  # filled
            some = next(iter(policy.retention_cache))
            policy.retention_cache[some] = -1  # answered from the cache, not worked out
            assert policy.retention_days(some) == -1
            policy.retention_cache.clear()


def test_the_retention_cache_is_bounded() -> None:
    policy = load_policy_set()["keycom"]
    assert policy.processing is not None
    names = list(policy.fields)
    many = itertools.islice(
        (tuple(c) for n in (1, 2, 3) for c in itertools.permutations(names, n)),
        RETENTION_CACHE_SIZE + 500,
    )
    for paths in many:
        assert policy.retention_days(paths) == policy.retention_days_uncached(paths)
    assert len(policy.retention_cache) == RETENTION_CACHE_SIZE
    # past the bound: still the right days, not kept
    beyond = ("phone", "email", "name", "note")
    assert beyond not in policy.retention_cache
    assert policy.retention_days(beyond) == policy.retention_days_uncached(beyond)
    assert len(policy.retention_cache) == RETENTION_CACHE_SIZE


async def test_a_reload_clears_the_retention_cache(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    shutil.copytree(CATALOG, directory)
    engine = load_engine(directory, KEYS)
    reloader = PolicyReloader(directory, KEYS, Metrics(CollectorRegistry()), engine)
    before = reloader.engine.policy("keycom")
    days = before.retention_days(("phone",))
    assert before.retention_cache == {("phone",): days}
    assert await reloader.reload("test")
    after = reloader.engine.policy("keycom")
    assert after is not before and after.retention_cache == {}
    assert after.retention_days(("phone",)) == days
