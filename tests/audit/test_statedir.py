"""The demo's store and keys in its state folder. (A deployment's come from its
configuration, read by the gateway's settings loader: tests/service/test_config_commands.py.)"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from audit import InvalidAuditInput, open_demo_state
from audit.statedir import decode_key


def test_demo_state_is_created_once_with_private_key_files(tmp_path: Path) -> None:
    state = tmp_path / "state"
    url, master, signing = open_demo_state(state)
    assert url == f"sqlite+aiosqlite:///{state / 'audit.db'}"
    assert len(master) == len(signing) == 32 and master != signing
    for name in ("master.key", "signing.key"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert open_demo_state(state) == (url, master, signing)


def test_a_damaged_key_file_is_refused_by_name(tmp_path: Path) -> None:
    state = tmp_path / "state"
    open_demo_state(state)
    (state / "master.key").write_text("not base64 !")
    with pytest.raises(InvalidAuditInput, match="master key is not valid base64"):
        open_demo_state(state)
    with pytest.raises(InvalidAuditInput, match="32 bytes"):
        decode_key(base64.b64encode(os.urandom(16)).decode(), "master key")
