"""The one explicit registry of masking strategies: name -> strategy."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from policies.masking import clear, encrypt, null, partial, pseudonym, redact, salted_hash
from policies.masking.base import Strategy

STRATEGIES: Final[Mapping[str, Strategy]] = MappingProxyType(
    {
        "clear": clear.STRATEGY,
        "redact": redact.STRATEGY,
        "null": null.STRATEGY,
        "partial": partial.STRATEGY,
        "hash": salted_hash.STRATEGY,
        "pseudonym": pseudonym.STRATEGY,
        "aesgcm": encrypt.STRATEGY,
        "encrypt": encrypt.STRATEGY,  # alias of aesgcm
    }
)


def strategy_names() -> list[str]:
    return sorted(STRATEGIES)


def canonical_names() -> tuple[str, ...]:
    """Each strategy once, by its own name (an alias counts as the strategy it names)."""
    return tuple(sorted({strategy.name for strategy in STRATEGIES.values()}))
