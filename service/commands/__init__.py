"""Sub-commands of ``gdpr-gateway``: one module each.

Every module here defines ``register(subparsers)``, which adds its parser and sets
``handler`` (a callable taking the parsed namespace and returning an exit code).
``service.cli`` discovers them, so adding a command never touches a shared file.
"""
