"""API keys: creation, salted hashes, lookup, header parsing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from service.core.auth import ApiKey, KeyRing, create_key, hash_key, presented_key


def test_created_key_verifies_and_is_not_stored() -> None:
    key, entry = create_key("geofence-portal")
    assert key.startswith("rk_") and len(key) > 40
    assert key not in entry.hash
    assert KeyRing((entry,)).tenant_for(key) == "geofence-portal"


def test_wrong_and_near_miss_keys_are_refused() -> None:
    key, entry = create_key("selfaudit-app")
    ring = KeyRing((entry,))
    assert ring.tenant_for(key[:-1]) is None
    assert ring.tenant_for(key + "x") is None
    assert ring.tenant_for("") is None


def test_two_tenants_resolve_to_their_own_names() -> None:
    (k1, e1), (k2, e2) = create_key("geofence-portal"), create_key("selfaudit-app")
    ring = KeyRing((e1, e2))
    assert (ring.tenant_for(k1), ring.tenant_for(k2)) == ("geofence-portal", "selfaudit-app")


def test_same_key_gets_different_salts() -> None:
    assert hash_key("rk_same") != hash_key("rk_same")
    assert hash_key("rk_same", salt="0" * 32) == hash_key("rk_same", salt="0" * 32)


@pytest.mark.parametrize(
    "bad", [{"tenant": "X Bad", "hash": hash_key("k")}, {"tenant": "ok", "hash": "plaintext-key"}]
)
def test_entries_are_validated(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        ApiKey.model_validate(bad)


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer rk_a", None, "rk_a"),
        ("bearer  rk_a ", None, "rk_a"),
        (None, "rk_b", "rk_b"),
        ("Basic dXNlcjpwdw==", None, None),
        ("Bearer ", None, None),
        (None, None, None),
        ("Basic x", "rk_c", "rk_c"),
    ],
)
def test_presented_key(
    authorization: str | None, x_api_key: str | None, expected: str | None
) -> None:
    assert presented_key(authorization, x_api_key) == expected


def test_keys_create_command_prints_key_once_and_config_entry() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "geofence-portal"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines() if ": " in line)
    key = lines["key"]
    entry = ApiKey.model_validate(json.loads(lines["config entry"]))
    assert KeyRing((entry,)).tenant_for(key) == "geofence-portal"
