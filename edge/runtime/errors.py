"""Errors of the edge side, each one a message a person can act on.

The tree::

    LinewatchError
    ├── ConfigError            settings that cannot work (bad URL, missing file)
    ├── BundleError            a model bundle that cannot be used
    │   ├── BundleCorrupt      unreadable, truncated, sha256 mismatch
    │   │   ├── BundleSignatureError  unsigned, untrusted key, or altered after signing
    │   │   └── UploadCorrupt         a pushed upload whose bytes miss its sha256
    │   └── BundleIncompatible readable but not for this node (input size, format version)
    │       ├── ParityFailed          golden images not reproduced within tolerance
    │       ├── ReleaseRefused        a signed release for another line or node, expired, or
    │       │                         an older version without a signed rollback
    │       └── ActivationFailed      ONNX Runtime refused a verified bundle
    ├── ImageDecodeError       bytes that are not an image we can read
    ├── ImageTooLarge          an image over the configured size limit
    ├── NoModelLoaded          asked to inspect before a model is active
    ├── EngineError            ONNX Runtime failed to load or run a model
    ├── CameraError            a camera source that cannot be opened or read
    ├── OutboxError            the durable outbox cannot store a message
    ├── UnknownBundle          a bundle the model store does not hold
    ├── NothingToRollBack      rollback with no earlier bundle
    ├── UploadRejected         a chunk that does not fit its upload
    └── StagingFull            no room to stage a bundle (disk full or quota)

Domain errors know nothing of gRPC; one interceptor maps them to status codes.
"""

from __future__ import annotations

__all__ = [
    "ActivationFailed",
    "BundleCorrupt",
    "BundleError",
    "BundleIncompatible",
    "BundleSignatureError",
    "CameraError",
    "ConfigError",
    "EngineError",
    "ImageDecodeError",
    "ImageTooLarge",
    "LinewatchError",
    "NoModelLoaded",
    "NothingToRollBack",
    "OutboxError",
    "ParityFailed",
    "ReleaseRefused",
    "StagingFull",
    "UnknownBundle",
    "UploadCorrupt",
    "UploadRejected",
]


class LinewatchError(Exception):
    """Root of every error Linewatch raises on purpose."""


class ConfigError(LinewatchError):
    """Settings that cannot work."""


class BundleError(LinewatchError):
    """A model bundle that cannot be used."""


class BundleCorrupt(BundleError):
    """A bundle that is unreadable, truncated or fails its sha256 or signature check."""


class BundleIncompatible(BundleError):
    """A readable bundle that this node cannot run."""


class ImageDecodeError(LinewatchError):
    """Bytes that do not decode to an image."""


class ImageTooLarge(LinewatchError):
    """An image larger than the configured limit."""


class NoModelLoaded(LinewatchError):
    """An inspection asked for before any model is active."""


class EngineError(LinewatchError):
    """ONNX Runtime could not load or run a model."""


class CameraError(LinewatchError):
    """A camera source that cannot be opened or read."""


class OutboxError(LinewatchError):
    """The durable outbox cannot store a message."""


class UnknownBundle(LinewatchError):
    """A bundle that is not in the store (never pushed, or pruned)."""


class NothingToRollBack(LinewatchError):
    """Rollback asked for, but no earlier bundle is held."""


class ParityFailed(BundleIncompatible):
    """The node's results on the golden images diverge from the trainer's."""


class ReleaseRefused(BundleIncompatible):
    """A validly signed release that does not allow this node, now, or this version order."""


class ActivationFailed(BundleIncompatible):
    """A verified bundle this node cannot run (ONNX Runtime refused it)."""


class UploadCorrupt(BundleCorrupt):
    """A complete upload whose bytes do not match the sha256 it announced."""


class UploadRejected(LinewatchError):
    """A chunk that does not fit the upload: a bad id, an offset past what is held, a size."""


class StagingFull(LinewatchError):
    """The model directory has no room for a bundle (disk full or over its quota)."""


class BundleSignatureError(BundleCorrupt):
    """A bundle that is unsigned, signed by an untrusted key, or altered after signing."""
