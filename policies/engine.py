"""The policy engine: the loaded policies plus the masking keys, behind three pure calls."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.compiled import CompiledPolicy
from policies.decide import decide as _decide
from policies.loader import PolicySet
from policies.masker import PolicyMasks, build_masks, mask_record
from policies.masking.base import MaskingKeys
from policies.model import UNKNOWN_SENSITIVITY, Decision, FieldError, MaskResult
from policies.principal import Principal
from policies.state import record_state
from policies.validate import validate_patch


class PolicyEngine:
    """validate / decide / mask / sensitivity for every system of a :class:`PolicySet`.

    ``pseudonym_key`` keys the ``pseudonym`` strategy (HMAC-SHA256), ``hash_salt`` salts
    ``hash``; ``encryption_key`` (32 bytes) is needed only by a policy that uses
    ``aesgcm``. Every strategy is built here, once: a missing key fails now, not later.
    """

    def __init__(
        self,
        policies: PolicySet,
        *,
        pseudonym_key: bytes,
        hash_salt: bytes,
        encryption_key: bytes | None = None,
    ) -> None:
        self.policies = policies
        keys = MaskingKeys(pseudonym_key, hash_salt, encryption_key)
        self._masks: dict[str, PolicyMasks] = {
            system: build_masks(policies[system], keys) for system in policies.systems
        }

    def __repr__(self) -> str:
        return f"PolicyEngine({self.policies!r})"

    def policy(self, system: str) -> CompiledPolicy:
        """The compiled policy of ``system``; KeyError for an unknown system."""
        return self.policies[system]

    def validate(self, system: str, patch: Mapping[str, Any]) -> list[FieldError]:
        """Every field error of ``patch`` at once; [] when it is valid."""
        return validate_patch(self.policies[system], patch)

    def decide(
        self,
        system: str,
        pre_image: Mapping[str, Any] | None,
        patch: Mapping[str, Any],
        principal: Principal,
        purpose: str | None,
    ) -> Decision:
        """Allow or deny a (validated) patch; see :mod:`policies.decide` for the order."""
        return _decide(self.policies[system], pre_image, patch, principal, purpose)

    def mask(self, system: str, record: Mapping[str, Any], roles: Iterable[str]) -> MaskResult:
        """``record`` as a caller with ``roles`` may see it; rules evaluated on the record."""
        return mask_record(self.policies[system], self._masks[system], record, roles)

    def sensitivity(
        self, system: str, path: str, record: Mapping[str, Any] | None = None
    ) -> str:
        """The sensitivity of ``path`` (``MetaData[2].Value`` allowed); raised by the rules
        that hold for ``record`` when one is given; an unknown path is restricted."""
        policy = self.policies[system]
        spec = policy.spec_for(path)
        static = spec.sensitivity if spec is not None else UNKNOWN_SENSITIVITY
        if record is None:
            return static
        return record_state(policy, record).sensitivity(static)
