"""Encrypted P1 (Luxembourg Smarty, and meters like it): DLMS general-global-ciphering frames.

On the wire: 0xDB, 0x08 and an 8-byte system title; a BER length; then the security
control byte (0x30: authenticated and encrypted), a 4-byte invocation counter, the
AES-128-GCM ciphertext and a 12-byte tag. The nonce is system title + counter; the
additional data is the security byte followed by the authentication key (Smarty meters
use the published key below). Decrypted, each frame is an ordinary P1 telegram.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TAG = 0xDB
SMARTY_AUTH_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
MAX_FRAME = 4096


class KeyError_(ValueError):
    """A key that is not 16 bytes of hex."""


def parse_key(text: str, what: str = "key") -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyError_(f"the {what} must be hex, e.g. 32 hex digits") from None
    if len(key) != 16:
        raise KeyError_(f"the {what} must be 16 bytes (32 hex digits), not {len(key)}")
    return key


def encrypt_frame(plain: bytes, key: bytes, system_title: bytes, counter: int,
                  auth_key: bytes = SMARTY_AUTH_KEY) -> bytes:
    """The wire frame for ``plain`` (what a meter sends; the simulator and tests use it)."""
    security = b"\x30"
    sealed = AESGCM(key).encrypt(system_title + counter.to_bytes(4, "big"), plain, security + auth_key)
    ciphertext, tag = sealed[:-16], sealed[-16:-4]  # DLMS uses a 12-byte tag
    body = security + counter.to_bytes(4, "big") + ciphertext + tag
    return bytes([TAG, 8]) + system_title + b"\x82" + len(body).to_bytes(2, "big") + body


def _decrypt(key: bytes, auth_key: bytes, system_title: bytes, body: bytes) -> bytes:
    security, counter, rest = body[:1], body[1:5], body[5:]
    ciphertext, tag = rest[:-12], rest[-12:]
    # GCM with a 12-byte tag: decrypt as CTR and check the truncated tag by re-encrypting.
    nonce = system_title + counter
    aad = security + auth_key
    plain = _ctr_decrypt(key, nonce, ciphertext)
    expected = AESGCM(key).encrypt(nonce, plain, aad)[-16:-4]
    if expected != tag:
        raise InvalidTag
    return plain


def _ctr_decrypt(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(key), modes.CTR(nonce + (2).to_bytes(4, "big"))).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


@dataclass
class GcmDecryptor:
    """Bytes of encrypted frames in, plain telegram bytes out; bad frames counted."""

    key: bytes
    auth_key: bytes = SMARTY_AUTH_KEY
    counters: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> bytes:
        self._buf += data
        out = bytearray()
        buf = self._buf
        while True:
            start = buf.find(bytes([TAG, 8]))
            if start < 0:
                self.counters["skipped_bytes"] += max(0, len(buf) - 1)
                del buf[: max(0, len(buf) - 1)]
                return bytes(out)
            self.counters["skipped_bytes"] += start
            del buf[:start]
            if len(buf) < 11:
                return bytes(out)
            system_title = bytes(buf[2:10])
            first = buf[10]
            if first < 0x80:
                length, header = first, 11
            elif first in (0x81, 0x82):
                size = first - 0x80
                if len(buf) < 11 + size:
                    return bytes(out)
                length, header = int.from_bytes(buf[11:11 + size], "big"), 11 + size
            else:
                del buf[:1]  # not a frame start after all
                continue
            if length > MAX_FRAME or length < 5 + 12:
                self.counters["rejected_length"] += 1
                del buf[:1]
                continue
            if len(buf) < header + length:
                return bytes(out)
            body = bytes(buf[header:header + length])
            del buf[:header + length]
            try:
                out += _decrypt(self.key, self.auth_key, system_title, body)
                self.counters["decrypted"] += 1
            except InvalidTag:
                self.counters["rejected_tag"] += 1
                self.last_error = "GCM tag mismatch: wrong key, or a corrupted frame"
