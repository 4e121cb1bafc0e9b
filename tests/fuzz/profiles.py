"""How hard the fuzzers try: bounded and derandomized in ``make test``, long in ``make fuzz``.

``FUZZ=long`` (set by ``make fuzz``) selects the long profile; ``FUZZ_EXAMPLES`` and
``FUZZ_ST_EXAMPLES`` override the example counts of either. See docs/reliability.md.
"""

from __future__ import annotations

import os
from typing import Any, Final

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

LONG: Final = os.environ.get("FUZZ", "").lower() == "long"

# hypothesis: examples per shipped policy (one test per policy file)
POLICY_EXAMPLES: Final = int(os.environ.get("FUZZ_EXAMPLES", "2000" if LONG else "200"))
# schemathesis: examples per API operation and phase (the run reports what it generated)
ST_EXAMPLES: Final = int(os.environ.get("FUZZ_ST_EXAMPLES", "500" if LONG else "100"))
ST_SEED: Final = 20260801  # make test: the same cases every run

_COMMON: dict[str, Any] = {
    "deadline": None,
    "print_blob": True,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,  # one gateway serves every example of a test
        HealthCheck.too_slow,  # each example is real HTTP through the gateway
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
}
settings.register_profile(
    "gateway-fuzz-ci", max_examples=POLICY_EXAMPLES, derandomize=True, database=None,
    **_COMMON,
)
settings.register_profile(
    "gateway-fuzz-long", max_examples=POLICY_EXAMPLES, derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/gateway-fuzz"),
    **_COMMON,
)
PROFILE: Final = settings.get_profile("gateway-fuzz-long" if LONG else "gateway-fuzz-ci")
