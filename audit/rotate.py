"""Master-key rotation: re-wrap every live subject key; entries are not touched."""

from __future__ import annotations

from audit import crypto
from audit.connect import connect_backend
from audit.errors import KeyMismatch


async def rotate_master_key(url: str, old_master_key: bytes, new_master_key: bytes) -> int:
    """Re-wrap all live data keys from the old master key to the new one, in one
    transaction under the append lock. Returns how many keys were re-wrapped. Restart
    every replica with the new key afterwards (they refuse a store wrapped by another)."""
    old = crypto.check_key(old_master_key, "old master key")
    new = crypto.check_key(new_master_key, "new master key")
    backend = await connect_backend(url)
    try:
        tx = await backend.chain_tx()
        try:
            rows = await tx.fetchall(
                "SELECT key_id, system, customer_id, wrapped, kek_id FROM audit_subject_key"
                " WHERE wrapped IS NOT NULL"
            )
            updates = []
            for key_id, system, cid, wrapped, kek in rows:
                if kek == crypto.kek_id(new):
                    continue
                if kek != crypto.kek_id(old):
                    raise KeyMismatch("a subject key is wrapped by neither the old nor the new key")
                try:
                    data_key = crypto.unwrap_key(old, bytes(wrapped), key_id, system, cid)
                except crypto.SealError as exc:
                    raise KeyMismatch(
                        "a subject key does not open under the old master key"
                    ) from exc
                rewrapped = crypto.wrap_key(new, data_key, key_id, system, cid)
                updates.append((rewrapped, crypto.kek_id(new), key_id))
            await tx.commit(
                [("UPDATE audit_subject_key SET wrapped = ?, kek_id = ? WHERE key_id = ?", updates)]
            )
        except BaseException:
            await tx.rollback()
            raise
        return len(updates)
    finally:
        await backend.close()
