"""The cloud's signing key: make the pair once, sign every bundle the registry ships.

The private key never leaves the cloud and is written readable by its owner
only (0600); the public key goes to every node (``--trusted-key``). Keys are
never overwritten: a new pair would orphan every node that trusts the old one.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.errors import ConfigError
from edge.runtime.bundle import Manifest, manifest_signing_bytes
from edge.runtime.signing import public_key_id

__all__ = [
    "DEFAULT_SIGNING_KEY",
    "PRIVATE_KEY_FILE",
    "PUBLIC_KEY_FILE",
    "KeyPair",
    "generate_key_pair",
    "load_private_key",
    "sign_manifest",
]

logger = logging.getLogger(__name__)

PRIVATE_KEY_FILE = "signing.key"
PUBLIC_KEY_FILE = "signing.pub"
DEFAULT_SIGNING_KEY = Path("keys") / PRIVATE_KEY_FILE


@dataclass(frozen=True)
class KeyPair:
    """Where a new key pair was written and the id bundles will name it by."""

    private_key: Path
    public_key: Path
    key_id: str


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (no window where others can read it)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)  # the umask may have narrowed or widened it


def generate_key_pair(out_dir: Path) -> KeyPair:
    """Create ``signing.key`` (0600) and ``signing.pub`` in ``out_dir``.

    Raises:
        ConfigError: either file exists already, or the folder cannot be written.
    """
    private_path, public_path = out_dir / PRIVATE_KEY_FILE, out_dir / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            msg = (
                f"keys: {path} exists; refusing to overwrite it (nodes trust the old key). "
                "Choose another --out or remove the pair yourself"
            )
            raise ConfigError(msg)
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_new(private_path, private_pem, 0o600)
        _write_new(public_path, public_pem, 0o644)
    except OSError as exc:
        msg = f"keys: cannot write the key pair into {out_dir} ({exc})"
        raise ConfigError(msg) from exc
    key_id = public_key_id(private_key.public_key())
    logger.info("signing key pair created key_id=%s dir=%s", key_id, out_dir)
    return KeyPair(private_key=private_path, public_key=public_path, key_id=key_id)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read the signing key; warn when others can read it.

    Raises:
        ConfigError: a missing file or one that is not an unencrypted Ed25519 private key.
    """
    try:
        data = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        msg = f"signing key {path}: cannot read it ({exc}); create one with `linewatch keys init`"
        raise ConfigError(msg) from exc
    if mode & 0o077:
        logger.warning("signing key readable by others path=%s mode=%o; chmod 600 it", path, mode)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        msg = f"signing key {path}: not an unencrypted PEM private key ({exc})"
        raise ConfigError(msg) from exc
    if not isinstance(key, Ed25519PrivateKey):
        msg = f"signing key {path}: a {type(key).__name__}, not Ed25519; use `linewatch keys init`"
        raise ConfigError(msg)
    return key


def sign_manifest(manifest: Manifest, private_key: Ed25519PrivateKey) -> Manifest:
    """Return the manifest with an Ed25519 signature over its canonical bytes.

    Sign only a manifest whose fields are final: any change afterwards breaks the
    signature. ``cloud.bundle_writer`` does this as the last step of every write.
    """
    signature = private_key.sign(manifest_signing_bytes(manifest))
    return manifest.model_copy(
        update={
            "signature": base64.b64encode(signature).decode("ascii"),
            "signing_key_id": public_key_id(private_key.public_key()),
        }
    )
