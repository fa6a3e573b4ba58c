"""Bundle signatures on the node: only models the cloud signed may run.

The cloud signs the canonical manifest bytes (``manifest_signing_bytes``) with
an Ed25519 key; the manifest carries the sha256 of every file, so one signature
covers the whole bundle. A node holds the cloud's public key (PEM) and refuses
a bundle that is unsigned, signed by another key or altered after signing.
No torch, no MLflow: only the ``cryptography`` package.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.runtime.bundle import Manifest, manifest_signing_bytes
from edge.runtime.errors import BundleSignatureError, ConfigError

__all__ = ["BundleSignatureError", "load_public_key", "public_key_id", "verify_manifest"]


def public_key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name of a key: the first 16 hex digits of sha256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read the cloud's Ed25519 public key (PEM, as ``linewatch keys init`` writes it).

    Raises:
        ConfigError: a missing file or one that is not an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        msg = f"trusted key {path}: cannot read it ({exc}); copy keys/signing.pub to the node"
        raise ConfigError(msg) from exc
    except ValueError as exc:
        msg = f"trusted key {path}: not a PEM public key ({exc}); use keys/signing.pub"
        raise ConfigError(msg) from exc
    if not isinstance(key, Ed25519PublicKey):
        msg = f"trusted key {path}: a {type(key).__name__}, not Ed25519; use keys/signing.pub"
        raise ConfigError(msg)
    return key


def verify_manifest(manifest: Manifest, public_key: Ed25519PublicKey) -> None:
    """Check the manifest's signature against the trusted key.

    Raises:
        BundleSignatureError: no signature, a key id other than the trusted one, or a
            signature that does not match the manifest.
    """
    label = f"{manifest.name}:{manifest.version}"
    trusted_id = public_key_id(public_key)
    if not manifest.signature:
        msg = (
            f"bundle {label}: unsigned, and this node only runs bundles signed by key "
            f"{trusted_id}; register it with --signing-key so the registry signs it"
        )
        raise BundleSignatureError(msg)
    if manifest.signing_key_id and manifest.signing_key_id != trusted_id:
        msg = (
            f"bundle {label}: signed by key {manifest.signing_key_id}, this node trusts "
            f"{trusted_id}; sign with the matching key or give the node the right --trusted-key"
        )
        raise BundleSignatureError(msg)
    try:
        signature = base64.b64decode(manifest.signature, validate=True)
        public_key.verify(signature, manifest_signing_bytes(manifest))
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        msg = (
            f"bundle {label}: the signature does not match the manifest (key {trusted_id}); "
            "it was altered after signing or signed by another key, register it again"
        )
        raise BundleSignatureError(msg) from exc
