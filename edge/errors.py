"""Errors of the edge side, each one a message a person can act on.

The tree::

    LinewatchError
    ├── ConfigError            settings that cannot work (bad URL, missing file)
    ├── BundleError            a model bundle that cannot be used
    │   ├── BundleCorrupt      unreadable, truncated, sha256 or signature mismatch
    │   └── BundleIncompatible readable but not for this node (input size, format version)
    ├── ImageDecodeError       bytes that are not an image we can read
    ├── ImageTooLarge          an image over the configured size limit
    ├── NoModelLoaded          asked to inspect before a model is active
    ├── EngineError            ONNX Runtime failed to load or run a model
    ├── CameraError            a camera source that cannot be opened or read
    └── OutboxError            the durable outbox cannot store a message

Domain errors know nothing of gRPC; one interceptor maps them to status codes.
"""

from __future__ import annotations

__all__ = [
    "BundleCorrupt",
    "BundleError",
    "BundleIncompatible",
    "CameraError",
    "ConfigError",
    "EngineError",
    "ImageDecodeError",
    "ImageTooLarge",
    "LinewatchError",
    "NoModelLoaded",
    "OutboxError",
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
