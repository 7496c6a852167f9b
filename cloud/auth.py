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


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str  # hub id or household id
    household_id: str


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
