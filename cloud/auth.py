"""Who is asking: hubs and householders present a secret; the cloud keeps only its hash.

Secrets are 256-bit values from ``secrets``, so a single SHA-256 is a sound, fast
lookup key for them (slow password hashes are for human-chosen passwords).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    HUB = "hub"
    HOUSEHOLDER = "householder"
    INSTALLER = "installer"  # household_id "*": installers serve every household of the utility
    AGENT = "agent"  # call-centre staff: read any household, every look-up audited; never change readings
    ADMIN = "admin"  # staff who also read the audit log and manage staff


STAFF_ROLES = (Role.AGENT, Role.ADMIN)


ALL_HOUSEHOLDS = "*"
#: Claim codes: 12 characters a person can read out and type, in groups of four.
CLAIM_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_claim_code() -> str:
    raw = "".join(secrets.choice(CLAIM_ALPHABET) for _ in range(12))
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


def normalise_claim_code(code: str) -> str:
    raw = "".join(c for c in code.upper() if c.isalnum())
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str  # hub id or household id
    household_id: str


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
