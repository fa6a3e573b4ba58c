"""Signing on the cloud, verification on the node: keys, permissions, tampering."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.signing import (
    KeyPair,
    generate_key_pair,
    load_private_key,
    sign_manifest,
)
from edge.runtime.bundle import ModelBundle
from edge.runtime.errors import ConfigError
from edge.runtime.signing import (
    BundleSignatureError,
    load_public_key,
    public_key_id,
    verify_manifest,
)


def test_key_pair_private_key_is_owner_only(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path / "keys")

    assert stat.S_IMODE(pair.private_key.stat().st_mode) == 0o600
    assert pair.public_key.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert pair.key_id == public_key_id(load_public_key(pair.public_key))


def test_existing_keys_are_never_overwritten(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path)
    before = pair.private_key.read_bytes()

    with pytest.raises(ConfigError, match="refusing to overwrite"):
        generate_key_pair(tmp_path)
    assert pair.private_key.read_bytes() == before


def test_signed_manifest_verifies(
    tiny_bundle: ModelBundle, signing_pair: KeyPair, signing_key: Ed25519PrivateKey
) -> None:
    signed = sign_manifest(tiny_bundle.manifest, signing_key)

    verify_manifest(signed, load_public_key(signing_pair.public_key))
    assert signed.signing_key_id == signing_pair.key_id


def test_changed_manifest_fails_verification(
    tiny_bundle: ModelBundle, signing_pair: KeyPair, signing_key: Ed25519PrivateKey
) -> None:
    signed = sign_manifest(tiny_bundle.manifest, signing_key)
    policy = signed.decision.model_copy(update={"threshold": 9.0})
    tampered = signed.model_copy(update={"decision": policy})

    with pytest.raises(BundleSignatureError, match="does not match the manifest"):
        verify_manifest(tampered, load_public_key(signing_pair.public_key))


def test_unsigned_and_other_key_are_refused(
    tiny_bundle: ModelBundle, signing_pair: KeyPair, tmp_path: Path
) -> None:
    trusted = load_public_key(signing_pair.public_key)
    with pytest.raises(BundleSignatureError, match="unsigned"):
        verify_manifest(tiny_bundle.manifest, trusted)

    other = sign_manifest(tiny_bundle.manifest, Ed25519PrivateKey.generate())
    with pytest.raises(BundleSignatureError, match="signed by key"):
        verify_manifest(other, trusted)

    forged = other.model_copy(update={"signing_key_id": signing_pair.key_id})
    with pytest.raises(BundleSignatureError, match="does not match"):
        verify_manifest(forged, trusted)


def test_bad_key_files_are_config_errors(tmp_path: Path, signing_pair: KeyPair) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")

    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_public_key(junk)
    with pytest.raises(ConfigError, match="cannot read"):
        load_public_key(tmp_path / "missing.pub")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_private_key(junk)
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        load_private_key(signing_pair.public_key)
