"""Encryption of OAuth tokens at rest."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenCipher:
    """Encrypts and decrypts tokens with Fernet; several comma-separated keys allow rotation."""

    def __init__(self, keys: str) -> None:
        try:
            self._fernet = MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "TOKEN_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
                "(generate one with: qbo-actions keys generate)"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        """Return the token encrypted with the first key."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """Return the token; fails loudly when no key fits."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("A stored token cannot be decrypted with TOKEN_ENCRYPTION_KEY") from exc

    @staticmethod
    def generate_key() -> str:
        """Return a new random key."""
        return Fernet.generate_key().decode()
