"""Encryption at rest of a run's personal data with AES-256-GCM (``cryptography``).

With ``privacy.encrypt = true`` the files that hold people's data (``data/events.parquet``: who
did what when; ``data/users.json``: the user ids; ``social/pairs.parquet``: who knows whom) are
written encrypted and authenticated. The key is 32 bytes, hex or base64, from ``LMREC_DATA_KEY``
or ``privacy.data_key_file``; it is never written to the run. Each file's path inside the run is
the cipher's associated data, so files cannot be swapped either. A missing or wrong key, or a
file that was altered, is a clear error and nothing is overwritten; ``lmrec rekey`` rotates the key.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from lmrec.errors import ConfigError, RunError

DATA_KEY_ENV = "LMREC_DATA_KEY"
MAGIC = b"LMREC-AES256GCM-1\n"
NONCE = 12
PERSONAL_FILES = ("data/events.parquet", "data/users.json", "social/pairs.parquet")


def _aesgcm(key: bytes):
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ConfigError("encrypted runs need cryptography: pip install 'lmrec[privacy]'") from None
    return AESGCM(key)


def parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    raise ConfigError(f"{where}: a data key is 32 bytes, written as 64 hex digits or base64 (e.g. "
                      "`openssl rand -hex 32`)")


def load_data_key(key_file: str | None = None) -> bytes:
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise ConfigError(f"data key file {key_file}: no such file")
        return parse_key(path.read_text(), str(path))
    text = os.environ.get(DATA_KEY_ENV)
    if not text:
        raise ConfigError(f"this run's personal data is encrypted (privacy.encrypt): set ${DATA_KEY_ENV} to its "
                          "data key, or privacy.data_key_file")
    return parse_key(text, f"${DATA_KEY_ENV}")


def encrypt(key: bytes, data: bytes, name: str) -> bytes:
    nonce = os.urandom(NONCE)
    return MAGIC + nonce + _aesgcm(key).encrypt(nonce, data, name.encode())


def decrypt(key: bytes, blob: bytes, name: str, where: Path) -> bytes:
    from cryptography.exceptions import InvalidTag

    if not blob.startswith(MAGIC):
        raise RunError(f"{where}: not an encrypted lmrec file")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE]
    try:
        return _aesgcm(key).decrypt(nonce, blob[len(MAGIC) + NONCE :], name.encode())
    except InvalidTag:
        raise RunError(f"{where}: cannot be decrypted: wrong data key, or the file was altered") from None


def encrypt_files(root: Path, key: bytes) -> None:
    """Encrypt the personal files under ``root`` in place (a run being written, not yet visible)."""
    for name in PERSONAL_FILES:
        path = root / name
        if path.exists():
            path.write_bytes(encrypt(key, path.read_bytes(), name))


def read(root: Path, name: str, key: bytes | None) -> bytes:
    """A run file's bytes, decrypted when ``key`` is given."""
    blob = (root / name).read_bytes()
    return blob if key is None else decrypt(key, blob, name, root / name)


def rekey(root: Path, old: bytes, new: bytes) -> list[str]:
    """Re-encrypt a run's personal files under ``new``: every file is decrypted and checked first,
    then each is replaced atomically, so a wrong old key changes nothing."""
    plain = {name: decrypt(old, (root / name).read_bytes(), name, root / name)
             for name in PERSONAL_FILES if (root / name).exists()}
    for name, data in plain.items():
        tmp = (root / name).with_name(f".{Path(name).name}.rekey")
        tmp.write_bytes(encrypt(new, data, name))
        tmp.replace(root / name)
    return list(plain)
