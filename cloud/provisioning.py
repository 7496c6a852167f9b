"""Hubs join the cloud with one-time claim codes, and leave it when revoked.

An installer (or the utility's back office) asks for a code for a household; the code
expires and works once. A hub that presents it gets its own credential, a secret from
``secrets`` that only the hub keeps: the cloud stores its hash. Revoking a hub revokes
its credentials, so its next upload is refused.
"""

from __future__ import annotations

import time

from cloud.auth import Principal, Role, hash_secret, new_claim_code, new_secret, normalise_claim_code
from cloud.storage.base import ClaimError, Storage

DEFAULT_TTL_HOURS = 72


class UnknownHousehold(LookupError):
    pass


async def create_claim_code(store: Storage, household_id: str, ttl_hours: float = DEFAULT_TTL_HOURS,
                            now: float | None = None) -> tuple[str, float]:
    if await store.household(household_id) is None:
        raise UnknownHousehold(f"no household {household_id!r}")
    code = new_claim_code()
    expires_at = (now or time.time()) + ttl_hours * 3600
    await store.add_claim_code(hash_secret(code), household_id, expires_at)
    return code, expires_at


async def register_hub(store: Storage, code: str, hub_id: str, now: float | None = None) -> tuple[str, str]:
    """(household id, the hub's new credential) — ClaimError if the code cannot be used."""
    household_id = await store.use_claim_code(hash_secret(normalise_claim_code(code)), hub_id, now or time.time())
    token = new_secret()
    await store.add_credential(hash_secret(token), Principal(Role.HUB, hub_id, household_id))
    return household_id, token


async def revoke_hub(store: Storage, hub_id: str) -> int:
    return await store.revoke_hub(hub_id, time.time())


__all__ = ["ClaimError", "UnknownHousehold", "create_claim_code", "register_hub", "revoke_hub"]
