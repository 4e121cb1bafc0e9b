"""A fifth upstream system, in tests only: what adding a system takes (docs/architecture.md
"Adding a system") - this connector module, this emulator, this policy file, and one
registry line (:data:`REGISTRY`). Nothing outside this folder knows it."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from service.registry import SYSTEMS, SystemDescriptor
from tests.service.toy import connector, emulator

#: the shipped systems and the toy shop: the one line that registers it
REGISTRY: Final = SYSTEMS.adding(SystemDescriptor(
    "toyshop", connector.ToyshopConnector, connector.ToyshopCredentials, None,
    Path(__file__).with_name("toyshop.yaml"), emulator.SPEC,
))  # fmt: skip
