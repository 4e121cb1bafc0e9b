"""The policy engine: pure, compiled once at load from the YAML files in ``catalog/``."""

from policies.compiled import CompiledPolicy
from policies.engine import PolicyEngine
from policies.loader import PolicySet, load_policy_set
from policies.masking.base import MaskingConfigError
from policies.model import Decision, FieldError, MaskResult, PolicyLoadError
from policies.principal import Principal

__all__ = [
    "CompiledPolicy",
    "Decision",
    "FieldError",
    "MaskResult",
    "MaskingConfigError",
    "PolicyEngine",
    "PolicyLoadError",
    "PolicySet",
    "Principal",
    "load_policy_set",
]
