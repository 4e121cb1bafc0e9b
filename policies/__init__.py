"""The policy engine: pure, compiled once at load from the YAML files in ``catalog/``."""
