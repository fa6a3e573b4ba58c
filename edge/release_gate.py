"""The node's release gate: which pushed bundles this node may stage and run.

A node with the cloud's public key (``--trusted-key``) runs only bundles whose
manifest the cloud signed and that carry a signed release statement for this
node's line or name, unexpired, over exactly these files, and not older than the
active version unless the statement is a signed rollback. ``--allow-unsigned``
is a development mode: it lets unsigned bundles in, with a warning, but a
signature that is present is still checked when a key is known. A node with
neither cannot check anything, so it does not start.
"""

from __future__ import annotations

import logging

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.runtime.bundle import ModelBundle
from edge.runtime.errors import BundleSignatureError, ConfigError
from edge.runtime.release import (
    RELEASE_FILE,
    ReleaseStatement,
    check_fresh,
    check_target,
    check_version_order,
    read_release,
    verify_release,
)
from edge.runtime.signing import verify_manifest

__all__ = ["ReleaseGate"]

logger = logging.getLogger(__name__)


class ReleaseGate:
    """Signature, target, expiry and version-order checks with one node's key and identity."""

    def __init__(
        self,
        trusted_key: Ed25519PublicKey | None,
        *,
        allow_unsigned: bool = False,
        line: str = "line",
        node: str = "node",
        where: str = "node",
    ) -> None:
        """Set up the checks; refuse a node that could check nothing.

        Args:
            trusted_key: the cloud's public key, or None.
            allow_unsigned: let bundles without signature or statement in (development).
            line: this node's line, matched against a statement's lines.
            node: this node's name, matched against a statement's nodes.
            where: the model directory, for messages and logs.

        Raises:
            ConfigError: neither a trusted key nor ``allow_unsigned``.
        """
        if trusted_key is None and not allow_unsigned:
            msg = (
                f"model store {where}: no trusted key, so no push could be checked; start the "
                "node with --trusted-key keys/signing.pub (or --allow-unsigned, development only)"
            )
            raise ConfigError(msg)
        self.trusted_key = trusted_key
        self.allow_unsigned = allow_unsigned
        self.line = line
        self.node = node
        if allow_unsigned:
            logger.warning(
                "--allow-unsigned: this node accepts unsigned bundles, for development only "
                "dir=%s trusted_key=%s",
                where,
                "none" if trusted_key is None else "set",
            )

    def verify(self, bundle: ModelBundle) -> ReleaseStatement | None:
        """Check a bundle's signatures and target; return its verified statement, if any.

        Raises:
            BundleSignatureError: unsigned without ``allow_unsigned``, or a signature, key
                or file digest that does not check out.
            ReleaseRefused: a statement for another line or node.
        """
        if self.trusted_key is None:  # allow_unsigned without a key: nothing to check with
            return None
        if bundle.manifest.signature or not self.allow_unsigned:
            verify_manifest(bundle.manifest, self.trusted_key)
        statement = read_release(bundle.directory)
        if statement is None:
            if self.allow_unsigned:
                logger.warning("bundle without release statement accepted model=%s", bundle.label)
                return None
            msg = (
                f"bundle {bundle.label}: carries no signed {RELEASE_FILE}, so nothing says it "
                f"may run on node {self.node!r} of line {self.line!r}; deploy it with "
                "`linewatch deploy`, which signs one"
            )
            raise BundleSignatureError(msg)
        verify_release(statement, bundle, self.trusted_key)
        check_target(statement, line=self.line, node=self.node)
        return statement

    def statement_of(self, bundle: ModelBundle) -> ReleaseStatement | None:
        """The statement a stored bundle carries (verified when it was opened), or None.

        Raises:
            BundleSignatureError: a ``release.json`` that does not parse.
        """
        return None if self.trusted_key is None else read_release(bundle.directory)

    @staticmethod
    def check_release(statement: ReleaseStatement | None, active: tuple[str, str] | None) -> None:
        """Refuse an expired statement or going back unsigned; None (unsigned, let in) passes.

        Raises:
            ReleaseRefused: expired, issued in the future, or an older version than
                ``active`` without a signed rollback.
        """
        if statement is None:
            return
        check_fresh(statement)
        check_version_order(statement, active)
