"""Optional encryption at rest (Fernet: AES-128-CBC + HMAC-SHA256, from `cryptography`).

The key comes from CONTINUUM_MEMORY_KEY (a urlsafe-base64 32-byte Fernet key; make one with
`continuum memory keygen`) or, if that is unset and `keyring` is installed, from the OS
keyring entry ("continuum", "memory-key"). Without a key, files are plain Markdown."""

from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken

from continuum.errors import ContinuumError

ENV_KEY = "CONTINUUM_MEMORY_KEY"


class MemoryKeyError(ContinuumError):
    """Encrypted memory cannot be read with the configured key (or no key is configured)."""


class Cipher:
    def __init__(self, key: bytes | str) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise MemoryKeyError(f"invalid memory key: {exc}") from exc

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, data: bytes, where: str) -> bytes:
        try:
            return self._fernet.decrypt(data)
        except InvalidToken as exc:
            raise MemoryKeyError(f"{where}: cannot decrypt (wrong key or not encrypted)") from exc

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()


def cipher_from_environment(env: str = ENV_KEY) -> Cipher | None:
    key = os.environ.get(env)
    if key is not None and not key.strip():
        # set but empty is a mistake (an unset variable in a script), never "no encryption"
        raise MemoryKeyError(f"{env} is set but empty; unset it or give it a key")
    if not key:
        try:
            import keyring  # optional

            key = keyring.get_password("continuum", "memory-key")
        except Exception:  # not installed, or no keyring backend on this machine
            return None
    return Cipher(key) if key else None
