"""API keys: generated once, stored only as salted hashes, checked in constant time.

A key looks like ``rk_<43 url-safe characters>`` (256 random bits). The service is configured
with ``{"tenant": ..., "hash": "sha256$<salt>$<digest>"}`` entries (``RECOGNIZE_API_KEYS``, a
JSON list; in Kubernetes from a Secret), never with the keys themselves. One salted SHA-256 is
enough here: a key has 256 bits of entropy, so no dictionary can guess it, and a per-request
check costs microseconds instead of the 50+ ms of a password hash. ``recognize keys create
TENANT`` prints a new key once, with the entry to configure.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

KEY_PREFIX = "rk_"
HASH_SCHEME = "sha256"


class ApiKey(BaseModel):
    """One configured key: its tenant and the salted hash of the key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$", examples=["geofence-portal"])
    hash: str = Field(pattern=r"^sha256\$[0-9a-f]{32}\$[0-9a-f]{64}$")


def hash_key(key: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hashlib.sha256((salt + key).encode()).hexdigest()
    return f"{HASH_SCHEME}${salt}${digest}"


def create_key(tenant: str) -> tuple[str, ApiKey]:
    """A new random key and the entry that configures it (the key itself is never stored)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, ApiKey(tenant=tenant, hash=hash_key(key))


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[ApiKey, ...]

    def tenant_for(self, presented: str) -> str | None:
        """The tenant whose key this is, or None. Every entry is checked, match or not, so the
        time taken does not tell which entry (or how much of a key) matched."""
        found: str | None = None
        for entry in self.keys:
            _, salt, digest = entry.hash.split("$")
            candidate = hashlib.sha256((salt + presented).encode()).hexdigest()
            if hmac.compare_digest(candidate, digest) and found is None:
                found = entry.tenant
        return found


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if x_api_key and x_api_key.strip():
        return x_api_key.strip()
    return None
