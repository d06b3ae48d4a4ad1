"""Connection credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) keyed from ``settings.secret_key``.

The Fernet key is derived from SECRET_KEY with HKDF, so any SECRET_KEY string works and the raw secret is never
used as a key directly. Rotating SECRET_KEY makes stored credentials unreadable: ``decrypt_credentials`` then
raises ``CredentialsUnreadable``, which the sync engine turns into "needs reconnect" for that connection.
"""
from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted (SECRET_KEY changed or the value was tampered with)."""


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    if not secret_key:
        raise ValueError("SECRET_KEY is empty; set SECRET_KEY before storing calendar credentials")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"reagenda-credentials-v1",
               info=b"calendar-connection-credentials").derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_credentials(secret_key: str, credentials: dict[str, Any]) -> str:
    """The credentials as an opaque string for ``CalendarConnection.credentials``."""
    payload = json.dumps(credentials, separators=(",", ":"), sort_keys=True).encode()
    return _fernet(secret_key).encrypt(payload).decode("ascii")


def decrypt_credentials(secret_key: str, token: str) -> dict[str, Any]:
    """The credentials stored by ``encrypt_credentials``; {} for a connection that has none yet."""
    if not token:
        return {}
    try:
        data = _fernet(secret_key).decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError):
        raise CredentialsUnreadable("stored calendar credentials cannot be decrypted with the current SECRET_KEY; "
                                    "reconnect the calendar (or restore the previous SECRET_KEY)") from None
    value = json.loads(data)
    if not isinstance(value, dict):
        raise CredentialsUnreadable("stored calendar credentials are not a JSON object; reconnect the calendar")
    return value


def encrypt_json(settings: Any, data: dict[str, Any]) -> str:
    """``encrypt_credentials`` keyed from a ``Settings`` object (what the web and the sync engine hold)."""
    return encrypt_credentials(settings.secret_key, data)


def decrypt_json(settings: Any, blob: str) -> dict[str, Any]:
    return decrypt_credentials(settings.secret_key, blob)
