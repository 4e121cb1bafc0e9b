"""gdpr-gateway: the aiohttp service, its connectors, emulators and commands."""
