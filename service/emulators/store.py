"""The in-memory customer store of one emulator: seed records, generated records, writes.

Records 100000..109999 are generated on first access from their id alone (deterministic,
so a restart or a ``reset`` gives the same values); only written records are kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

Record = dict[str, Any]

GENERATED_FIRST = 100_000
GENERATED_LAST = 109_999


class CustomerStore:
    """Customers by id. ``get`` hands out deep copies; ``put`` stores a deep copy."""

    def __init__(
        self,
        seed: Mapping[int, Record],
        generate: Callable[[int], Record] | None = None,
        *,
        generated_ids: range = range(GENERATED_FIRST, GENERATED_LAST + 1),
    ) -> None:
        self._seed = {int(k): copy.deepcopy(v) for k, v in seed.items()}
        self._generate = generate
        self._generated_ids = generated_ids if generate is not None else range(0)
        self._written: dict[int, Record] = {}
        self._ids: list[int] | None = None

    def get(self, customer_id: int) -> Record | None:
        """The full stored record (a deep copy), or ``None`` when there is none."""
        stored = self._stored(customer_id)
        if stored is not None:
            return copy.deepcopy(stored)
        return self._generated(customer_id)

    def __contains__(self, customer_id: object) -> bool:
        if not isinstance(customer_id, int):
            return False
        return self._stored(customer_id) is not None or (
            self._generate is not None and customer_id in self._generated_ids
        )

    def put(self, customer_id: int, record: Mapping[str, Any]) -> None:
        """Store ``record`` (a deep copy) as the whole state of ``customer_id``."""
        if customer_id not in self:
            self._ids = None
        self._written[customer_id] = copy.deepcopy(dict(record))

    def ids(self) -> list[int]:
        """Every id held, ascending."""
        if self._ids is None:
            extra = set(self._seed) | set(self._written)
            extra.difference_update(self._generated_ids)
            self._ids = sorted([*extra, *self._generated_ids])
        return self._ids

    def __len__(self) -> int:
        return len(self.ids())

    def reset(self) -> None:
        """Forget every write: back to the seed and generated records."""
        self._written.clear()
        self._ids = None

    def _stored(self, customer_id: int) -> Record | None:
        found = self._written.get(customer_id)
        return found if found is not None else self._seed.get(customer_id)

    def _generated(self, customer_id: int) -> Record | None:
        """A fresh record built from the id (a new object each time: no copy needed)."""
        if self._generate is not None and customer_id in self._generated_ids:
            return self._generate(customer_id)
        return None
