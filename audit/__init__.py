"""The tamper-evident, write-ahead audit log with per-subject encryption."""
