"""Root fixtures; each area keeps its own in tests/plugins/<area>.py."""

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.runtime.bundle import ModelBundle
from tests.tiny_bundle import make_tiny_bundle

pytest_plugins = [
    "tests.plugins.cloud",
    "tests.plugins.edge",
    "tests.plugins.mqtt",
    "tests.plugins.deploy",
]


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> ModelBundle:
    """A tiny real ONNX bundle (64x64, grey-distance score) in a temp directory."""
    return make_tiny_bundle(tmp_path / "tiny-bundle")


@pytest.fixture
def tiny_bundle_factory(tmp_path: Path) -> Callable[..., ModelBundle]:
    """Make tiny bundles with other names, versions or thresholds."""

    def make(**kwargs: object) -> ModelBundle:
        name = str(kwargs.get("name", "tiny"))
        version = str(kwargs.get("version", "1"))
        return make_tiny_bundle(tmp_path / f"bundle-{name}-{version}", **kwargs)  # type: ignore[arg-type]

    return make
